"""Evaluation (notebook 05), shared by every stage: the gold judge and the drift from SFT.

Generate on held-out prompts with fixed decoding settings and seed, score each answer with
the gold judge, and compare two models prompt by prompt (win / tie / loss); measure a policy's
exact KL to a reference and its reward-model score on fresh samples. Stages import this
module; it imports no stage.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from lab import metrics as M
from lab.distributed import is_main
from lab.generation import DecodingConfig, chat_batch, generate, generate_kwargs, seeded_batches
from lab.intervals import bootstrap_ci
from lab.responses import (
    kl_exact,
    next_token_logits,
    penalize_missing_eos,
    response_mask,
    sequence_kl,
)
from lab.reward_model import score
from lab.world import World, last_content
from lab.world.build import CHECKABLE
from lab.world.responses import ResponseSpec, compose

# Fixed for every model, so that differences come from the model, not the sampler.
EVAL_DECODING = DecodingConfig(max_new_tokens=64, temperature=0.7, top_p=1.0, seed=1234)
# Fresh samples for KL and reward-model score: the policy's own distribution (temperature 1, where
# KL(policy || SFT) is what the RL objectives bound), as long as PPO's training responses.
KL_DECODING = DecodingConfig(max_new_tokens=48, temperature=1.0, top_p=1.0, seed=0)
TIE_EPS = 1e-6
GOLD_TABLE = "eval.jsonl"  # a stage model's answers to the held-out prompts, gold-scored
BASE_GOLD_TABLE = "eval_base.jsonl"  # the same for the model the SFT stage started from


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
    world: World | None, prompts: Sequence, answers: Sequence[str], tokenizer=None
) -> pd.DataFrame:
    """One row per prompt: prompt text, task kind, answer, gold score, answer length.

    With no gold judge (a recipe's data) the gold column is NaN and every kind is "other".
    """
    rows = []
    for prompt, answer in zip(prompts, answers, strict=True):
        task = world.task(prompt) if world else None
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
                "gold": world.gold_score(prompt, answer) if world else float("nan"),
                "length": length,
            }
        )
    return pd.DataFrame(rows)


def evaluate_model(
    model,
    tokenizer,
    world: World | None,
    prompts: Sequence,
    decoding: DecodingConfig = EVAL_DECODING,
) -> pd.DataFrame:
    """Answer every prompt with fixed decoding, then score with the gold judge."""
    answers = generate(model, tokenizer, list(prompts), decoding)
    return compute_gold_table(world, prompts, answers, tokenizer)


def evaluate_samples(
    model,
    tokenizer,
    world: World | None,
    prompts: Sequence,
    samples: int,
    decoding: DecodingConfig = EVAL_DECODING,
) -> pd.DataFrame:
    """`samples` gold tables of the same prompts, stacked: sample j draws from `decoding.seed + j`,
    so sample 0 is `evaluate_model`'s table. Columns: a gold table's, plus `sample` and
    `prompt_id` (the prompt's position), which pair two policies' answers prompt by prompt.

    One sample at temperature 0.7 is a noisy view of a policy on a prompt: once two policies'
    first tokens differ, the rest of their answers are independent draws. Several samples per
    prompt measure what the policy does there, not what one draw did. (At temperature 0 every
    sample is the same greedy answer.)
    """
    if samples < 1:
        raise ValueError(f"need at least 1 sample per prompt, got {samples}")
    tables = []
    for j in range(samples):
        draw = dataclasses.replace(decoding, seed=decoding.seed + j)
        table = evaluate_model(model, tokenizer, world, prompts, draw)
        tables.append(table.assign(sample=j, prompt_id=range(len(table))))
    return pd.concat(tables, ignore_index=True)


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
    """Mean gold overall and per task kind (when there is a gold judge), and mean length."""
    out = {M.EVAL_LENGTH_MEAN: float(table["length"].mean())}
    if table["gold"].isna().all():
        return out
    out[M.EVAL_GOLD_MEAN] = float(table["gold"].mean())
    for kind, group in table.groupby("kind"):
        out[f"{M.EVAL_GOLD_MEAN}_{kind}"] = float(group["gold"].mean())
    return out


def win_metrics(new: pd.DataFrame, old: pd.DataFrame, name: str) -> dict[str, Any]:
    """`eval/win_rate` and `name` = [win, tie, loss] of `new` against `old` by gold, prompt by
    prompt; empty when there is no gold judge."""
    if new["gold"].isna().all():
        return {}
    win = compute_win_rate(new["gold"].tolist(), old["gold"].tolist())
    return {M.EVAL_WIN_RATE: win.win_or_half_tie, name: [win.win, win.tie, win.loss]}


def save_gold_table(table: pd.DataFrame, path: Path) -> None:
    """Keep the answers next to the model (`eval.jsonl`: one row per prompt, or per answer of
    several stacked by `evaluate_samples`)."""
    if is_main():  # under `accelerate launch` every process evaluates; one writes
        table.to_json(path, orient="records", lines=True, force_ascii=False)


@dataclass
class Samples:
    """Sampled answers and the token ids their log-probs are read from. P prompt, R response tokens."""

    ids: torch.Tensor  # (B, P + R) left-padded prompt, then the response
    mask: torch.Tensor  # (B, P + R) attention mask
    response_mask: torch.Tensor  # (B, R) 1 up to and including EOS
    has_eos: torch.Tensor  # (B,) bool
    texts: list[str]  # the decoded answers, up to EOS

    @property
    def response(self) -> torch.Tensor:
        """The response tokens: (B, R)."""
        return self.ids[:, -self.response_mask.shape[1] :]


@torch.no_grad()
def sample_responses(model, tokenizer, prompts: Sequence, decoding: DecodingConfig) -> Samples:
    """Sample one answer per prompt (string or messages) with the chat template, keeping the ids."""
    query = chat_batch(tokenizer, list(prompts), model.device)
    ids = model.generate(**query, **generate_kwargs(decoding, tokenizer))
    response = ids[:, query["input_ids"].shape[1] :]  # (B, R)
    resp_mask, has_eos = response_mask(response, tokenizer.eos_token_id)
    kept = torch.where(resp_mask.bool(), response, tokenizer.pad_token_id)  # nothing after EOS
    texts = tokenizer.batch_decode(kept, skip_special_tokens=True)
    return Samples(
        ids=ids,
        mask=torch.cat([query["attention_mask"], resp_mask.long()], 1),
        response_mask=resp_mask,
        has_eos=has_eos,
        texts=[t.strip() for t in texts],
    )


@torch.no_grad()
def compute_kl_and_reward(
    policy,
    reference,
    tokenizer,
    rm,
    rm_tokenizer,
    prompts: Sequence,
    decoding: DecodingConfig = KL_DECODING,
    missing_eos_penalty: float = 0.0,
    batch_size: int = 32,
    scorer=None,
) -> dict[str, float]:
    """KL(policy || reference) and reward-model score of fresh policy samples, averaged over prompts.

    `kl` is the exact per-token KL over the vocabulary (`kl_exact`, both models' logits at the
    sampling temperature, at each position of the sampled answer) summed over the response up
    to EOS: never negative, and without the noise of a one-sample estimate (top-p, if set, is
    not applied to the distributions). `reward` is `lab.reward_model.score`, minus
    `missing_eos_penalty` for an answer that never ended; a `scorer` (`lab.reward_sources`)
    replaces the reward model. Returns `{"kl", "reward", "eos_rate"}`.
    """
    if decoding.temperature <= 0:
        raise ValueError(
            "KL is measured on samples: use a temperature above 0, not greedy decoding"
        )
    policy.eval()
    reference.eval()
    kls, scores, ended = [], [], []
    # Every policy the same noise, batch by batch; the caller's random stream is left alone.
    for chunk in seeded_batches(prompts, batch_size, decoding.seed, policy.device):
        s = sample_responses(policy, tokenizer, chunk, decoding)
        n = s.response.shape[1]
        logits, ref_logits = (next_token_logits(m, s.ids, s.mask, n) for m in (policy, reference))
        kl = kl_exact(logits, ref_logits, s.response_mask, decoding.temperature)  # (B, R)
        kls += sequence_kl(kl, s.response_mask).tolist()
        scores += scorer(chunk, s.texts) if scorer else score(rm, rm_tokenizer, chunk, s.texts)
        ended += s.has_eos.tolist()
    as_float64 = torch.tensor(scores, dtype=torch.float64)  # Python floats, exactly
    rewards = penalize_missing_eos(as_float64, torch.tensor(ended), missing_eos_penalty).tolist()
    n = len(kls)
    return {"kl": sum(kls) / n, "reward": sum(rewards) / n, "eos_rate": sum(ended) / n}


def compute_sentence_counts(world: World, table: pd.DataFrame) -> dict[str, float]:
    """Per answer, what the gold judge counts: polite, rude + unsafe (toxic) and garbled sentences."""
    feats = [world.features(p, a) for p, a in zip(table["prompt"], table["answer"], strict=True)]
    n = len(feats)
    return {
        "polite": sum(f.polite + f.polite_excess for f in feats) / n,
        "rude_unsafe": sum(f.rude + f.unsafe for f in feats) / n,
        "garbled": sum(f.garbled for f in feats) / n,
    }


def compute_gold_by_kind(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Mean gold per model and task kind, with its bootstrap 95% interval over that kind's prompts
    and their number (the kinds are not equally many: a mean over 10 prompts is a rough one)."""
    rows = []
    for name, table in tables.items():
        for kind, gold in table.groupby("kind")["gold"]:
            lo, hi = bootstrap_ci(list(gold))
            rows.append(
                {
                    "model": name,
                    "kind": kind,
                    "gold": gold.mean(),
                    "lo": lo,
                    "hi": hi,
                    "n": len(gold),
                }
            )
    return pd.DataFrame(rows, columns=["model", "kind", "gold", "lo", "hi", "n"])


def compute_gold_win_matrix(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """P(row model's answer beats the column model's) on the same prompts, ties counting half."""
    names = list(tables)
    matrix = pd.DataFrame(index=names, columns=names, dtype=float)
    for a in names:
        for b in names:
            if a != b:
                rate = compute_win_rate(list(tables[a]["gold"]), list(tables[b]["gold"]))
                matrix.loc[a, b] = rate.win_or_half_tie
    return matrix


def compute_fact_checks(model, tokenizer, world: World, prompts: Sequence) -> pd.DataFrame:
    """Can a reward model check a fact? For each prompt of a kind with a right answer, the score
    of that answer and of the same words with a wrong value (`kind`, `right`, `wrong`)."""
    tasks = [t for t in map(world.task, prompts) if t is not None and t.kind in CHECKABLE]
    rng = random.Random(0)  # the same wrong values for every model
    right = [compose(world.kb, t, ResponseSpec(core="correct"), t, rng) for t in tasks]
    wrong = [compose(world.kb, t, ResponseSpec(core="wrong"), t, rng) for t in tasks]
    asked = [t.prompt for t in tasks]
    return pd.DataFrame(
        {
            "kind": [t.kind for t in tasks],
            "right": score(model, tokenizer, asked, right),
            "wrong": score(model, tokenizer, asked, wrong),
        }
    )
