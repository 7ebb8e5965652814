"""What each stage bought: a table per stage and per model, `summary.json` and an HTML report.

Everything is read from the stages' own outputs (metrics.json, log.jsonl, eval.jsonl), so
the summary of a run can be rebuilt at any time without training anything.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from lab import metrics as M
from lab.evaluation import BASE_GOLD_TABLE, GOLD_TABLE, compute_gold_by_kind, compute_win_rate
from lab.intervals import bootstrap_ci, win_score
from lab.plots import plot_curves, plot_gold_by_kind, plot_seed_spread
from lab.runlog import LOG_FILE, is_done, read_log, read_metrics, write_json

SUMMARY_FILE, REPORT_FILE = "summary.json", "report.html"
SWEEP_DIR, SWEEP_FILE = "sweep", "sweep.json"  # `python -m lab sweep` writes <run>/sweep/sweep.json
# Each model's gold table on the shared held-out prompts, and where its KL to SFT is logged.
MODEL_TABLES = {
    "base": ("sft", BASE_GOLD_TABLE),
    "sft": ("sft", GOLD_TABLE),
    "ppo": ("ppo", GOLD_TABLE),
    "dpo": ("dpo", GOLD_TABLE),
    "grpo": ("grpo", GOLD_TABLE),
    "orpo": ("orpo", GOLD_TABLE),
}
KL_KEYS = {
    "ppo": M.PPO_EVAL_KL,
    "dpo": M.DPO_EVAL_KL,
    "grpo": M.GRPO_EVAL_KL,
    "orpo": M.ORPO_EVAL_KL,
}
# ...and its reward-model score of fresh samples (the yardstick when there is no gold judge).
RM_KEYS = {
    "ppo": M.PPO_EVAL_REWARD,
    "dpo": M.DPO_EVAL_REWARD,
    "grpo": M.GRPO_EVAL_REWARD,
    "orpo": M.ORPO_EVAL_REWARD,
}
# The numbers that say whether a stage did its job, in the order printed.
KEY_METRICS = {
    "world": [M.WORLD_N_PAIRS_TRAIN, M.WORLD_PAIRS_TRAIN_AGREEMENT],
    "pretrain": [M.PRETRAIN_LOSS, M.PRETRAIN_IN_WORLD],
    "sft": [M.SFT_EVAL_LOSS, M.EVAL_GOLD_MEAN, M.EVAL_WIN_RATE],
    "reward": [M.REWARD_ACCURACY, M.REWARD_GOLD_ACCURACY],
    "ppo": [M.PPO_EVAL_REWARD, M.PPO_EVAL_KL, M.EVAL_GOLD_MEAN, M.EVAL_WIN_RATE],
    "dpo": [M.DPO_EVAL_ACCURACY, M.DPO_EVAL_KL, M.EVAL_GOLD_MEAN, M.EVAL_WIN_RATE],
    "grpo": [M.GRPO_EVAL_REWARD, M.GRPO_EVAL_KL, M.EVAL_GOLD_MEAN, M.EVAL_WIN_RATE],
    "orpo": [M.ORPO_EVAL_LOG_ODDS_RATIO, M.ORPO_EVAL_KL, M.EVAL_GOLD_MEAN, M.EVAL_WIN_RATE],
}
CURVES = {
    "pretrain": [M.PRETRAIN_LOSS, M.PRETRAIN_EVAL_LOSS],
    "sft": [M.SFT_LOSS, M.SFT_EVAL_LOSS],
    "reward": [M.REWARD_LOSS, M.REWARD_ACCURACY],
    "ppo": [M.PPO_REWARD, M.PPO_KL, M.PPO_GOLD],
    "dpo": [M.DPO_LOSS, M.DPO_ACCURACY],
    "grpo": [M.GRPO_REWARD, M.GRPO_KL],
    "orpo": [M.ORPO_LOSS, M.ORPO_NLL, M.ORPO_LOG_ODDS_RATIO],
}


def done_stages(run_dir: Path) -> list[str]:
    """Stages with a finished output folder, in pipeline order."""
    return [name for name in KEY_METRICS if is_done(run_dir / name)]


def compute_stage_table(run_dir: Path) -> pd.DataFrame:
    """One row per finished stage: wall time and its key metrics (a dict)."""
    rows = []
    for name in done_stages(run_dir):
        metrics = read_metrics(run_dir / name)
        key = {k: metrics[k] for k in KEY_METRICS[name] if k in metrics}
        rows.append(
            {"stage": name, "seconds": metrics.get(M.STAGE_SECONDS, math.nan), "metrics": key}
        )
    return pd.DataFrame(rows, columns=["stage", "seconds", "metrics"])


def readable(stages: pd.DataFrame) -> pd.DataFrame:
    """The stage table with its metrics written out as `name value · name value`."""
    shown = stages.copy()
    shown["metrics"] = [
        " · ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items())
        for m in stages["metrics"]
    ]
    return shown


def gold_tables(run_dir: Path) -> dict[str, pd.DataFrame]:
    """Each evaluated model's gold table (same prompts, same decoding)."""
    tables = {}
    for model, (stage, file) in MODEL_TABLES.items():
        path = run_dir / stage / file
        if is_done(run_dir / stage) and path.exists():
            tables[model] = pd.read_json(path, lines=True)
    return tables


