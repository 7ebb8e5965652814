"""ORPO's odds-ratio term: the maths of preference learning without a reference model.

A sequence's odds are p / (1 - p), with p = exp(mean token log-prob of the answer). ORPO adds
to the SFT loss on the chosen answer λ · -log σ(log odds(chosen) - log odds(rejected)): the
chosen answer is pushed up *relative to* the rejected one, against no frozen model.
TRL's `ORPOTrainer.odds_ratio_loss` computes the same term (times -λ, from the same log-probs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LOG_HALF = -math.log(2)  # where log1mexp switches formula: each is exact on its own side


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, without cancellation near 0 or underflow far below it."""
    return torch.where(x < LOG_HALF, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def log_odds(logp: torch.Tensor) -> torch.Tensor:
    """log(p / (1 - p)) from log p (< 0): the log-odds of a sequence, shape as `logp`."""
    return logp - log1mexp(logp)


def odds_ratio_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor) -> torch.Tensor:
    """-log σ(log odds(chosen) - log odds(rejected)) per pair: (B,), (B,) -> (B,).

    The log-probs are each answer's mean per-token log-prob (as ORPO and TRL use), so that a
    long answer's odds are not vanishingly small.
    """
    ratio = log_odds(chosen_logps.float()) - log_odds(rejected_logps.float())  # (B,)
    return -F.logsigmoid(ratio)


def orpo_loss(
    nll_chosen: torch.Tensor,
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    lam: float,
) -> torch.Tensor:
    """ORPO's whole loss on a batch: the chosen answers' SFT loss + λ · mean odds-ratio term."""
    return nll_chosen + lam * odds_ratio_loss(chosen_logps, rejected_logps).mean()
