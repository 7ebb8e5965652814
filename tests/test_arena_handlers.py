"""The arena's handlers, called as plain functions on the small pipeline run (no browser)."""

from __future__ import annotations

import collections
import copy
import math
import random
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from apps import board, events, retrain
from apps.guard import Classroom, Student
from apps.handlers import (
    ALREADY_VOTED,
    ANSWERING,
    BATTLE_DRAWS,
    GREEDY_BATTLE,
    MAX_COMPARE,
    MAX_SEED,
    NEAR_GREEDY_BATTLE,
    REDRAWING,
    Arena,
    ask,
    compare_choices,
    format_stats,
    new_session,
    pick_models,
    pick_pair,
    vote,
)
from apps.loading import load_arena
from apps.votes import Vote, VoteStore, to_preferences
from lab.config import LabConfig
from lab.data import load_preferences
from lab.generation import DecodingConfig, generate
from lab.reward_model import score
from lab.world import default_world
from tests.conftest import untrained_pool

SETTINGS = (0.7, 1.0, 24, 1234)  # temperature, top-p, max tokens, seed
PROMPT = "What is 2 plus 3?"
ME = Student("anon-tester")  # who votes in these tests (open arena: no join needed)


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
    return untrained_pool(tmp_path_factory.mktemp("tiny_pool"))


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
    assert "Ask the models first" in vote(arena, "win", 0, session, ME)[1]
    session = last(ask(arena, "compare", PROMPT, ["sft", "ppo"], SETTINGS, session))[0]
    assert "Choose which" in vote(arena, "win", None, session, ME)[1]
    session, message = vote(arena, "win", 1, session, ME)
    assert message.startswith("Vote #") and arena.store.count() == before + 1
    assert vote(arena, "win", 1, session, ME)[1] == ALREADY_VOTED  # no double vote
    row = arena.store.votes().iloc[-1]
    assert row["models"] == ["sft", "ppo"] and row["winner"] == 1 and row["mode"] == "compare"
    assert row["responses"] == session.answers and row["decoding"]["seed"] == 1234


def test_battle_hides_names_until_the_vote(arena):
    session, names, texts, stats, _ = last(
        ask(arena, "battle", PROMPT, [], SETTINGS, new_session())
    )
    assert len(texts) == 2 and stats == [] and len(session.stats) == 2
    session, message = vote(arena, "tie", None, session, ME)
    assert all(f"**{name}**" in message for name in names)
    assert arena.store.votes().iloc[-1]["outcome"] == "tie"


def test_html_in_a_prompt_is_kept_as_text(arena):
    hostile = "<img src=x onerror=alert(1)> What is 2 plus 3?"
    session = last(ask(arena, "compare", hostile, ["sft", "ppo"], SETTINGS, new_session()))[0]
    vote(arena, "win", 0, session, ME)
    assert arena.store.votes().iloc[-1]["prompt"] == hostile


def test_battle_pairs_are_fair():
    rng, names = random.Random(0), ["a", "b", "c"]
    counts = collections.Counter(tuple(pick_pair(names, rng)) for _ in range(6000))
    assert len(counts) == 6 and all(900 < n < 1100 for n in counts.values())
    assert pick_pair(["only"], rng) == []
    tried = {frozenset("ab"), frozenset("bc")}
    assert all(set(pick_pair(names, rng, tried)) == {"a", "c"} for _ in range(50))
    everything = tried | {frozenset("ac")}  # nothing new left: any pair again
    assert len({tuple(pick_pair(names, rng, everything)) for _ in range(200)}) == 6


def test_classroom_needs_the_code_and_limits_votes(arena):
    room = Classroom(join_code="c0de", password="pw", quota=1, min_seconds_between_votes=0)
    strict = type(arena)(arena.pool, arena.store, room, arena.run_dir, arena.cfg, arena.world)
    session = last(ask(strict, "compare", PROMPT, ["sft"], SETTINGS, new_session()))[0]
    assert "at least two" in vote(strict, "win", 0, session, ME)[1]
    session = last(ask(strict, "compare", PROMPT, ["sft", "ppo"], SETTINGS, session))[0]
    assert "join code" in vote(strict, "win", 0, session, ME)[1]
    from apps.students import join

    student, message = join(strict, "wrong", None)  # a new student: ME voted in this store
    assert not student.joined and "not right" in message
    student, _ = join(strict, "c0de", student)
    session, message = vote(strict, "win", 0, session, student)
    assert message.startswith("Vote #")
    session = last(ask(strict, "compare", PROMPT, ["sft", "base"], SETTINGS, session))[0]
    assert "1 votes" in vote(strict, "win", 0, session, student)[1]  # quota reached
    assert "password" in board.export(strict, "", strict.store.path.parent)[1]
    assert "password" in retrain.start(strict, "nope", 0)


def test_simulated_votes_move_the_leaderboard_towards_gold(arena, tmp_path):
    # Enough for ratings even if many are "both bad" (which are not rated).
    ids = retrain.simulate_votes(arena, 40, seed=1)
    assert len(ids) == 40 and len(set(ids)) == 40
    _, _, table, message = board.leaderboard(arena)
    assert set(table["model"]) == {"base", "sft", "ppo"} and "votes" in message
    # Bounds are text: whole Elo points, or "−∞" / "∞" for a model that only lost or only won.
    lower, upper = (table[s].str.replace("−", "-").astype(float) for s in ("lower", "upper"))
    assert (lower <= table["rating"]).all() and (table["rating"] <= upper).all()
    # The simulated class follows the gold judge: the model gold rates worst (base) comes last.
    assert table.iloc[-1]["model"] == table.sort_values("gold_mean").iloc[0]["model"] == "base"


