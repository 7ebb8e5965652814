"""Arena leaderboard maths: Bradley–Terry ratings, bootstrap intervals, ranks, win rates, agreement.

Pure functions, DataFrames in and out. A *battle* is one pairwise comparison, a row with
`model_a`, `model_b` and `winner` in {"model_a", "model_b", "tie"}; `compute_battles` makes
them from stored votes with `vote_to_battles` below.

What counts: the ratings come from blind votes only (modes in RATED_MODES: the voter saw no
model names), never from Compare votes, where the names are on screen. A "win" beats every
other model of its vote, a "tie" ties every pair, and a "both_bad" vote gives no battle at all:
"both answers are bad" says nothing about which is better (it is counted apart, see
`compute_outcome_counts`). Ratings are shown once there are MIN_BATTLES battles, and only for
models with MIN_MODEL_BATTLES of them.

Bradley–Terry on the Elo scale (FastChat's convention): P(a beats b) = 1 / (1 + base^((R_b -
R_a) / scale)). In natural units θ = (R - init) · ln(base) / scale this is sigmoid(θ_a - θ_b).
A tie counts as half a win for each side, so it carries the weight of one decisive battle.

What the votes cannot say is shown as such. A model nobody has scored against (no losses and no
ties) has no upper bound: the data would let its rating run to +inf, so its upper bound is +inf
and its finite rating (and its other bound) the prior's guess; likewise no wins (and no ties)
gives lower = -inf. A tie bounds both sides, because the fit reads it as half a win and half a
loss: a model with only ties has a finite rating, but every resample of its battles is the
same, and a zero-width interval bounds nothing: its bounds are unknown (NaN) until its results
vary. Models that never met, directly or through others, fall into separate *groups*; each
group's ratings are centred on its own models with both sides bounded, and ranks compare models
within a group only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

OUTCOMES = ("win", "tie", "both_bad")
TIE = "tie"
BATTLE_COLUMNS = ["model_a", "model_b", "winner"]
RATED_MODES = ("battle", "simulated")  # blind votes; "compare" shows the names, so never rated
# Below these a rating is noise: 20 battles give intervals of several hundred Elo points.
MIN_BATTLES = 20
"""Blind battles (win or tie) before any rating is shown."""
MIN_MODEL_BATTLES = 5
"""Battles a model needs before its own rating is shown."""
# θ is penalised by (REG / 2) · Σ θ², a Gaussian prior N(0, 1/REG) in natural units:
# sd = 10 ≈ 1737 Elo points, negligible once a pair has met a few times, yet it keeps the
# rating of a model that won every battle finite (the unpenalised MLE is then infinite).
REG = 0.01


def vote_to_battles(
    models: Sequence[str], outcome: str, winner: int | None
) -> list[tuple[str, str, str]]:
    """One vote -> (model_a, model_b, winner) battles: a win beats the rest, a tie ties all."""
    winner = None if winner is None or pd.isna(winner) else int(winner)  # a table gives <NA>
    if outcome == "win":
        if winner is None or not 0 <= winner < len(models):
            raise ValueError(f"a 'win' needs a winner index into {len(models)} models: {winner!r}")
        # Pairs keep display order; the losers among themselves were not compared.
        return [
            (models[i], models[j], "model_a" if i == winner else "model_b")
            for i, j in combinations(range(len(models)), 2)
            if winner in (i, j)
        ]
    if outcome == TIE:
        return [(a, b, TIE) for a, b in combinations(models, 2)]
    if outcome == "both_bad":  # "both are bad" is no preference either way, and no tie
        return []
    raise ValueError(f"unknown outcome {outcome!r}, expected one of {OUTCOMES}")


def compute_battles(votes: pd.DataFrame, modes: Sequence[str] | None = RATED_MODES) -> pd.DataFrame:
    """The battles of the votes cast in `modes` (None = every vote), in vote order."""
    if modes is not None:
        votes = votes[votes["mode"].isin(modes)]
    rows = [
        battle
        for vote in votes.itertuples(index=False)
        for battle in vote_to_battles(list(vote.models), vote.outcome, vote.winner)
    ]
    return pd.DataFrame(rows, columns=BATTLE_COLUMNS)


def compute_outcome_counts(votes: pd.DataFrame) -> dict[str, int]:
    """Votes by what the leaderboard does with them: rated, both_bad (blind, unrated), compare."""
    blind = votes["mode"].isin(RATED_MODES)
    both_bad = votes["outcome"] == "both_bad"
    return {
        "votes": len(votes),
        "rated": int((blind & ~both_bad).sum()),
        "both_bad": int((blind & both_bad).sum()),
        "compare": int((~blind).sum()),
    }


def encode_battles(battles: pd.DataFrame, models: Sequence[str]) -> tuple[np.ndarray, ...]:
    """Battles -> (a, b, score_a): model indices (N,) and the score of model_a, 1, 0 or 0.5."""
    index = {m: i for i, m in enumerate(models)}
    unknown = (set(battles["model_a"]) | set(battles["model_b"])) - set(index)
    if unknown:
        raise ValueError(f"battles name models missing from the order: {sorted(unknown)}")
    bad = set(battles["winner"]) - {"model_a", "model_b", TIE}
    if bad:
        raise ValueError(f"winner must be 'model_a', 'model_b' or 'tie', got {sorted(bad)}")
    a = battles["model_a"].map(index).to_numpy(dtype=int)
    b = battles["model_b"].map(index).to_numpy(dtype=int)
    score_a = battles["winner"].map({"model_a": 1.0, "model_b": 0.0, TIE: 0.5}).to_numpy(float)
    return a, b, score_a


def win_counts(a: np.ndarray, b: np.ndarray, score_a: np.ndarray, n: int) -> np.ndarray:
    """(M, M) matrix W: W[i, j] = wins of model i over model j, a tie adding 0.5 to each side."""
    wins = np.zeros((n, n))
    np.add.at(wins, (a, b), score_a)  # halves and ones sum exactly, so row order cannot matter
    np.add.at(wins, (b, a), 1.0 - score_a)
    return wins


def comparison_groups(games: np.ndarray) -> np.ndarray:
    """(M,) group per model, 0 the largest: models joined by battles (ties too), directly or not."""
    n = len(games)
    found = np.full(n, -1)  # (M,) the order in which each group was found
    for start in range(n):
        if found[start] >= 0:
            continue
        found[start], stack = start, [start]
        while stack:
            met = np.flatnonzero((games[stack.pop()] > 0) & (found < 0))
            found[met] = start
            stack.extend(met.tolist())
    # Largest group first; equal sizes keep the order found (that of the models' names).
    roots, sizes = np.unique(found, return_counts=True)
    order = sorted(range(len(roots)), key=lambda k: (-sizes[k], roots[k]))
    number = {roots[k]: g for g, k in enumerate(order)}
    return np.array([number[r] for r in found], dtype=int)


def open_sides(wins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(no_wins, no_losses), (M,) masks of models whose rating the data cannot bound below / above.

    No loss means nobody scored against the model: a tie gives the opponent half a point, so a
    model with ties is bounded on both sides (the fit sees it lose half of each tie).
    """
    return wins.sum(axis=1) == 0, wins.sum(axis=0) == 0


