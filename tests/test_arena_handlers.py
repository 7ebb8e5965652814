"""The arena's handlers, called as plain functions on the small pipeline run (no browser)."""

from __future__ import annotations

import collections
import random
import shutil

import pytest
import torch

from apps import board, retrain
from apps.arena import load_arena
from apps.guard import Classroom
from apps.handlers import ask, format_stats, new_session, pick_pair, vote
from apps.pool import ModelPool
from lab.config import ModelConfig
from lab.data import load_preferences
from lab.generation import DecodingConfig, generate
from lab.models import build_tiny_llama, save_model
from lab.reward import score
from lab.tokenizer import train_tokenizer

SETTINGS = (0.7, 1.0, 24, 1234)  # temperature, top-p, max tokens, seed
PROMPT = "What is 2 plus 3?"


@pytest.fixture(scope="module")
def arena(small_ppo_run, tmp_path_factory):
    """A copy of the small run's models plus one that cannot load; open classroom, no rate limit."""
    run = tmp_path_factory.mktemp("arena") / "run"
    shutil.copytree(small_ppo_run, run)  # retraining writes run/feedback/
    models = {"broken": str(run / "no-such-model")}
    return load_arena(
        run, models, run.parent / "arena.sqlite", Classroom(min_seconds_between_votes=0)
    )


def last(generator):
    *_, final = generator
    return final


def test_run_models_found_and_a_broken_one_is_unavailable(arena):
    assert arena.pool.available == ["base", "sft", "ppo"]
    assert "broken" in arena.pool.unavailable and arena.pool.unavailable["broken"]
    assert arena.cfg is not None and arena.world is not None


def test_compare_streams_the_same_answer_as_generate(arena):
    steps = list(ask(arena, "compare", PROMPT, ["sft", "ppo", "broken"], SETTINGS, new_session()))
    assert len(steps) > 3  # partial answers arrived before the end
    session, names, texts, stats, _ = steps[-1]
    assert names == ["sft", "ppo"]  # the broken model is skipped, the others answer
    decoding = DecodingConfig(24, 0.7, 1.0, 1234)
    for name, text in zip(names, texts, strict=True):
        m = arena.pool.models[name]
        assert text == generate(m.model, m.tokenizer, [PROMPT], decoding)[0]
    assert session.answers == texts and not session.voted
    assert all("reward" in line and "tokens" in line for line in stats)


def test_stats_score_like_the_reward_stage_and_kl_is_zero_for_the_reference(arena):
    decoding = DecodingConfig(24, 0.7, 1.0, 7)
    for name in ("sft", "ppo"):
        answer = arena.pool.answer(name, PROMPT, decoding)
        stats = arena.pool.stats(name, PROMPT, answer)
        expected = score(arena.pool.rm, arena.pool.rm_tokenizer, [PROMPT], [answer.text])[0]
        assert stats.reward == pytest.approx(expected, abs=1e-5)
        assert stats.n_tokens == len(answer.response_ids) > 0
        if name == "sft":
            assert stats.kl == 0.0
        else:
            assert stats.kl > 0.0  # exact KL: 0 only for identical models


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory):
    """Two untrained tiny Llamas on one tokenizer, as "sft" (the reference) and "ppo": fast."""
    tokenizer = train_tokenizer(["What is 2 plus 3? It is 5. Hello there."] * 20, vocab_size=300)
    cfg = ModelConfig(
        hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64
    )
    folder = tmp_path_factory.mktemp("tiny_pool")
    for seed, name in enumerate(("sft", "ppo")):
        save_model(build_tiny_llama(cfg, tokenizer, seed), tokenizer, folder / name)
    return ModelPool({name: str(folder / name) for name in ("sft", "ppo")})


