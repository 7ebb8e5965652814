"""LMArena's style control: Bradley–Terry ratings with the answers' style as covariates.

A battle's outcome depends on the two models *and* on how their answers look. Each style feature enters the logistic fit as a normalised difference
(a - b) / (a + b + 1), standardised over the battles, with its own coefficient β:
    P(a beats b) = sigmoid(θ_a - θ_b + Σ_k β_k · x_k).
The θ are then the ratings "as if both answers had the same style"; β_k says how much
the class rewards style k (β_length > 0: longer answers win more often).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from lab.leaderboard import (
    BATTLE_COLUMNS,
    MIN_MODEL_BATTLES,
    RATED_MODES,
    REG,
    battle_models,
    centre,
    encode_battles,
    interval_table,
    newton_maximize,
    ranked_table,
    rating_frame,
    to_elo,
    vote_to_battles,
    win_counts,
)

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
    Ratings are centred as in `compute_bt`.
    """
    models = battle_models(battles)
    a, b, score_a = encode_battles(battles, models)
    x = compute_style_features(battles, features)
    theta, beta = _fit_bt_style(a, b, score_a, x, len(models), reg)
    theta = centre(theta, *rating_frame(win_counts(a, b, score_a, len(models))))
    ratings = pd.Series(to_elo(theta, scale, base, init), index=models)
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

    Returns (ratings: rank, model, rating, lower, upper, votes, group; coefficients: feature,
    beta, lower, upper, all in log-odds). Intervals come from refitting on resampled battles,
    and open sides and groups are found, as in `compute_bootstrap`.
    """
    ratings, beta = compute_style_bt(battles, features)
    models = battle_models(battles)
    a, b, score_a = encode_battles(battles, models)
    x = compute_style_features(battles, features)  # (N, K), scaled once on all battles
    wins = win_counts(a, b, score_a, len(models))
    groups, anchors = rating_frame(wins)  # of all battles, as in `compute_bootstrap`
    rng = np.random.default_rng(seed)
    thetas = np.full((rounds, len(models)), np.nan)  # (rounds, M)
    betas = np.full((rounds, len(features)), np.nan)  # (rounds, K)
    for r in range(rounds):
        pick = rng.integers(0, len(a), size=len(a))
        played = np.bincount(np.r_[a[pick], b[pick]], minlength=len(models)) > 0
        theta, betas[r] = _fit_bt_style(a[pick], b[pick], score_a[pick], x[pick], len(models), REG)
        theta[~played] = np.nan
        thetas[r] = to_elo(centre(theta, groups, anchors), 400, 10, 1000)
    table = ranked_table(interval_table(ratings, thetas, wins), min_model_battles)
    b_lower, b_upper = np.percentile(betas, [2.5, 97.5], axis=0)
    coefficients = pd.DataFrame(
        {"feature": list(features), "beta": beta.to_numpy(), "lower": b_lower, "upper": b_upper}
    )
    coefficients.loc[coefficients["beta"].isna(), ["lower", "upper"]] = np.nan
    return table, coefficients
