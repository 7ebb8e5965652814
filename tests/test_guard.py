"""The arena's input checks: every bad input gets a message, nothing raises, nothing is echoed."""

from __future__ import annotations

import pytest

from apps.guard import (
    MAX_PROMPT_CHARS,
    Classroom,
    check_instructor,
    check_join,
    check_prompt,
    check_vote_allowed,
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
    ],
)
def test_bad_prompts_get_a_message(text, words):
    message = check_prompt(text)
    assert message is not None and words in message.lower()


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