def test_export_reads_back_as_preferences(arena, tmp_path):
    files, message = board.export(arena, "", tmp_path)
    assert files and "Exported" in message
    pairs = load_preferences(files[0])
    assert len(pairs) > 0 and set(pairs.column_names) >= {"prompt", "chosen", "rejected"}
    # The download is a copy outside the exports folder (which the server never serves), and
    # a second export in the same second gets a folder of its own.
    assert tmp_path not in Path(files[0]).parents
    again, _ = board.export(arena, "", tmp_path)
    kept = sorted(tmp_path.glob("export-*/preferences.jsonl"))
    assert len(kept) == 2 and Path(again[0]).read_text() == kept[0].read_text()


def test_exports_in_the_same_second_get_folders_of_their_own(tmp_path):
    first, second = (board.new_folder(tmp_path / "exports", "export-1") for _ in range(2))
    assert (first.name, second.name) == ("export-1", "export-1-2") and second.is_dir()


def test_agreement_and_dashboard(arena):
    table = board.agreement(arena)
    row = table.set_index("measure").loc[board.RM_AGREES_NEW]  # the run's RM saw no votes
    assert 0.5 < row["value"] <= 1 and row["n"] > 0  # the RM mostly agrees with gold-like votes
    assert board.RM_AGREES_SEEN not in set(table["measure"])
    # Each battle samples fresh answers: the repeat measure says so, and claims no annotators.
    measures = set(table["measure"])
    assert board.REPEAT_AGREEMENT in measures and "re-sampled" in board.REPEAT_AGREEMENT
    assert not any(m.startswith("annotators agree") for m in measures)
    figure = board.dashboard(arena, "ppo")
    assert len(figure.data) >= 3


def test_agreement_keeps_the_votes_a_reward_model_trained_on_apart():
    rows = board.agreement_rows(
        [2.0, 0.0, 1.0, 3.0], [1.0, 1.0, 0.0, 0.0], [True, False, True, False]
    )
    assert rows == [
        {"measure": board.RM_AGREES_NEW, "value": 0.5, "n": 2},
        {"measure": board.RM_AGREES_SEEN, "value": 1.0, "n": 2},
    ]
    assert [row["n"] for row in board.agreement_rows([1.0], [0.0], [False])] == [1]


class CountingLock:
    """A lock that counts how often it was taken (`holds`)."""

    def __init__(self):
        self.lock, self.holds = threading.Lock(), 0

    def __enter__(self):
        self.lock.acquire()
        self.holds += 1

    def __exit__(self, *exc):
        self.lock.release()

    def locked(self) -> bool:
        return self.lock.locked()


def test_agreement_scores_a_batch_per_hold_of_the_lock_and_refreshes_share_it(
    tiny_arena, tmp_path, monkeypatch
):
    """Any student's "Refresh agreement" scores every vote pair: it takes the pool's lock one
    batch at a time (an answer's stats need it too), and refreshes sent at once share one run."""
    for i in range(40):  # 40 pairs: 80 answers to score, three batches
        tiny_arena.store.add(
            Vote(f"anon-{i}", "battle", f"What is {i} plus 1?", ("sft", "ppo"),
                 (f"It is {i + 1}.", "No idea."), "win", 0)
        )  # fmt: skip
    monkeypatch.setattr(tiny_arena.pool, "rm", object())  # `score` below stands in for it
    monkeypatch.setattr(tiny_arena.pool, "reward_source", str(tmp_path / "reward" / "model"))
    monkeypatch.setattr(tiny_arena.pool, "lock", CountingLock())
    calls = []

    def fake_score(rm, tokenizer, prompts, responses):
        assert tiny_arena.pool.lock.locked()
        calls.append((tiny_arena.pool.lock.holds, len(responses)))
        time.sleep(0.05)  # long enough for the other refreshes to arrive meanwhile
        return [1.0 if r.startswith("It is") else 0.0 for r in responses]

    monkeypatch.setattr("apps.pool.score", fake_score)
    monkeypatch.setattr(board, "score", fake_score, raising=False)  # where it was called from
    start = threading.Barrier(8)

    def refresh(_):
        start.wait()
        return board.agreement(tiny_arena)

    with ThreadPoolExecutor(8) as pool:
        tables = list(pool.map(refresh, range(8)))
    assert all(table is tables[0] for table in tables)  # one computation, shared
    assert sum(n for _, n in calls) == 80 and max(n for _, n in calls) <= 32
    assert len({hold for hold, _ in calls}) == len(calls)  # the lock let go between batches
    assert tables[0].set_index("measure").loc[board.RM_AGREES_NEW, "value"] == 1.0


def test_thirty_pages_polling_after_a_vote_share_one_computation(tiny_arena):
    runs = []

    def compute():
        runs.append(1)
        time.sleep(0.2)  # a leaderboard of many votes takes a while
        return object()

    start = threading.Barrier(30)

    def poll(_):
        start.wait()
        return board.once_per_vote(tiny_arena, "slow", compute)

    with ThreadPoolExecutor(30) as pool:
        results = list(pool.map(poll, range(30)))
    assert len(runs) == 1 and all(r is results[0] for r in results)
    tiny_arena.store.add(Vote("anon-1", "battle", PROMPT, ("sft", "ppo"), ("a", "b"), "tie", None))
    assert board.once_per_vote(tiny_arena, "slow", compute) is not results[0] and len(runs) == 2


