"""The pipeline's summary: tables per stage and per model, summary.json, a self-contained report."""

from __future__ import annotations

import json
import shutil

import pytest

from lab import metrics as M
from lab.cli import main
from lab.runlog import read_metrics
from lab.summary import REPORT_FILE, SUMMARY_FILE, compute_model_table, format_summary, summarize
from tests.conftest import SMALL


def test_model_table_reads_every_evaluated_model(small_ppo_run):
    table = compute_model_table(small_ppo_run).set_index("model")
    assert list(table.index) == ["base", "sft", "ppo"]
    assert table.loc["sft", "kl_to_sft"] == 0.0 and table.loc["ppo", "kl_to_sft"] > 0
    for model in ("base", "ppo"):
        row = table.loc[model]
        assert abs(row.win + row.tie + row.loss - 1) < 1e-9
        assert row.win_rate_vs_sft == pytest.approx(row.win + 0.5 * row.tie)  # one definition
        assert row.win_rate_lo <= row.win_rate_vs_sft <= row.win_rate_hi
        assert row.gold_lo < row.gold_mean < row.gold_hi
    ppo = read_metrics(small_ppo_run / "ppo")
    assert table.loc["ppo", "win_rate_vs_sft"] == pytest.approx(ppo[M.EVAL_WIN_RATE])
    assert table.loc["sft", "gold_mean"] > table.loc["base", "gold_mean"]  # SFT bought something


def test_cli_prints_the_summary_and_writes_the_report(small_ppo_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(small_ppo_run, run)
    args = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    assert main(["ppo", "--out", str(run), *args]) == 0  # every stage reused
    out = capsys.readouterr().out
    assert "reusing" in out and "Models on held-out prompts" in out and "[ppo] {" in out
    summary = json.loads((run / SUMMARY_FILE).read_text())
    assert [s["stage"] for s in summary["stages"]] == ["world", "pretrain", "sft", "reward", "ppo"]
    assert summary["total_seconds"] > 0
    report = (run / REPORT_FILE).read_text()
    assert "Plotly" in report and 'src="http' not in report  # plotly.js inlined: opens offline
    assert format_summary(summarize(run)).splitlines()[0].startswith("Stages")
