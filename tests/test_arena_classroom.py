"""The classroom path as plain function calls: student ids, join codes, instructor controls,
gold after the vote, the page's helpers. The browser test drives the same path in Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import gradio as gr
import pandas as pd
import pytest

from apps import arena as app
from apps import board, events, guard, handlers, launch, students
from apps.guard import (
    ADDRESS_FREE_TRIES,
    FREE_TRIES,
    Classroom,
    Student,
    browser_secret,
    new_student,
    sign_id,
)
from apps.handlers import ask, new_session, vote
from apps.judges import Judged, disagreement, gold_lines
from apps.students import join, restore_student
from apps.votes import Vote
from lab.world import default_world
from tests import test_arena_handlers as base
from tests.test_arena_handlers import PROMPT, TINY_SETTINGS, last

tiny_pool, tiny_arena = base.tiny_pool, base.tiny_arena  # the two tiny models: fast fixtures

ROOM = {"join_code": "c0de", "password": "pw", "min_seconds_between_votes": 0}


def battle(arena, session=None):
    """A finished battle on `session`: the session holding its answers."""
    return last(ask(arena, "battle", PROMPT, [], TINY_SETTINGS, session))[0]


# ---------------------------------------------------------------- one id per student


def test_a_student_id_survives_a_reload_and_so_do_quota_and_join(tiny_arena):
    tiny_arena.classroom = Classroom(**ROOM, quota=1)
    student, token, box, _ = events.load_event(tiny_arena, None)  # first visit: a new id
    assert not student.joined and box["visible"] is True
    student, token, box, message = events.join_event(tiny_arena, "c0de", student)
    assert student.joined and box["visible"] is False and "Joined" in message
    assert vote(tiny_arena, "tie", None, battle(tiny_arena), student)[1].startswith("Vote #")

    reloaded, _, box, message = events.load_event(tiny_arena, token)  # the page is reloaded
    assert reloaded == student and box["visible"] is False and "remembers" in message
    assert "1 votes" in vote(tiny_arena, "tie", None, battle(tiny_arena), reloaded)[1]


def test_a_group_code_puts_the_students_votes_in_that_group_across_reloads(tiny_arena):
    tiny_arena.classroom = Classroom(**ROOM, group_codes={"warm": "w0002"})
    student, token, _, message = events.join_event(tiny_arena, "w0002", new_student())
    assert student.joined and student.group == "warm" and "group warm" in message
    assert vote(tiny_arena, "tie", None, battle(tiny_arena), student)[1].startswith("Vote #")
    assert restore_student(tiny_arena, token) == student
    plain, _ = join(tiny_arena, "c0de", new_student())  # the class's own code: no group
    assert plain.joined and plain.group == ""
    vote(tiny_arena, "tie", None, battle(tiny_arena), plain)
    assert list(tiny_arena.store.votes()["group"]) == ["warm", ""]
    tiny_arena.classroom.group_codes = {}  # a restart without that group: the token is stale
    assert not restore_student(tiny_arena, token).joined


def finish(stream) -> tuple:
    """Run a streaming event to its end as Gradio does: its session output is written to the
    page's session state at every step; the last step's outputs."""
    *_, final = stream
    return final


def test_streaming_answers_never_undo_a_join_a_reload_or_a_group_switch(tiny_arena):
    """Gradio reads a state once when an event starts and writes it at every step of a streaming
    one: Battle and Compare write the answers' state, never the student's, so a join, a reload's
    restore or a group switch that finishes while answers stream is what the next vote uses."""
    tiny_arena.classroom = Classroom(**ROOM, group_codes={"warm": "w0002"})
    student, *_ = events.load_event(tiny_arena, None)  # a new student, not joined
    battle_ = events.battle_event(tiny_arena, PROMPT, *TINY_SETTINGS, None)
    next(battle_)  # Battle! clicked: the answers start streaming
    student, _, box, _ = events.join_event(tiny_arena, "c0de", student)  # joins meanwhile
    session = finish(battle_)[0]
    assert box["visible"] is False and student.joined
    assert "Vote #" in events.battle_vote_event(tiny_arena, "win", 0, session, student)[-1]

    token = sign_id(tiny_arena.classroom, "anon-back", True, "warm")  # a returning student
    compare = events.compare_event(tiny_arena, PROMPT, ["sft", "ppo"], *TINY_SETTINGS, None)
    next(compare)  # clicked before the page's load restored the student
    student = events.load_event(tiny_arena, token)[0]
    session = finish(compare)[0]
    assert "Vote #" in events.compare_vote_event(tiny_arena, "win", "sft", session, student)[-1]
    battle_ = events.battle_event(tiny_arena, PROMPT, *TINY_SETTINGS, session)
    next(battle_)
    student = events.join_event(tiny_arena, "c0de", student)[0]  # leaves group warm mid-stream
    session = finish(battle_)[0]
    assert "Vote #" in events.battle_vote_event(tiny_arena, "tie", None, session, student)[-1]
    votes = tiny_arena.store.votes().iloc[1:]
    assert list(votes["annotator"]) == ["anon-back"] * 2 and list(votes["group"]) == ["warm", ""]


def test_only_the_load_the_join_and_a_first_vote_write_the_student(classroom_app):
    """The page's wiring: no streaming event writes the student's state; every vote reads it."""
    _, demo = classroom_app
    config = demo.get_config_file()
    (join_,) = [d for d in config["dependencies"] if d["api_name"] == "join"]
    states = {c["id"] for c in config["components"] if c["type"] == "state"}
    (student,) = set(join_["outputs"]) & states
    writers = [d for d in config["dependencies"] if student in d["outputs"]]
    streaming = [d["api_name"] for d in writers if d["types"]["generator"]]
    assert not streaming and {"battle", "compare"} & {d["api_name"] for d in writers} == set()
    votes = [
        d for d in config["dependencies"] if str(d["api_name"]).startswith(("battle_", "compare_"))
    ]
    assert len(votes) == 7 and all(student in d["inputs"] for d in votes)


def test_a_vote_from_a_page_without_a_student_gives_it_one(tiny_arena):
    """An API client never runs the page's load: its first vote makes its id, which it keeps."""
    session = battle(tiny_arena)
    new, first, *_, message = events.battle_vote_event(tiny_arena, "tie", None, session, None)
    assert message.startswith("Vote #") and isinstance(first, Student) and not first.joined
    assert tiny_arena.store.votes()["annotator"].iloc[-1] == first.annotator
    kept = events.compare_vote_event(tiny_arena, "tie", None, battle(tiny_arena), first)[1]
    assert kept == events.NO_CHANGE  # a page with a student keeps it