def test_retrain_on_votes_adds_the_new_models(arena):
    retrain.simulate_votes(arena, 24, seed=2)
    message = retrain.start(arena, "", 2)
    assert "Retraining on" in message and "already running" in retrain.start(arena, "", 2)
    assert arena.job.done.wait(timeout=900), "retraining did not finish"
    progress, panel, figure, table = retrain.status(arena)
    assert arena.job.error == "" and "done" in progress
    assert retrain.status(arena)[2] is figure  # built once: every open page polls every 2 s
    assert {"feedback/accuracy_before", "feedback/accuracy_after"} <= set(table["metric"])
    assert "agreement with the class (held-out votes)" in set(panel["measure"])
    length = panel.set_index("measure").loc["policy: answer length (tokens)"]  # 8 answers a prompt
    assert float(length["before"]) > 0 and length["after"].count("[") == 1
    assert figure is not None and {t.name for t in figure.data} == {"before", "after"}
    assert "ppo-round-001" in arena.pool.available
    assert "ppo-round-001" in compare_choices(arena, ["sft"])[0]  # Compare's list, live
    assert arena.pool.reward_source.endswith("round-001/reward/model")
    measures = board.compute_agreement(arena).set_index("measure")  # the new RM trained on all
    assert measures.loc[board.RM_AGREES_SEEN, "n"] == len(to_preferences(arena.store.votes()))
    answer = arena.pool.answer("ppo-round-001", PROMPT, DecodingConfig(16, 0.7, 1.0, 0))
    assert answer.text


# ---------------------------------------------------------------- on the two tiny models (fast)

TINY_SETTINGS = (0.7, 1.0, 6, 1234)


@pytest.fixture
def tiny_arena(tiny_pool, tmp_path):
    """The two tiny models with an empty vote store; open classroom, no rate limit."""
    store = VoteStore(tmp_path / "votes.sqlite")
    return Arena(tiny_pool, store, Classroom(min_seconds_between_votes=0), rng=random.Random(0))


NAN, INF = math.nan, math.inf
BAD_INPUT = [
    ("", TINY_SETTINGS, "type a prompt"),
    ("x" * 5000, TINY_SETTINGS, "limit"),
    ("\x00\x01binary", TINY_SETTINGS, "binary"),
    (PROMPT + " \ud800", TINY_SETTINGS, "broken character"),  # crashed the tokenizer
    (None, TINY_SETTINGS, "must be text"),
    (123, TINY_SETTINGS, "must be text"),
    (["a list"], TINY_SETTINGS, "must be text"),
    (PROMPT, (9.0, 1.0, 6, 0), "Temperature"),
    (PROMPT, (NAN, 1.0, 6, 0), "Temperature"),
    (PROMPT, (INF, 1.0, 6, 0), "Temperature"),
    (PROMPT, (1e-300, 1.0, 6, 0), "Temperature"),  # sampling at it fails, and hung the pool
    (PROMPT, (10**400, 1.0, 6, 0), "Temperature"),  # too big for a float
    (PROMPT, (0.7, NAN, 6, 0), "Top-p"),
    (PROMPT, (0.7, 0.0, 6, 0), "Top-p"),
    (PROMPT, (0.7, -INF, 6, 0), "Top-p"),
    (PROMPT, (0.7, 1.0, 10**6, 0), "Max tokens"),
    (PROMPT, (0.7, 1.0, INF, 0), "Max tokens"),
    (PROMPT, (0.7, 1.0, NAN, 0), "Max tokens"),
    (PROMPT, (0.7, 1.0, 6.5, 0), "Max tokens"),
    (PROMPT, (0.7, 1.0, 0, 0), "Max tokens"),
    (PROMPT, (0.7, 1.0, 6, 2**70), "seed"),  # torch.manual_seed overflowed
    (PROMPT, (0.7, 1.0, 6, -1), "seed"),
    (PROMPT, (0.7, 1.0, 6, 1.5), "seed"),
    (PROMPT, (0.7, 1.0, 6, NAN), "seed"),
    (PROMPT, (0.7, 1.0, 6, -(10**400)), "seed"),
    (PROMPT, (0.7, "lots", 6, 0), "numbers"),
    (PROMPT, (0.7, 1.0, None, 0), "numbers"),
    (PROMPT, (0.7, 1.0, 6, True), "numbers"),
    (PROMPT, (0.7, 1.0, 6, [1]), "numbers"),
    (PROMPT, (0.7, 1.0, 6), "numbers"),
]


@pytest.mark.parametrize("mode", ["compare", "battle"])
def test_bad_input_gets_one_line_and_changes_nothing(tiny_arena, mode):
    session = last(ask(tiny_arena, mode, PROMPT, ["sft", "ppo"], TINY_SETTINGS, new_session()))[0]
    for prompt, settings, words in BAD_INPUT:
        steps = list(ask(tiny_arena, mode, prompt, ["sft", "ppo"], settings, session))
        assert len(steps) == 1, (prompt, settings)
        kept, names, texts, _, message = steps[0]
        assert words in message and "\n" not in message, (prompt, settings, message)
        assert kept is session and names == texts == []  # the answers on screen stay votable
    assert tiny_arena.store.count() == 0
    assert vote(tiny_arena, "tie", None, session, ME)[1].startswith("Vote #")


def test_a_model_failing_gives_one_line_not_a_traceback(tiny_arena, monkeypatch):
    def broken(names, prompt, decoding):
        yield 0, "partial"
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")

    monkeypatch.setattr(tiny_arena.pool, "stream_many", broken)
    session = new_session()
    *_, (kept, names, texts, _, message) = ask(
        tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, session
    )
    assert kept is session and names == texts == [] and "could not answer" in message
    assert "Ask the models first" in vote(tiny_arena, "tie", None, kept, ME)[1]


def test_edge_settings_that_are_fine_are_accepted(tiny_arena):
    for settings in [(0, 1.0, 4.0, MAX_SEED), ("0.7", "0.5", "4", "7"), (2, 1e-9, 1, 0)]:
        session, names, texts, _, message = last(
            ask(tiny_arena, "compare", PROMPT, ["sft"], settings, new_session())
        )
        assert names == ["sft"] and len(texts) == 1 and "?" in message, settings


