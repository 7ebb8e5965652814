"""The pipeline's summary: tables per stage and per model, summary.json, a self-contained report."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest

from lab import metrics as M
from lab.cli import main
from lab.runlog import LOG_FILE, TENSORBOARD_DIR, RunLog, read_log, read_metrics, write_json
from lab.summary import (
    REPORT_FILE,
    SUMMARY_FILE,
    compute_model_table,
    format_summary,
    model_headline,
    report_figures,
    summarize,
)
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
        diff = row.gold_mean - table.loc["sft", "gold_mean"]  # its interval is paired by prompt
        assert row.gold_diff_lo < diff < row.gold_diff_hi
    ppo = read_metrics(small_ppo_run / "ppo")
    assert table.loc["ppo", "win_rate_vs_sft"] == pytest.approx(ppo[M.EVAL_WIN_RATE])
    assert table.loc["sft", "gold_mean"] > table.loc["base", "gold_mean"]  # SFT bought something


def test_a_model_headline_says_above_or_below_sft_only_when_the_interval_does():
    row = {"model": "dpo", "gold_mean": 0.47, "gold_lo": 0.2, "gold_hi": 0.7, "rm_score": 1.6}
    noisy = model_headline(pd.Series(row | {"gold_diff_lo": -0.33, "gold_diff_hi": 0.27}), 0.5)
    assert "0.03 below SFT (paired 95% interval of the difference -0.33 to +0.27, no clear" in noisy
    assert "likes answers the gold judge ranks below" not in noisy  # a draw's worth, not a finding
    clear = model_headline(pd.Series(row | {"gold_diff_lo": -0.06, "gold_diff_hi": -0.01}), 0.5)
    assert "no clear" not in clear and "likes answers the gold judge ranks below SFT" in clear


def test_cli_prints_the_summary_and_writes_the_report(small_ppo_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(small_ppo_run, run)
    args = [arg for key, value in SMALL.items() for arg in ("--set", f"{key}={value}")]
    assert main(["ppo", "--out", str(run), *args]) == 0  # every stage reused
    out = capsys.readouterr().out
    assert "reusing" in out and "Models on held-out prompts" in out and "[ppo] {" in out
    summary = json.loads((run / SUMMARY_FILE).read_text(), parse_constant=refuse)  # no NaN
    assert [s["stage"] for s in summary["stages"]] == ["world", "pretrain", "sft", "reward", "ppo"]
    assert summary["total_seconds"] > 0
    report = (run / REPORT_FILE).read_text()
    assert "Plotly" in report and 'src="http' not in report  # plotly.js inlined: opens offline
    assert "<title>RLHF Lab · profile tiny · " in report and "<style>" in report
    assert "The reward model orders" in report and "PPO raised the reward model" in report
    assert "ppo: gold" in report  # one sentence per model too
    assert format_summary(summarize(run)).splitlines()[0].startswith("Stages")


def test_a_hub_models_pretrain_stage_has_no_curve_and_the_report_still_comes(
    small_ppo_run, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(small_ppo_run, run)
    (run / "pretrain" / LOG_FILE).unlink()  # as a hub model's pretrain stage leaves it
    titles = [figure.layout.title.text for figure in report_figures(run)]
    assert "pretrain" not in titles and "sft" in titles and "ppo" in titles


def test_a_run_without_sft_does_not_claim_a_comparison_with_it():
    # +sentiment and +detox train PPO from the base model: there is no SFT row to compare with.
    summary = {"stages": [], "models": [{"model": "base"}, {"model": "ppo"}], "total_seconds": 1}
    text = format_summary(summary)
    assert "against SFT" not in text and "no SFT model in this run" in text
    summary["models"].append({"model": "sft"})
    assert "win/tie/loss against SFT" in format_summary(summary)


def refuse(constant: str):
    raise ValueError(f"{constant} is not JSON")


def test_json_has_no_nan(tmp_path):
    """A missing number is written as null: NaN and Infinity are not JSON."""
    path = tmp_path / "summary.json"
    write_json(path, {"seconds": math.nan, "rows": [{"kl": math.inf}, (1.5, -math.inf)], "n": 3})
    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "seconds": None,
        "rows": [{"kl": None}, [1.5, None]],
        "n": 3,
    }


def test_tensorboard_gets_the_same_scalars_under_the_same_names(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = RunLog(tmp_path, report_to=["tensorboard"])
    for step in (1, 2):
        log.log(step, {M.PPO_KL: 0.5 * step, M.PPO_REWARD: float(step)})
    log.finish({})
    board = EventAccumulator(str(tmp_path / TENSORBOARD_DIR))
    board.Reload()
    assert set(board.Tags()["scalars"]) == {M.PPO_KL, M.PPO_REWARD}
    assert [(e.step, e.value) for e in board.Scalars(M.PPO_KL)] == [
        (row["step"], row[M.PPO_KL]) for row in read_log(tmp_path)
    ]