def test_groups_get_codes_that_survive_a_restart_and_need_a_classroom():
    args = launch.parse_args(["--classroom", "--join-code", "c", "--password", "p",
                           "--groups", "terse,warm"])  # fmt: skip
    first, again = launch.classroom_from_args(args), launch.classroom_from_args(args)
    assert set(first.group_codes) == {"terse", "warm"} and first.group_codes == again.group_codes
    assert len(set(first.group_codes.values()) | {first.join_code}) == 3
    with pytest.raises(ValueError, match="needs --classroom"):
        launch.classroom_from_args(launch.parse_args(["--groups", "terse"]))
    with pytest.raises(ValueError, match="not a group name"):
        launch.classroom_from_args(launch.parse_args(["--classroom", "--groups", "a b"]))


@pytest.mark.parametrize("name", ["before", "all", "All"])
def test_the_labels_a_round_reserves_are_not_group_names(name):
    """A round calls its start policy "before" (`lab.group_compare`) and the whole class "all"
    (`apps.retrain`): a group of either name would be mistaken for them."""
    args = ["--classroom", "--groups", f"warm,{name}"]
    with pytest.raises(ValueError, match="'before' and 'all' are reserved"):
        launch.classroom_from_args(launch.parse_args(args))
    assert "'before' and 'all' are reserved" in guard.check_group(name)
    with pytest.raises(ValueError, match="reserved"):
        Vote("anon-1", "battle", PROMPT, ("sft", "ppo"), ("a", "b"), "tie", None, {}, name)
    assert guard.check_group(f"{name}-2") is None and not guard.check_group("warm")


def test_a_quota_below_one_vote_is_refused_at_the_command_line(capsys):
    assert launch.parse_args(["--quota", "1"]).quota == 1
    for bad in ("0", "-3", "2.5", "x"):
        with pytest.raises(SystemExit):
            launch.parse_args(["--quota", bad])
        assert "a quota is a whole number of votes, 1 or more" in capsys.readouterr().err


