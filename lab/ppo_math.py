"""The mathematics of PPO for language models, as pure tensor functions.

Shapes: B = responses in the batch, T = response tokens (padded). `mask` is 1 on real
response tokens (up to and including EOS) and 0 on padding. Every function is unit-tested
against values computed by hand in `tests/test_ppo_math.py`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` over entries where `mask` is 1."""
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `x` over entries where `mask` is 1 (Bessel-corrected by default)."""
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Scale to unit variance over the mask (and zero mean unless `shift_mean=False`)."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    return whitened if shift_mean else whitened + mean


def kl_penalty(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1"
) -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from log-probs of the sampled tokens: (B, T).

    k1 = log p - log q: unbiased, can be negative per token.
    k3 = (q/p - 1) - log(q/p): unbiased, always >= 0, lower variance (Schulman, 2020).
    """
    log_ratio = logprobs - ref_logprobs
    if estimator == "k1":
        return log_ratio
    if estimator == "k3":
        return torch.expm1(-log_ratio) + log_ratio
    raise ValueError(f"unknown KL estimator {estimator!r}; use 'k1' or 'k3'")


def token_rewards(
    score: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float
) -> torch.Tensor:
    """Per-token rewards: -kl_coef * KL on every token, plus the sequence score on its last token.

    score: (B,), kl: (B, T), mask: (B, T) -> (B, T).
    """
    rewards = -kl_coef * kl * mask
    last = mask.sum(1).long().clamp(min=1) - 1  # index of each response's last real token
    rewards[torch.arange(len(score)), last] += score
    return rewards


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over each response; returns (advantages, returns), (B, T).

    delta_t = r_t + gamma * V_{t+1} - V_t;  A_t = delta_t + gamma * lam * A_{t+1}.
    Values after the last real token count as 0 (the episode has ended).
    """
    values = values * mask
    advantages = torch.zeros_like(rewards)
    next_value = torch.zeros_like(rewards[:, 0])
    next_adv = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        next_value = values[:, t]
        advantages[:, t] = next_adv
    return advantages, (advantages + values) * mask


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped surrogate objective (as a loss to minimise), plus its diagnostics.

    ratio = exp(log pi - log pi_old); loss = mean(max(-A * ratio, -A * clip(ratio, 1-c, 1+c))).
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    stats = {
        "clipfrac": masked_mean((clipped > unclipped).float(), mask),
        "approx_kl": masked_mean(0.5 * log_ratio**2, mask),
        "ratio": masked_mean(ratio, mask),
    }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss 0.5 * mean(max((V - R)^2, (V_clipped - R)^2)); returns (loss, clipfrac)."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip, clip)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(loss_unclipped, loss_clipped), mask)
    return loss, masked_mean((loss_clipped > loss_unclipped).float(), mask)


def explained_variance(predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var[target - predicted] / Var[target]: 1 is perfect, 0 is no better than a constant."""
    var_target = masked_var(target, mask)
    if var_target <= 0:
        return float("nan")
    return float(1.0 - masked_var(target - predicted, mask) / var_target)


@dataclass
class KLController:
    """The KL coefficient beta: fixed, or adaptive towards a target KL (Ziegler et al., 2019).

    Adaptive: beta *= 1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon.
    """

    value: float
    target: float | None = None
    horizon: int = 10_000

    def update(self, kl: float, n_steps: int) -> None:
        """Move beta after a batch whose mean KL (per response) was `kl`."""
        if self.target is None or not math.isfinite(kl):
            return
        error = min(max(kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
