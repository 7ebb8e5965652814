"""Packed forwards: a batch's real tokens as one sequence, so no layer pays for padding.

Once a batch's left padding is gone (`responses.align_left`), its short rows still carry
padding on the right, up to the longest: a third of the PPO update's tokens on the tiny run.
Here every row's real tokens are laid end to end in one row of N tokens, each row's
positions starting at 0. Every linear layer, norm and MLP then runs on the N real
tokens only. Attention alone must keep the rows apart: `packed_attention` (registered with
transformers as `ATTENTION`) lays the packed queries, keys and values back out as rows (B,
longest, ...), runs the usual causal SDPA there, and packs the result again. Rows start at
position 0 and padding sits only on the right, so the causal mask alone keeps every real
query off the padding. The numbers are the padded forward's, to float rounding.

Use it through `packed_logits` and `packed_hidden`, on a model whose attention is set to
`ATTENTION` (`use_packed_attention`); without `ROWS` in its keyword arguments the attention
is plain SDPA, so `generate` and every other caller see the model as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

ATTENTION = "lab_packed"  # the attention implementation's name
ROWS = "lab_packed_rows"  # the keyword argument that carries the rows' layout to each layer


@dataclass
class Packing:
    """Where each row's real tokens sit in the packed sequence of N tokens, row after row.

    Laid out as rows, the batch is (B, L) with L its longest row. `rows` gives, for each of
    those B * L slots, the packed token it reads (past a row's end: the row's last token, so
    that padding holds real numbers), and `slots` the slot of each packed token. Data moves
    between the layouts by index_select alone, whose gradient (index_add) stays fast on a
    CPU, where indexing's own backward does not.
    """

    ids: torch.Tensor  # (1, N) the real tokens, row after row
    position_ids: torch.Tensor  # (1, N) 0, 1, ... within each row
    rows: torch.Tensor  # (B * L,) packed index that each slot of the row layout reads
    slots: torch.Tensor  # (N,) slot in the row layout of each packed token
    shape: tuple[int, int]  # (B, L)
    predicts: torch.Tensor  # (B, R) packed index of the position that predicts response token t


def pack(ids: torch.Tensor, mask: torch.Tensor, n_response: int) -> Packing:
    """Lay out `ids`' real tokens end to end: (B, P + R) ids and mask (ones in one run per row).

    Response token t of row b sits at column P + t; the position before it predicts it. A
    masked response token (after EOS) reads the row's last real position.
    """
    real_in = mask.bool()
    lengths = real_in.sum(1)  # (B,)
    lead = (mask.cumsum(1) == 0).sum(1)  # (B,) left padding
    starts, last = lengths.cumsum(0) - lengths, (lengths - 1).unsqueeze(1)  # (B,), (B, 1)
    cols = torch.arange(int(lengths.max()), device=ids.device).unsqueeze(0)  # (1, L)
    real = cols < lengths.unsqueeze(1)  # (B, L)
    rows = starts.unsqueeze(1) + torch.minimum(cols, last)  # (B, L)
    slots = torch.arange(real.numel(), device=ids.device).view_as(real)[real]  # (N,)
    n_total, steps = ids.shape[1], torch.arange(n_response, device=ids.device)
    before = (n_total - n_response - 1 - lead).unsqueeze(1) + steps  # (B, R) within the row
    predicts = starts.unsqueeze(1) + torch.minimum(before.clamp(min=0), last)
    position_ids = cols.expand_as(real)[real].unsqueeze(0)
    return Packing(
        ids[real_in].unsqueeze(0), position_ids, rows.flatten(), slots, tuple(real.shape), predicts
    )


def packed_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Causal attention within each packed row: (1, heads, N, d) -> (1, N, heads, d).

    Without `ROWS` (not a packed call) this is transformers' SDPA, mask and all.
    """
    packing: Packing | None = kwargs.pop(ROWS, None)
    if packing is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    b, length = packing.shape

    def as_rows(x: torch.Tensor) -> torch.Tensor:  # (1, h, N, d) -> (B, h, L, d)
        x = x[0].transpose(0, 1).index_select(0, packing.rows)  # (B * L, h, d)
        return x.view(b, length, *x.shape[1:]).transpose(1, 2)

    out, _ = sdpa_attention_forward(
        module, as_rows(query), as_rows(key), as_rows(value), None, is_causal=True, **kwargs
    )  # (B, L, heads, d)
    out = out.reshape(b * length, *out.shape[2:]).index_select(0, packing.slots)
    return out.unsqueeze(0), None


AttentionInterface.register(ATTENTION, packed_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ATTENTION, sdpa_mask)  # unpacked calls: SDPA's own mask


def use_packed_attention(model: nn.Module) -> bool:
    """Give `model` (every config inside it) the packed attention where it runs SDPA; unpacked
    calls stay plain SDPA. True when every config inside now has it (False: eager attention,
    say, which a packed forward must not use)."""
    configs = [m.config for m in model.modules() if hasattr(m, "config")]
    for config in configs:
        if getattr(config, "_attn_implementation", None) == "sdpa":
            config._attn_implementation = ATTENTION
    return all(getattr(c, "_attn_implementation", None) == ATTENTION for c in configs)


def check_packed(model: nn.Module) -> None:
    """Refuse a packed forward through attention that would let the packed rows see each other."""
    if getattr(getattr(model, "config", None), "_attn_implementation", None) != ATTENTION:
        raise ValueError("a packed forward needs the packed attention: use_packed_attention(model)")


def packed_inputs(packing: Packing) -> dict:
    """The keyword arguments of a packed forward: no padding, so a mask of ones."""
    return {
        "input_ids": packing.ids,
        "attention_mask": torch.ones_like(packing.ids),
        "position_ids": packing.position_ids,
        ROWS: packing,
    }


def packed_logits(
    model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, n_response: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits that predict the last `n_response` tokens of `ids`, from a packed forward:
    (K, V) at the K distinct positions that predict one, and (B, R) the row each token reads.

    The language-model head runs only at those K positions; a response's masked tokens after
    EOS all read its last real position, so K is about the batch's real response tokens.
    `responses.at_rows(logits, rows)` lays them out as (B, R, V).
    """
    check_packed(model)
    packing = pack(ids, mask, n_response)
    keep, rows = packing.predicts.flatten().unique(return_inverse=True)
    logits = model(**packed_inputs(packing), logits_to_keep=keep).logits  # (1, K, V)
    return logits[0], rows.view_as(packing.predicts)


def packed_hidden(
    trunk: nn.Module, ids: torch.Tensor, mask: torch.Tensor, n_response: int
) -> torch.Tensor:
    """The trunk's last hidden state at each position that predicts a response token: (B, R, H)."""
    check_packed(trunk)
    packing = pack(ids, mask, n_response)
    hidden = trunk(**packed_inputs(packing)).last_hidden_state  # (1, N, H)
    return hidden[0].index_select(0, packing.predicts.flatten()).view(*packing.predicts.shape, -1)
