"""Results across seeds: each model's mean with a t-interval, and how often it beat SFT."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from lab.intervals import t_interval
from lab.summary import SWEEP_DIR, SWEEP_FILE, report_figures
from lab.sweep import compute_sweep_table, format_sweep, seed_config, write_sweep


def test_sweep_table_means_intervals_and_wins_over_sft():
    seeds = pd.DataFrame(
        [
            {"seed": s, "model": m, "gold_mean": g, "win_rate_vs_sft": w, "kl_to_sft": k,
             "rm_score": 0.0, "length_mean": 10.0}
            for s, rows in {
                0: [("sft", 0.75, None, 0.0), ("ppo", 1.36, 0.8, 2.0)],
                1: [("sft", -1.07, None, 0.0), ("ppo", -0.44, 0.7, 3.0)],
                2: [("sft", 0.36, None, 0.0), ("ppo", 0.30, 0.4, 1.0)],
            }.items()
            for m, g, w, k in rows
        ]
    )  # fmt: skip
    table = compute_sweep_table(seeds).set_index("model")
    ppo = table.loc["ppo"]
    assert ppo["gold_mean"] == pytest.approx((1.36 - 0.44 + 0.30) / 3)
    assert (ppo["gold_mean_lo"], ppo["gold_mean_hi"]) == pytest.approx(
        t_interval([1.36, -0.44, 0.30])
    )
    assert ppo["beats_sft"] == "2/3"  # seed 2: 0.30 < 0.36
    gains = [1.36 - 0.75, -0.44 + 1.07, 0.30 - 0.36]  # paired by seed
    assert ppo["gold_gain"] == pytest.approx(sum(gains) / 3)
    assert (ppo["gold_gain_lo"], ppo["gold_gain_hi"]) == pytest.approx(t_interval(gains))
    assert ppo["win_rate_vs_sft"] == pytest.approx(1.9 / 3)
    assert table.loc["sft", "beats_sft"] == "-" and table.loc["sft", "seeds"] == 3
    assert "gold above SFT in 2/3 seeds" in format_sweep(
        {"seeds": [0, 1, 2], "models": compute_sweep_table(seeds).to_dict("records")}
    )


def test_seed_config_seeds_world_and_training_on_a_copy(small_cfg):
    cfg = seed_config(small_cfg, 7)
    assert cfg.seed == 7 and cfg.world.seed == 7
    assert small_cfg.seed != 7 and small_cfg.world.seed != 7


def test_write_sweep_reads_each_seeds_run_and_the_report_shows_the_spread(small_ppo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_ppo_run, run)
    for seed in (3, 4):  # the same finished run stands in for two seeds
        shutil.copytree(small_ppo_run, run / SWEEP_DIR / f"seed-{seed}")
    sweep = write_sweep(run / SWEEP_DIR, [3, 4])
    assert json.loads((run / SWEEP_DIR / SWEEP_FILE).read_text())["seeds"] == [3, 4]
    models = {row["model"]: row for row in sweep["models"]}
    assert set(models) == {"base", "sft", "ppo"} and models["ppo"]["seeds"] == 2
    assert models["ppo"]["gold_mean_lo"] == pytest.approx(models["ppo"]["gold_mean"])  # no spread
    assert len(sweep["runs"]) == 6
    spread = report_figures(run)[0]
    assert "over 2 seeds" in spread.layout.title.text
    assert [t.name for t in spread.data] == ["one seed", "mean, 95% interval", "this run"]


def test_cli_sweep_needs_two_seeds(capsys):
    from lab.cli import main

    assert main(["sweep", "--seeds", "1"]) == 2
    assert "at least 2 seeds" in capsys.readouterr().err
