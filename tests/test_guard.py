"""The arena's input checks: every bad input gets a message, nothing raises, nothing is echoed."""

from __future__ import annotations

import math

import pytest

from apps.guard import (
    MAX_PROMPT_CHARS,
    Classroom,
    as_number,
    check_instructor,
    check_join,
    check_prompt,
    check_vote_allowed,
    is_encodable,
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
    assert "password" in check_instructor(room, "")


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
