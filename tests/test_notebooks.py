"""Every notebook is committed without outputs and runs headless, top to bottom, on the small world;
notebooks 01 and 02 also with a base model from outside the run, as a real-model profile has.
Every figure a notebook draws survives the export to HTML (a static PNG, or plotly.js inlined)."""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import kaleido
import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from lab.runlog import read_metrics
from tests.conftest import SMALL

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(len(NOTEBOOKS))]
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, (
                f"{path.name}: strip outputs (make strip-notebooks)"
            )


def execute(path: Path, run: Path, overrides: dict, monkeypatch) -> nbformat.NotebookNode:
    """Run a notebook top to bottom on `run` with `overrides`; the notebook with its outputs."""
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("LAB_RUN_DIR", str(run))
    monkeypatch.setenv("LAB_SET", json.dumps(overrides))
    monkeypatch.setenv(
        "PYTHONPATH", str(path.parents[1]) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    client = NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell, on any error
    printed = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
    assert "Traceback" not in printed
    return nb


PLOTLY = "application/vnd.plotly.v1+json"


def check_figures_in_html(nb: nbformat.NotebookNode) -> int:
    """Each plotly output also carries a PNG or inlined plotly.js, and nbconvert's HTML shows it."""
    html, _ = HTMLExporter().from_notebook_node(nb)
    figures = [
        o["data"] for c in nb.cells if c.cell_type == "code" for o in c.outputs if PLOTLY in o.get("data", {})
    ]  # fmt: skip
    assert "is not able to be represented" not in html
    for data in figures:
        if "image/png" in data:  # kaleido drew it with the local Chromium
            assert data["image/png"][:200] in html
        else:  # no Chromium: the figure's own div, drawn by plotly.js inlined into the notebook
            assert "text/html" in data and data["text/html"][:200] in html
    return len(figures)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless(path, small_ppo_run, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    run = tmp_path / "run"
    shutil.copytree(small_ppo_run, run)  # every stage done: the notebooks reuse them
    nb = execute(path, run, SMALL, monkeypatch)
    drawn = check_figures_in_html(nb)
    plots = sum("plot" in c.source or "px." in c.source for c in nb.cells if c.cell_type == "code")
    assert drawn >= min(plots, 1), f"{path.name} draws figures, but its HTML shows none"


@pytest.mark.parametrize("path", NOTEBOOKS[1:3], ids=lambda p: p.stem)
def test_notebook_runs_with_a_base_from_elsewhere(path, small_run, tmp_path, monkeypatch):
    """A real-model profile only sets `model.name_or_path` (a hub id): stand in a local folder."""
    base = shutil.copytree(small_run / "pretrain" / "model", tmp_path / "hub" / "base")
    run = tmp_path / "run"
    shutil.copytree(small_run / "world", run / "world")
    execute(path, run, {**SMALL, "model.name_or_path": str(base)}, monkeypatch)
    # Nothing was pretrained here: the base came from outside, and SFT started from it.
    assert read_metrics(run / "pretrain")["pretrain/base_model"] == str(base)
    assert not (run / "pretrain" / "model").exists()
    if path.stem.startswith("02"):
        assert (
            read_metrics(run / "sft")["sft/eval_loss"]
            < read_metrics(run / "sft")["sft/base_eval_loss"]
        )


def test_figures_fall_back_to_inlined_plotly_without_chromium(monkeypatch, capsys):
    import plotly.io as pio

    from lab.notebook import WITH_PNG, WITHOUT_CHROME, use_offline_figures

    def no_chromium(*args, **kwargs):
        raise RuntimeError("no Chromium here")

    monkeypatch.setattr(kaleido, "start_sync_server", lambda **kwargs: None)
    monkeypatch.setattr(pio, "to_image", no_chromium)
    monkeypatch.setattr(pio.renderers, "default", WITH_PNG)
    assert use_offline_figures() == WITHOUT_CHROME == pio.renderers.default
    assert "without a static PNG (RuntimeError: no Chromium here)" in capsys.readouterr().out


def test_a_chromium_that_dies_at_start_does_not_hang_the_notebook():
    # The real kaleido, in a process of its own, with a "browser" that exits at once: its server's
    # thread dies while starting and a drawing asked of it waits forever (what hung a CI run).
    code = "from lab.notebook import use_offline_figures; print(use_offline_figures(5.0))"
    env = {**os.environ, "BROWSER_PATH": shutil.which("false") or "/bin/false"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Figures without a static PNG" in done.stdout
    assert done.stdout.strip().endswith("plotly_mimetype+notebook"), done.stdout


def test_a_chromium_that_never_answers_does_not_hang_the_notebook(monkeypatch, capsys):
    # kaleido's server waits forever if its Chromium died while starting (a CI run hung here).
    import plotly.io as pio

    from lab.notebook import WITH_PNG, WITHOUT_CHROME, use_offline_figures

    released = threading.Event()
    monkeypatch.setattr(kaleido, "start_sync_server", lambda **kwargs: None)
    monkeypatch.setattr(pio, "to_image", lambda *args, **kwargs: released.wait(30))
    monkeypatch.setattr(pio.renderers, "default", WITH_PNG)
    try:
        assert use_offline_figures(probe_seconds=0.2) == WITHOUT_CHROME == pio.renderers.default
    finally:
        released.set()
    assert (
        "TimeoutError: Chromium did not draw a test figure within 0.2 s" in capsys.readouterr().out
    )
