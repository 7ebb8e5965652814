"""Named class tastes: what a simulated class prefers, as feature weights an instructor can pick.

A taste is a `Weights` like the gold judge's, differing where the class differs: `terse`
classes punish pleasantries and padding, `warm` ones reward friendliness. Correctness counts
as much as for the gold judge in both, so a taste changes style, not what is true.
`make_class` turns a taste into simulated annotators who share it, each with its own
Bradley-Terry noise.
"""

from __future__ import annotations

import dataclasses
import random

import pandas as pd

from lab.world import World, default_world, last_content
from lab.world.annotators import Annotator
from lab.world.judge import GOLD_WEIGHTS, Features, Weights, score

TASTES: dict[str, tuple[Weights, str]] = {
    "terse": (
        dataclasses.replace(
            GOLD_WEIGHTS, polite=-0.8, polite_excess=-0.8, filler=-1.2, extra=-1.0, repeats=-1.0
        ),
        "Get to the point: every polite phrase, filler sentence or extra sentence costs; "
        "a correct answer still matters most.",
    ),
    "warm": (
        dataclasses.replace(GOLD_WEIGHTS, polite=1.2, polite_excess=0.4, rude=-2.0),
        "Friendliness is worth a lot: polite phrases are welcome, rudeness hurts; "
        "a correct answer still matters.",
    ),
}
CLASS_NOISE = 0.3  # mean Bradley-Terry temperature of a simulated class (the world's is 0.6)


def taste_weights(name: str) -> Weights:
    """The weights of the taste called `name`; an unknown name raises, listing the known ones."""
    if name not in TASTES:
        raise ValueError(f"unknown taste {name!r}; known tastes: {', '.join(TASTES)}")
    return TASTES[name][0]


def make_class(taste: str, n: int, seed: int, noise: float = CLASS_NOISE) -> list[Annotator]:
    """`n` annotators who share `taste`, each with a temperature drawn around `noise`."""
    weights = taste_weights(taste)
    if n < 1 or noise <= 0:
        raise ValueError(f"a class needs n >= 1 and noise > 0, got n={n}, noise={noise}")
    rng = random.Random(f"class-{taste}-{seed}")
    return [Annotator(f"{taste}-{i:02d}", weights, noise * rng.uniform(0.5, 1.5)) for i in range(n)]


def compute_answer_style(world: World, table: pd.DataFrame, taste: str) -> pd.DataFrame:
    """Per answer of a gold table (prompt, answer, length): polite and filler phrases
    ("padding"), length, credit, and its utility under `taste` — how a policy's style moved."""
    weights = taste_weights(taste)
    feats = [world.features(p, a) for p, a in zip(table["prompt"], table["answer"], strict=True)]
    return pd.DataFrame(
        {
            "padding": [f.polite + f.polite_excess + f.filler for f in feats],
            "length": table["length"],
            "credit": [f.credit for f in feats],
            "utility": [score(f, weights) for f in feats],
        }
    )


def compute_style_only_pairs(
    world: World, pairs: list[dict], style: tuple[str, ...] = ("polite", "polite_excess")
) -> pd.DataFrame:
    """The preference pairs whose two answers differ in `style` (features of the judge) and in
    nothing else the judge counts: the only pairs that show a class's taste for that style
    alone. One row each: prompt, chosen, rejected, and `chosen_has_less` (of that style)."""
    known = [f.name for f in dataclasses.fields(Features)]
    if unknown := [name for name in style if name not in known]:
        raise ValueError(
            f"unknown style feature {unknown[0]!r}; the judge counts {', '.join(known)}"
        )
    blank, rows = dict.fromkeys(style, 0), []
    for row in pairs:
        a, b = (world.features(row["prompt"], row[side]) for side in ("chosen", "rejected"))
        if a != b and dataclasses.replace(a, **blank) == dataclasses.replace(b, **blank):
            less = sum(getattr(a, n) for n in style) < sum(getattr(b, n) for n in style)
            rows.append([row["prompt"], row["chosen"], row["rejected"], less])
    return pd.DataFrame(rows, columns=["prompt", "chosen", "rejected", "chosen_has_less"])


def taste_utility(taste: str, prompts: list, completions: list[str]) -> list[float]:
    """Each completion's utility under `taste` in the default (tiny profile's) world. A prompt
    that is not one of its tasks raises: scored on style alone, a wrong answer would cost
    nothing (another world seed or size, whose countries this world does not know)."""
    world, weights = default_world(), taste_weights(taste)
    if unknown := next((p for p in prompts if world.task(p) is None), None):
        raise ValueError(
            f"{taste}_reward knows the default tiny world only (world.seed 0, 24 countries); "
            f"not one of its tasks: {last_content(unknown, 'user')!r:.80}"
        )
    return [score(world.features(p, c), weights) for p, c in zip(prompts, completions, strict=True)]


def terse_reward(prompts: list, completions: list[str]) -> list[float]:
    """The `terse` taste itself as an RL reward (`ppo.reward=function:lab.world.tastes.terse_reward`):
    what a perfect reward model of a terse class would give a policy round, to compare with a learned one."""
    return taste_utility("terse", prompts, completions)


def warm_reward(prompts: list, completions: list[str]) -> list[float]:
    """The `warm` taste itself as an RL reward, as `terse_reward`."""
    return taste_utility("warm", prompts, completions)
