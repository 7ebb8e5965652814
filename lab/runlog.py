"""Where a stage writes: `log.jsonl` (one line per step), `metrics.json` (final numbers)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
LOG_FILE = "log.jsonl"


class RunLog:
    """Append step metrics to `log.jsonl`; `finish` writes `metrics.json`, marking the stage done.

    Under `accelerate launch` only the main process writes; the others' logs are no-ops.
    """

    def __init__(self, stage_dir: Path, append: bool = False):
        from lab.distributed import is_main  # torch is imported only by stages that log

        self.dir = Path(stage_dir)
        self._file = None
        if is_main():
            self.dir.mkdir(parents=True, exist_ok=True)
            self._file = (self.dir / LOG_FILE).open("a" if append else "w", encoding="utf-8")
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

    @property
    def elapsed(self) -> float:
        """Seconds since the stage started."""
        return time.perf_counter() - self._start

    def finish(self, metrics: dict[str, Any]) -> dict[str, Any]:
        """Close the log and write the final metrics (the stage's 'done' marker)."""
        if self._file is not None:
            self._file.close()
            write_json(self.dir / METRICS_FILE, metrics)
        return metrics


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically, so a crash never leaves half a file behind."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
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
