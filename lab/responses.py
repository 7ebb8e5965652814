"""What the lab reads off a sampled response, as functions every policy stage shares.

Which tokens count (`response_mask`: up to and including the first EOS), the logits that
predict them, their log-probs, the KL to a reference (per token, summed per response), the
entropy, and the penalty for an answer that never ended. PPO, GRPO, the evaluation and the
arena use these, so a number means the same wherever it is printed. Shapes: B responses,
R response tokens (padded), V vocabulary.
"""

from __future__ import annotations

import torch


def position_ids(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that skip left padding, as `generate` uses them: (B, L)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def next_token_logits(
    model, ids: torch.Tensor, mask: torch.Tensor, n_response: int
) -> torch.Tensor:
    """Logits at the positions that predict the last `n_response` tokens of `ids`: (B, R, V)."""
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
        logits_to_keep=n_response + 1,  # only the response's logits are ever needed
    )
    return out.logits[:, :-1]


def response_mask(response: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask of real response tokens, up to and including the first EOS; and whether EOS came.

    (B, R) token ids -> ((B, R) float mask, (B,) bool).
    """
    is_eos = response == eos_id
    has_eos = is_eos.any(1)
    first = torch.where(
        has_eos,
        is_eos.float().argmax(1),
        torch.full_like(has_eos, response.shape[1] - 1, dtype=torch.long),
    )
    positions = torch.arange(response.shape[1], device=response.device).unsqueeze(0)
    return (positions <= first.unsqueeze(1)).float(), has_eos


def penalize_missing_eos(
    scores: torch.Tensor, has_eos: torch.Tensor, penalty: float
) -> torch.Tensor:
    """Scores less `penalty` where the answer never emitted EOS (it was cut): (B,), (B,) bool -> (B,)."""
    return torch.where(has_eos, scores, scores - penalty)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the softmax distribution at each position: (..., V) -> (...)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def logprobs_of(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Log-probability of `tokens` under `logits / temperature`: (B, T, V), (B, T) -> (B, T)."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return torch.gather(logp, -1, tokens.unsqueeze(-1)).squeeze(-1)


def kl_exact(
    logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Exact KL(policy || reference) at each position, over the whole vocabulary: (B, T, V) -> (B, T).

    sum_v p(v) (log p(v) - log q(v)) with p, q = softmax(logits / temperature); >= 0, 0 off `mask`.
    """
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    logq = torch.log_softmax(ref_logits.float() / temperature, dim=-1)
    p = logp.exp()
    # A token the policy never picks (p = 0, e.g. a -inf logit) adds 0, not 0 * inf = nan.
    kl = torch.where(p > 0, p * (logp - logq), 0.0).sum(-1)  # (B, T)
    # clamp: float rounding can leave -1e-9 where p == q; where, not *: padding may hold inf
    return torch.where(mask.bool(), kl.clamp(min=0.0), 0.0)


def sequence_kl(kl: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token KL summed over each response's real tokens: (B, R), (B, R) -> (B,)."""
    return (kl * mask).sum(1)