def exact_kl(pool, name, answer, temperature):
    """Sum over the answer of KL(p_t || q_t) at `temperature`, by torch.distributions."""
    ids = torch.tensor([answer.prompt_ids + answer.response_ids])
    n = len(answer.response_ids)
    with torch.no_grad():
        p, q = (
            torch.distributions.Categorical(logits=m(ids).logits[0, -n - 1 : -1] / temperature)
            for m in (pool.models[name].model, pool.models["sft"].model)
        )
    return float(torch.distributions.kl_divergence(p, q).sum())


@pytest.mark.parametrize(("temperature", "top_p"), [(0.3, 1.0), (0.7, 0.8), (1.5, 0.5)])
def test_kl_to_sft_is_exact_at_the_answers_temperature_and_never_negative(
    tiny_pool, temperature, top_p
):
    for seed in range(3):
        decoding = DecodingConfig(12, temperature, top_p, seed)
        answer = tiny_pool.answer("ppo", PROMPT, decoding)
        assert answer.temperature == temperature
        kl = tiny_pool.sample_kl("ppo", answer)
        assert kl == pytest.approx(exact_kl(tiny_pool, "ppo", answer, temperature), rel=1e-4)
        assert kl > 0.0
        assert tiny_pool.sample_kl("sft", tiny_pool.answer("sft", PROMPT, decoding)) == 0.0
        assert f"KL to SFT {kl:.2f} nats" in format_stats(tiny_pool.stats("ppo", PROMPT, answer))


def test_kl_to_sft_of_a_greedy_answer_is_at_temperature_one(tiny_pool):
    answer = tiny_pool.answer("ppo", PROMPT, DecodingConfig(12, 0.0, 1.0, 0))
    assert answer.temperature == 0.0
    kl = tiny_pool.sample_kl("ppo", answer)
    assert kl == pytest.approx(exact_kl(tiny_pool, "ppo", answer, 1.0), rel=1e-4) and kl > 0


def test_a_vote_is_stored_once_and_only_after_answers(arena):
    before = arena.store.count()
    session = new_session()
    assert "Ask the models first" in vote(arena, "win", 0, session)[1]
    session = last(ask(arena, "compare", PROMPT, ["sft", "ppo"], SETTINGS, session))[0]
    assert "Choose which" in vote(arena, "win", None, session)[1]
    session, message = vote(arena, "win", 1, session)
    assert message.startswith("Vote #") and arena.store.count() == before + 1
    assert "Ask the models first" in vote(arena, "win", 1, session)[1]  # no double vote
    row = arena.store.votes().iloc[-1]
    assert row["models"] == ["sft", "ppo"] and row["winner"] == 1 and row["mode"] == "compare"
    assert row["responses"] == session.answers and row["decoding"]["seed"] == 1234


def test_battle_hides_names_until_the_vote(arena):
    session, names, texts, stats, _ = last(
        ask(arena, "battle", PROMPT, [], SETTINGS, new_session())
    )
    assert len(texts) == 2 and stats == [] and len(session.stats) == 2
    session, message = vote(arena, "tie", None, session)
    assert all(f"**{name}**" in message for name in names)
    assert arena.store.votes().iloc[-1]["outcome"] == "tie"


def test_bad_input_gets_a_message_and_reaches_no_model(arena):
    bad = [
        ("", SETTINGS, "type a prompt"),
        ("x" * 5000, SETTINGS, "limit"),
        ("\x00\x01binary", SETTINGS, "binary"),
        (PROMPT, (9.0, 1.0, 24, 0), "Temperature"),
        (PROMPT, (0.7, 1.0, 10**6, 0), "Max tokens"),
        (PROMPT, (0.7, "lots", 24, 0), "numbers"),
    ]
    for prompt, settings, words in bad:
        steps = list(ask(arena, "compare", prompt, ["sft"], settings, new_session()))
        assert len(steps) == 1 and words in steps[0][-1] and steps[0][2] == []


