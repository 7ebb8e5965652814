"""Gold evaluation: the yardstick every stage reports against.

Generate on held-out prompts with fixed decoding settings and seed, score each answer with
the gold judge, and compare two models prompt by prompt (win / tie / loss).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lab import metrics as M
from lab.generation import DecodingConfig, generate
from lab.world import World, last_content

# Fixed for every model, so that differences come from the model, not the sampler.
EVAL_DECODING = DecodingConfig(max_new_tokens=64, temperature=0.7, top_p=1.0, seed=1234)
TIE_EPS = 1e-6


@dataclass(frozen=True)
class WinRate:
    """Pairwise outcome of model A against model B on the same prompts."""

    win: float
    tie: float
    loss: float
    n: int

    @property
    def win_or_half_tie(self) -> float:
        """Wins plus half the ties: 0.5 means the two models are even."""
        return self.win + 0.5 * self.tie


def compute_gold_table(
    world: World, prompts: Sequence, answers: Sequence[str], tokenizer=None
) -> pd.DataFrame:
    """One row per prompt: prompt text, task kind, answer, gold score, answer length."""
    rows = []
    for prompt, answer in zip(prompts, answers, strict=True):
        task = world.task(prompt)
        length = (
            len(tokenizer(answer, add_special_tokens=False)["input_ids"])
            if tokenizer
            else len(answer.split())
        )
        rows.append(
            {
                "prompt": last_content(prompt, "user"),
                "kind": task.kind if task else "other",
                "answer": answer,
                "gold": world.gold_score(prompt, answer),
                "length": length,
            }
        )
    return pd.DataFrame(rows)


def evaluate_model(
    model, tokenizer, world: World, prompts: Sequence, decoding: DecodingConfig = EVAL_DECODING
) -> pd.DataFrame:
    """Answer every prompt with fixed decoding, then score with the gold judge."""
    answers = generate(model, tokenizer, list(prompts), decoding)
    return compute_gold_table(world, prompts, answers, tokenizer)


def compute_win_rate(
    gold_a: Sequence[float], gold_b: Sequence[float], eps: float = TIE_EPS
) -> WinRate:
    """How often A's answer scores higher than B's on the same prompt."""
    if len(gold_a) != len(gold_b) or not len(gold_a):
        raise ValueError(
            f"need two equally long, non-empty score lists, got {len(gold_a)} and {len(gold_b)}"
        )
    diffs = [a - b for a, b in zip(gold_a, gold_b, strict=True)]
    n = len(diffs)
    win = sum(d > eps for d in diffs) / n
    loss = sum(d < -eps for d in diffs) / n
    return WinRate(win=win, tie=1.0 - win - loss, loss=loss, n=n)


def summarize_gold(table: pd.DataFrame) -> dict[str, float]:
    """Mean gold overall and per task kind, and mean length."""
    out = {
        M.EVAL_GOLD_MEAN: float(table["gold"].mean()),
        M.EVAL_LENGTH_MEAN: float(table["length"].mean()),
    }
    for kind, group in table.groupby("kind"):
        out[f"{M.EVAL_GOLD_MEAN}_{kind}"] = float(group["gold"].mean())
    return out


def save_gold_table(table: pd.DataFrame, path: Path) -> None:
    """Keep the answers next to the model: `eval.jsonl`, one row per prompt."""
    table.to_json(path, orient="records", lines=True, force_ascii=False)