def test_compare_names_from_a_client_are_cleaned(tiny_arena):
    for names in [None, "sft", [{"not": "a name"}], ["nope"], 7]:
        steps = list(ask(tiny_arena, "compare", PROMPT, names, TINY_SETTINGS, new_session()))
        assert len(steps) == 1 and "Pick at least one" in steps[0][-1]
    session = last(
        ask(tiny_arena, "compare", PROMPT, ["sft", "sft", "ppo"], TINY_SETTINGS, new_session())
    )[0]
    assert session.models == ["sft", "ppo"]  # a repeated name would make an invalid vote
    *_, names, _, _, message = last(
        ask(tiny_arena, "compare", PROMPT, ["sft", "<b>gone</b>", 3], TINY_SETTINGS, new_session())
    )
    assert names == ["sft"] and "2 of the models asked for are not in this arena" in message
    assert "gone" not in message  # what a client sent is not echoed
    assert vote(tiny_arena, "win", 1, session, ME)[1].startswith("Vote #")


def test_pick_models_says_what_it_left_out():
    available = [f"m{i}" for i in range(MAX_COMPARE + 2)]
    assert pick_models(["m1", "m0", "m1"], available) == (["m1", "m0"], "")
    names, note = pick_models([*available, "x"], available)
    assert names == available[:MAX_COMPARE]
    assert note.startswith("1 of the models asked for is not") and f"first {MAX_COMPARE}" in note
    assert pick_models("m1", available) == ([], "")


def test_bad_votes_get_a_message_and_store_nothing(tiny_arena):
    session = last(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, new_session()))[0]
    for outcome, winner, words in [
        ("draw", None, "A vote is one of"),
        (None, None, "A vote is one of"),
        ("win", None, "Choose which"),
        ("win", 2, "Choose which"),
        ("win", -1, "Choose which"),
        ("win", True, "Choose which"),
        ("win", "0", "Choose which"),
    ]:
        kept, message = vote(tiny_arena, outcome, winner, session, ME)
        assert words in message and kept is session, (outcome, winner)
    assert tiny_arena.store.count() == 0


def cast_at_once(arena: Arena, ballots: list[tuple]) -> list[tuple]:
    """Send (outcome, winner, session) votes of one student from threads released together;
    their results."""
    start = threading.Barrier(len(ballots))

    def cast(ballot):
        outcome, winner, session = ballot
        start.wait()
        return vote(arena, outcome, winner, copy.deepcopy(session), ME)  # Gradio: a copy each

    with ThreadPoolExecutor(len(ballots)) as pool:
        return list(pool.map(cast, ballots))


def test_concurrent_votes_on_one_battle_store_exactly_one(tiny_arena):
    for round_ in range(3):
        session = last(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, new_session()))[0]
        ballots = [("win", 0, session), ("win", 1, session), ("tie", None, session)]
        results = cast_at_once(tiny_arena, [*ballots, ("both_bad", None, session)])
        messages = [message for _, message in results]
        assert sum(m.startswith("Vote #") for m in messages) == 1, messages
        assert messages.count(ALREADY_VOTED) == 3
        assert all(state.voted for state, _ in results)
        assert tiny_arena.store.count() == round_ + 1
        # A copy of the session from before the vote cannot vote later either.
        assert vote(tiny_arena, "tie", None, session, ME)[1] == ALREADY_VOTED
    assert tiny_arena.store.count() == 3


@pytest.mark.parametrize(
    ("room", "words"),
    [
        (Classroom(quota=1, min_seconds_between_votes=0), "1 votes"),
        (Classroom(min_seconds_between_votes=60), "Slow down"),
    ],
)
def test_concurrent_votes_cannot_get_round_the_quota_or_rate_limit(tiny_arena, room, words):
    tiny_arena.classroom = room
    first = last(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, new_session()))[0]
    sessions = [first] + [
        last(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, first))[0] for _ in range(3)
    ]  # four battles of one student
    results = cast_at_once(tiny_arena, [("tie", None, s) for s in sessions])
    messages = [message for _, message in results]
    assert sum(m.startswith("Vote #") for m in messages) == 1, messages
    assert sum(words in m for m in messages) == 3
    assert tiny_arena.store.count() == 1


def test_votes_table_needs_the_password_in_classroom_mode(tiny_arena):
    session = last(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, new_session()))[0]
    vote(tiny_arena, "win", 0, session, ME)
    table, message = board.votes_table(tiny_arena)  # open arena: no password needed
    assert table["prompt"].tolist() == [PROMPT] and message == "1 votes."
    tiny_arena.classroom = Classroom(join_code="c0de", password="pw")
    for wrong in ["", "nope", None]:
        table, message = board.votes_table(tiny_arena, wrong)
        assert table.empty and "password" in message
        assert table.columns.tolist() == board.VOTE_COLUMNS
    table, _ = board.votes_table(tiny_arena, "pw")
    assert table["prompt"].tolist() == [PROMPT]


# ---------------------------------------------------------------- leaderboard from vote tables


def vote_rows(*rows):
    """(mode, models, outcome, winner) tuples -> a votes table as the store returns it."""
    return pd.DataFrame(rows, columns=["mode", "models", "outcome", "winner"])


def blind(n_a_beats_b, n_b_beats_c, n_c_beats_a=0, mode="battle"):
    """Blind votes: A beats B, B beats C, C beats A, that many times each."""
    return (
        [(mode, ["A", "B"], "win", 0)] * n_a_beats_b
        + [(mode, ["B", "C"], "win", 0)] * n_b_beats_c
        + [(mode, ["C", "A"], "win", 0)] * n_c_beats_a
    )


