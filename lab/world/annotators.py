"""Simulated annotators: each votes by the Bradley-Terry model on their own utility.

An annotator sees the same features as the gold judge but weighs them a little
differently (taste) and is more or less careful (temperature): the subjectivity and
noise of human feedback, with a known truth underneath.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass

import pandas as pd

from lab.world.judge import GOLD_WEIGHTS, Features, Weights, score


@dataclass(frozen=True)
class Annotator:
    """One simulated person: an id, a taste (feature weights) and a noise temperature."""

    annotator_id: str
    weights: Weights
    temperature: float

    def p_prefers_first(self, a: Features, b: Features) -> float:
        """Bradley-Terry probability that this annotator prefers response `a` to `b`."""
        return bt_probability(score(a, self.weights), score(b, self.weights), self.temperature)

    def prefers_first(self, a: Features, b: Features, rng: random.Random) -> bool:
        """Draw one vote: True when `a` is preferred."""
        return rng.random() < self.p_prefers_first(a, b)


def bt_probability(u_a: float, u_b: float, temperature: float) -> float:
    """P(a beats b) = sigmoid((u_a - u_b) / temperature)."""
    return 1.0 / (1.0 + math.exp(-(u_a - u_b) / temperature))


def make_annotators(seed: int, n: int, noise: float, taste: float = 0.25) -> list[Annotator]:
    """`n` annotators: gold weights scaled by log-normal(0, taste), temperature around `noise`."""
    rng = random.Random(f"annotators-{seed}")
    people = []
    for i in range(n):
        scaled = {
            f.name: getattr(GOLD_WEIGHTS, f.name) * math.exp(rng.gauss(0.0, taste))
            for f in dataclasses.fields(Weights)
        }
        temperature = noise * rng.uniform(0.5, 1.5)
        people.append(Annotator(f"sim-{i:02d}", Weights(**scaled), temperature))
    return people


def compute_agreement_by_gap(
    pairs: pd.DataFrame, bins: tuple[float, ...] = (0, 0.3, 0.6, 1.0, 2.0, 99)
) -> pd.DataFrame:
    """Annotator-gold agreement per bin of gold gap |gold_chosen - gold_rejected|."""
    gap = (pairs["gold_chosen"] - pairs["gold_rejected"]).abs()
    agree = pairs["gold_chosen"] > pairs["gold_rejected"]
    table = pd.DataFrame({"gap_bin": pd.cut(gap, bins=list(bins)), "agree": agree})
    grouped = table.groupby("gap_bin", observed=True)["agree"]
    out = grouped.agg(["mean", "size"]).reset_index()
    out.columns = ["gold_gap", "agreement", "pairs"]
    out["gold_gap"] = out["gold_gap"].astype(str)
    return out
