"""Packed forwards (`lab.packing`): the padded forward's numbers and gradients, on every
architecture the lab runs (the tiny Llama, SmolLM2's and Qwen2.5's shapes with grouped-query
attention), while the same model still generates and saves as before."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from lab.packing import pack, packed_hidden, packed_logits, use_packed_attention
from lab.responses import at_rows, next_token_logits, position_ids
from lab.twins import twin_config

SMALL_SHAPE = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, vocab_size=96, bos_token_id=1, eos_token_id=2, pad_token_id=0,
)  # fmt: skip


def small_model(hub_id: str) -> torch.nn.Module:
    """`hub_id`'s architecture at a small size (grouped-query attention kept), random weights."""
    torch.manual_seed(0)
    config = twin_config(hub_id)
    for key, value in SMALL_SHAPE.items():
        setattr(config, key, value)
    config.head_dim = config.hidden_size // config.num_attention_heads
    config._attn_implementation = "sdpa"
    return AutoModelForCausalLM.from_config(config).eval()


def ragged_batch() -> tuple[torch.Tensor, torch.Tensor, int]:
    """Left-padded prompts of 3 lengths, then 4 response tokens, two rows stopped early."""
    torch.manual_seed(1)
    ids = torch.randint(3, 96, (4, 9))
    mask = torch.ones_like(ids)
    mask[0, :3] = 0  # a short prompt
    mask[1, :1] = 0
    mask[2, 7:] = 0  # an answer that ended after 2 tokens
    mask[3, :2], mask[3, 8:] = 0, 0
    return ids * mask, mask, 4


def test_pack_by_hand():
    ids = torch.tensor([[0, 5, 6, 7, 0], [4, 5, 6, 7, 8]])
    mask = torch.tensor([[0, 1, 1, 1, 0], [1, 1, 1, 1, 1]])
    p = pack(ids, mask, 2)  # responses: the last 2 columns
    assert p.ids.tolist() == [[5, 6, 7, 4, 5, 6, 7, 8]]
    assert p.position_ids.tolist() == [[0, 1, 2, 0, 1, 2, 3, 4]]
    assert p.shape == (2, 5) and p.slots.tolist() == [0, 1, 2, 5, 6, 7, 8, 9]
    assert p.rows.tolist() == [0, 1, 2, 2, 2, 3, 4, 5, 6, 7]  # row 0's padding reads its last
    # Row 0's response token 7 is predicted by its 6 (packed 1); its masked last token reads
    # the row's last real position (packed 2). Row 1's 7 and 8: by 6 and 7 (packed 5 and 6).
    assert p.predicts.tolist() == [[1, 2], [5, 6]]


@pytest.mark.parametrize("hub_id", ["HuggingFaceTB/SmolLM2-135M", "Qwen/Qwen2.5-0.5B"])
def test_packed_logits_and_gradients_are_the_padded_forwards(hub_id):
    ids, mask, n = ragged_batch()
    real = mask[:, -n:].bool()  # masked response positions are never read
    model = small_model(hub_id)
    weights = torch.randn(4, n, 96)  # a loss that reads every real logit

    padded = next_token_logits(model, ids, mask, n)
    (padded * weights)[real].sum().backward()
    padded_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    use_packed_attention(model)
    logits, rows = packed_logits(model, ids, mask, n)  # (K, V): one row per distinct position
    assert logits.shape[0] == rows.unique().numel() < rows.numel()
    packed = at_rows(logits, rows)
    (packed * weights)[real].sum().backward()
    assert torch.allclose(packed[real], padded[real], atol=1e-5)
    for p, g in zip(model.parameters(), padded_grads, strict=True):
        assert torch.allclose(p.grad, g, atol=1e-5, rtol=1e-4)
    # The trunk's states at the same positions: the ones the value function reads.
    hidden = packed_hidden(model.model, ids, mask, n)
    full = model.model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
    states = full.last_hidden_state[:, -n - 1 : -1]  # column P + t - 1 predicts token t
    assert torch.allclose(hidden[real], states[real], atol=1e-5)


def test_a_packed_model_still_generates_and_saves_as_before(tmp_path):
    model = small_model("HuggingFaceTB/SmolLM2-135M")
    ids, mask, _ = ragged_batch()
    prompt, prompt_mask = ids[:, :5], mask[:, :5]
    kwargs = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=2)
    before = model.generate(input_ids=prompt, attention_mask=prompt_mask, **kwargs)
    use_packed_attention(model)
    after = model.generate(input_ids=prompt, attention_mask=prompt_mask, **kwargs)
    assert torch.equal(before, after)  # left-padded prompts: plain SDPA, mask and all
    model.save_pretrained(tmp_path)
    eager = small_model("HuggingFaceTB/SmolLM2-135M")
    eager.config._attn_implementation = "eager"
    assert not use_packed_attention(eager)  # attention that cannot take packed rows
    with pytest.raises(ValueError, match="packed attention"):
        packed_logits(eager, ids, mask, 2)
    assert "lab_packed" not in (tmp_path / "config.json").read_text()
    assert AutoModelForCausalLM.from_pretrained(tmp_path).config._attn_implementation == "sdpa"
