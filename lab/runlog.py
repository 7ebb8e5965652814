"""Where a stage writes: `log.jsonl` (one line per step), `metrics.json` (final numbers), and,
when asked, the same scalars under the same names for TensorBoard (`tensorboard/`)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
LOG_FILE = "log.jsonl"
TENSORBOARD_DIR = "tensorboard"  # `tensorboard --logdir runs/tiny` shows every stage's curves


class RunLog:
    """Append step metrics to `log.jsonl`; `finish` writes `metrics.json`, marking the stage done.

    Under `accelerate launch` only the main process writes; the others' logs are no-ops.
    `report_to=("tensorboard",)` also writes each numeric value to `stage_dir/tensorboard/`.
    """

    def __init__(self, stage_dir: Path, append: bool = False, report_to: Sequence[str] = ()):
        from lab.distributed import is_main  # torch is imported only by stages that log

        self.dir = Path(stage_dir)
        self._file = self._board = None
        if is_main():
            self.dir.mkdir(parents=True, exist_ok=True)
            self._file = (self.dir / LOG_FILE).open("a" if append else "w", encoding="utf-8")
            if "tensorboard" in report_to:
                from torch.utils.tensorboard import SummaryWriter  # needs `tensorboard`

                self._board = SummaryWriter(log_dir=str(self.dir / TENSORBOARD_DIR))
        self._start = time.perf_counter()

    def log(self, step: int, values: dict[str, float]) -> None:
        """One line: `{"step": 3, "time": 1.2, "pretrain/loss": 4.1, ...}`; NaN/inf refused."""
        bad = [k for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"step {step}: non-finite {', '.join(bad)} in {self.dir}")
        if self._file is None:
            return
        row = {"step": step, "time": round(self.elapsed, 3), **values}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._board is not None:
            for name, value in values.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._board.add_scalar(name, value, step)

    @property
    def elapsed(self) -> float:
        """Seconds since the stage started."""
        return time.perf_counter() - self._start

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Close the log and write the final metrics (the stage's 'done' marker)."""
        if self._board is not None:
            self._board.close()
        if self._file is not None:
            self._file.close()
            write_json(self.dir / METRICS_FILE, metrics)
        return metrics


def jsonable(data: Any) -> Any:
    """`data` with every NaN and infinity replaced by None: JSON has no NaN, only `null`."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: jsonable(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [jsonable(value) for value in data]
    return data


def write_json(path: Path, data: Any) -> None:
    """Write valid JSON (a missing number is `null`) atomically: a crash leaves no half file."""
    text = json.dumps(jsonable(data), indent=2, ensure_ascii=False, allow_nan=False)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text + "\n", encoding="utf-8")
    tmp.replace(path)


def read_log(stage_dir: Path) -> list[dict[str, Any]]:
    """The rows of a stage's `log.jsonl`."""
    with (Path(stage_dir) / LOG_FILE).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_metrics(stage_dir: Path) -> dict[str, Any]:
    """A finished stage's `metrics.json`."""
    return json.loads((Path(stage_dir) / METRICS_FILE).read_text(encoding="utf-8"))


def is_done(stage_dir: Path) -> bool:
    """A stage is done once its metrics.json exists (written last)."""
    return (Path(stage_dir) / METRICS_FILE).exists()


def truncate_log(stage_dir: Path, last_step: int) -> None:
    """Drop log rows after `last_step` (a run resumed from a checkpoint logs them again)."""
    path = Path(stage_dir) / LOG_FILE
    if path.exists():
        keep = [r for r in read_log(stage_dir) if r["step"] <= last_step]
        path.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")