def test_html_in_a_prompt_is_kept_as_text(arena):
    hostile = "<img src=x onerror=alert(1)> What is 2 plus 3?"
    session = last(ask(arena, "compare", hostile, ["sft", "ppo"], SETTINGS, new_session()))[0]
    vote(arena, "win", 0, session)
    assert arena.store.votes().iloc[-1]["prompt"] == hostile


def test_battle_pairs_are_fair():
    rng, names = random.Random(0), ["a", "b", "c"]
    counts = collections.Counter(tuple(pick_pair(names, rng)) for _ in range(6000))
    assert len(counts) == 6 and all(900 < n < 1100 for n in counts.values())
    assert pick_pair(["only"], rng) == []


def test_classroom_needs_the_code_and_limits_votes(arena):
    room = Classroom(join_code="c0de", password="pw", quota=1, min_seconds_between_votes=0)
    strict = type(arena)(arena.pool, arena.store, room, arena.run_dir, arena.cfg, arena.world)
    session = last(ask(strict, "compare", PROMPT, ["sft"], SETTINGS, new_session()))[0]
    assert "at least two" in vote(strict, "win", 0, session)[1]
    session = last(ask(strict, "compare", PROMPT, ["sft", "ppo"], SETTINGS, session))[0]
    assert "join code" in vote(strict, "win", 0, session)[1]
    from apps.handlers import join

    session, message = join(strict, "wrong", session)
    assert not session.joined and "not right" in message
    session, _ = join(strict, "c0de", session)
    session, message = vote(strict, "win", 0, session)
    assert message.startswith("Vote #")
    session = last(ask(strict, "compare", PROMPT, ["sft", "base"], SETTINGS, session))[0]
    assert "1 votes" in vote(strict, "win", 0, session)[1]  # quota reached
    assert "password" in board.export(strict, "", strict.store.path.parent)[1]
    assert "password" in retrain.start(strict, "nope", 0)


def test_simulated_votes_move_the_leaderboard_towards_gold(arena, tmp_path):
    ids = retrain.simulate_votes(arena, 30, seed=1)
    assert len(ids) == 30 and len(set(ids)) == 30
    _, _, table, message = board.leaderboard(arena)
    assert set(table["model"]) == {"base", "sft", "ppo"} and "votes" in message
    assert (table["lower"] <= table["rating"]).all() and (table["rating"] <= table["upper"]).all()
    # The simulated class follows the gold judge: the model gold rates worst (base) comes last.
    assert table.iloc[-1]["model"] == table.sort_values("gold_mean").iloc[0]["model"] == "base"


def test_export_reads_back_as_preferences(arena, tmp_path):
    files, message = board.export(arena, "", tmp_path)
    assert files and "Exported" in message
    pairs = load_preferences(files[0])
    assert len(pairs) > 0 and set(pairs.column_names) >= {"prompt", "chosen", "rejected"}


def test_agreement_and_dashboard(arena):
    table = board.agreement(arena)
    row = table.set_index("measure").loc["reward model agrees with votes"]
    assert 0.5 < row["value"] <= 1 and row["n"] > 0  # the RM mostly agrees with gold-like votes
    figure = board.dashboard(arena, "ppo")
    assert len(figure.data) >= 3


def test_retrain_on_votes_adds_the_new_models(arena):
    retrain.simulate_votes(arena, 24, seed=2)
    message = retrain.start(arena, "", 2)
    assert "Retraining on" in message and "already running" in retrain.start(arena, "", 2)
    assert arena.job.done.wait(timeout=900), "retraining did not finish"
    progress, table = retrain.status(arena)
    assert arena.job.error == "" and "done" in progress
    assert {"feedback/accuracy_before", "feedback/accuracy_after"} <= set(table["metric"])
    assert "ppo-round-001" in arena.pool.available
    assert arena.pool.reward_source.endswith("round-001/reward/model")
    answer = arena.pool.answer("ppo-round-001", PROMPT, DecodingConfig(16, 0.7, 1.0, 0))
    assert answer.text
