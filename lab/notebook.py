"""What notebooks call: the config and run folder, figures that show offline, and live curves.

Tests run the notebooks headless on a smaller world by setting `LAB_RUN_DIR` and
`LAB_SET` (a JSON object of overrides); a student changes the profile name and nothing else.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lab.config import LabConfig
from lab.profiles import load_config
from lab.recipes import uses_world
from lab.runlog import LOG_FILE, read_log
from lab.threads import set_torch_threads

REPO_ROOT = Path(__file__).resolve().parents[1]
# Every figure output carries plotly's JSON (interactive in JupyterLab and VS Code) and a PNG that
# kaleido draws with the local Chromium (nbconvert's HTML, GitHub). Without a Chromium: plotly.js
# inlined once into the notebook instead of the PNG. Neither needs a network.
WITH_PNG, WITHOUT_CHROME = "plotly_mimetype+png", "plotly_mimetype+notebook"
FIGURE_PROBE_SECONDS = 60.0  # Chromium starts in seconds; a hung one must not hang the notebook


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
    use_offline_figures()
    quiet_progress()
    return cfg, run_dir


def quiet_progress() -> None:
    """A progress bar per training stage, and no more: none for loading weights or mapping a
    dataset, no load reports (a reward model's new head is expected)."""
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def use_offline_figures(probe_seconds: float = FIGURE_PROBE_SECONDS) -> str:
    """Make plotly's figures show in every notebook viewer without a network; the renderer used."""
    import plotly.io as pio

    warnings.filterwarnings("ignore", message="The kopts argument is ignored")
    try:
        import kaleido

        kaleido.start_sync_server(silence_warnings=True)  # one Chromium for every figure
        draw_test_figure(probe_seconds)  # fails here, once, if there is no working Chromium
        pio.renderers.default = WITH_PNG
    except Exception as err:  # no kaleido or no Chromium: interactive HTML, still offline
        print(f"Figures without a static PNG ({type(err).__name__}: {err}).")
        print("A working Chromium adds them: apt install chromium")
        pio.renderers.default = WITHOUT_CHROME
    return pio.renderers.default


def draw_test_figure(seconds: float) -> None:
    """Draw an empty figure as a PNG, or raise: its error, or TimeoutError after `seconds`.

    kaleido's server waits forever for an answer if its Chromium died while starting, so the
    drawing runs in a thread of its own that is given up on, not waited for.
    """
    import plotly.graph_objects as go
    import plotly.io as pio

    failure: list[BaseException] = []

    def draw() -> None:
        try:
            pio.to_image(go.Figure(), format="png")
        except BaseException as err:
            failure.append(err)

    drawing = threading.Thread(target=draw, name="draw-test-figure", daemon=True)
    drawing.start()
    drawing.join(seconds)
    if drawing.is_alive():
        raise TimeoutError(f"Chromium did not draw a test figure within {seconds:g} s")
    if failure:
        raise failure[0]


@contextmanager
def live_curves(
    stage_dir: Path, metrics: Sequence[str], title: str = "", every: float = 2.0
) -> Iterator[None]:
    """Redraw `plot_curves` of `stage_dir/log.jsonl` every `every` seconds while the body runs.

    `with live_curves(RUN / "ppo", [M.PPO_REWARD, M.PPO_GOLD]): run_stages(cfg, RUN, "ppo")`
    """
    import plotly.io as pio
    from IPython.display import display

    from lab.plots import plot_curves

    handle = display(plot_curves([], metrics, title), display_id=True)
    renderer, pio.renderers.default = pio.renderers.default, "plotly_mimetype"  # no PNG per tick
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
        pio.renderers.default = renderer  # the last drawing (the one a notebook keeps) has a PNG
        redraw()
