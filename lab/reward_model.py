"""The reward model as an artifact: load it, check it, and score text the way it was trained.

Bradley-Terry: the model gives one number r(prompt, response), and P(chosen beats rejected) =
sigmoid(r(chosen) - r(rejected)). `score` formats text exactly as TRL's `RewardTrainer` did, so
PPO, GRPO, the evaluation and the arena read the rewards the model was trained to give. The
stage that trains it is `lab.reward`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForSequenceClassification
from trl.trainer.utils import pad

from lab import metrics as M
from lab.models import DTYPES, load_tokenizer, resolve_device
from lab.pairs import as_conversation

# Stored in the reward model's config: a fingerprint of the chat template it was trained with.
TEMPLATE_KEY = "lab_chat_template_sha256"


# ---------------------------------------------------------------- formatting and loading


def encode(tokenizer, prompt, response, max_length: int | None = None) -> list[int]:
    """Token ids as RewardTrainer makes them: the chat template over prompt + response.

    The template ends the response at EOS, where the reward head reads. A sequence longer than
    `max_length` keeps its last tokens: the end must survive, the oldest context can go.
    """
    conversation = as_conversation(prompt, response)
    ids = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
    return ids[-max_length:] if max_length else ids


def template_hash(tokenizer) -> str:
    """A fingerprint of the chat template, stored with the reward model to catch a wrong tokenizer."""
    return hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()[:16]


def check_same_template(policy_tokenizer, rm_tokenizer, policy: str, reward: str) -> None:
    """Refuse a reward model whose chat template differs from the policy's.

    `score` re-renders the policy's text with the reward model's template: they must match.
    """
    if template_hash(policy_tokenizer) != template_hash(rm_tokenizer):
        raise ValueError(
            f"{policy} and {reward} use different chat templates; train the RM from this SFT model"
        )


def check_reward_model(model, tokenizer) -> None:
    """Refuse a tokenizer that would format or pad text differently from training."""
    config = model.config
    if config.num_labels != 1:
        raise ValueError(
            f"a reward model has one output (num_labels=1), this one has {config.num_labels}"
        )
    if tokenizer.chat_template is None:
        raise ValueError(
            "the tokenizer has no chat template; score() formats text with it, as training did"
        )
    trained_with = getattr(config, TEMPLATE_KEY, None)
    if trained_with is not None and trained_with != template_hash(tokenizer):
        raise ValueError(
            "this tokenizer's chat template differs from the one the reward model was trained with; "
            "load the tokenizer from the reward model's own folder"
        )
    if config.pad_token_id != tokenizer.pad_token_id:
        raise ValueError(
            f"pad token mismatch: the model reads the last token before pad id {config.pad_token_id}, "
            f"the tokenizer pads with {tokenizer.pad_token_id}; use the reward model's own tokenizer"
        )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens, the model only "
            f"{model.get_input_embeddings().num_embeddings}: not the reward model's tokenizer"
        )


def with_scalar_head(path: str, tokenizer, dtype: str, device: str):
    """The model at `path` with a one-number head: fresh on a causal LM, or a saved reward model's."""
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, pad_token_id=tokenizer.pad_token_id, dtype=DTYPES[dtype]
    )
    setattr(model.config, TEMPLATE_KEY, template_hash(tokenizer))
    return model.to(resolve_device(device))


def load_reward_model(folder: str | Path, device: str | torch.device = "cpu"):
    """A saved reward model, frozen in eval mode, and its own tokenizer, checked to match."""
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model = model.to(resolve_device(str(device))).eval().requires_grad_(False)
    tokenizer = load_tokenizer(str(folder))
    check_reward_model(model, tokenizer)
    return model, tokenizer


@torch.no_grad()
def score(
    model,
    tokenizer,
    prompts: Sequence,
    responses: Sequence,
    batch_size: int = 32,
    max_length: int | None = None,
) -> list[float]:
    """The reward of each response to its prompt (strings or messages), one float per pair.

    Sequences are padded on the right, as TRL's preference collator does, whatever the
    tokenizer's padding side. The head reads the rightmost non-pad token, so left padding
    would find the same EOS, but only right padding also keeps every token's position as in
    training (RoPE barely notices a shift; absolute positions would). `max_length` defaults
    to `tokenizer.model_max_length`, which the reward stage sets to the length it trained with.
    """
    check_reward_model(model, tokenizer)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    max_length = max_length or tokenizer.model_max_length
    ids = [
        torch.tensor(encode(tokenizer, p, r, max_length))
        for p, r in zip(prompts, responses, strict=True)
    ]
    model.eval()
    rewards: list[float] = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        input_ids = pad(chunk, padding_value=tokenizer.pad_token_id, padding_side="right")  # (B, T)
        mask = pad([torch.ones_like(x) for x in chunk], padding_value=0, padding_side="right")
        logits = model(
            input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)
        ).logits
        rewards += logits[:, 0].float().tolist()  # (B, 1) -> B floats
    return rewards


def score_pairs(model, tokenizer, pairs: datasets.Dataset) -> tuple[list[float], list[float]]:
    """The scores of every pair's chosen and of its rejected response."""
    chosen = score(model, tokenizer, pairs["prompt"], pairs["chosen"])
    return chosen, score(model, tokenizer, pairs["prompt"], pairs["rejected"])


# ---------------------------------------------------------------- metrics


def pair_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Share of pairs where the chosen response scores strictly higher (a tie counts as wrong)."""
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)


def gold_accuracy(
    chosen: Sequence[float],
    rejected: Sequence[float],
    gold_chosen: Sequence[float],
    gold_rejected: Sequence[float],
) -> float:
    """Share of pairs the scores order as the gold judge does (label = sign of the gold gap).

    A tie, in the scores or in gold, counts as wrong.
    """
    agree = [
        (c - r) * (gc - gr) > 0
        for c, r, gc, gr in zip(chosen, rejected, gold_chosen, gold_rejected, strict=True)
    ]
    return sum(agree) / len(agree)


def pair_metrics(pairs: datasets.Dataset, chosen: list[float], rejected: list[float]) -> dict:
    """Accuracy against the labels, against gold (when the pairs carry gold scores), and margin."""
    out = {
        M.REWARD_ACCURACY: pair_accuracy(chosen, rejected),
        M.REWARD_MARGIN: sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(chosen),
    }
    if {"gold_chosen", "gold_rejected"} <= set(pairs.column_names):
        out[M.REWARD_GOLD_ACCURACY] = gold_accuracy(
            chosen, rejected, pairs["gold_chosen"], pairs["gold_rejected"]
        )
    return out