def centre(theta: np.ndarray, groups: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """θ (M,) shifted so each group's `anchors` average 0 (all its models if none); NaN stays NaN.

    The anchors are the models bounded on both sides: an unbeaten model's θ is the prior's
    guess, and centring on it would move every other rating of its group.
    """
    theta = theta.copy()
    known = ~np.isnan(theta)
    for g in np.unique(groups[known]):
        members = known & (groups == g)
        reference = members & anchors
        theta[members] -= theta[reference if reference.any() else members].mean()
    return theta


def rating_frame(wins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(groups, anchors) of a win matrix: what `centre` needs to put ratings on a shared zero."""
    no_wins, no_losses = open_sides(wins)
    return comparison_groups(wins + wins.T), ~(no_wins | no_losses)


def _fit_bt(wins: np.ndarray, reg: float) -> np.ndarray:
    """Penalised BT MLE θ (natural units) from a win matrix, by damped Newton steps."""
    games = wins + wins.T  # (M, M) battles per pair

    def objective(theta: np.ndarray) -> float:
        diff = theta[:, None] - theta[None, :]  # (M, M) θ_i - θ_j
        return float((wins * -np.logaddexp(0.0, -diff)).sum() - reg / 2 * theta @ theta)

    def ascent(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        diff = theta[:, None] - theta[None, :]  # (M, M) θ_i - θ_j
        p = 0.5 * (1.0 + np.tanh(diff / 2))  # (M, M) P(i beats j), a sigmoid that never overflows
        grad = (wins - games * p).sum(axis=1) - reg * theta
        weight = games * p * (1.0 - p)
        # The negative Hessian: a graph Laplacian of the weights, plus reg on the diagonal.
        return grad, np.diag(weight.sum(axis=1) + reg) - weight

    return newton_maximize(objective, ascent, np.zeros(len(wins)))


def newton_maximize(
    objective: Callable[[np.ndarray], float],
    ascent: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    x: np.ndarray,
    steps: int = 100,
) -> np.ndarray:
    """Maximise a concave `objective` by damped Newton steps; `ascent(x)` -> (gradient, -Hessian)."""
    for _ in range(steps):
        grad, neg_hessian = ascent(x)
        # Least squares, not solve: with reg = 0 the matrix is singular (shifting every θ
        # changes nothing) and the minimum-norm step keeps mean θ at 0.
        step = np.linalg.lstsq(neg_hessian, grad, rcond=None)[0]
        # The objective is concave; halve a step that overshoots (far from the optimum only).
        current = objective(x)
        while objective(x + step) < current - 1e-9 and np.abs(step).max(initial=0) > 1e-12:
            step /= 2
        x = x + step
        if np.abs(step).max(initial=0) < 1e-10:
            break
    return x


def battle_models(battles: pd.DataFrame) -> list[str]:
    return sorted(set(battles["model_a"]) | set(battles["model_b"]))


def to_elo(theta: np.ndarray, scale: float, base: float, init: float) -> np.ndarray:
    return init + theta * scale / math.log(base)


def compute_bt(
    battles: pd.DataFrame,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
    reg: float = REG,
) -> pd.Series:
    """Bradley–Terry ratings on the Elo scale, best first; each group's anchors average `init`.

    Maximises Σ log-likelihood - (reg / 2) · Σ θ², θ = (rating - init) · ln(base) / scale.
    With reg > 0 the optimum is unique and finite; reg = 0 gives the plain MLE, which runs off
    to infinity when a model is unbeaten. The ratings are then shifted so that in each group
    the models bounded on both sides average `init` (see `centre`).
    """
    models = battle_models(battles)
    wins = win_counts(*encode_battles(battles, models), len(models))
    theta = centre(_fit_bt(wins, reg), *rating_frame(wins))
    ratings = pd.Series(to_elo(theta, scale, base, init), index=models)
    ratings.index.name, ratings.name = "model", "rating"
    # Sort by rating then name, so equal ratings come out in a fixed order.
    return ratings[sorted(models, key=lambda m: (-ratings[m], m))]


def compute_bootstrap(
    battles: pd.DataFrame,
    rounds: int = 200,
    seed: int = 0,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
    reg: float = REG,
) -> pd.DataFrame:
    """Ratings with 95% percentile intervals from refitting on battles resampled with replacement.

    Columns model, rating (the fit on all battles), lower, upper, votes (battles played), group,
    best first. A model absent from a resample is left out of that round's percentiles; a side
    the data cannot bound is infinite (see `open_sides`).
    """
    ratings = compute_bt(battles, scale, base, init, reg)
    models = battle_models(battles)
    if not models:
        return pd.DataFrame(columns=["model", "rating", "lower", "upper", "votes", "group"])
    a, b, score_a = encode_battles(battles, models)
    wins = win_counts(a, b, score_a, len(models))
    groups, anchors = rating_frame(wins)  # of all battles, so every round shares one zero
    rng = np.random.default_rng(seed)
    samples = np.full((rounds, len(models)), np.nan)  # (rounds, M)
    for r in range(rounds):
        pick = rng.integers(0, len(a), size=len(a))  # (N,) battle indices, with replacement
        resampled = win_counts(a[pick], b[pick], score_a[pick], len(models))
        theta = _fit_bt(resampled, reg)
        theta[(resampled + resampled.T).sum(axis=1) == 0] = np.nan  # not played this round
        samples[r] = to_elo(centre(theta, groups, anchors), scale, base, init)
    return interval_table(ratings, samples, wins)


def interval_table(ratings: pd.Series, samples: np.ndarray, wins: np.ndarray) -> pd.DataFrame:
    """Ratings + bootstrap samples (rounds, M) -> model, rating, lower, upper, votes, group.

    `samples` and `wins` follow the models' sorted order; a side `open_sides` finds unbounded
    is ±inf, and the group numbers (1 the largest) come from `comparison_groups`.
    """
    models = sorted(ratings.index)
    lower, upper = np.nanpercentile(samples, [2.5, 97.5], axis=0)  # (M,), (M,)
    no_wins, no_losses = open_sides(wins)
    # Resamples that never vary (models that only tied) bound nothing: the bounds are unknown.
    flat = (lower == upper) & ~no_wins & ~no_losses
    lower[flat], upper[flat] = np.nan, np.nan
    lower[no_wins], upper[no_losses] = -np.inf, np.inf
    games = wins + wins.T  # (M, M) battles per pair, a tie counting once
    table = pd.DataFrame(
        {
            "rating": ratings.reindex(models),
            "lower": lower,
            "upper": upper,
            "votes": np.rint(games.sum(axis=1)).astype(int),
            "group": comparison_groups(games) + 1,
        },
        index=models,
    )
    return table.loc[ratings.index].rename_axis("model").reset_index()


def compute_rank_ub(
    lower: Sequence[float], upper: Sequence[float], groups: Sequence[int] | None = None
) -> np.ndarray:
    """LMArena's "rank (UB)": 1 + the number of models whose lower bound is above this one's upper.

    Models whose intervals overlap share a rank, so a rank is never claimed that the votes do
    not support: lower = [10, 0, -10], upper = [20, 15, 5] gives ranks [1, 1, 2]. Bounds may
    be infinite. With `groups`, a model is ranked among its own group only.
    """
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)  # (M,), (M,)
    above = lower[None, :] > upper[:, None]  # (M, M) [i, j]: j clearly above i
    if groups is not None:
        groups = np.asarray(groups)
        above &= groups[None, :] == groups[:, None]
    return 1 + above.sum(axis=1)


def compute_model_counts(battles: pd.DataFrame) -> pd.DataFrame:
    """Per model: battles played, wins, ties and losses, most battles first (then by name)."""
    models = battle_models(battles)
    a, b, score_a = encode_battles(battles, models)
    n = len(models)
    wins = np.bincount(a, score_a == 1, n) + np.bincount(b, score_a == 0, n)
    ties = np.bincount(a, score_a == 0.5, n) + np.bincount(b, score_a == 0.5, n)
    played = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    table = pd.DataFrame(
        {
            "model": models,
            "battles": played,
            "wins": wins,
            "ties": ties,
            "losses": played - wins - ties,
        }
    ).astype({"battles": int, "wins": int, "ties": int, "losses": int})
    return table.sort_values(["battles", "model"], ascending=[False, True], ignore_index=True)


def compute_groups(battles: pd.DataFrame) -> pd.Series:
    """Group number per model (1 the largest): models joined by battles, directly or not."""
    models = battle_models(battles)
    wins = win_counts(*encode_battles(battles, models), len(models))
    groups = pd.Series(comparison_groups(wins + wins.T) + 1, index=models, name="group")
    groups.index.name = "model"
    return groups


def compute_pairs_met(battles: pd.DataFrame) -> int:
    """How many distinct pairs of models have met in at least one battle."""
    return len(
        {frozenset(pair) for pair in zip(battles["model_a"], battles["model_b"], strict=True)}
    )


def compute_ranking(
    battles: pd.DataFrame,
    rounds: int = 200,
    seed: int = 0,
    min_model_battles: int = MIN_MODEL_BATTLES,
) -> pd.DataFrame:
    """`compute_bootstrap` with a rank (UB) column, for models with `min_model_battles` or more.

    Every battle informs the fit; a model with fewer battles is only left out of the table
    (and of the ranks), since its interval is too wide to say anything. Ranks are within each
    group (see `ranked_table`).
    """
    return ranked_table(compute_bootstrap(battles, rounds, seed), min_model_battles)


def ranked_table(table: pd.DataFrame, min_model_battles: int) -> pd.DataFrame:
    """Models with enough battles, a rank (UB) column first, sorted by group, rank, rating.

    The rank is within the model's group: models that never met, even through others, are
    not ranked against each other.
    """
    table = table[table["votes"] >= min_model_battles].copy()
    table.insert(0, "rank", compute_rank_ub(table["lower"], table["upper"], table["group"]))
    return table.sort_values(
        ["group", "rank", "rating", "model"], ascending=[True, True, False, True], ignore_index=True
    )


def compute_win_matrix(battles: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """P(row beats column) over their battles, a tie counting half; NaN where they never met.

    Ties count half (rather than being dropped) so that M[a, b] + M[b, a] = 1 and the matrix
    matches what the Bradley–Terry fit sees. Rows and columns follow `order`, or the BT ranking.
    """
    models = list(order) if order is not None else list(compute_bt(battles).index)
    wins = win_counts(*encode_battles(battles, models), len(models))
    games = wins + wins.T
    with np.errstate(invalid="ignore"):  # 0 / 0 -> NaN: never met
        share = wins / games
    return pd.DataFrame(share, index=pd.Index(models, name="model"), columns=models)


def compute_vote_counts(battles: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Battles per pair of models (ties included), a symmetric matrix in `order` or BT order."""
    models = list(order) if order is not None else list(compute_bt(battles).index)
    wins = win_counts(*encode_battles(battles, models), len(models))
    counts = np.rint(wins + wins.T).astype(int)
    return pd.DataFrame(counts, index=pd.Index(models, name="model"), columns=models)


def compute_repeat_agreement(votes: pd.DataFrame) -> dict:
    """How often two annotators' votes on one prompt and model pair agree, answers re-sampled.

    Not the annotators' agreement alone: each battle samples fresh answers (battles refuse
    temperature 0 and draw their own seed), so two votes on one prompt and model pair nearly
    always judged different texts, and a "disagreement" may be the models' sampling as much as
    the people. Grouping by the two answers too would isolate the annotators, but identical
    answer pairs practically never recur (40 simulated votes on the small run: 13 repeated
    prompt-and-model answers, none the same text), so that measure would stay empty. This one
    says how reproducible a verdict on a prompt and model pair is.

    Each vote gives a result per pair it decides (see `vote_to_battles`): the better model's
    name, or "tie"; "both_bad" counts as a tie here (it gives no rated battle, but two people
    who both see no better answer agree). Every two results for the same (prompt, pair) from
    different annotators make one comparison. Returns {"agreement": fraction of comparisons
    that agree (NaN if none), "n": comparisons}.
    """
    results: dict[tuple[str, frozenset[str]], list[tuple[str, str]]] = {}
    for vote in votes.itertuples(index=False):
        outcome = TIE if vote.outcome == "both_bad" else vote.outcome
        for a, b, side in vote_to_battles(list(vote.models), outcome, vote.winner):
            result = {"model_a": a, "model_b": b}.get(side, TIE)
            results.setdefault((vote.prompt, frozenset((a, b))), []).append(
                (vote.annotator, result)
            )
    same = [
        first[1] == second[1]
        for judged in results.values()
        for first, second in combinations(judged, 2)
        if first[0] != second[0]
    ]
    return {"agreement": sum(same) / len(same) if same else math.nan, "n": len(same)}