def test_a_forged_or_stale_id_starts_a_new_unjoined_student(tiny_arena):
    tiny_arena.classroom = Classroom(**ROOM)
    stale = sign_id(Classroom(**ROOM), "anon-someone", True)  # another run's secret
    for token in [stale, "anon-someone|1|0000", {"annotator": "x"}, None]:
        student = restore_student(tiny_arena, token)
        assert student.annotator != "anon-someone" and not student.joined
        assert "join code" in vote(tiny_arena, "tie", None, battle(tiny_arena), student)[1]
    assert tiny_arena.store.count() == 0


def test_a_burst_of_wrong_codes_is_answered_only_a_few_times(tiny_arena):
    tiny_arena.classroom = Classroom(**ROOM)
    start = threading.Barrier(50)

    def guess(i):
        start.wait()
        return join(tiny_arena, f"guess-{i}", new_student(), client="10.0.0.7")

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(guess, range(50)))
    messages = [message for _, message in results]
    assert sum("not right" in m for m in messages) == FREE_TRIES  # tried and counted
    assert sum("Too many wrong codes" in m for m in messages) == 50 - FREE_TRIES
    assert not any(session.joined for session, _ in results)
    waiting, message = join(tiny_arena, "c0de", new_student(), client="10.0.0.7")
    assert not waiting.joined and "try again in 1 s" in message  # even the right code waits
    other, message = join(tiny_arena, "c0de", new_student(), client="10.0.0.8")
    assert other.joined  # another student's machine is not slowed down


def test_a_pages_wrong_codes_slow_that_page_and_its_address_only_past_a_looser_cap(tiny_arena):
    """Behind one address (a NAT, a tunnel) one student's typos make their own page wait, not
    the class; a guesser opening a new page per guess waits once the address's cap is past."""
    tiny_arena.classroom = Classroom(**ROOM)
    nat = "10.0.0.7"
    for typo in ("c0d", "code", "c0de0", "cod3"):  # one student, four typos
        join(tiny_arena, typo, None, client=nat, page="typist")
    assert "try again" in join(tiny_arena, "c0de", None, client=nat, page="typist")[1]
    for i, typo in enumerate(("c0d", "code", "c0de0", "cod3")):  # four students, one typo each
        assert "not right" in join(tiny_arena, typo, None, client=nat, page=f"page-{i}")[1]
    assert join(tiny_arena, "c0de", None, client=nat, page="fifth")[0].joined
    guesses = [
        join(tiny_arena, f"guess-{i}", None, client=nat, page=f"guess-{i}")[1]
        for i in range(ADDRESS_FREE_TRIES + 1)
    ]
    assert sum("not right" in m for m in guesses) == ADDRESS_FREE_TRIES
    assert "try again" in guesses[-1]
    assert join(tiny_arena, "c0de", None, client="10.0.0.8", page="elsewhere")[0].joined


# ---------------------------------------------------------------- instructor only

STUDENT_ENDPOINTS = {
    "join", "compare", "compare_win", "compare_tie", "compare_both_bad", "battle",
    "battle_win_a", "battle_win_b", "battle_tie", "battle_both_bad",
    "leaderboard", "style_leaderboard", "agreement", "dashboard",
}  # fmt: skip
INSTRUCTOR_CALLS = {  # each instructor endpoint's inputs, the password (wrong) first
    "export": ("nope",),
    "simulate": ("nope", 5, "", ""),
    "votes": ("nope",),
    "retrain": ("nope", 0, "", False),
    "groups": ("nope",),
    "vote_content": ("nope", ""),
}


@pytest.fixture
def classroom_app(tiny_arena):
    tiny_arena.classroom = Classroom(**ROOM)
    return tiny_arena, app.build_app(tiny_arena)


def test_joining_waits_for_the_page_to_restore_its_session(classroom_app):
    """A join that finished before the page's load would be overwritten by it (the student found
    unjoined, as a busy CI run showed): the code box and button start disabled, and only the
    step after the load enables them."""
    _, demo = classroom_app
    config = demo.get_config_file()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"]}
    code, button = ids["join-code"], ids["join-go"]
    for component in config["components"]:
        if component["id"] in (code, button):
            assert component["props"]["interactive"] is False
    enabling = [d for d in config["dependencies"] if {code, button} <= set(d["outputs"])]
    assert len(enabling) == 1 and enabling[0]["trigger_after"] is not None
    loads = [d for d in config["dependencies"] if d["id"] == enabling[0]["trigger_after"]]
    assert [target[1] for target in loads[0]["targets"]] == ["load"]
    assert events.join_ready() == tuple({"__type__": "update", "interactive": True} for _ in "ab")


