"""Batched serving: an answer is the same alone or batched with others, and failures stay local."""

from __future__ import annotations

import math
import threading

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from apps import pool as pool_module
from apps.batching import sample_token
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
