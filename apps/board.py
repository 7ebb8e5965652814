"""Read-side handlers: leaderboard, votes table and export, agreement, training dashboard."""

from __future__ import annotations

import itertools
import math
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from apps.handlers import Arena
from apps.students import instructor_check
from apps.votes import export_preferences, to_preferences
from lab import metrics as M
from lab.feedback import seen_by, validate_votes
from lab.leaderboard import (
    MIN_BATTLES,
    MIN_MODEL_BATTLES,
    compute_battles,
    compute_bt,
    compute_groups,
    compute_model_counts,
    compute_outcome_counts,
    compute_pairs_met,
    compute_ranking,
    compute_repeat_agreement,
    compute_win_matrix,
)
from lab.plots import format_bound, plot_curves, plot_leaderboard, plot_win_matrix
from lab.reward_model import pair_accuracy
from lab.runlog import LOG_FILE, read_log
from lab.style_control import (
    compute_style_battles,
    compute_style_ranking,
)
from lab.votes_db import left_out_note
from lab.world import World

BOOTSTRAP_ROUNDS = 100  # enough for a classroom's intervals, cheap enough to redo on every vote
# Each stage's curves worth a first look, in pipeline order; a stage shows only what it logged.
DASHBOARD = {
    "pretrain": [M.PRETRAIN_LOSS, M.PRETRAIN_EVAL_LOSS],
    "sft": [M.SFT_LOSS, M.SFT_EVAL_LOSS, M.SFT_TOKEN_ACCURACY],
    "reward": [M.REWARD_LOSS, M.REWARD_TRAIN_ACCURACY, M.REWARD_ACCURACY],
    "ppo": [M.PPO_REWARD, M.PPO_KL, M.PPO_ENTROPY, M.PPO_GOLD],
    "dpo": [M.DPO_LOSS, M.DPO_ACCURACY, M.DPO_MARGIN, M.DPO_EVAL_LOSS],
    "grpo": [M.GRPO_REWARD, M.GRPO_KL, M.GRPO_ENTROPY, M.GRPO_LENGTH],
    "orpo": [M.ORPO_LOSS, M.ORPO_NLL, M.ORPO_LOG_ODDS_RATIO, M.ORPO_EVAL_LOG_ODDS_RATIO],
}
T = TypeVar("T")
ELO_PER_NAT = 400 / math.log(10)  # a log-odds of 1 on the leaderboard's Elo scale
RM_AGREES_NEW = "reward model agrees with votes it never trained on"
RM_AGREES_SEEN = "reward model agrees with votes it trained on (in-sample: a feedback round's)"
REPEAT_AGREEMENT = "votes agree on a repeated prompt and model pair (answers re-sampled)"
VOTE_COLUMNS = ["id", "time", "annotator", "mode", "prompt", "models", "outcome", "winner"]


def leaderboard(arena: Arena) -> tuple[go.Figure, go.Figure, pd.DataFrame, str]:
    """Bradley–Terry ratings with 95% intervals, pairwise win rates, and the ranking table."""
    return once_per_vote(
        arena, "leaderboard", lambda: build_leaderboard(arena.store.votes(), arena.world)
    )


def once_per_vote(arena: Arena, key: object, compute: Callable[[], T]) -> T:
    """`compute()`, redone only when the number of votes changes: thirty pages polling the
    leaderboard share one computation per new vote."""
    # One thread computes under the key's lock; the others wait, then find its result cached.
    if (cached := cached_now(arena, key)) is not None:
        return cached[1]
    with cache_lock(arena, key):
        if (cached := cached_now(arena, key)) is not None:  # computed while this one waited
            return cached[1]
        n_votes = arena.store.count()  # before computing: a vote meanwhile means one more run
        result = compute()
        arena.cache[key] = (n_votes, result)
        return result


def cached_now(arena: Arena, key: object) -> tuple | None:
    """The cached (votes, result) of `key` if it was computed at the current number of votes."""
    cached = arena.cache.get(key)
    return cached if cached and cached[0] == arena.store.count() else None


def cache_lock(arena: Arena, key: object) -> threading.Lock:
    """The lock of one `arena.cache` key, made on first use (two threads get the same one)."""
    with arena.cache_guard:
        return arena.cache_locks.setdefault(key, threading.Lock())


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