def endpoints(demo) -> dict:
    """Every endpoint a client can call, by api_name."""
    return {
        fn.api_name: fn
        for fn in demo.fns.values()
        if fn.api_name and fn.api_visibility != "private"
    }


def test_every_endpoint_is_a_students_or_refuses_without_the_password(classroom_app):
    arena, demo = classroom_app
    found = endpoints(demo)
    instructor = set(found) - STUDENT_ENDPOINTS
    assert instructor >= set(INSTRUCTOR_CALLS), sorted(found)
    unknown = instructor - set(INSTRUCTOR_CALLS)
    assert not unknown, f"new endpoints: decide whether students may call {sorted(unknown)}"
    vote(arena, "tie", None, battle(arena), new_student())  # refused: not joined
    for name, inputs in INSTRUCTOR_CALLS.items():
        result = found[name].fn(*inputs)
        text = " ".join(map(str, result)) if isinstance(result, tuple) else str(result)
        assert "password" in text, (name, text)
    assert arena.job is None and arena.store.count() == 0  # nothing ran, nothing was cast


def test_wrong_instructor_passwords_make_that_client_wait(classroom_app, monkeypatch):
    """Through the API the password could be guessed at full speed: after FREE_TRIES wrong
    ones a client waits (the right password too), as for join codes; others do not."""
    from types import SimpleNamespace

    from gradio.helpers import special_args

    from apps import retrain

    arena, demo = classroom_app
    found = endpoints(demo)
    guesser, other, teacher = (
        SimpleNamespace(client=SimpleNamespace(host=h), session_hash=page)
        for h, page in (("10.9", "g"), ("10.7", "o"), ("10.9", "t"))
    )  # the teacher's page and the guesser's share an address (a proxy, the room's NAT)
    for name, inputs in INSTRUCTOR_CALLS.items():  # Gradio hands every endpoint its request
        assert guesser in special_args(found[name].fn, list(inputs), request=guesser)[0], name
    clock = iter(range(1000, 2000))  # a tenth of a second per call: the 1 s wait holds
    fake_time = SimpleNamespace(monotonic=lambda: next(clock) / 10)  # this module's clock only
    monkeypatch.setattr(students, "time", fake_time)
    assert events.instructor_event(arena, "pw", teacher)[-1] == "Instructor controls shown."
    for _ in range(FREE_TRIES):
        assert "Wrong instructor password" in retrain.vote_content(arena, "guess", "", guesser)[0]
    assert "Too many wrong passwords: try again in" in retrain.simulate(
        arena, "x", 5, "", "", guesser
    )
    assert "try again in" in events.instructor_event(arena, "pw", guesser)[-1]  # right, but waits
    assert events.instructor_event(arena, "pw", other)[-1] == "Instructor controls shown."
    assert events.instructor_event(arena, "pw", teacher)[-1] == "Instructor controls shown."
    assert "try again in" in events.instructor_event(arena, "no", teacher)[-1]  # a guess, as any
    new_page = SimpleNamespace(client=SimpleNamespace(host="10.9"), session_hash="n")
    assert "try again in" in events.instructor_event(arena, "pw", new_page)[-1]  # still waits
    assert events.instructor_event(arena, "pw")[-1] == "Instructor controls shown."  # no client
    for _ in range(FREE_TRIES + 2):  # nothing typed is not a guess (a page's own refresh)
        assert "password required" in board.votes_table(arena, "", other)[1]
    assert arena.job is None and arena.store.count() == 0


def test_instructor_controls_show_only_with_the_password(classroom_app):
    arena, demo = classroom_app
    hidden = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "data-instructor"]
    assert hidden and hidden[0].visible is False
    retrain_tab = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "retrain-tab"]
    assert retrain_tab[0].visible is False
    *shown, message = events.instructor_event(arena, "wrong")
    assert all(update == events.NO_CHANGE for update in shown) and "password" in message
    data, retrain, password, retrain_password, message = events.instructor_event(arena, "pw")
    assert data["visible"] is True and retrain["visible"] is True and password["value"] == "pw"
    assert retrain_password["value"] == "pw"  # Retrain works without typing it again


