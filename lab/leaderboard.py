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
"""

from __future__ import annotations

import math
import re
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


def _encode(battles: pd.DataFrame, models: Sequence[str]) -> tuple[np.ndarray, ...]:
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


def _win_counts(a: np.ndarray, b: np.ndarray, score_a: np.ndarray, n: int) -> np.ndarray:
    """(M, M) matrix W: W[i, j] = wins of model i over model j, a tie adding 0.5 to each side."""
    wins = np.zeros((n, n))
    np.add.at(wins, (a, b), score_a)  # halves and ones sum exactly, so row order cannot matter
    np.add.at(wins, (b, a), 1.0 - score_a)
    return wins


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


def _models(battles: pd.DataFrame) -> list[str]:
    return sorted(set(battles["model_a"]) | set(battles["model_b"]))


def _ratings(theta: np.ndarray, scale: float, base: float, init: float) -> np.ndarray:
    return init + theta * scale / math.log(base)


def compute_bt(
    battles: pd.DataFrame,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
    reg: float = REG,
) -> pd.Series:
    """Bradley–Terry ratings on the Elo scale, best first; they average to `init`.

    Maximises Σ log-likelihood - (reg / 2) · Σ θ², θ = (rating - init) · ln(base) / scale.
    With reg > 0 the optimum is unique and finite, and its mean θ is exactly 0. reg = 0 gives
    the plain MLE, which runs off to infinity when a model is unbeaten.
    """
    models = _models(battles)
    wins = _win_counts(*_encode(battles, models), len(models))
    ratings = pd.Series(_ratings(_fit_bt(wins, reg), scale, base, init), index=models)
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

    Columns model, rating (the fit on all battles), lower, upper, votes (battles played), best
    first. A model absent from a resample is left out of that round's percentiles.
    """
    ratings = compute_bt(battles, scale, base, init, reg)
    models = _models(battles)
    if not models:
        return pd.DataFrame(columns=["model", "rating", "lower", "upper", "votes"])
    a, b, score_a = _encode(battles, models)
    rng = np.random.default_rng(seed)
    samples = np.full((rounds, len(models)), np.nan)  # (rounds, M)
    for r in range(rounds):
        pick = rng.integers(0, len(a), size=len(a))  # (N,) battle indices, with replacement
        wins = _win_counts(a[pick], b[pick], score_a[pick], len(models))
        played = (wins + wins.T).sum(axis=1) > 0
        theta = _fit_bt(wins, reg)
        samples[r, played] = _ratings(theta[played], scale, base, init)
    lower, upper = np.nanpercentile(samples, [2.5, 97.5], axis=0)
    votes = np.bincount(a, minlength=len(models)) + np.bincount(b, minlength=len(models))
    table = pd.DataFrame({"lower": lower, "upper": upper, "votes": votes}, index=models)
    table.insert(0, "rating", ratings)
    return table.loc[ratings.index].rename_axis("model").reset_index()


def compute_rank_ub(lower: Sequence[float], upper: Sequence[float]) -> np.ndarray:
    """LMArena's "rank (UB)": 1 + the number of models whose lower bound is above this one's upper.

    Models whose intervals overlap share a rank, so a rank is never claimed that the votes do
    not support: lower = [10, 0, -10], upper = [20, 15, 5] gives ranks [1, 1, 2].
    """
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)  # (M,), (M,)
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)


def compute_model_counts(battles: pd.DataFrame) -> pd.DataFrame:
    """Per model: battles played, wins, ties and losses, most battles first (then by name)."""
    models = _models(battles)
    a, b, score_a = _encode(battles, models)
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
    (and of the ranks), since its interval is too wide to say anything. Sorted by rank, rating.
    """
    return _ranked(compute_bootstrap(battles, rounds, seed), min_model_battles)


def _ranked(table: pd.DataFrame, min_model_battles: int) -> pd.DataFrame:
    """Models with enough battles, a rank (UB) column first, sorted by rank then rating."""
    table = table[table["votes"] >= min_model_battles].copy()
    table.insert(0, "rank", compute_rank_ub(table["lower"], table["upper"]))
    return table.sort_values(
        ["rank", "rating", "model"], ascending=[True, False, True], ignore_index=True
    )


def compute_win_matrix(battles: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """P(row beats column) over their battles, a tie counting half; NaN where they never met.

    Ties count half (rather than being dropped) so that M[a, b] + M[b, a] = 1 and the matrix
    matches what the Bradley–Terry fit sees. Rows and columns follow `order`, or the BT ranking.
    """
    models = list(order) if order is not None else list(compute_bt(battles).index)
    wins = _win_counts(*_encode(battles, models), len(models))
    games = wins + wins.T
    with np.errstate(invalid="ignore"):  # 0 / 0 -> NaN: never met
        share = wins / games
    return pd.DataFrame(share, index=pd.Index(models, name="model"), columns=models)


def compute_vote_counts(battles: pd.DataFrame, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Battles per pair of models (ties included), a symmetric matrix in `order` or BT order."""
    models = list(order) if order is not None else list(compute_bt(battles).index)
    wins = _win_counts(*_encode(battles, models), len(models))
    counts = np.rint(wins + wins.T).astype(int)
    return pd.DataFrame(counts, index=pd.Index(models, name="model"), columns=models)


