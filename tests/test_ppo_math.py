"""PPO's maths, and the per-response functions it shares (`lab.responses`), against values computed by hand."""

import math

import pytest
import torch

from lab.ppo_math import (
    KLController,
    explained_variance,
    gae,
    kl_penalty,
    masked_mean,
    masked_var,
    masked_whiten,
    policy_loss,
    token_rewards,
    value_loss,
)
from lab.responses import (
    align_left,
    at_positions,
    at_rows,
    entropy_from_logits,
    kl_exact,
    logprobs_and_entropy,
    logprobs_at_rows,
    logprobs_of,
    penalize_missing_eos,
    sequence_kl,
)

T = torch.tensor


def test_masked_mean_and_var_ignore_padding():
    x, m = T([[1.0, 2.0, 100.0], [3.0, -50.0, -50.0]]), T([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    assert masked_mean(x, m).item() == pytest.approx(2.0)
    assert masked_mean(x, m, dim=1).tolist() == pytest.approx([1.5, 3.0])
    assert masked_var(x, m).item() == pytest.approx(1.0)  # (1+0+1)/(3-1)
    assert masked_var(x, m, unbiased=False).item() == pytest.approx(2 / 3)


def test_masked_whiten():
    x, m = T([[1.0, 2.0, 3.0, 99.0]]), T([[1.0, 1.0, 1.0, 0.0]])
    w = masked_whiten(x, m)
    assert w[0, :3].tolist() == pytest.approx([-1.0, 0.0, 1.0], abs=1e-4)
    # Without the shift the mean stays: x = [2, 4, 6] (mean 4, unbiased std 2) -> [3, 4, 5].
    wide = T([[2.0, 4.0, 6.0, 99.0]])
    assert masked_whiten(wide, m, shift_mean=False)[0, :3].tolist() == pytest.approx(
        [3.0, 4.0, 5.0], abs=1e-4
    )


def test_kl_estimators():
    lp, ref = T([[math.log(0.5)]]), T([[math.log(0.25)]])
    assert kl_penalty(lp, ref, "k1").item() == pytest.approx(math.log(2))
    # k3 = (q/p - 1) - log(q/p) with q/p = 0.5: -0.5 + ln 2
    assert kl_penalty(lp, ref, "k3").item() == pytest.approx(-0.5 + math.log(2))
    assert kl_penalty(ref, lp, "k3").item() >= 0  # k3 is never negative
    with pytest.raises(ValueError, match="k2"):
        kl_penalty(lp, ref, "k2")


def test_kl_exact_by_hand():
    # p = (1/2, 1/2), q = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2 = 1/2 ln(4/3)
    logits, ref = torch.zeros(1, 1, 2), T([[[math.log(3), 0.0]]])
    assert kl_exact(logits, ref, torch.ones(1, 1)).item() == pytest.approx(0.5 * math.log(4 / 3))
    # At temperature 2 the reference logits halve: q = (sqrt3, 1) / (sqrt3 + 1)
    q0 = math.sqrt(3) / (math.sqrt(3) + 1)
    expected = 0.5 * math.log(0.5 / q0) + 0.5 * math.log(0.5 / (1 - q0))
    assert kl_exact(logits, ref, torch.ones(1, 1), 2.0).item() == pytest.approx(expected)


@pytest.mark.parametrize("temperature", [1.0, 0.7, 2.0])
def test_kl_exact_matches_torch_distributions_and_is_never_negative(temperature):
    g = torch.Generator().manual_seed(0)
    logits, ref = (3 * torch.randn(4, 6, 50, generator=g) for _ in range(2))
    mask = torch.ones(4, 6)
    mask[1, 3:] = 0
    kl = kl_exact(logits, ref, mask, temperature)
    p, q = (torch.distributions.Categorical(logits=x / temperature) for x in (logits, ref))
    expected = torch.distributions.kl_divergence(p, q) * mask
    assert kl.shape == (4, 6)
    torch.testing.assert_close(kl, expected, rtol=1e-5, atol=1e-6)
    assert (kl >= 0).all() and (kl[1, 3:] == 0).all() and (kl[mask.bool()] > 0).all()


def test_kl_exact_is_zero_for_identical_logits_and_finite_for_impossible_tokens():
    logits = 5 * torch.randn(3, 4, 30, generator=torch.Generator().manual_seed(1))
    assert (kl_exact(logits, logits.clone(), torch.ones(3, 4), 0.7) == 0).all()
    truncated = logits.clone()
    truncated[..., 10:] = -math.inf  # the policy never picks these: they add nothing, not nan
    kl = kl_exact(truncated, logits, torch.ones(3, 4))
    assert torch.isfinite(kl).all() and (kl >= 0).all()


def test_token_rewards_put_the_score_on_the_last_real_token():
    kl = T([[0.1, 0.2, 0.3], [0.5, 0.0, 0.0]])
    mask = T([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    r = token_rewards(T([1.0, 2.0]), kl, mask, kl_coef=0.5)
    assert r.flatten().tolist() == pytest.approx([-0.05, -0.1, -0.15 + 1.0, -0.25 + 2.0, 0.0, 0.0])


def test_gae_by_hand():
    rewards, values = T([[0.0, 1.0]]), T([[0.5, 0.25]])
    mask = torch.ones(1, 2)
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # t=1: delta = 1 + 0 - 0.25 = 0.75 -> A1 = 0.75
    # t=0: delta = 0 + 0.9*0.25 - 0.5 = -0.275 -> A0 = -0.275 + 0.9*0.8*0.75 = 0.265
    assert adv[0].tolist() == pytest.approx([0.265, 0.75])
    assert ret[0].tolist() == pytest.approx([0.765, 1.0])


def test_gae_stops_at_the_end_of_each_response():
    rewards, values = T([[1.0, 0.0, 0.0]]), T([[0.0, 9.0, 9.0]])
    adv, _ = gae(rewards, values, T([[1.0, 0.0, 0.0]]), gamma=1.0, lam=1.0)
    assert adv[0].tolist() == pytest.approx([1.0, 0.0, 0.0])  # padding's values never leak back


def test_policy_loss_clips_by_hand():
    old = torch.zeros(1, 2)
    new = T([[math.log(1.5), math.log(0.5)]])  # ratios 1.5 and 0.5
    adv, mask = T([[1.0, -1.0]]), torch.ones(1, 2)
    loss, stats = policy_loss(new, old, adv, mask, clip=0.2)
    # token 0: max(-1.5, -1.2) = -1.2 (clipped); token 1: max(0.5, 0.8) = 0.8 (clipped)
    assert loss.item() == pytest.approx((-1.2 + 0.8) / 2)
    assert stats["clipfrac"].item() == pytest.approx(1.0)
    assert stats["ratio"].item() == pytest.approx(1.0)
    same, stats = policy_loss(old, old, adv, mask, clip=0.2)
    assert same.item() == pytest.approx(0.0) and stats["clipfrac"].item() == 0.0


def test_value_loss_clips_by_hand():
    loss, frac = value_loss(
        T([[2.0, 0.0]]), T([[0.0, 0.0]]), T([[3.0, 1.0]]), torch.ones(1, 2), clip=0.5
    )
    # token 0: clipped V = 0.5 -> max(1, 6.25) = 6.25; token 1: max(1, 1) = 1
    assert loss.item() == pytest.approx(0.5 * (6.25 + 1.0) / 2)
    assert frac.item() == pytest.approx(0.5)


def test_entropy_and_logprobs():
    logits = torch.zeros(1, 1, 4)
    assert entropy_from_logits(logits).item() == pytest.approx(math.log(4))
    assert logprobs_of(logits, T([[2]])).item() == pytest.approx(math.log(0.25))
    peaked = T([[[2.0, 0.0]]])
    assert logprobs_of(peaked, T([[0]]), temperature=2.0).item() == pytest.approx(
        -math.log1p(math.exp(-1))
    )


def test_explained_variance():
    target, mask = T([[1.0, 2.0, 3.0]]), torch.ones(1, 3)
    assert explained_variance(target, target, mask) == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 3), 2.0), target, mask) == pytest.approx(0.0)


def test_kl_controller():
    fixed = KLController(0.1)
    fixed.update(kl=100.0, n_steps=64)
    assert fixed.value == 0.1
    adaptive = KLController(0.1, target=6.0, horizon=100)
    adaptive.update(kl=12.0, n_steps=10)  # error clipped to +0.2 -> *1.02
    assert adaptive.value == pytest.approx(0.102)
    adaptive.update(kl=3.0, n_steps=10)  # error -0.5 clipped to -0.2 -> *0.98
    assert adaptive.value == pytest.approx(0.102 * 0.98)


def test_penalize_missing_eos_only_touches_cut_answers():
    scores, ended = T([1.0, 2.0, -0.5]), torch.tensor([True, False, False])
    assert penalize_missing_eos(scores, ended, 1.5).tolist() == [1.0, 0.5, -2.0]
    exact = torch.tensor([0.1, 0.2], dtype=torch.float64)  # Python floats stay exact in float64
    assert penalize_missing_eos(exact, torch.tensor([False, True]), 0.3).tolist() == [
        0.1 - 0.3,
        0.2,
    ]


def test_sequence_kl_sums_real_tokens_only():
    kl, mask = T([[0.5, -0.25, 9.0], [1.0, 2.0, 3.0]]), T([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    assert sequence_kl(kl, mask).tolist() == [0.25, 6.0]


def test_logprobs_and_entropy_equal_the_two_separate_functions():
    """One log-softmax for both, bit for bit what `logprobs_of` and `entropy_from_logits` give."""
    torch.manual_seed(0)
    logits, tokens = 3 * torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    logprobs, entropy = logprobs_and_entropy(logits, tokens, temperature=0.7)
    assert torch.equal(logprobs, logprobs_of(logits, tokens, 0.7))
    assert torch.equal(entropy, entropy_from_logits(logits / 0.7))


def test_logprobs_at_rows_equal_the_laid_out_logits_and_their_gradient():
    """Positions sharing a row (after EOS) share one log-softmax; values and gradients are
    what `logprobs_and_entropy` gives on the (B, T, V) layout, for a loss off masked tokens."""
    torch.manual_seed(0)
    rows = T([[0, 1, 2, 2], [3, 4, 5, 6]])  # row 0 ended: its last two tokens read row 2
    mask = T([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    tokens, weights = torch.randint(0, 11, (2, 4)), torch.randn(2, 4)
    compact = (3 * torch.randn(7, 11)).requires_grad_()
    laid_out = at_rows(compact.detach(), rows).requires_grad_()

    logprobs, entropy = logprobs_at_rows(compact, rows, tokens, 0.7, entropy=True)
    expected, expected_entropy = logprobs_and_entropy(laid_out, tokens, 0.7)
    assert torch.equal(logprobs, expected) and torch.equal(entropy, expected_entropy)
    assert torch.equal(logprobs_at_rows(compact, rows, tokens, 0.7), expected)
    (logprobs * weights * mask).sum().backward()
    (expected * weights * mask).sum().backward()
    by_row = torch.zeros_like(compact).index_add_(0, rows.flatten(), laid_out.grad.flatten(0, 1))
    assert torch.allclose(compact.grad, by_row, atol=1e-7)


def test_align_left_by_hand():
    """Left padding goes, the batch ends after its longest row, and each response token's
    prediction is read one position before it (past a row's end: its last position)."""
    ids = T([[0, 0, 5, 6, 7, 8, 0], [3, 4, 5, 6, 7, 8, 9], [0, 0, 0, 5, 7, 0, 0]])
    mask = (ids != 0).long()  # prompts of 2, 4 and 1 tokens; responses: the last 3 columns
    aligned, aligned_mask, index = align_left(ids, mask, 3)
    assert aligned.tolist() == [[5, 6, 7, 8, 0, 0, 0], [3, 4, 5, 6, 7, 8, 9], [5, 7, 0, 0, 0, 0, 0]]
    assert torch.equal(aligned_mask, (aligned != 0).long())
    assert index.tolist() == [[1, 2, 3], [3, 4, 5], [0, 1, 2]]
    short = align_left(ids[[0, 2]], mask[[0, 2]], 3)  # without the long row: cut after 4
    assert short[0].tolist() == [[5, 6, 7, 8], [5, 7, 0, 0]]
    assert short[2].tolist() == [[1, 2, 3], [0, 1, 2]]


def test_at_positions_reads_each_rows_own_positions():
    x = torch.arange(2 * 4 * 3).view(2, 4, 3)  # (B, L, V)
    index = T([[0, 3], [2, 2]])
    assert torch.equal(at_positions(x, index), torch.stack([x[0, [0, 3]], x[1, [2, 2]]]))
    assert torch.equal(at_positions(x[..., 0], index), T([[0, 9], [18, 18]]))