def test_an_open_arena_shows_everything(tiny_arena):
    demo = app.build_app(tiny_arena)  # no password: one person, nothing to hide
    retrain_tab = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "retrain-tab"]
    assert retrain_tab[0].visible is True


# ---------------------------------------------------------------- gold after the vote


def test_disagreement_flags_the_reward_models_mistake():
    # GRPO's "19 plus 3 is 17." scored +2.23, SFT's right answer +1.89: the RM prefers the wrong one.
    judged = [Judged(2.23, -1.0), Judged(1.89, 1.0)]
    warning = disagreement(["Model A (grpo)", "Model B (sft)"], judged)
    assert "prefers Model A (grpo)" in warning and "the gold judge Model B (sft)" in warning
    assert disagreement(["a", "b"], [Judged(2.0, 1.0), Judged(1.0, 0.0)]) == ""  # agree
    assert disagreement(["a", "b"], [Judged(2.0, 1.0), Judged(1.0, 1.0)]) == ""  # gold ties
    assert disagreement(["a", "b"], [Judged(None, 1.0), Judged(1.0, 0.0)]) == ""  # no RM
    assert gold_lines(["reward +1.00"], [Judged(1.0, 0.5)]) == ["reward +1.00 · **gold +0.50**"]
    assert gold_lines(["reward +1.00"], [Judged(1.0, None)]) == ["reward +1.00"]


def test_a_battle_vote_reveals_names_and_gold_scores(tiny_arena):
    tiny_arena.world = default_world()
    session, student = battle(tiny_arena), new_student()
    new, _, label_a, label_b, stats_a, stats_b, message = events.battle_vote_event(
        tiny_arena, "win", 0, session, student
    )
    assert new.voted and message.startswith("Vote #")
    assert label_a["label"] == f"Model A: {session.models[0]}"
    for line, answer in zip((stats_a, stats_b), session.answers, strict=True):
        assert f"gold {default_world().gold_score(PROMPT, answer):+.2f}" in line
    again = events.battle_vote_event(tiny_arena, "tie", None, session, student)  # same battle
    assert "already voted" in again[-1] and tiny_arena.store.count() == 1
    after = events.battle_vote_event(tiny_arena, "tie", None, again[0], student)  # its page, voted
    assert after[2:6] == (events.NO_CHANGE,) * 4 and "already voted" in after[-1]


def test_bad_input_leaves_the_answers_on_screen(tiny_arena):
    session = battle(tiny_arena)
    (step,) = events.battle_event(tiny_arena, "", *TINY_SETTINGS, session)
    assert step[0] is session and step[1:5] == (events.NO_CHANGE,) * 4 and "prompt" in step[-1]
    (step,) = events.compare_event(tiny_arena, PROMPT, ["sft"], 0.7, 1.0, 6, 2**70, session)
    assert all(u == events.NO_CHANGE for u in step[1:-1]) and "seed" in step[-1]


def test_a_vote_counts_only_on_the_tab_that_asked(tiny_arena):
    session, student = battle(tiny_arena), new_student()  # one session for Compare and Battle
    new, *_, message = events.compare_vote_event(
        tiny_arena, "win", session.models[0], session, student
    )
    assert "Battle tab" in message and not new.voted and tiny_arena.store.count() == 0
    assert "Vote #" in events.battle_vote_event(tiny_arena, "tie", None, session, student)[-1]


def test_a_model_failing_mid_answer_puts_back_the_answers_still_votable(tiny_arena, monkeypatch):
    session = last(
        ask(tiny_arena, "compare", PROMPT, ["sft", "ppo"], TINY_SETTINGS, new_session())
    )[0]

    def broken(arena, prompt, names, decoding):
        yield ["half an ans"] * len(names), [""] * len(names)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(handlers, "answer_all", broken)
    *_, failed = events.compare_event(
        tiny_arena, "Another prompt?", ["sft", "ppo"], *TINY_SETTINGS, session
    )
    assert failed[0] is session and "could not answer" in failed[-1]
    assert [failed[1 + i]["value"] for i in range(2)] == session.answers  # the old ones, again
    *_, failed = events.battle_event(tiny_arena, "Another prompt?", *TINY_SETTINGS, session)
    assert failed[1]["value"] == "" and "could not answer" in failed[-1]  # no battle to go back to


