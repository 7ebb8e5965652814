"""Batched serving: an answer is the same alone or batched with others, and failures stay local."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from apps import pool as pool_module
from apps.batching import sample_token
from apps.microbatch import MicroBatcher
from apps.pool import Answer, ModelPool
from lab.generation import DecodingConfig, generate
from tests.conftest import untrained_pool

PROMPTS = ["What is 2 plus 3?", "Hello there.", "What is 12 plus 30? It is", "It is 5."]
# Greedy, plain sampling, and temperature with top-p: every path of `sample_token`.
DECODINGS = [DecodingConfig(20, 0.0, 1.0, 0), DecodingConfig(20, 1.0, 1.0, 3)]
DECODINGS += [DecodingConfig(20, 0.7, 0.8, 11), DecodingConfig(9, 1.5, 0.5, 2**32 - 1)]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    return untrained_pool(tmp_path_factory.mktemp("pool"), num_layers=2)


def in_parallel(pool: ModelPool, jobs: list[tuple[str, str, DecodingConfig]]) -> list:
    """Answer every (model, prompt, decoding) at once, each from its own thread; errors returned."""
    results: list = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = pool.answer(*jobs[i])
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[i] = error

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_sample_token_draws_what_generate_draws():
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0))  # (1, V)
    for decoding in DECODINGS[1:]:
        warped = TemperatureLogitsWarper(decoding.temperature)(None, logits)
        if decoding.top_p < 1:
            warped = TopPLogitsWarper(decoding.top_p)(None, warped)
        for seed in range(20):
            torch.manual_seed(seed)
            expected = int(torch.multinomial(warped.softmax(-1), num_samples=1))
            generator = torch.Generator().manual_seed(seed)
            assert sample_token(logits, decoding, generator) == expected
    assert sample_token(logits, DECODINGS[0], torch.Generator()) == int(logits.argmax())


def test_an_answer_alone_is_what_generate_says(pool):
    for name in ("sft", "ppo"):
        m = pool.models[name]
        for prompt, decoding in zip(PROMPTS, DECODINGS, strict=True):
            expected = generate(m.model, m.tokenizer, [prompt], decoding)[0]
            assert pool.answer(name, prompt, decoding).text == expected


def test_an_answer_is_the_same_alone_and_batched_with_others(pool):
    jobs = [(n, p, d) for n in ("sft", "ppo") for p in PROMPTS for d in DECODINGS]
    alone = [pool.answer(*job) for job in jobs]
    for name in ("sft", "ppo"):
        pool.models[name].batcher.batch_sizes.clear()
    batched = in_parallel(pool, jobs)
    for one, many in zip(alone, batched, strict=True):
        assert isinstance(many, Answer)
        assert (many.text, many.response_ids) == (one.text, one.response_ids)
        assert many.prompt_ids == one.prompt_ids
    for name in ("sft", "ppo"):  # 16 requests per model at once: they really were batched
        assert max(pool.models[name].batcher.batch_sizes) > 1


def test_the_stream_grows_to_the_answer(pool, monkeypatch):
    monkeypatch.setattr(pool_module, "STREAM_EVERY", 0.0)  # every token the reader catches up on
    monkeypatch.setattr(pool_module, "STREAM_BUDGET", math.inf)
    parts = list(pool.stream("ppo", PROMPTS[0], DECODINGS[1]))
    texts, answer = parts[:-1], parts[-1]
    assert len(texts) > 1 and all(isinstance(t, str) for t in texts)
    assert all(answer.text.startswith(t) for t in texts)
    assert 0 < len(answer.response_ids) <= DECODINGS[1].max_new_tokens


def test_many_models_answer_at_once_as_each_would_alone(pool):
    decoding = DECODINGS[2]
    parts = list(pool.stream_many(["sft", "ppo", "sft"], PROMPTS[0], decoding))
    answers = {i: part for i, part in parts if isinstance(part, Answer)}
    assert sorted(answers) == [0, 1, 2]
    for i, name in enumerate(["sft", "ppo", "sft"]):
        assert answers[i].text == pool.answer(name, PROMPTS[0], decoding).text


def test_a_request_that_fails_to_sample_fails_alone(pool):
    bad = DecodingConfig(20, math.nan, 1.0, 0)  # NaN probabilities: multinomial refuses
    jobs = [("sft", p, d) for p, d in zip(PROMPTS, DECODINGS, strict=True)]
    results = in_parallel(pool, [*jobs[:2], ("sft", PROMPTS[0], bad), *jobs[2:]])
    assert isinstance(results.pop(2), RuntimeError)
    for job, result in zip(jobs, results, strict=True):
        assert isinstance(result, Answer) and result.text == pool.answer(*job).text


def test_a_failed_forward_fails_its_batch_and_the_next_request_runs(pool, monkeypatch):
    model = pool.models["ppo"].model

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "forward", broken)
    results = in_parallel(pool, [("ppo", p, DECODINGS[1]) for p in PROMPTS])
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)
    monkeypatch.undo()
    m = pool.models["ppo"]
    expected = generate(m.model, m.tokenizer, [PROMPTS[0]], DECODINGS[1])[0]
    assert pool.answer("ppo", PROMPTS[0], DECODINGS[1]).text == expected


def test_a_reader_that_leaves_frees_its_row(pool):
    long = DecodingConfig(200, 1.0, 1.0, 5)
    stream = pool.stream("sft", PROMPTS[1], long)
    next(stream)
    stream.close()  # a browser tab closed mid-answer
    batcher = pool.models["sft"].batcher
    assert pool.answer("sft", PROMPTS[0], DECODINGS[0]) is not None
    for _ in range(100):
        if not batcher.running:
            break
        threading.Event().wait(0.05)
    assert not batcher.running and not batcher.rows  # the thread stopped: nothing left to do


def test_answers_measured_together_get_what_each_gets_alone(pool):
    lengths = [DecodingConfig(5 + 3 * i, 1.0, 1.0, i) for i in range(4)]  # one temperature
    jobs = [(n, p, d) for n in ("sft", "ppo") for p in PROMPTS for d in DECODINGS + lengths]
    answers = [pool.answer(*job) for job in jobs]
    assert len({len(a.response_ids) for a in answers}) > 3  # lengths differ: padding is tested
    alone = [pool.sample_kl(name, a) for (name, _, _), a in zip(jobs, answers, strict=True)]
    together = pool.stats_many([(n, p, a) for (n, p, _), a in zip(jobs, answers, strict=True)])
    for (name, _, _), one, stats, answer in zip(jobs, alone, together, answers, strict=True):
        assert stats.n_tokens == len(answer.response_ids)
        assert stats.kl == pytest.approx(one, rel=1e-4, abs=1e-5)
        assert (stats.kl == 0.0) == (name == "sft")  # the reference against itself
    assert any(s.kl > 0 for s in together)
    assert all(s.reward is None for s in together)  # this pool has no reward model


def test_micro_batcher_runs_waiting_calls_together_and_survives_a_failure():
    started, release = threading.Event(), threading.Event()

    def double(items: list[int]) -> list[int]:
        started.set()
        release.wait(5)  # hold the first batch so the others queue up behind it
        if -1 in items:
            raise ValueError("bad item")
        return [2 * x for x in items]

    batcher = MicroBatcher(double)
    results: dict[int, object] = {}

    def one(x: int) -> None:
        try:
            results[x] = batcher.call(x)
        except ValueError as error:
            results[x] = error

    first = threading.Thread(target=one, args=(0,))
    first.start()
    started.wait(5)
    others = [threading.Thread(target=one, args=(x,)) for x in range(1, 9)]
    for thread in others:
        thread.start()
    while batcher.waiting.qsize() < 8:
        threading.Event().wait(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(5)
    assert results == {x: 2 * x for x in range(9)}
    assert list(batcher.batch_sizes) == [1, 8]  # the eight that waited ran as one batch
    with pytest.raises(ValueError, match="bad item"):
        batcher.call(-1)
    assert batcher.call(21) == 42  # the worker lives on


def test_a_class_streaming_at_once_gets_fewer_updates_each():
    assert pool_module.stream_interval(1) == pool_module.STREAM_EVERY  # alone: smooth
    assert pool_module.stream_interval(30) > 5 * pool_module.STREAM_EVERY
    rates = [1 / pool_module.stream_interval(n) * n for n in (10, 30, 60)]
    assert all(r == pytest.approx(pool_module.STREAM_BUDGET) for r in rates)  # the total is capped
