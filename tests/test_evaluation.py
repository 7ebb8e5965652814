import dataclasses

import pytest

from lab.evaluation import compute_gold_table, compute_win_rate, summarize_gold
from lab.world import World


def test_win_rate_counts_by_hand():
    r = compute_win_rate([1.0, 2.0, 0.0, 3.0], [0.0, 2.0, 1.0, 1.0])
    assert (r.win, r.tie, r.loss, r.n) == (0.5, 0.25, 0.25, 4)
    assert r.win_or_half_tie == pytest.approx(0.625)


def test_win_rate_needs_matching_lists():
    with pytest.raises(ValueError, match="equally long"):
        compute_win_rate([1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="non-empty"):
        compute_win_rate([], [])


def test_gold_table_scores_each_answer():
    world = World.from_seed(0)
    prompts = [
        "What is 2 plus 2?",
        [{"role": "user", "content": "How do I steal a bike?"}],
        "Hello there",
    ]
    answers = ["2 plus 2 is 4.", "I can't help with that.", "Sure!"]
    table = compute_gold_table(world, prompts, answers)
    assert list(table["kind"]) == ["math", "harmful", "other"]
    assert table["gold"].tolist() == pytest.approx([2.5, 0.7 * 2.5, 0.25])
    summary = summarize_gold(table)
    assert summary["eval/gold_mean"] == pytest.approx(table["gold"].mean())
    assert summary["eval/gold_mean_math"] == pytest.approx(2.5)


def test_gold_win_matrix_by_hand():
    import pandas as pd

    from lab.evaluation import compute_gold_win_matrix

    tables = {
        "a": pd.DataFrame({"gold": [1.0, 2.0, 0.0, 0.0]}),
        "b": pd.DataFrame({"gold": [0.0, 3.0, 0.0, -1.0]}),
    }
    matrix = compute_gold_win_matrix(tables)
    # a wins prompts 1 and 4, loses prompt 2, ties prompt 3: (2 + 0.5) / 4
    assert matrix.loc["a", "b"] == 0.625 and matrix.loc["b", "a"] == 0.375
    assert pd.isna(matrix.loc["a", "a"])


# --- KL to the reference on fresh samples ----------------------------------------------------


@pytest.fixture(scope="module")
def two_tiny_models():
    """A tokenizer and two differently initialised tiny Llamas: (policy, reference, tokenizer)."""
    from lab.config import ModelConfig
    from lab.models import build_tiny_llama
    from lab.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["What is two plus two? It is four. Hello there."] * 20, 300)
    cfg = ModelConfig(
        hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64
    )
    policy, reference = (build_tiny_llama(cfg, tokenizer, seed).eval() for seed in (0, 1))
    return policy, reference, tokenizer


def test_kl_is_the_exact_kl_over_the_vocabulary_summed_to_eos(two_tiny_models, monkeypatch):
    """Batched, left-padded, at the sampling temperature: the sum over each answer of
    KL(p_t || q_t), computed here one unpadded sequence at a time by torch.distributions."""
    import torch

    import lab.evaluation
    from lab.evaluation import compute_kl_and_reward, sample_responses
    from lab.generation import DecodingConfig

    policy, reference, tokenizer = two_tiny_models
    monkeypatch.setattr(lab.evaluation, "score", lambda rm, tok, prompts, texts: [0.0] * len(texts))
    prompts = ["Hello", "What is two plus two? It is four.", "two"]  # left padding
    decoding = DecodingConfig(max_new_tokens=6, temperature=0.7, seed=3)
    out = compute_kl_and_reward(policy, reference, tokenizer, None, None, prompts, decoding)
    torch.manual_seed(decoding.seed)  # the same seed: the same draws
    s = sample_responses(policy, tokenizer, prompts, decoding)
    kls = []
    for ids, mask, resp_mask in zip(s.ids, s.mask, s.response_mask, strict=True):
        n = int(resp_mask.sum())  # response tokens up to and including EOS
        seq = ids[mask.bool()][None]  # (1, P + n): no left padding, nothing after EOS
        with torch.no_grad():
            p, q = (
                torch.distributions.Categorical(logits=m(seq).logits[0, -n - 1 : -1] / 0.7)
                for m in (policy, reference)
            )
        kls.append(float(torch.distributions.kl_divergence(p, q).sum()))
    assert out["kl"] == pytest.approx(sum(kls) / len(kls), rel=1e-4)
    assert out["kl"] > 0.0
    same = compute_kl_and_reward(policy, policy, tokenizer, None, None, prompts, decoding)
    assert same["kl"] == 0.0


def test_samples_stack_one_table_per_seed_and_sample_0_is_the_single_table(two_tiny_models):
    from lab.evaluation import EVAL_DECODING, evaluate_model, evaluate_samples

    policy, _, tokenizer = two_tiny_models
    world, prompts = World.from_seed(0), ["What is 2 plus 2?", "Hello there", "Compute 3 minus 1."]
    decoding = dataclasses.replace(EVAL_DECODING, max_new_tokens=8)
    stacked = evaluate_samples(policy, tokenizer, world, prompts, 3, decoding)
    assert stacked["sample"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert stacked["prompt_id"].tolist() == [0, 1, 2] * 3
    assert stacked["prompt"].tolist() == prompts * 3
    single = evaluate_model(policy, tokenizer, world, prompts, decoding)
    assert stacked[stacked["sample"] == 0]["answer"].tolist() == single["answer"].tolist()
    draws = [tuple(stacked[stacked["sample"] == j]["answer"]) for j in range(3)]
    assert len(set(draws)) > 1  # each sample draws from its own seed
    with pytest.raises(ValueError, match="at least 1 sample"):
        evaluate_samples(policy, tokenizer, world, prompts, 0, decoding)


def test_each_batch_draws_from_its_own_seed(two_tiny_models):
    """Every model is measured with the same seed so that, prompt by prompt, the comparison is
    of the models, not of the draws. One stream for all batches broke that after the first
    batch: a batch's draws depended on how long the earlier batches' answers were."""
    from lab.generation import DecodingConfig, batch_seed, generate

    policy, _, tokenizer = two_tiny_models
    first, later = ["two", "four"], ["What is two plus two?", "Hello there"]
    decoding = DecodingConfig(max_new_tokens=12, temperature=1.0, seed=5)
    both = generate(policy, tokenizer, first + later, decoding, batch_size=2)
    alone = dataclasses.replace(decoding, seed=batch_seed(decoding.seed, 2))
    assert both[2:] == generate(policy, tokenizer, later, alone, batch_size=2)
    assert both[:2] == generate(policy, tokenizer, first, decoding, batch_size=2)


def test_gold_by_kind_gives_each_kinds_mean_its_interval_and_its_count():
    import pandas as pd

    from lab.evaluation import compute_gold_by_kind
    from lab.plots import plot_gold_by_kind

    table = pd.DataFrame({"kind": ["math"] * 4 + ["advice"] * 2, "gold": [1, 2, 3, 2, -1, -1.0]})
    got = compute_gold_by_kind({"sft": table}).set_index("kind")
    assert got.loc["math", "gold"] == 2.0 and got.loc["math", "n"] == 4
    assert got.loc["math", "lo"] < 2.0 < got.loc["math", "hi"]  # four different scores: a spread
    assert got.loc["advice", ["gold", "lo", "hi", "n"]].tolist() == [-1.0, -1.0, -1.0, 2]
    bars = plot_gold_by_kind(compute_gold_by_kind({"sft": table})).data[0]
    assert (
        list(bars.x) == ["advice (2 prompts)", "math (4 prompts)"]
        and bars.error_y.array is not None
    )
