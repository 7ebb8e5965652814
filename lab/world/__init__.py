"""The tiny world: a small universe the lab generates itself, with a known truth.

world = World.from_seed(0)
world.gold_score("What is 2 plus 3?", "Sure! 2 plus 3 is 5.")   # 2.75
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from lab.world.judge import GOLD_WEIGHTS, Features, features, score
from lab.world.kb import KnowledgeBase, make_knowledge_base
from lab.world.tasks import Task, parse_task


@dataclass(frozen=True)
class World:
    """A knowledge base plus the gold judge that knows it."""

    kb: KnowledgeBase
    seed: int

    @classmethod
    def from_seed(cls, seed: int = 0, n_countries: int = 24) -> World:
        """The world a `WorldConfig` with this seed and size generates."""
        return cls(make_knowledge_base(seed, n_countries), seed)

    def task(self, prompt: Any) -> Task | None:
        """The task behind a prompt (a string or a list of messages), or None."""
        return parse_task(self.kb, last_content(prompt, "user"))

    def features(self, prompt: Any, response: Any) -> Features:
        """What the gold judge counts in `response` (a string or assistant messages)."""
        return features(self.kb, self.task(prompt), last_content(response, "assistant"))

    def gold_score(self, prompt: Any, response: Any) -> float:
        """The true quality of `response` to `prompt`: higher is better."""
        return score(self.features(prompt, response), GOLD_WEIGHTS)


def last_content(text_or_messages: Any, role: str) -> str:
    """A string as is, or the content of the last message with `role` in a conversation."""
    if isinstance(text_or_messages, str):
        return text_or_messages
    for message in reversed(text_or_messages):
        if message["role"] == role:
            return message["content"]
    raise ValueError(f"no {role} message in {text_or_messages!r}")


@lru_cache(maxsize=4)
def default_world(seed: int = 0, n_countries: int = 24) -> World:
    """The world of the default `tiny` profile (cached)."""
    return World.from_seed(seed, n_countries)


def gold_score(prompt: Any, response: Any) -> float:
    """Gold score in the default world; use `World.gold_score` for another seed."""
    return default_world().gold_score(prompt, response)


__all__ = ["World", "Task", "Features", "default_world", "gold_score", "last_content"]