def test_leaderboard_rates_blind_battles_only():
    rated = vote_rows(*blind(8, 8, 4), *blind(1, 1, 0, mode="simulated"))  # 22 battles
    extra = vote_rows(
        ("compare", ["C", "A", "B", "D", "E"], "win", 0),  # would make C a winner over D, E
        ("compare", ["A", "B", "C", "D", "E"], "both_bad", None),  # was ten ties
        ("battle", ["C", "B"], "both_bad", None),
    )
    ratings, _, table, message = board.build_leaderboard(rated)
    _, _, with_extra, message_extra = board.build_leaderboard(pd.concat([rated, extra]))
    pd.testing.assert_frame_equal(with_extra, table)  # Compare and both-bad change nothing
    assert table.columns.tolist() == [
        "rank", "model", "rating", "lower", "upper", "battles", "wins", "ties", "losses",
    ]  # fmt: skip
    assert table["model"].tolist() == ["A", "B", "C"] and table["rank"].iloc[0] == 1
    assert table["rating"].dtype == "int64"  # whole Elo points; the bounds as text ("∞" if open)
    assert table[["lower", "upper"]].map(str.isdigit).all().all()
    assert table["battles"].tolist() == [9 + 4, 9 + 9, 9 + 4] and len(ratings.data) == 1
    assert message == "22 votes: 22 blind battles, 3 of 3 model pairs met."
    assert message_extra == (
        "25 votes: 22 blind battles, 3 of 3 model pairs met; 1 'both bad' (not rated); "
        "2 Compare votes (names shown, not rated)."
    )


def test_leaderboard_says_when_there_are_not_enough_votes():
    ratings, _, table, message = board.build_leaderboard(vote_rows(*blind(5, 5, 0)))
    assert "10 blind battles" in message and "Not enough votes yet" in message
    assert not ratings.data and table.columns.tolist()[:2] == ["model", "battles"]
    assert table.set_index("model")["battles"].to_dict() == {"B": 10, "A": 5, "C": 5}
    # Enough battles, but D played only 2: D is left out and named.
    _, _, table, message = board.build_leaderboard(
        vote_rows(*blind(8, 8, 4), *[("battle", ["D", "A"], "tie", None)] * 2)
    )
    assert "D" not in set(table["model"]) and "Not enough votes yet for D (2)" in message
    assert "4 of 6 model pairs met" in message
    assert board.build_leaderboard(vote_rows())[-1].startswith("No votes yet")
    only_bad = board.build_leaderboard(vote_rows(("battle", ["A", "B"], "both_bad", None)))
    assert only_bad[2].empty and "0 blind battles" in only_bad[3]


def test_leaderboard_leaves_open_the_bound_of_a_model_that_only_won_or_only_lost():
    figure, matrix, table, message = board.build_leaderboard(
        vote_rows(*[("battle", ["A", "B"], "win", 0)] * 20)
    )
    rows = table.set_index("model")
    assert rows.loc["A", "upper"] == "∞" and rows.loc["B", "lower"] == "−∞"  # were 1559, 441
    assert rows.loc["A", "note"].startswith("only wins so far: no upper bound")
    assert rows.loc["B", "note"].startswith("only losses so far: no lower bound")
    assert "inf" not in table.to_string() and "group" not in table  # one group: no column
    # The plot: the open bars run past the axis, and the hover says ∞.
    points, top = figure.data[0], figure.layout.yaxis.range[1]
    assert points.y[0] + points.error_y.array[0] > top and "∞" in points.customdata[0].tolist()
    assert "inf" not in str(points.customdata.tolist()) and figure.to_json()
    # The win matrix says that a tie counts as half a win.
    assert "tie counts as ½" in matrix.layout.title.text
    assert "tie" in matrix.data[0].colorbar.title.text


def test_leaderboard_names_groups_never_compared_and_ranks_within_them():
    apart = [("battle", ["A", "B"], "win", 0)] * 15 + [("battle", ["A", "B"], "win", 1)] * 5
    apart += [("battle", ["C", "D"], "win", 0)] * 15 + [("battle", ["C", "D"], "win", 1)] * 5
    figure, _, table, message = board.build_leaderboard(vote_rows(*apart))
    assert table[["group", "rank", "model"]].values.tolist() == [
        [1, 1, "A"], [1, 2, "B"], [2, 1, "C"], [2, 2, "D"],
    ]  # fmt: skip  # was ranks 1, 1, 3, 3 across both groups
    assert "fall into 2 groups never compared with each other" in message
    assert "group 1: A, B; group 2: C, D" in message
    assert list(figure.data[0].x) == ["A (group 1)", "B (group 1)", "C (group 2)", "D (group 2)"]


def test_style_leaderboard_leaves_open_bounds_and_gives_every_weight_in_elo():
    unbeaten = pd.DataFrame(
        [("battle", ["A", "B"], ["short", "a longer answer"], "win", 0)] * 20,
        columns=["mode", "models", "responses", "outcome", "winner"],
    )
    table, _, _ = board.build_style_leaderboard(unbeaten)
    rows = table.set_index("model")
    assert rows.loc["A", "upper"] == "∞" and rows.loc["B", "lower"] == "−∞"  # were 1393, 607
    assert rows.loc["A", "note"].startswith("only wins so far")
    # Every weight's interval in Elo too, not only beta (whose own bounds say "beta").
    _, raw = board.compute_style_ranking(board.compute_style_battles(length_votes()), rounds=20)
    shown = board.format_coefficients(raw).set_index("feature").loc["length"]
    row = raw.set_index("feature").loc["length"]
    assert shown["Elo lower"] == round(row["lower"] * board.ELO_PER_NAT)
    assert shown["Elo upper"] == round(row["upper"] * board.ELO_PER_NAT)
    assert shown["beta lower"] == round(row["lower"], 2)