def compute_model_table(run_dir: Path) -> pd.DataFrame:
    """One row per model, each with a bootstrap 95% interval over the held-out prompts (drawn
    within each task kind, as many as the held-out set holds of it): mean
    gold; win rate against SFT (`eval/win_rate`: wins plus half the ties, prompt by prompt) and
    its win / tie / loss shares; exact KL to SFT and reward-model score (the same samples and
    decoding for every policy, see `lab.yardstick`); mean length.

    Without a gold judge (a recipe's data) the gold columns are NaN and `rm_score` tells.
    """
    tables, rows = gold_tables(run_dir), []
    for model, table in tables.items():
        gold = table["gold"].tolist()
        # The held-out set fixes how many prompts of each kind it holds: resample within kinds.
        kinds = list(table["kind"]) if "kind" in table else None
        row = {"model": model, "gold_mean": table["gold"].mean()}
        row["gold_lo"], row["gold_hi"] = bootstrap_ci(gold, strata=kinds)
        if "sft" in tables and model != "sft" and table["gold"].notna().any():
            diffs = [a - b for a, b in zip(gold, tables["sft"]["gold"], strict=True)]
            rate = compute_win_rate(gold, list(tables["sft"]["gold"]))
            scores = [win_score(d) for d in diffs]
            row["win_rate_vs_sft"] = rate.win_or_half_tie
            row["win_rate_lo"], row["win_rate_hi"] = bootstrap_ci(scores, strata=kinds)
            row["gold_diff_lo"], row["gold_diff_hi"] = bootstrap_ci(diffs, strata=kinds)  # paired
            row.update(win=rate.win, tie=rate.tie, loss=rate.loss)
        metrics = read_metrics(run_dir / MODEL_TABLES[model][0])
        row["kl_to_sft"] = 0.0 if model == "sft" else metrics.get(KL_KEYS.get(model, ""), math.nan)
        row["rm_score"] = metrics.get(RM_KEYS.get(model, ""), math.nan)
        row["length_mean"] = table["length"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def format_table(table: pd.DataFrame) -> str:
    """A fixed-width text table (floats to 3 decimals, NaN as '-')."""
    if table.empty:
        return "(nothing yet)"
    return table.to_string(index=False, float_format=lambda x: f"{x:.3f}", na_rep="-")


def summarize(run_dir: Path) -> dict:
    """Build both tables, write summary.json and report.html; returns the summary."""
    stages, models = compute_stage_table(run_dir), compute_model_table(run_dir)
    summary = {
        "stages": stages.to_dict("records"),
        "models": models.to_dict("records"),
        "total_seconds": float(stages["seconds"].sum()) if not stages.empty else 0.0,
    }
    write_json(run_dir / SUMMARY_FILE, summary)
    (run_dir / REPORT_FILE).write_text(render_report(run_dir, stages, models))
    return summary


def format_summary(summary: dict) -> str:
    """The text the pipeline prints at the end."""
    stages, models = pd.DataFrame(summary["stages"]), pd.DataFrame(summary["models"])
    against = "win/tie/loss against SFT"
    if models.empty or "sft" not in set(models["model"]):  # e.g. +sentiment: PPO from the base
        against = "no SFT model in this run: no win rates, and KL is to PPO's start model"
    return (
        f"Stages (total {summary['total_seconds']:.0f} s):\n{format_stages(stages)}\n\n"
        f"Models on held-out prompts (gold judge; {against}):\n"
        f"{format_table(models)}"
    )


def format_stages(stages: pd.DataFrame) -> str:
    """One line per stage: name, seconds, key metrics."""
    if stages.empty:
        return "(nothing yet)"
    shown = readable(stages)
    return "\n".join(
        f"  {row.stage:<9}{row.seconds:>6.0f} s   {row.metrics}" for row in shown.itertuples()
    )


def read_sweep(run_dir: Path) -> dict | None:
    """The run's `sweep/sweep.json` (the same pipeline over several seeds), if there is one."""
    path = Path(run_dir) / SWEEP_DIR / SWEEP_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def report_figures(run_dir: Path) -> list[go.Figure]:
    """The report's plots: this run among the seeds (if swept), gold by task kind, then each
    stage's training curves."""
    figures = []
    tables = gold_tables(run_dir)
    if (sweep := read_sweep(run_dir)) is not None:
        seeds, models = pd.DataFrame(sweep["runs"]), pd.DataFrame(sweep["models"])
        this_run = compute_model_table(run_dir) if tables else None
        figures.append(plot_seed_spread(seeds, models, this_run))
    if tables:
        figures.append(plot_gold_by_kind(compute_gold_by_kind(tables)))
    for stage, names in CURVES.items():
        # A hub model's pretrain stage trained nothing here: it has metrics but no curves.
        if is_done(run_dir / stage) and (run_dir / stage / LOG_FILE).is_file():
            figures.append(plot_curves(read_log(run_dir / stage), names, title=stage))
    return figures


# One sentence per stage: what it bought, in words. `{m[name]}` reads the stage's metrics.json.
HEADLINES = {
    "world": "The world: {m[world/n_pairs_train]} preference pairs to learn from; the simulated "
    "annotators agree with the gold judge on {m[world/pairs_train_annotator_gold_agreement]:.0%} "
    "of them: the labels a reward model learns from are that noisy.",
    "pretrain": "Pretraining brought the next-token loss to {m[pretrain/loss]:.2f} nats; "
    "{m[pretrain/in_world_rate]:.0%} of the base model's sentences are well-formed world text.",
    "sft": "SFT fits held-out demonstrations to a loss of {m[sft/eval_loss]:.2f} nats; its answers "
    "score {m[eval/gold_mean]:.2f} with the gold judge, with a win rate against the base model of "
    "{m[eval/win_rate]:.0%} (eval/win_rate: wins plus half the ties, prompt by prompt).",
    "reward": "The reward model orders {m[reward/accuracy]:.0%} of held-out pairs as the annotators "
    "did and {m[reward/gold_accuracy]:.0%} as the gold judge does (a coin flip: 50%).",
    "ppo": "PPO raised the reward model's score to {m[ppo/eval_reward]:.2f} at a KL of "
    "{m[ppo/eval_kl]:.2f} nats from SFT; the gold judge gives {m[eval/gold_mean]:.2f}, with a win "
    "rate against SFT of {m[eval/win_rate]:.0%} (eval/win_rate: wins plus half the ties).",
    "dpo": "DPO ranks {m[dpo/eval_rewards_accuracy]:.0%} of held-out pairs the annotators' way at a "
    "KL of {m[dpo/eval_kl]:.2f} nats from SFT; gold {m[eval/gold_mean]:.2f}, win rate against SFT "
    "{m[eval/win_rate]:.0%} (wins plus half the ties).",
    "grpo": "GRPO reached a reward-model score of {m[grpo/eval_reward]:.2f} at a KL of "
    "{m[grpo/eval_kl]:.2f} nats from SFT; gold {m[eval/gold_mean]:.2f}, win rate against SFT "
    "{m[eval/win_rate]:.0%} (wins plus half the ties).",
    "orpo": "ORPO, with no reference model, brought the held-out pairs' log odds ratio (chosen over "
    "rejected) to {m[orpo/eval_log_odds_ratio]:.2f} at a KL of {m[orpo/eval_kl]:.2f} nats from SFT; "
    "gold {m[eval/gold_mean]:.2f}, win rate against SFT {m[eval/win_rate]:.0%} (wins plus half the "
    "ties).",
}
# The model table's columns as the report shows them, each with its definition.
COLUMNS = {
    "model": ("model", "the policy after that stage; base is the model SFT started from"),
    "gold_mean": ("gold", "mean gold-judge score on the held-out prompts (about 3 is the best)"),
    "gold_lo": (
        "gold lo",
        "95% bootstrap interval of that mean, over prompts (within each task kind)",
    ),
    "gold_hi": ("gold hi", ""),
    "gold_diff_lo": (
        "gold - SFT lo",
        "95% bootstrap interval of the gold difference to SFT, paired prompt by prompt",
    ),
    "gold_diff_hi": ("gold - SFT hi", ""),
    "win_rate_vs_sft": (
        "win rate vs SFT",
        f"{M.EVAL_WIN_RATE}: share of prompts where the answer beats SFT's, ties counting half",
    ),
    "win_rate_lo": ("win lo", "95% bootstrap interval of the win rate"),
    "win_rate_hi": ("win hi", ""),
    "win": ("win", "share of prompts won, tied and lost against SFT (gold judge)"),
    "tie": ("tie", ""),
    "loss": ("loss", ""),
    "kl_to_sft": ("KL to SFT", "exact KL(policy || SFT) per answer, in nats, on held-out prompts"),
    "rm_score": (
        "RM score",
        "the reward model's mean score of the samples KL is measured on (temperature 1, as in "
        "RL training; not the table's answers): its own scale, not the gold judge's",
    ),
    "length_mean": ("length", "mean answer length in tokens"),
}
STYLE = """
body { font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       max-width: 62rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; } li { margin: .3rem 0; }
table { border-collapse: collapse; font-size: .9rem; margin: 1rem 0; }
th, td { padding: .3rem .6rem; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f4f6f8; } td:first-child, th:first-child { text-align: left; }
tr:nth-child(even) td { background: #fafbfc; } .stages td { text-align: left; } dt { font-weight: 600; } dd { margin: 0 0 .4rem 1rem; }
"""


def stage_headline(stage: str, metrics: dict) -> str:
    """One sentence saying what `stage` bought (its name and raw metrics if one is missing)."""
    try:
        return HEADLINES[stage].format(m=metrics)
    except (KeyError, ValueError, TypeError):  # a metric this run did not log, or None
        shown = readable(pd.DataFrame([{"stage": stage, "metrics": metrics}]))["metrics"][0]
        return f"{stage}: {shown}"


def model_headline(row: pd.Series, sft_gold: float | None) -> str:
    """One sentence per model: gold with its interval, the win rate against SFT, and what the
    reward model's score does and does not say."""
    text = f"{row.model}: gold {row.gold_mean:.2f} (95% interval {row.gold_lo:.2f} to {row.gold_hi:.2f})"
    lo, hi = row.get("gold_diff_lo", math.nan), row.get("gold_diff_hi", math.nan)
    if sft_gold is not None and row.model != "sft" and pd.notna(lo):
        change = row.gold_mean - sft_gold
        clear = "" if lo > 0 or hi < 0 else ", no clear difference"
        text += (
            f", {abs(change):.2f} {'above' if change >= 0 else 'below'} SFT (paired 95% interval "
            f"of the difference {lo:+.2f} to {hi:+.2f}{clear})"
        )
    if pd.notna(row.get("win_rate_vs_sft", math.nan)):
        text += (
            f"; it beats SFT on {row.win:.0%} of prompts, ties {row.tie:.0%}, loses {row.loss:.0%} "
            f"(win rate {row.win_rate_vs_sft:.0%})"
        )
    if pd.notna(row.get("rm_score", math.nan)):
        text += (
            f". The reward model scores its answers {row.rm_score:.2f}, on its own scale: only the "
            "gold judge says whether they got better"
        )
        if hi < 0:  # clearly below SFT, not a draw's worth
            text += ", and it likes answers the gold judge ranks below SFT's"
    return html.escape(text + ".")


def run_date(run_dir: Path) -> str:
    """The day the run's newest stage finished (YYYY-MM-DD)."""
    import datetime

    stamps = [(Path(run_dir) / s / "metrics.json").stat().st_mtime for s in done_stages(run_dir)]
    when = datetime.datetime.fromtimestamp(max(stamps)) if stamps else datetime.datetime.now()
    return when.date().isoformat()


def run_profile(run_dir: Path) -> str:
    """The profile named in the run's config.json ('?' if there is none)."""
    path = Path(run_dir) / "config.json"
    return (
        json.loads(path.read_text(encoding="utf-8")).get("profile", "?") if path.exists() else "?"
    )


def render_report(run_dir: Path, stages: pd.DataFrame, models: pd.DataFrame) -> str:
    """A self-contained, styled HTML page: plotly.js inlined once, no CDN, opens offline."""
    title = f"RLHF Lab · profile {run_profile(run_dir)} · {run_date(run_dir)}"
    sft = models.set_index("model")["gold_mean"].get("sft") if not models.empty else None
    stage_lines = [
        f"<li><b>{row.stage}</b> ({row.seconds:.0f} s). "
        f"{html.escape(stage_headline(row.stage, read_metrics(run_dir / row.stage)))}</li>"
        for row in stages.itertuples()
    ]
    model_lines = [f"<li>{model_headline(row, sft)}</li>" for _, row in models.iterrows()]
    shown = models.rename(columns={k: v[0] for k, v in COLUMNS.items()})
    glossary = [
        f"<dt>{html.escape(name)}</dt><dd>{html.escape(text)}</dd>"
        for name, text in COLUMNS.values()
        if text
    ]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='sub'>What each stage bought, on the held-out prompts of the run in "
        f"<code>{html.escape(Path(run_dir).name)}</code>.</p>",
        "<h2>Stages</h2>",
        f"<ul>{''.join(stage_lines)}</ul>",
        readable(stages).to_html(
            index=False, float_format="%.1f", na_rep="-", border=0, classes="stages"
        ),  # escapes text
        "<h2>Models (gold judge, held-out prompts)</h2>",
        f"<ul>{''.join(model_lines)}</ul>",
        shown.to_html(index=False, float_format="%.3f", na_rep="-", border=0),
        f"<dl>{''.join(glossary)}</dl>",
        "<h2>Figures</h2>",
    ]
    for i, figure in enumerate(report_figures(run_dir)):
        parts.append(figure.to_html(full_html=False, include_plotlyjs=i == 0))
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
