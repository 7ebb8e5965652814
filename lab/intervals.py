"""95% intervals for the lab's headline numbers: over prompts (bootstrap), over seeds (t),
and of a share of agreeing pairs (Wilson).

A number a student compares comes with its interval; these are the only ways the lab
computes one, so every table and plot means the same thing by it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (then the normal's).
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042]  # fmt: skip


def mean(values: Sequence[float]) -> float:
    """The arithmetic mean; NaN for no values."""
    return sum(values) / len(values) if len(values) else math.nan


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable[[Sequence[float]], float] = mean,
    n_boot: int = 2000,
    seed: int = 0,
    strata: Sequence | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of `statistic` over resampled `values` (e.g. prompts).

    Paired comparisons resample the per-prompt differences, so pass those as `values`. With
    `strata` (a label per value, e.g. each prompt's task kind, whose counts the held-out set
    fixes by design) each resample draws within every stratum as many values as it holds.
    """
    if not len(values):
        return math.nan, math.nan
    rng = random.Random(seed)
    groups: dict = {}
    for i, label in enumerate(strata if strata is not None else [0] * len(values)):
        groups.setdefault(label, []).append(i)
    blocks = [groups[k] for k in sorted(groups, key=str)]  # strata in a fixed order

    def resample() -> list[float]:
        return [values[block[rng.randrange(len(block))]] for block in blocks for _ in block]

    stats = sorted(statistic(resample()) for _ in range(n_boot))
    return stats[int(0.025 * n_boot)], stats[int(0.975 * n_boot) - 1]


def cluster_mean_ci(
    values: Sequence[float], clusters: Sequence, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of the mean of `values` that come in clusters (votes on
    one prompt are not independent): whole clusters are resampled, the mean taken over values."""
    groups: dict = {}
    for value, cluster in zip(values, clusters, strict=True):
        groups.setdefault(cluster, []).append(value)
    totals = [(sum(groups[k]), len(groups[k])) for k in sorted(groups, key=str)]  # (sum, n) each
    return bootstrap_ci(
        totals,
        lambda drawn: sum(s for s, _ in drawn) / sum(n for _, n in drawn),
        n_boot,
        seed,
    )


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """Student-t 95% interval of the mean of a few independent runs (e.g. seeds)."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    m = mean(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    half = (_T975[n - 2] if n - 1 <= len(_T975) else 1.96) * sd / math.sqrt(n)
    return m - half, m + half


def win_score(diff: float, eps: float = 1e-6) -> float:
    """One prompt's contribution to a win rate: 1 win, 0.5 tie, 0 loss (`diff` = A - B)."""
    return 1.0 if diff > eps else 0.0 if diff < -eps else 0.5


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion: (low, high); (0, 1) when n = 0."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)
