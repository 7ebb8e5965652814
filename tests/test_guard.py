"""The arena's input checks: every bad input gets a message, nothing raises, nothing is echoed."""

from __future__ import annotations

import math

import pytest

from apps.guard import (
    FREE_TRIES,
    MAX_PROMPT_CHARS,
    MAX_WAIT_S,
    Classroom,
    JoinBackoff,
    as_number,
    backoff_seconds,
    check_instructor,
    check_join,
    check_prompt,
    check_vote_allowed,
    is_encodable,
    join_group,
    parse_groups,
    read_id,
    sign_id,
    whole_number,
)


@pytest.mark.parametrize(
    "text",
    ["What is the capital of Zarnia?", "Qu'est-ce que c'est ? 日本語\n\tÇa va.", "<b>hi</b>"],
)
def test_good_prompts_pass(text):
    assert check_prompt(text) is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "type a prompt"),
        ("   \n\t ", "type a prompt"),
        ("\u200b\ufeff \u200b", "type a prompt"),  # only zero-width characters: invisible
        (None, "must be text"),
        (b"bytes", "must be text"),
        ("x" * (MAX_PROMPT_CHARS + 1), "limit is 1,000"),
        ("\x00\x01\x02 hello", "binary"),
        ("".join(chr(c) for c in range(1, 32)) + "ab", "binary"),
        ("\ufffd" * 20 + "text", "binary"),
        ("What is 2 plus 3? \ud800", "broken character"),  # one lone surrogate among text
        ("\udfff" + "a" * 50, "broken character"),
    ],
)
def test_bad_prompts_get_a_message(text, words):
    message = check_prompt(text)
    assert message is not None and words in message.lower()


def test_only_lone_surrogates_are_unencodable():
    assert is_encodable("emoji 😀 and 日本語") and not is_encodable("a\ud83d b")
    assert check_prompt("an emoji 😀, a whole surrogate pair in UTF-16") is None


def test_messages_never_echo_the_prompt():
    hostile = "<script>alert(1)</script>" * 100
    assert "<script>" not in (check_prompt(hostile) or "")


def test_join_code_and_password():
    open_room, room = Classroom(), Classroom(join_code="abc123", password="s3cret")
    assert check_join(open_room, "") is None and check_instructor(open_room, "") is None
    assert check_join(room, "abc123") is None and check_join(room, " abc123 ") is None
    assert "not right" in check_join(room, "abc124")
    assert check_join(room, None) is not None
    assert check_instructor(room, "s3cret") is None
    assert check_instructor(room, "") == "Instructor password required for this action."
    assert check_instructor(room, "s3cre") == "Wrong instructor password."


def test_vote_limits():
    room = Classroom(join_code="abc", quota=3)
    assert "join code" in check_vote_allowed(room, joined=False, n_votes=0, n_recent=0)
    assert check_vote_allowed(room, joined=True, n_votes=2, n_recent=0) is None
    assert "3 votes" in check_vote_allowed(room, joined=True, n_votes=3, n_recent=0)
    assert "slow down" in check_vote_allowed(room, joined=True, n_votes=1, n_recent=1).lower()


def test_numbers_from_a_client():
    assert as_number(0.5) == 0.5 and as_number(3) == 3.0 and as_number(" 0.7 ") == 0.7
    assert as_number(10**400) == math.inf and as_number(-(10**400)) == -math.inf
    assert math.isnan(as_number("nan")) and as_number("1e999") == math.inf
    for junk in [None, True, "lots", [1], {"a": 1}, b"1"]:
        assert as_number(junk) is None, junk


def test_whole_numbers_in_a_range():
    assert whole_number(7, 0, 10) == 7 and whole_number(7.0, 0, 10) == 7
    assert whole_number("4", 1, 256) == 4 and whole_number(2**64 + 1, 0, 2**70) == 2**64 + 1
    for bad in [2.5, math.nan, math.inf, -1, 11, 2**70, 10**400, "x", None, False]:
        assert whole_number(bad, 0, 10) is None, bad