def length_votes():
    """60 blind votes of A against B; the longer answer (mostly B's) wins 9 times in 10."""
    rows = []
    for i in range(60):
        b_long, longer_wins = i % 4 != 0, i % 10 != 0
        responses = ["short answer", "a much longer answer " * 5]
        responses = responses if b_long else responses[::-1]
        rows.append(("battle", ["A", "B"], responses, "win", 1 if b_long == longer_wins else 0))
    return pd.DataFrame(rows, columns=["mode", "models", "responses", "outcome", "winner"])


def test_leaderboard_is_cached_per_vote_count(tiny_arena):
    assert board.leaderboard(tiny_arena)[-1].startswith("No votes yet")
    session = last(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, new_session()))[0]
    vote(tiny_arena, "win", 0, session, ME)
    first = board.leaderboard(tiny_arena)
    assert "1 votes: 1 blind battles" in first[-1] and board.leaderboard(tiny_arena) is first


def test_a_model_that_fails_mid_answer_raises_and_frees_the_pool(tiny_pool, monkeypatch):
    """An error inside the generation thread reaches the caller; the next request still runs."""
    model = tiny_pool.models["ppo"].model

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(model, "forward", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        tiny_pool.answer("ppo", "What is 2 plus 3?", DecodingConfig(8, 0.7, 1.0, 0))
    monkeypatch.undo()
    assert not tiny_pool.lock.locked()
    assert tiny_pool.answer("ppo", "What is 2 plus 3?", DecodingConfig(8, 0.7, 1.0, 0)) is not None


def test_a_vote_while_new_answers_stream_in_is_refused_and_stores_nothing(tiny_arena):
    for mode, names in (("battle", []), ("compare", ["sft", "ppo"])):
        before = tiny_arena.store.count()
        old = last(ask(tiny_arena, mode, PROMPT, names, TINY_SETTINGS, new_session()))[0]
        stream = ask(tiny_arena, mode, "What is 3 plus 4?", names, TINY_SETTINGS, old)
        streaming = next(stream)[0]  # the session the page holds while the new answers grow
        assert vote(tiny_arena, "win", 0, streaming, ME)[1] == ANSWERING  # not a vote on `old`
        assert tiny_arena.store.count() == before
        done = last(stream)[0]
        assert vote(tiny_arena, "win", 0, done, ME)[1].startswith("Vote #")
        assert tiny_arena.store.votes().iloc[-1]["prompt"] == "What is 3 plus 4?"


def test_a_battle_draws_its_own_seed_so_compare_cannot_unmask_it(tiny_arena):
    sessions = [
        last(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, new_session()))[0]
        for _ in range(3)
    ]
    seeds = {session.decoding["seed"] for session in sessions}
    assert len(seeds) == 3 and TINY_SETTINGS[3] not in seeds
    greedy = (0, *TINY_SETTINGS[1:])  # a seed changes nothing there: refused, not unmaskable
    assert last(ask(tiny_arena, "battle", PROMPT, [], greedy, new_session()))[-1] == GREEDY_BATTLE
    # The session keeps the seed the answers were sampled with: the battle can be replayed.
    battle = sessions[-1]
    replay = (*TINY_SETTINGS[:3], battle.decoding["seed"])
    texts = last(ask(tiny_arena, "compare", PROMPT, battle.models, replay, new_session()))[2]
    assert texts == battle.answers


def test_near_greedy_battles_are_refused_as_greedy_ones_are(tiny_arena):
    """At a low temperature or top-p a battle's own seed hardly changes its answers, and Compare
    on the same prompt would show them under the models' names (see MIN_BATTLE_TEMPERATURE)."""
    for settings in [(0.05, 1.0, 6, 0), (0.45, 1.0, 6, 0), (0.7, 0.05, 6, 0), (1.0, 0.85, 6, 0)]:
        steps = list(ask(tiny_arena, "battle", PROMPT, [], settings, new_session()))
        assert len(steps) == 1 and steps[0][-1] == NEAR_GREEDY_BATTLE, settings
    assert "\n" not in NEAR_GREEDY_BATTLE and tiny_arena.store.count() == 0
    for settings in [(0.5, 0.9, 6, 0), TINY_SETTINGS]:
        assert last(ask(tiny_arena, "battle", PROMPT, [], settings, new_session()))[-1] == (
            "Which is better, A or B?"
        )
    texts = last(ask(tiny_arena, "compare", PROMPT, ["sft"], (0.05, 0.05, 6, 0), new_session()))[2]
    assert len(texts) == 1  # Compare shows names anyway: any sampling setting is fine there


def test_compare_clears_the_last_pick_of_the_best_answer(tiny_arena):
    state = last(ask(tiny_arena, "compare", PROMPT, ["sft", "ppo"], TINY_SETTINGS, new_session()))
    outputs = list(
        events.compare_event(tiny_arena, PROMPT, ["sft", "ppo"], *TINY_SETTINGS, state[0])
    )
    best = [out[-2] for out in outputs]  # (session, boxes..., stats..., best, message)
    assert best[0]["value"] is None and all("value" not in b for b in best[1:])


def test_two_retrains_at_once_start_one_round(tiny_arena, tmp_path, monkeypatch):
    tiny_arena.store.add(Vote("s1", "battle", PROMPT, ("sft", "ppo"), ("5.", "Six."), "win", 0))
    tiny_arena.cfg, tiny_arena.run_dir = LabConfig(), tmp_path
    started = []

    def slow_start(name, work):  # starting takes a moment: the window two clicks fell into
        time.sleep(0.05)
        started.append(name)
        return SimpleNamespace(running=True)

    monkeypatch.setattr(retrain, "start_job", slow_start)
    with ThreadPoolExecutor(4) as pool:
        messages = list(pool.map(lambda _: retrain.start(tiny_arena, "", 0), range(4)))
    assert len(started) == 1, messages
    assert sum(m.startswith("Retraining on") for m in messages) == 1
    assert sum("already running" in m for m in messages) == 3, messages