def compute_annotator_agreement(votes: pd.DataFrame) -> dict:
    """How often two different annotators judging the same prompt and model pair agree.

    Each vote gives a result per pair it decides (see `vote_to_battles`): the better model's
    name, or "tie". Here "both_bad" counts as a tie: it gives no rated battle, but two people
    who both see no better answer agree. Every two results for the
    same (prompt, pair) from different annotators make one comparison. Returns
    {"agreement": fraction of comparisons that agree (NaN if none), "n": comparisons}.
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


# ---------------------------------------------------------------- style control
#
# LMArena's style control: a battle's outcome depends on the two models *and* on how their
# answers look. Each style feature enters the logistic fit as a normalised difference
# (a - b) / (a + b + 1), standardised over the battles, with its own coefficient β:
#     P(a beats b) = sigmoid(θ_a - θ_b + Σ_k β_k · x_k).
# The θ are then the ratings "as if both answers had the same style"; β_k says how much
# the class rewards style k (β_length > 0: longer answers win more often).

STYLE_FEATURES = ("length", "headers", "lists", "bold")
_HEADER = re.compile(r"^\s{0,3}#{1,6}\s")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s")
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


def compute_style_counts(text: str) -> dict[str, int]:
    """An answer's style: length in words, markdown headers, list items and bold spans."""
    lines = text.splitlines()
    return {
        "length": len(text.split()),  # words: the arena's models share no tokenizer
        "headers": sum(bool(_HEADER.match(line)) for line in lines),
        "lists": sum(bool(_LIST_ITEM.match(line)) for line in lines),
        "bold": len(_BOLD.findall(text)),
    }


def compute_style_battles(
    votes: pd.DataFrame, modes: Sequence[str] | None = RATED_MODES
) -> pd.DataFrame:
    """`compute_battles` plus each side's style counts: `length_a`, `length_b`, `headers_a`…"""
    if modes is not None:
        votes = votes[votes["mode"].isin(modes)]
    rows = []
    for vote in votes.itertuples(index=False):
        style = {
            m: compute_style_counts(r) for m, r in zip(vote.models, vote.responses, strict=True)
        }
        for a, b, winner in vote_to_battles(list(vote.models), vote.outcome, vote.winner):
            sides = {f"{k}_a": style[a][k] for k in STYLE_FEATURES}
            sides |= {f"{k}_b": style[b][k] for k in STYLE_FEATURES}
            rows.append({"model_a": a, "model_b": b, "winner": winner, **sides})
    columns = BATTLE_COLUMNS + [f"{k}_{s}" for s in "ab" for k in STYLE_FEATURES]
    return pd.DataFrame(rows, columns=columns)


def compute_style_features(
    battles: pd.DataFrame, features: Sequence[str] = STYLE_FEATURES
) -> np.ndarray:
    """(N, K) covariates: (a - b) / (a + b + 1) per feature, scaled to unit root mean square.

    The ratio makes 10 vs 20 words weigh like 100 vs 200; the scaling puts every β on the
    scale "log-odds per typical difference". Unlike LMArena we do not centre the column:
    swapping a battle's sides must flip x's sign, or a mean would leak into the ratings
    (in a real arena sides are random, so its mean is ~0 anyway). 0 where a feature never differs.
    """
    a = battles[[f"{k}_a" for k in features]].to_numpy(float)  # (N, K)
    b = battles[[f"{k}_b" for k in features]].to_numpy(float)  # (N, K)
    diff = (a - b) / (a + b + 1.0)
    rms = np.sqrt((diff**2).mean(axis=0)) if len(diff) else np.zeros(len(features))  # (K,)
    return diff / np.where(rms > 0, rms, 1.0)


