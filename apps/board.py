"""Read-side handlers: leaderboard, votes table and export, agreement, training dashboard."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from apps.guard import check_instructor
from apps.handlers import Arena
from apps.votes import export_preferences, to_preferences
from lab import metrics as M
from lab.leaderboard import (
    MIN_BATTLES,
    MIN_MODEL_BATTLES,
    compute_annotator_agreement,
    compute_battles,
    compute_model_counts,
    compute_outcome_counts,
    compute_pairs_met,
    compute_ranking,
    compute_win_matrix,
)
from lab.plots import plot_curves, plot_leaderboard, plot_win_matrix
from lab.reward import pair_accuracy, score
from lab.runlog import read_log
from lab.world import World

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
    result = build_leaderboard(arena.store.votes(), arena.world)
    arena.cache["leaderboard"] = (n_votes, result)
    return result


def build_leaderboard(
    votes: pd.DataFrame, world: World | None = None
) -> tuple[go.Figure, go.Figure, pd.DataFrame, str]:
    """`leaderboard` without the cache: rated from blind battles only (see `lab.leaderboard`)."""
    if votes.empty:
        return go.Figure(), go.Figure(), pd.DataFrame(), "No votes yet: battle a few models!"
    battles = compute_battles(votes)  # blind votes only; both_bad gives no battle
    message = leaderboard_status(votes, battles)
    if battles.empty:
        return go.Figure(), go.Figure(), pd.DataFrame(), message
    counts = compute_model_counts(battles)
    matrix = plot_win_matrix(compute_win_matrix(battles))
    if not enough_votes(counts):
        return go.Figure(), matrix, counts, message  # the counts so far, no ratings yet
    ranking = compute_ranking(battles, rounds=BOOTSTRAP_ROUNDS)
    table = ranking.merge(counts.drop(columns="battles"), on="model")
    if world is not None:  # the gold judge scores every stored answer, Compare ones too
        table = table.merge(compute_gold_means(votes, world), on="model", how="left")
    return plot_leaderboard(ranking), matrix, format_ranking(table), message


def enough_votes(counts: pd.DataFrame) -> bool:
    """Ratings are shown from MIN_BATTLES battles, for two or more models with enough each."""
    n_battles = counts["battles"].sum() // 2  # every battle has two sides
    return n_battles >= MIN_BATTLES and (counts["battles"] >= MIN_MODEL_BATTLES).sum() >= 2


def leaderboard_status(votes: pd.DataFrame, battles: pd.DataFrame) -> str:
    """The status line: what was counted, what was not, and whether there are ratings yet."""
    n = compute_outcome_counts(votes)
    counts = compute_model_counts(battles)
    k = len(counts)
    parts = [
        f"{n['votes']} votes: {len(battles)} blind battles, "
        f"{compute_pairs_met(battles)} of {k * (k - 1) // 2} model pairs met"
    ]
    if n["both_bad"]:
        parts.append(f"{n['both_bad']} 'both bad' (not rated)")
    if n["compare"]:
        parts.append(f"{n['compare']} Compare votes (names shown, not rated)")
    line = "; ".join(parts) + "."
    few = counts[counts["battles"] < MIN_MODEL_BATTLES]
    if not enough_votes(counts):
        return (
            f"{line} Not enough votes yet: ratings start at {MIN_BATTLES} blind battles, "
            f"with {MIN_MODEL_BATTLES} or more for each model rated."
        )
    if not few.empty:
        names = ", ".join(f"{m} ({b})" for m, b in zip(few["model"], few["battles"], strict=True))
        line += f" Not enough votes yet for {names}: a rating needs {MIN_MODEL_BATTLES} battles."
    return line


def format_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """The ranking as shown: whole Elo points, "battles" for the battles each model played."""
    shown = table.rename(columns={"votes": "battles"})
    shown[["rating", "lower", "upper"]] = shown[["rating", "lower", "upper"]].round().astype(int)
    if "gold_mean" in shown:
        shown["gold_mean"] = shown["gold_mean"].round(2)
    return shown


def compute_gold_means(votes: pd.DataFrame, world: World) -> pd.DataFrame:
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


def votes_table(arena: Arena, password: str = "") -> tuple[pd.DataFrame, str]:
    """Every vote, newest first, without the full responses; in classroom mode, instructor only.

    The prompts are the students' own words, so with an instructor password set they are
    shown (and served by the `/votes` API) only to whoever types it.
    """
    problem = check_instructor(arena.classroom, password)
    if problem:
        return pd.DataFrame(columns=VOTE_COLUMNS), problem
    votes = arena.store.votes()
    if votes.empty:
        return pd.DataFrame(columns=VOTE_COLUMNS), "No votes yet."
    table = votes[VOTE_COLUMNS].copy()
    table["models"] = table["models"].map(", ".join)
    return table.iloc[::-1].reset_index(drop=True), f"{len(table)} votes."


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
