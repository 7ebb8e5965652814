"""Read-side handlers: leaderboard, votes table and export, agreement, training dashboard."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from apps.guard import check_instructor
from apps.handlers import Arena
from apps.votes import export_preferences, to_battles, to_preferences
from lab import metrics as M
from lab.leaderboard import (
    compute_annotator_agreement,
    compute_bootstrap,
    compute_vote_counts,
    compute_win_matrix,
)
from lab.plots import plot_curves, plot_leaderboard, plot_win_matrix
from lab.reward import pair_accuracy, score
from lab.runlog import read_log

BOOTSTRAP_ROUNDS = 100  # enough for a classroom's intervals, cheap enough to redo on every vote
DASHBOARD = {
    "pretrain": [M.PRETRAIN_LOSS, M.PRETRAIN_EVAL_LOSS],
    "sft": [M.SFT_LOSS, M.SFT_EVAL_LOSS],
    "reward": [M.REWARD_LOSS, M.REWARD_ACCURACY, M.REWARD_GOLD_ACCURACY],
    "ppo": [M.PPO_REWARD, M.PPO_KL, M.PPO_ENTROPY, M.PPO_GOLD],
}
VOTE_COLUMNS = ["id", "time", "annotator", "mode", "prompt", "models", "outcome", "winner"]


def leaderboard(arena: Arena) -> tuple[go.Figure, go.Figure, pd.DataFrame, str]:
    """Bradley–Terry ratings with 95% intervals, pairwise win rates, and the ranking table."""
    n_votes = arena.store.count()  # thirty pages polling share one computation per new vote
    cached = arena.cache.get("leaderboard")
    if cached and cached[0] == n_votes:
        return cached[1]
    result = compute_leaderboard(arena)
    arena.cache["leaderboard"] = (n_votes, result)
    return result


def compute_leaderboard(arena: Arena) -> tuple[go.Figure, go.Figure, pd.DataFrame, str]:
    """`leaderboard` without the cache."""
    votes = arena.store.votes()
    battles = to_battles(votes)
    if battles.empty:
        return go.Figure(), go.Figure(), pd.DataFrame(), "No votes yet: battle a few models!"
    table = compute_bootstrap(battles, rounds=BOOTSTRAP_ROUNDS)
    if arena.world is not None:
        gold = compute_gold_means(votes, arena.world)
        table = table.merge(gold, on="model", how="left")
    counts = compute_vote_counts(battles)
    message = f"{len(votes)} votes, {len(battles)} pairwise comparisons, {len(counts)} model pairs."
    return plot_leaderboard(table), plot_win_matrix(compute_win_matrix(battles)), table, message


def compute_gold_means(votes: pd.DataFrame, world) -> pd.DataFrame:
    """The gold judge's view of the same answers: mean gold score of each model's responses."""
    rows = [
        {"model": name, "gold": world.gold_score(prompt, response)}
        for prompt, models, responses in zip(
            votes["prompt"], votes["models"], votes["responses"], strict=True
        )
        for name, response in zip(models, responses, strict=True)
    ]
    gold = pd.DataFrame(rows, columns=["model", "gold"])
    return (
        gold.groupby("model", as_index=False)["gold"].mean().rename(columns={"gold": "gold_mean"})
    )


def votes_table(arena: Arena) -> pd.DataFrame:
    """Every vote, newest first, without the full responses (they are in the export)."""
    votes = arena.store.votes()
    if votes.empty:
        return pd.DataFrame(columns=VOTE_COLUMNS)
    table = votes[VOTE_COLUMNS].copy()
    table["models"] = table["models"].map(", ".join)
    return table.iloc[::-1].reset_index(drop=True)


def export(arena: Arena, password: str, out_root: Path) -> tuple[list[str], str]:
    """Write the votes as a preference dataset (JSONL + `datasets` folder); instructor only."""
    problem = check_instructor(arena.classroom, password)
    if problem:
        return [], problem
    votes = arena.store.votes()
    n_pairs = len(to_preferences(votes))
    if n_pairs == 0:
        return [], "No preference pairs yet: only votes with a winner make pairs."
    paths = export_preferences(votes, out_root / time.strftime("export-%Y%m%d-%H%M%S"))
    jsonl = str(paths["jsonl"]) if "jsonl" in paths else str(next(iter(paths.values())))
    return [jsonl], f"Exported {n_pairs} pairs from {len(votes)} votes to {Path(jsonl).parent}."


def agreement(arena: Arena) -> pd.DataFrame:
    """How far the reward model agrees with the class, and the class with itself."""
    votes = arena.store.votes()
    pairs = to_preferences(votes)
    rows = [{"measure": "votes", "value": float(len(votes)), "n": len(votes)}]
    if pairs and arena.pool.rm is not None:
        with arena.pool.lock:
            prompts = [p["prompt"] for p in pairs]
            chosen = score(
                arena.pool.rm, arena.pool.rm_tokenizer, prompts, [p["chosen"] for p in pairs]
            )
            rejected = score(
                arena.pool.rm, arena.pool.rm_tokenizer, prompts, [p["rejected"] for p in pairs]
            )
        rows.append(
            {
                "measure": "reward model agrees with votes",
                "value": pair_accuracy(chosen, rejected),
                "n": len(pairs),
            }
        )
    between = compute_annotator_agreement(votes)
    rows.append(
        {
            "measure": "annotators agree (repeated prompts)",
            "value": between["agreement"],
            "n": between["n"],
        }
    )
    return pd.DataFrame(rows)


def dashboard(arena: Arena, stage: str) -> go.Figure:
    """A stage's logged curves (from its log.jsonl)."""
    if arena.run_dir is None or stage not in DASHBOARD:
        return go.Figure()
    rows = read_log(arena.run_dir / stage) if (arena.run_dir / stage).is_dir() else []
    return plot_curves(rows, DASHBOARD[stage], title=f"{stage} training curves")