def style_leaderboard(arena: Arena) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The style-controlled view: ratings with length and markdown held equal, and their weights."""
    return once_per_vote(arena, "style", lambda: build_style_leaderboard(arena.store.votes()))


def build_style_leaderboard(votes: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """`style_leaderboard` without the cache (LMArena's style control, see `lab.style_control`)."""
    battles = compute_style_battles(votes) if not votes.empty else pd.DataFrame()
    if battles.empty or not enough_votes(compute_model_counts(battles)):
        return pd.DataFrame(), pd.DataFrame(), "Not enough votes yet for style control."
    table, coefficients = compute_style_ranking(battles, rounds=BOOTSTRAP_ROUNDS)
    raw = compute_bt(battles)
    table["raw rating"] = table["model"].map(raw)
    table["style effect"] = table["raw rating"] - table["rating"]
    shown = table.rename(columns={"votes": "battles"})
    columns = ["rating", "raw rating", "style effect"]
    shown[columns] = shown[columns].round().astype(int)
    message = style_message(coefficients) + groups_line(compute_groups(battles))
    return format_bounds(shown), format_coefficients(coefficients), message


def format_coefficients(coefficients: pd.DataFrame) -> pd.DataFrame:
    """Each style feature's weight and 95% interval, in log-odds and in Elo, and its meaning."""
    shown = coefficients.rename(columns={"lower": "beta lower", "upper": "beta upper"})
    for elo, beta in [("Elo points", "beta"), ("Elo lower", "lower"), ("Elo upper", "upper")]:
        shown[elo] = (coefficients[beta] * ELO_PER_NAT).round()
    shown["meaning"] = [
        style_meaning(row.feature, row.beta, row.lower, row.upper)
        for row in coefficients.itertuples(index=False)
    ]
    return shown.round({"beta": 2, "beta lower": 2, "beta upper": 2})


def style_meaning(feature: str, beta: float, lower: float, upper: float) -> str:
    """One line a class can read: does this style win votes, lose them, or nobody can tell?"""
    more = {"length": "longer answers", "headers": "more headers", "lists": "more list items"}
    what = more.get(feature, "more bold text")
    if pd.isna(beta):
        return f"never differed between two answers: no {feature} effect to measure"
    if lower > 0:
        return f"{what} win more votes"
    if upper < 0:
        return f"{what} lose votes"
    return f"no clear {feature} effect yet (the interval spans 0)"


def style_message(coefficients: pd.DataFrame) -> str:
    """The style view's status line: what the ratings mean and the length effect in Elo."""
    length = coefficients.set_index("feature").loc["length"]
    line = (
        "Style control: ratings as if both answers of every battle had the same length and "
        "markdown (LMArena's method); 'style effect' is how much of a raw rating style explains."
    )
    if pd.isna(length["beta"]):
        return line
    return line + (
        f" An answer a typical amount longer gains {length['beta'] * ELO_PER_NAT:+.0f} Elo "
        f"(95% interval {length['lower'] * ELO_PER_NAT:+.0f} to {length['upper'] * ELO_PER_NAT:+.0f})."
    )


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
    line = "; ".join(parts) + "." + groups_line(compute_groups(battles))
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


def groups_line(groups: pd.Series) -> str:
    """' The models fall into N groups never compared…' naming them; '' for a single group."""
    if groups.nunique() < 2:
        return ""
    named = "; ".join(
        f"group {g}: {', '.join(sorted(models.index))}" for g, models in groups.groupby(groups)
    )
    return (
        f" The models fall into {groups.nunique()} groups never compared with each other, "
        f"directly or through others ({named}): ratings and ranks compare models within a "
        "group only."
    )


def format_ranking(table: pd.DataFrame) -> pd.DataFrame:
    """The ranking as shown: whole Elo points, "battles" for the battles each model played."""
    shown = table.rename(columns={"votes": "battles"})
    shown["rating"] = shown["rating"].round().astype(int)
    if "gold_mean" in shown:
        shown["gold_mean"] = shown["gold_mean"].round(2)
    return format_bounds(shown)


def format_bounds(table: pd.DataFrame) -> pd.DataFrame:
    """Bounds as text ("∞" where open) with a note saying why; a group column only if several."""
    shown = table.copy()
    notes = [
        bound_note(lower, upper)
        for lower, upper in zip(table["lower"], table["upper"], strict=True)
    ]
    shown["lower"] = table["lower"].map(format_bound)
    shown["upper"] = table["upper"].map(format_bound)
    groups = shown.pop("group")
    if groups.nunique() > 1:  # a rank is within its group: say which
        shown.insert(0, "group", groups)
    if any(notes):
        shown["note"] = notes
    return shown


def bound_note(lower: float, upper: float) -> str:
    """Why a bound is open: the model only won, or only lost ('' when both sides are bounded)."""
    if upper == math.inf:
        return "only wins so far: no upper bound, the rating is a placeholder"
    if lower == -math.inf:
        return "only losses so far: no lower bound, the rating is a placeholder"
    if math.isnan(lower) and math.isnan(upper):
        return "its battles never varied (ties only): no interval yet"
    return ""


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


def votes_table(
    arena: Arena, password: str = "", request: gr.Request | None = None
) -> tuple[pd.DataFrame, str]:
    """Every vote, newest first, without the full responses; in classroom mode, instructor only.

    The prompts are the students' own words, so with an instructor password set they are
    shown (and served by the `/votes` API) only to whoever types it.
    """
    problem = instructor_check(arena, password, request)
    if problem:
        return pd.DataFrame(columns=VOTE_COLUMNS), problem
    votes = arena.store.votes()
    if votes.empty:
        return pd.DataFrame(columns=VOTE_COLUMNS), "No votes yet."
    table = votes[VOTE_COLUMNS].copy()
    table["models"] = table["models"].map(", ".join)
    return table.iloc[::-1].reset_index(drop=True), f"{len(table)} votes."


def export(
    arena: Arena, password: str, out_root: Path | None = None, request: gr.Request | None = None
) -> tuple[list[str], str]:
    """Write the votes as a preference dataset (JSONL + `datasets` folder) under `out_root`
    (default: `exports/` beside the vote store); instructor only."""
    problem = instructor_check(arena, password, request)
    if problem:
        return [], problem
    votes = arena.store.votes()
    n_pairs = len(to_preferences(votes))
    if n_pairs == 0:
        return [], "No preference pairs yet: only votes with a winner make pairs." + left_out_note(
            votes
        )
    out_root = Path(out_root) if out_root else arena.store.path.parent / "exports"
    folder = new_folder(out_root, time.strftime("export-%Y%m%d-%H%M%S"))
    jsonl = export_preferences(votes, folder)["jsonl"]
    # The download is a copy in a fresh temporary folder: the exports folder itself is never
    # served, so nobody reaches the class's prompts through a guessable URL.
    download = Path(tempfile.mkdtemp(prefix="arena-export-")) / jsonl.name
    shutil.copyfile(jsonl, download)
    note = left_out_note(votes)
    return [str(download)], f"Exported {n_pairs} pairs from {len(votes)} votes to {folder}{note}."


def new_folder(root: Path, name: str) -> Path:
    """A folder `root/name` made now, or `name-2`, `name-3`… when that one exists: two exports
    in the same second never write over each other."""
    root.mkdir(parents=True, exist_ok=True)
    for i in itertools.count(1):
        folder = root / (name if i == 1 else f"{name}-{i}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise AssertionError("unreachable")


def agreement(arena: Arena) -> pd.DataFrame:
    """How far the reward model agrees with the class, and the class with itself (cached: it
    scores every pair, and any student may ask)."""
    key = ("agreement", arena.pool.reward_source)  # a feedback round swaps the reward model
    return once_per_vote(arena, key, lambda: compute_agreement(arena))


def compute_agreement(arena: Arena) -> pd.DataFrame:
    """`agreement` without the cache."""
    votes = arena.store.votes()
    pairs = to_preferences(votes)
    rows = [{"measure": "votes", "value": float(len(votes)), "n": len(votes)}]
    if pairs:  # chosen then rejected answers, scored a batch at a time: answers go in between
        prompts = [p["prompt"] for p in pairs] * 2
        scores, source = arena.pool.score_in_turns(
            prompts, [p["chosen"] for p in pairs] + [p["rejected"] for p in pairs]
        )
        if scores is not None:
            chosen, rejected = scores[: len(pairs)], scores[len(pairs) :]
            seen = seen_by(Path(source), validate_votes(pairs))[1]
            rows += agreement_rows(chosen, rejected, seen)
    between = compute_repeat_agreement(votes)  # fresh answers each time: see its docstring
    rows.append(
        {
            "measure": REPEAT_AGREEMENT,
            "value": between["agreement"],
            "n": between["n"],
        }
    )
    return pd.DataFrame(rows)


def agreement_rows(chosen: list[float], rejected: list[float], seen: list[bool]) -> list[dict]:
    """The reward model's agreement with the votes it never trained on, and, once a feedback
    round's model is in use, apart from it, with the votes it trained on (in-sample)."""
    rows = []
    for was_seen, measure in ((False, RM_AGREES_NEW), (True, RM_AGREES_SEEN)):
        part = [i for i, s in enumerate(seen) if s == was_seen]
        if part:
            value = pair_accuracy([chosen[i] for i in part], [rejected[i] for i in part])
            rows.append({"measure": measure, "value": value, "n": len(part)})
    return rows


def dashboard_stages(run_dir: Path | None) -> list[str]:
    """The stages of a run that logged training curves, in pipeline order."""
    if run_dir is None:
        return []
    return [stage for stage in DASHBOARD if (run_dir / stage / LOG_FILE).is_file()]


def dashboard_curves(rows: list[dict], stage: str) -> list[str]:
    """The stage's chosen curves that it logged; else every number it logged (not step, time)."""
    logged = {key for row in rows for key, v in row.items() if isinstance(v, (int, float))}
    chosen = [name for name in DASHBOARD.get(stage, []) if name in logged]
    return chosen or sorted(logged - {"step", "time"})


def dashboard(arena: Arena, stage: str) -> go.Figure:
    """A stage's logged curves (from its log.jsonl); an empty figure for a stage that logged none."""
    if stage not in dashboard_stages(arena.run_dir):
        return go.Figure()
    rows = read_log(arena.run_dir / stage)
    return plot_curves(rows, dashboard_curves(rows, stage), title=f"{stage} training curves")
