"""After a battle vote: each answer as the two judges see it, the reward model and the gold judge.

The reveal shows the tiny world's gold score beside the reward model's, and warns when the
reward model's favourite is not the gold judge's best: reward hacking in miniature.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.pool import ModelPool
from lab.reward_model import score
from lab.world import World

__all__ = ["Judged", "disagreement", "gold_lines", "judge_answers"]


@dataclass(frozen=True)
class Judged:
    """One answer as both judges see it."""

    reward: float | None
    """The reward model's score (None without a reward model)."""
    gold: float | None
    """The tiny world's gold score, the truth the reward model learns to imitate (None outside it)."""


def judge_answers(
    pool: ModelPool,
    world: World | None,
    prompt: str,
    answers: list[str],
    rewards: list[float | None] | None = None,
) -> list[Judged]:
    """Each answer as the reward model and the gold judge see it.

    `rewards` are the reward model's scores when the answers were shown; without them the
    answers are scored now.
    """
    if rewards is not None and len(rewards) == len(answers):
        golds = [world.gold_score(prompt, a) if world else None for a in answers]
        return [Judged(r, g) for r, g in zip(rewards, golds, strict=True)]
    rewards = [None] * len(answers)
    if pool.rm is not None and answers:
        with pool.lock:  # the reward model's tokenizer is not thread-safe
            rewards = score(pool.rm, pool.rm_tokenizer, [prompt] * len(answers), answers)
    golds = [world.gold_score(prompt, a) if world else None for a in answers]
    return [Judged(r, g) for r, g in zip(rewards, golds, strict=True)]


def gold_lines(stats: list[str], judged: list[Judged]) -> list[str]:
    """Each answer's stats line with its gold score added (unchanged outside the tiny world)."""
    return [
        line if j.gold is None else f"{line} · **gold {j.gold:+.2f}**"
        for line, j in zip(stats, judged, strict=True)
    ]


def disagreement(names: list[str], judged: list[Judged]) -> str:
    """A warning when the reward model's favourite answer is not the gold judge's best; else ''.

    This is reward hacking in miniature: a policy trained on the reward model is pushed
    towards the answers it overrates.
    """
    if len(judged) < 2 or any(j.reward is None or j.gold is None for j in judged):
        return ""
    rm_best = max(range(len(judged)), key=lambda i: judged[i].reward)
    gold_best = max(range(len(judged)), key=lambda i: judged[i].gold)
    if judged[rm_best].gold >= judged[gold_best].gold - 1e-9:
        return ""
    return (
        f"⚠ The reward model and the gold judge disagree: the reward model prefers "
        f"{names[rm_best]} (reward {judged[rm_best].reward:+.2f}, gold {judged[rm_best].gold:+.2f}), "
        f"the gold judge {names[gold_best]} (reward {judged[gold_best].reward:+.2f}, "
        f"gold {judged[gold_best].gold:+.2f}). PPO learns from the reward model, mistakes included."
    )