def test_a_signed_student_id_reads_back_and_a_forged_one_does_not():
    room, other = Classroom(), Classroom()
    token = sign_id(room, "anon-1234", True)
    assert read_id(room, token) == ("anon-1234", True, "")
    assert read_id(room, sign_id(room, "anon-1234", False)) == ("anon-1234", False, "")
    assert read_id(room, sign_id(room, "anon-1234", True, "warm")) == ("anon-1234", True, "warm")
    in_group = sign_id(room, "anon-1234", True, "warm")
    assert read_id(room, in_group.replace("1:warm", "1:terse")) is None  # the group changed
    annotator, joined, mac = token.split("|")
    for forged in [
        f"anon-9999|{joined}|{mac}",  # someone else's id
        f"{annotator}|0|{mac}",  # the join flag changed
        sign_id(other, "anon-1234", True),  # another class (or an earlier run)
        f"{annotator}|2|{mac}",
        "|1|" + mac,
        None, 5, "", "a|b", "a|1|b|c", ["a", "1", mac],
    ]:  # fmt: skip
        assert read_id(room, forged) is None, forged


def test_backoff_is_free_then_doubles_up_to_a_cap():
    waits = [backoff_seconds(n) for n in range(FREE_TRIES + 8)]
    assert waits[:FREE_TRIES] == [0.0] * FREE_TRIES
    assert waits[FREE_TRIES : FREE_TRIES + 4] == [1.0, 2.0, 4.0, 8.0]
    assert max(waits) == MAX_WAIT_S == backoff_seconds(1000)


def test_join_backoff_refuses_a_waiting_client_even_with_the_right_code():
    backoff = JoinBackoff()
    assert [backoff.attempt("pc-1", False, 0.0) for _ in range(FREE_TRIES)] == [0.0] * FREE_TRIES
    assert backoff.attempt("pc-1", True, 0.5) == pytest.approx(0.5)  # waiting: refused
    assert backoff.attempt("pc-2", False, 0.5) == 0.0  # another client is not slowed down
    assert backoff.attempt("pc-1", False, 1.0) == 0.0  # the wait is over: counted (4th wrong)
    assert backoff.attempt("pc-1", True, 2.5) == pytest.approx(0.5)  # now 2 s to wait
    assert backoff.attempt("pc-1", True, 3.0) == 0.0  # right code, after the wait: cleared
    assert "pc-1" not in backoff.failures


def test_join_codes_take_any_case_and_odd_characters_are_wrong_guesses_not_crashes():
    room = Classroom(join_code="abc123", password="Pw-9", group_codes={"terse": "t0001"})
    assert join_group(room, "ABC123") == "" and join_group(room, " T0001") == "terse"  # phones
    assert join_group(room, "abç123") is None and join_group(room, "\ud800") is None
    assert check_instructor(room, "Pw-9") is None and check_instructor(room, " Pw-9 ") is None
    assert check_instructor(room, "pw-9") == "Wrong instructor password."  # a password is exact
    assert check_instructor(room, "pässwört") == "Wrong instructor password."  # crashed hmac


def test_group_codes_join_a_group_and_bad_group_names_are_refused():
    room = Classroom(join_code="abc123", group_codes={"terse": "t0001", "warm": "w0002"})
    assert check_join(room, " w0002 ") is None and join_group(room, "w0002") == "warm"
    assert join_group(room, "abc123") == "" and join_group(room, "nope") is None
    assert check_join(room, "t0002") is not None and join_group(room, None) is None
    assert parse_groups(" terse, warm ,") == ["terse", "warm"] and parse_groups("") == []
    for bad, message in [("a b", "'a b' is not a group name"), ("x,x", "named twice"),
                         ("<b>", "is not a group name"), ("a|1", "is not a group name")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_groups(bad)
