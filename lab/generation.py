"""Sampling answers from a causal LM with the chat template (left padding, stop at EOS)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch


@dataclass
class DecodingConfig:
    """How to sample; the same settings everywhere a comparison is made."""

    max_new_tokens: int = 64
    """Longest answer, in tokens."""
    temperature: float = 1.0
    """Softmax temperature; 0 means greedy."""
    top_p: float = 1.0
    """Nucleus sampling mass."""
    seed: int = 0
    """Seed of the sampling noise, so two models can be compared on the same draws."""


@contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Torch's random state seeded with `seed` inside, and put back as it was on exit."""
    device = torch.device(device)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def batch_seed(seed: int, start: int) -> int:
    """The seed of the batch that starts at prompt `start`. Each batch starts from its own seed,
    so two models answering the same prompts draw the same noise for the same prompt, however
    long their answers to the earlier batches were (one stream would drift apart after them)."""
    return seed + start


def seeded_batches(
    prompts, batch_size: int, seed: int, device: torch.device | str = "cpu"
) -> Iterator[list]:
    """`prompts` in batches of `batch_size`, each sampled from its `batch_seed`, inside `seeded`."""
    with seeded(seed, device):
        for start in range(0, len(prompts), batch_size):
            torch.manual_seed(batch_seed(seed, start))
            yield list(prompts[start : start + batch_size])


def as_messages(prompt) -> list[dict]:
    """A prompt string becomes one user message; a conversation is kept as is."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def chat_batch(tokenizer, prompts: list, device) -> dict:
    """Prompts (strings or messages) through the chat template, left-padded, on `device`."""
    return tokenizer.apply_chat_template(
        [as_messages(p) for p in prompts],
        add_generation_prompt=True,
        padding=True,
        return_tensors="pt",
        return_dict=True,
    ).to(device)


def generate_kwargs(decoding: DecodingConfig, tokenizer) -> dict:
    """`model.generate` arguments for these decoding settings (temperature 0 = greedy)."""
    greedy = decoding.temperature == 0
    return {
        "max_new_tokens": decoding.max_new_tokens,
        "do_sample": not greedy,
        "temperature": None if greedy else decoding.temperature,
        "top_p": None if greedy else decoding.top_p,
        "top_k": None,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


@torch.no_grad()
def generate(
    model, tokenizer, prompts: list, decoding: DecodingConfig, batch_size: int = 32
) -> list[str]:
    """Answer each prompt (string or messages); returns the decoded answers without special tokens.

    Sampling draws from `decoding.seed` (each batch from `batch_seed`), in a fork of torch's
    random state: the caller's own stream (a training loop's) is left exactly where it was.
    """
    model.eval()
    answers: list[str] = []
    for chunk in seeded_batches(prompts, batch_size, decoding.seed, model.device):
        batch = chat_batch(tokenizer, chunk, model.device)
        out = model.generate(**batch, **generate_kwargs(decoding, tokenizer))
        new_tokens = out[:, batch["input_ids"].shape[1] :]  # (B, T_new)
        answers += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return [a.strip() for a in answers]
