"""What notebooks call: the config and run folder, and curves that redraw while a stage trains.

Tests run the notebooks headless on a smaller world by setting `LAB_RUN_DIR` and
`LAB_SET` (a JSON object of overrides); a student changes the profile name and nothing else.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lab.config import LabConfig
from lab.profiles import load_config
from lab.recipes import uses_world
from lab.runlog import LOG_FILE, read_log
from lab.threads import set_torch_threads

REPO_ROOT = Path(__file__).resolve().parents[1]


def notebook_setup(profile: str = "tiny") -> tuple[LabConfig, Path]:
    """The profile's config (plus `LAB_SET` overrides) and its run folder; sets torch's threads."""
    overrides = json.loads(os.environ.get("LAB_SET", "{}"))
    cfg = load_config(profile, overrides)
    if not uses_world(cfg):  # every notebook grades models with the world's gold judge
        raise ValueError(
            f"profile {profile!r} trains on a recipe's data, which has no gold judge; the notebooks "
            "teach with the tiny world's. Here pick a model without a recipe (e.g. 'smollm2-135m': "
            f"a real model on the world's data); run the recipe with `python -m lab pipeline "
            f"--profile {profile}` and compare its models in the arena"
        )
    run_dir = Path(os.environ.get("LAB_RUN_DIR", REPO_ROOT / "runs" / profile))
    set_torch_threads()
    return cfg, run_dir


@contextmanager
def live_curves(
    stage_dir: Path, metrics: Sequence[str], title: str = "", every: float = 2.0
) -> Iterator[None]:
    """Redraw `plot_curves` of `stage_dir/log.jsonl` every `every` seconds while the body runs.

    `with live_curves(RUN / "ppo", [M.PPO_REWARD, M.PPO_GOLD]): run_stages(cfg, RUN, "ppo")`
    """
    from IPython.display import display

    from lab.plots import plot_curves

    handle = display(plot_curves([], metrics, title), display_id=True)
    stop = threading.Event()

    def redraw() -> None:
        try:
            rows = read_log(stage_dir) if (Path(stage_dir) / LOG_FILE).exists() else []
        except (OSError, ValueError):  # a line half written: the next tick reads it whole
            return
        if rows and handle is not None:
            handle.update(plot_curves(rows, metrics, title))

    def watch() -> None:
        while not stop.wait(every):
            redraw()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        redraw()