def test_compare_list_follows_the_pool_and_keeps_the_selection(tiny_arena):
    assert compare_choices(tiny_arena, ["ppo", "gone"]) == (["sft", "ppo"], ["ppo"])
    assert compare_choices(tiny_arena, None) == (["sft", "ppo"], ["sft", "ppo"])


def test_the_model_list_is_read_under_the_lock_a_new_model_is_added_under(tiny_pool):
    """`add` inserts under the pool's lock while every request reads the list: unlocked, a read
    during an insert fails ("dictionary changed size during iteration")."""

    class Table(dict):
        def items(self):
            assert tiny_pool.lock.locked(), "read without the pool's lock"
            return super().items()

    tiny_pool.models = Table(tiny_pool.models)
    try:
        assert tiny_pool.available == ["sft", "ppo"] and tiny_pool.unavailable == {}
    finally:
        tiny_pool.models = dict(tiny_pool.models)


def test_retrain_and_simulate_refuse_bad_numbers_in_one_line(tiny_arena):
    for n in (NAN, INF, "lots", 10**9, 0, 2.5):
        assert "Choose between" in retrain.simulate(tiny_arena, "", n)
        assert "PPO updates" in retrain.start(tiny_arena, "", n if n != 0 else -1)
    assert "group" in retrain.start(tiny_arena, "", 0, ["not", "text"]).lower()


def test_loading_names_a_missing_run_folder_and_a_corrupt_database(tmp_path):
    with pytest.raises(SystemExit, match="--run .*nowhere: no such folder"):
        load_arena(tmp_path / "nowhere", {}, tmp_path / "votes.sqlite")
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database" * 100)
    with pytest.raises(SystemExit, match="corrupt.sqlite: cannot be used as the vote database"):
        load_arena(tmp_path, {}, corrupt)  # before any model would load
    assert corrupt.read_bytes() == b"this is not a database" * 100  # left as it was
    fresh = tmp_path / "fresh.sqlite"
    with pytest.raises(SystemExit, match="no models: pass --run"):
        load_arena(tmp_path, {}, fresh)
    assert not list(tmp_path.glob("fresh.sqlite*"))  # no empty database left behind
    VoteStore(fresh)  # one that was there before stays, as it was
    before = fresh.read_bytes()
    with pytest.raises(SystemExit, match="no models"):
        load_arena(tmp_path, {}, fresh)
    assert fresh.read_bytes() == before


def test_a_taken_port_is_one_line_and_leaves_no_new_database(small_ppo_run, tmp_path):
    import socket

    import apps.arena

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["--run", str(small_ppo_run), "--db", str(tmp_path / "votes.sqlite")]
        args += ["--host", "127.0.0.1", "--port", str(port), "--no-browser"]
        with pytest.raises(SystemExit, match=f"cannot serve on 127.0.0.1:{port}: "):
            apps.arena.main(args)
    assert not list(tmp_path.glob("votes.sqlite*"))


# ---------------------------------------------------------------- on the small run: gold, page


def test_gold_after_the_vote_scores_both_answers_with_both_judges(arena):
    from apps.handlers import gold_reveal
    from apps.judges import judge_answers

    session = last(ask(arena, "battle", PROMPT, [], SETTINGS, new_session()))[0]
    judged = judge_answers(arena.pool, arena.world, PROMPT, session.answers)
    rewards = score(arena.pool.rm, arena.pool.rm_tokenizer, [PROMPT] * 2, session.answers)
    assert [j.reward for j in judged] == pytest.approx(rewards, abs=1e-5)
    assert session.rewards == pytest.approx(
        rewards, abs=1e-4
    )  # the scores shown, kept for the reveal
    kept = judge_answers(arena.pool, arena.world, PROMPT, session.answers, session.rewards)
    assert [(j.reward, j.gold) for j in kept] == [
        (r, j.gold) for r, j in zip(session.rewards, judged, strict=True)
    ]
    assert [j.gold for j in judged] == [arena.world.gold_score(PROMPT, a) for a in session.answers]
    lines, _ = gold_reveal(arena, session, session.models)
    assert all(
        line.startswith(stats) and "gold" in line
        for line, stats in zip(lines, session.stats, strict=True)
    )


def test_example_prompts_cover_every_task_kind_and_the_dashboard_every_logged_stage(arena):
    from apps.arena import example_prompts
    from apps.events import dashboard_event
    from lab.world.tasks import KINDS

    examples = example_prompts(arena)
    assert {arena.world.task(p).kind for p in examples} == set(KINDS), examples
    assert examples[: len(KINDS)] and len({arena.world.task(p).kind for p in examples[:5]}) == 5
    stages = board.dashboard_stages(arena.run_dir)
    assert stages[:4] == ["pretrain", "sft", "reward", "ppo"]
    for stage in stages:
        figure = board.dashboard(arena, stage)
        assert figure.data and all(len(trace.x) > 0 for trace in figure.data), stage
    choices, figure = dashboard_event(arena, None)
    assert choices["choices"] and figure.data  # opens on a drawn curve
    assert board.dashboard(arena, "no-such-stage").data == ()


def scripted_answers(monkeypatch, answers_per_draw: list[list[str]]) -> list[list[str]]:
    """Make the arena's models answer draw k with answers_per_draw[k]; returns the pairs asked."""
    asked = []

    def answer_all(arena, prompt, names, decoding):
        asked.append(list(names))
        texts = answers_per_draw[len(asked) - 1]
        yield [t[:3] for t in texts], [None, None]  # streaming: a part first
        yield texts, [None, None]

    monkeypatch.setattr("apps.handlers.answer_all", answer_all)
    return asked