# ---------------------------------------------------------------- the page's helpers


def test_share_urls_name_this_machines_lan_addresses(monkeypatch):
    assert launch.share_urls("127.0.0.1", 7860) == ["http://127.0.0.1:7860"]
    monkeypatch.setattr(launch, "lan_addresses", lambda: ["192.168.1.20", "10.0.0.5"])
    assert launch.share_urls("0.0.0.0", 7861) == [
        "http://192.168.1.20:7861",
        "http://10.0.0.5:7861",
    ]


def test_lan_addresses_are_never_loopback():
    assert all(not a.startswith("127.") for a in launch.lan_addresses())


def test_world_panel_names_the_worlds_countries_and_all_five_kinds():
    world = default_world()
    panel = app.world_panel(world)
    assert world.kb.countries[0].name in panel
    for words in ["Facts", "Sums", "Advice", "Summaries", "Harmful"]:
        assert words in panel


def test_style_leaderboard_shows_how_much_of_a_rating_is_length():
    rows = []
    for i in range(60):  # B answers at length more often; the longer answer wins 9 times in 10
        b_long, longer_wins = i % 4 != 0, i % 10 != 0
        responses = ["short answer", "a much longer answer " * 5]
        responses = responses if b_long else responses[::-1]
        winner = 1 if b_long == longer_wins else 0
        rows.append(("battle", ["A", "B"], responses, "win", winner))
    votes = pd.DataFrame(rows, columns=["mode", "models", "responses", "outcome", "winner"])
    table, coefficients, message = board.build_style_leaderboard(votes)
    assert table.columns.tolist() == [
        "rank", "model", "rating", "lower", "upper", "battles", "raw rating", "style effect",
    ]  # fmt: skip
    effect = table.set_index("model")["style effect"]
    assert effect["B"] > 30 and effect["A"] < -30  # B's raw lead over A is mostly length
    length = coefficients.set_index("feature").loc["length"]
    assert length["beta"] > 0 and length["meaning"] == "longer answers win more votes"
    assert "Style control" in message and "Elo" in message
    few = board.build_style_leaderboard(votes.head(5))
    assert few[0].empty and "Not enough votes" in few[2]


def test_nothing_is_sent_off_the_machine_by_default():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GRADIO_ANALYTICS_ENABLED", "HF_HUB_DISABLE_TELEMETRY")
    }
    code = (
        "import apps, os, huggingface_hub.constants as c; "
        "print(c.HF_HUB_DISABLE_TELEMETRY, os.environ['GRADIO_ANALYTICS_ENABLED'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.stdout.split() == ["True", "False"], done.stderr[-2000:]


def test_handlers_module_exposes_no_nested_event_functions():
    """Every event function is module-level (tests call them): none is defined inside a builder."""
    import inspect

    for module in (app, events, handlers, board):
        for name, fn in inspect.getmembers(module, inspect.isfunction):
            if fn.__module__ == module.__name__:
                assert "<locals>" not in fn.__qualname__, name


def test_a_restart_with_the_same_codes_keeps_the_students_ids(tiny_arena):
    args = launch.parse_args(["--classroom", "--join-code", "c0de", "--password", "pw"])
    first, again = launch.classroom_from_args(args), launch.classroom_from_args(args)
    assert first.secret == again.secret and (first.join_code, first.password) == ("c0de", "pw")
    token = sign_id(first, "anon-1", True)
    assert restore_student(handlers.Arena(None, None, again), token).annotator == "anon-1"
    fresh = launch.classroom_from_args(launch.parse_args(["--classroom"]))  # random codes
    assert fresh.join_code and fresh.password and fresh.secret != first.secret
    assert not launch.classroom_from_args(launch.parse_args([])).join_code  # open arena
    # The browser keeps the token encrypted by Gradio: each launch's page must read it back.
    keys = []
    for classroom in (first, again, fresh):
        tiny_arena.classroom = classroom
        demo = app.build_app(tiny_arena)
        (store,) = [b for b in demo.blocks.values() if isinstance(b, gr.BrowserState)]
        keys.append(store.secret)
    assert keys[0] == keys[1] == browser_secret(first) and keys[2] != keys[0]
    assert first.secret not in keys[0]  # every page is sent this key: never the signing secret