def _fit_bt_style(
    a: np.ndarray, b: np.ndarray, score_a: np.ndarray, x: np.ndarray, n_models: int, reg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Penalised logistic BT fit with covariates: (θ (M,), β (K,)) by damped Newton steps.

    Same objective as `_fit_bt` (a tie is a label of 0.5) plus Σ_k β_k · x_k in each logit;
    the prior (reg / 2) · ‖(θ, β)‖² keeps the optimum unique. With no covariates it is `_fit_bt`.
    """
    n = len(a)
    design = np.zeros((n, n_models + x.shape[1]))  # (N, M + K): +1 for a, -1 for b, then x
    np.add.at(design, (np.arange(n), a), 1.0)
    np.add.at(design, (np.arange(n), b), -1.0)
    design[:, n_models:] = x

    def objective(w: np.ndarray) -> float:
        logit = design @ w  # (N,)
        loglik = score_a * -np.logaddexp(0.0, -logit) + (1 - score_a) * -np.logaddexp(0.0, logit)
        return float(loglik.sum() - reg / 2 * w @ w)

    def ascent(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p = 0.5 * (1.0 + np.tanh(design @ w / 2))  # (N,) P(a beats b), overflow-free sigmoid
        grad = design.T @ (score_a - p) - reg * w
        return grad, design.T @ (design * (p * (1 - p))[:, None]) + reg * np.eye(len(w))

    w = newton_maximize(objective, ascent, np.zeros(design.shape[1]))
    return w[:n_models], w[n_models:]


def compute_style_bt(
    battles: pd.DataFrame,
    features: Sequence[str] = STYLE_FEATURES,
    scale: float = 400,
    base: float = 10,
    init: float = 1000,
    reg: float = REG,
) -> tuple[pd.Series, pd.Series]:
    """Style-controlled ratings (Elo scale, best first) and each feature's coefficient β.

    β is in log-odds per root-mean-square of the feature's normalised difference; NaN for
    a feature that never differs (nothing to learn from). See `compute_style_features`.
    """
    models = _models(battles)
    a, b, score_a = _encode(battles, models)
    x = compute_style_features(battles, features)
    theta, beta = _fit_bt_style(a, b, score_a, x, len(models), reg)
    ratings = pd.Series(_ratings(theta, scale, base, init), index=models)
    ratings.index.name, ratings.name = "model", "rating"
    constant = ~x.any(axis=0) if len(x) else np.ones(len(features), dtype=bool)
    coefficients = pd.Series(np.where(constant, np.nan, beta), index=list(features), name="beta")
    coefficients.index.name = "feature"
    return ratings[sorted(models, key=lambda m: (-ratings[m], m))], coefficients


def compute_style_ranking(
    battles: pd.DataFrame,
    rounds: int = 200,
    seed: int = 0,
    min_model_battles: int = MIN_MODEL_BATTLES,
    features: Sequence[str] = STYLE_FEATURES,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`compute_ranking` with style controlled, and the coefficients with 95% intervals.

    Returns (ratings: rank, model, rating, lower, upper, votes; coefficients: feature, beta,
    lower, upper). Intervals come from refitting on resampled battles, as in `compute_bootstrap`.
    """
    ratings, beta = compute_style_bt(battles, features)
    models = _models(battles)
    a, b, score_a = _encode(battles, models)
    x = compute_style_features(battles, features)  # (N, K), scaled once on all battles
    rng = np.random.default_rng(seed)
    thetas = np.full((rounds, len(models)), np.nan)  # (rounds, M)
    betas = np.full((rounds, len(features)), np.nan)  # (rounds, K)
    for r in range(rounds):
        pick = rng.integers(0, len(a), size=len(a))
        played = np.bincount(np.r_[a[pick], b[pick]], minlength=len(models)) > 0
        theta, betas[r] = _fit_bt_style(a[pick], b[pick], score_a[pick], x[pick], len(models), REG)
        thetas[r, played] = _ratings(theta[played], 400, 10, 1000)
    votes = np.bincount(a, minlength=len(models)) + np.bincount(b, minlength=len(models))
    lower, upper = np.nanpercentile(thetas, [2.5, 97.5], axis=0)
    table = pd.DataFrame({"lower": lower, "upper": upper, "votes": votes}, index=models)
    table.insert(0, "rating", ratings)
    table = _ranked(table.loc[ratings.index].rename_axis("model").reset_index(), min_model_battles)
    b_lower, b_upper = np.percentile(betas, [2.5, 97.5], axis=0)
    coefficients = pd.DataFrame(
        {"feature": list(features), "beta": beta.to_numpy(), "lower": b_lower, "upper": b_upper}
    )
    coefficients.loc[coefficients["beta"].isna(), ["lower", "upper"]] = np.nan
    return table, coefficients