def test_a_battle_of_two_identical_answers_asks_another_pair(tiny_arena, monkeypatch):
    asked = scripted_answers(
        monkeypatch, [["It is 5.", " It is 5. "], ["It is 5.", "Hi! It is 5."]]
    )
    steps = list(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, new_session()))
    assert len(asked) == 2 and any(step[-1] == REDRAWING for step in steps)
    session, names, texts, _, message = steps[-1]
    assert texts == ["It is 5.", "Hi! It is 5."] and session.answers == texts
    assert names == asked[-1] and message == "Which is better, A or B?"
    assert vote(tiny_arena, "win", 1, session, ME)[1].startswith("Vote #")
    stored = tiny_arena.store.votes().iloc[-1]
    assert list(stored["responses"]) == texts and list(stored["models"]) == names


def test_a_battle_keeps_identical_answers_after_its_last_draw(tiny_arena, monkeypatch):
    asked = scripted_answers(monkeypatch, [["Same.", "Same."]] * (BATTLE_DRAWS + 1))
    session, _, texts, _, _ = last(ask(tiny_arena, "battle", PROMPT, [], TINY_SETTINGS, None))
    assert len(asked) == BATTLE_DRAWS and texts == session.answers == ["Same.", "Same."]
    assert vote(tiny_arena, "tie", None, session, ME)[1].startswith("Vote #")  # still votable


def test_simulated_votes_take_the_battle_path_and_skip_identical_answers(arena, monkeypatch):
    # Last in the file: it adds one vote to the module's shared store.
    asked = scripted_answers(monkeypatch, [["It is 5.", "It is 5."], ["It is 5.", "It is 6."]])
    before = arena.store.count()
    retrain.simulate_votes(arena, 1, seed=5)
    stored = arena.store.votes().iloc[-1]
    assert len(asked) == 2 and arena.store.count() == before + 1
    assert list(stored["responses"]) == ["It is 5.", "It is 6."]
    assert list(stored["models"]) == asked[-1] and stored["mode"] == "simulated"


def test_the_retrain_tab_says_who_the_votes_are_about_and_what_they_show_alone(tmp_path):
    store = VoteStore(tmp_path / "votes.sqlite")
    base, polite, plain = "2 plus", "Sure! 2 plus 3 is 5.", "2 plus 3 is 5."
    for models, answers, winner, group in [
        (("ppo", "base"), (polite, base), 0, ""),
        (("base", "sft"), (base, plain), 1, ""),
        (("ppo", "sft"), (polite, plain), 1, ""),  # the less polite answer wins: taste alone
        (("grpo", "base"), ("Sure! 2 plus 3 is 6.", base), 0, "g"),
    ]:
        store.add(Vote("s1", "battle", "What is 2 plus 3?", models, answers, "win", winner,
                       group=group))  # fmt: skip
    store.add(Vote("s2", "battle", "What is 2 plus 3?", ("ppo", "sft"), (polite, plain), "tie"))
    arena = SimpleNamespace(store=store, world=default_world(), classroom=Classroom())

    message, table = retrain.vote_content(arena)
    assert table.set_index("model").loc["base"].tolist() == [3, 0.75, 0.0]
    assert table["model"].tolist() == ["base", "ppo", "sft", "grpo"]
    assert table.set_index("model").loc["sft", "won"] == 1.0
    assert message.startswith("Vote pairs: 4. `base` is in 75% of them and won 0% of those.")
    assert "nobody doubts" in message
    assert "only in polite phrases: 1 (the less polite answer chosen in 1)" in message

    message, table = retrain.vote_content(arena, "", " g ")
    assert message.startswith("Vote pairs: 1.") and "polite phrases: 0 (" in message
    assert "nobody doubts" in message  # grpo won its only pair
    even = SimpleNamespace(store=store, world=None, classroom=Classroom())
    store.add(Vote("s3", "battle", "What is 2 plus 3?", ("base", "ppo"), (base, polite), "win", 0))
    store.add(Vote("s3", "battle", "What is 2 plus 3?", ("base", "sft"), (base, plain), "win", 0))
    message = retrain.vote_content(even)[0]  # base now won 2 of its 5 pairs
    assert message.startswith("Vote pairs: 6. `base` is in 83%") and "doubts" not in message
    message = retrain.vote_content(arena, "", "h")[0]
    assert message == "No votes of that group yet. Groups with votes: g."
    for bad in ("../../x", "<img src=x>", "x" * 25):  # never echoed, never a folder name
        message = retrain.vote_content(arena, "", bad)[0]
        assert message.startswith("Group: a group's name is letters") and bad not in message
        assert retrain.start(arena, "", 0, bad).startswith("Group: a group's name")
        assert retrain.simulate(arena, "", 1, "", bad).startswith("Group: a group's name")
    without_world = SimpleNamespace(store=store, world=None, classroom=Classroom())
    assert "polite" not in retrain.vote_content(without_world)[0]
    locked = SimpleNamespace(store=store, world=default_world(), classroom=Classroom(password="pw"))
    assert "password" in retrain.vote_content(locked, "nope")[0]
    assert retrain.vote_content(locked, "nope")[1].empty
    empty = SimpleNamespace(
        store=VoteStore(tmp_path / "empty.sqlite"), world=None, classroom=Classroom()
    )
    assert retrain.vote_content(empty)[0].startswith("No preference pairs yet")


def test_simulate_on_a_run_that_cannot_vote_is_one_line_and_leaves_no_database(
    tiny_pool, tmp_path, monkeypatch
):
    from apps import simulate

    db = tmp_path / "new.sqlite"
    no_world = lambda run, models, path: Arena(tiny_pool, VoteStore(path))  # noqa: E731
    monkeypatch.setattr(simulate, "load_arena", no_world)
    with pytest.raises(SystemExit, match="^error: simulated annotators need the tiny world"):
        simulate.main(["--run", str(tmp_path), "--db", str(db), "--votes", "2"])
    assert not db.exists()  # it made the file, and no vote is in it
