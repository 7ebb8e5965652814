"""The pipeline over several seeds: each model's numbers as a mean with a 95% interval.

One run's gold or win rate moves with the seed (the world, the initial weights, the
sampling noise); a lesson that holds shows in every seed. `python -m lab sweep --seeds 5`
runs the pipeline once per seed (world and training seeded alike) into `<run>/sweep/seed-S/`,
then writes `<run>/sweep/sweep.json`: each seed's model table and their mean and interval.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pandas as pd

from lab.config import LabConfig
from lab.intervals import mean, t_interval
from lab.overrides import apply_overrides
from lab.runlog import write_json
from lab.stages import STAGE_NAMES, run_stages
from lab.summary import SWEEP_DIR, SWEEP_FILE, compute_model_table, summarize

# The numbers compared across seeds (columns of `compute_model_table`).
SWEPT = ["gold_mean", "win_rate_vs_sft", "kl_to_sft", "rm_score", "length_mean"]


def seed_config(cfg: LabConfig, seed: int) -> LabConfig:
    """A copy of `cfg` with the world and every training seed set to `seed`."""
    seeded = copy.deepcopy(cfg)
    apply_overrides(seeded, {"seed": seed, "world.seed": seed})
    return seeded


def run_sweep(cfg: LabConfig, run_dir: Path, seeds: list[int]) -> dict:
    """Run the pipeline once per seed (finished stages are reused), then write `sweep.json`."""
    folder = Path(run_dir) / SWEEP_DIR
    for seed in seeds:
        print(f"[sweep] seed {seed} -> {folder / f'seed-{seed}'}")
        run_stages(seed_config(cfg, seed), folder / f"seed-{seed}", until=STAGE_NAMES[-1])
        summarize(folder / f"seed-{seed}")
    return write_sweep(folder, seeds)


def compute_seed_table(folder: Path, seeds: list[int]) -> pd.DataFrame:
    """One row per (seed, model): the model table of each seed's run, stacked."""
    tables = [compute_model_table(folder / f"seed-{seed}").assign(seed=seed) for seed in seeds]
    return pd.concat(tables, ignore_index=True)


def compute_sweep_table(seeds: pd.DataFrame) -> pd.DataFrame:
    """One row per model: mean and t-interval over seeds of each swept number, of its gold gain
    over SFT in the same seed (paired), and in how many seeds its gold beat SFT's."""
    sft = seeds[seeds["model"] == "sft"].set_index("seed")["gold_mean"]
    rows = []
    for model, group in seeds.groupby("model", sort=False):
        row: dict = {"model": model, "seeds": len(group)}
        for name in SWEPT:
            values = [v for v in group.get(name, pd.Series(dtype=float)) if not math.isnan(v)]
            row[name] = mean(values)
            row[f"{name}_lo"], row[f"{name}_hi"] = t_interval(values)
        # Paired by seed: each seed's world moves SFT's gold too, the gain over it much less.
        gains = [g - sft[s] for s, g in zip(group["seed"], group["gold_mean"], strict=True)]
        row["gold_gain"] = mean(gains)
        row["gold_gain_lo"], row["gold_gain_hi"] = t_interval(gains)
        row["beats_sft"] = f"{sum(g > 0 for g in gains)}/{len(gains)}" if model != "sft" else "-"
        rows.append(row)
    return pd.DataFrame(rows)


def write_sweep(folder: Path, seeds: list[int]) -> dict:
    """Write `sweep.json` (each seed's rows and the summary over seeds); returns it."""
    per_seed = compute_seed_table(folder, seeds)
    sweep = {
        "seeds": seeds,
        "runs": per_seed.to_dict("records"),
        "models": compute_sweep_table(per_seed).to_dict("records"),
    }
    write_json(folder / SWEEP_FILE, sweep)
    return sweep


def format_sweep(sweep: dict) -> str:
    """The table the command prints: mean [low, high] per model, and wins over SFT."""
    lines = [f"Over {len(sweep['seeds'])} seeds {sweep['seeds']} (mean [95% interval]):"]
    for row in sweep["models"]:
        cells = [f"{row['model']:<5}"]
        for name in ("gold_mean", "gold_gain", "win_rate_vs_sft", "kl_to_sft"):
            if not math.isnan(row[name]):
                cells.append(
                    f"{name} {row[name]:.3f} [{row[f'{name}_lo']:.3f}, {row[f'{name}_hi']:.3f}]"
                )
        cells.append(f"gold above SFT in {row['beats_sft']} seeds")
        lines.append("  " + " · ".join(cells))
    return "\n".join(lines)
