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


def align_left(
    ids: torch.Tensor, mask: torch.Tensor, n_response: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rows moved to start at position 0 and cut after the longest, and where each of the last
    `n_response` tokens is predicted: (B, L), (B, L) -> (B, L'), (B, L'), (B, R) positions.

    A forward pays for padding as for real tokens: a batch of short prompts beside one long
    one is mostly left padding, and responses that stopped early leave padding on the right.
    The numbers match the padded forward's to float rounding (the batch's length can move the
    last bits: the same rows in the same batch give the same bits). Positions past a row's
    end (masked response tokens) read the row's last position.
    """
    length = ids.shape[1]
    lead = (mask.cumsum(1) == 0).sum(1)  # (B,) left padding
    trail = (mask.flip(1).cumsum(1) == 0).sum(1)  # (B,) right padding
    cols = torch.arange(length, device=ids.device)
    src = (cols + lead.unsqueeze(1)) % length  # (B, L): rotate each row left by its padding
    keep = max(1, int((length - lead - trail).max()))
    ids, mask = ids.gather(1, src)[:, :keep], mask.gather(1, src)[:, :keep]
    # Token L - R + t sat at L - R + t - lead; the position before it predicts it.
    first = (length - n_response - 1 - lead).unsqueeze(1)  # (B, 1)
    steps = torch.arange(n_response, device=ids.device)
    return ids, mask, (first + steps).clamp(0, keep - 1)


def at_positions(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """`x[b, index[b, t]]` for every row: (B, L, ...), (B, T) -> (B, T, ...)."""
    index = index.view(*index.shape, *([1] * (x.dim() - 2)))
    return x.gather(1, index.expand(*index.shape[:2], *x.shape[2:]))


def next_token_logits(
    model, ids: torch.Tensor, mask: torch.Tensor, n_response: int
) -> torch.Tensor:
    """Logits at the positions that predict the last `n_response` tokens of `ids`: (B, R, V).

    Padding is moved out of the forward's way first (`align_left`): the same logits, less work.
    """
    ids, mask, index = align_left(ids, mask, n_response)
    first = int(index.min())
    out = model(
        input_ids=ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
        logits_to_keep=ids.shape[1] - first,  # only the response's logits are ever needed
    )
    return at_positions(out.logits, index - first)


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


def logprobs_and_entropy(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """`logprobs_of` and `entropy_from_logits(logits / temperature)` from one log-softmax:
    (B, T, V), (B, T) -> (B, T), (B, T). The full-vocabulary tensor is made once, not twice."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    logprobs = torch.gather(logp, -1, tokens.unsqueeze(-1)).squeeze(-1)
    return logprobs, -(logp.exp() * logp).sum(-1)


def at_rows(logits: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(K, V) logits laid out as (B, T, V): response token (b, t) reads row `rows[b, t]`."""
    return logits.index_select(0, rows.flatten()).view(*rows.shape, -1)


def logprobs_at_rows(
    logits: torch.Tensor, rows: torch.Tensor, tokens: torch.Tensor, temperature: float = 1.0,
    entropy: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """`logprobs_of` (and with `entropy`, `logprobs_and_entropy`) where response token (b, t)
    reads logits row `rows[b, t]`: (K, V), (B, T), (B, T) -> (B, T) [, (B, T)].

    The log-softmax runs once per row of `logits`, not once per response token: positions
    past a response's EOS read its last real row, so K is about the batch's real tokens, and
    the (B, T, V) tensor is never made. Every value is the one `logprobs_of` gives on
    `at_rows(logits, rows)`; the gradient too, for a loss that ignores masked tokens.
    """
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)  # (K, V)
    flat = (rows * logp.shape[-1] + tokens).flatten()  # index_select: a fast backward on CPU
    logprobs = logp.flatten().index_select(0, flat).view_as(tokens)
    if not entropy:
        return logprobs
    per_row = -(logp.exp() * logp).sum(-1)  # (K,)
    return logprobs, per_row.index_select(0, rows.flatten()).view_as(tokens)


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
