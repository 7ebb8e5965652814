"""What the arena accepts: prompt checks, classroom join codes, instructor password, vote limits.

Every check returns a message for the user (or None when all is well); nothing here raises
on user input, and no message ever repeats the user's text back (it is never rendered).
"""

from __future__ import annotations

import hmac
import math
import numbers
import secrets
import unicodedata
from dataclasses import dataclass

MAX_PROMPT_CHARS = 1000
JUNK_SHARE = 0.1  # above this share of control / unassigned characters, a paste is binary junk


@dataclass
class Classroom:
    """Classroom settings; the defaults are an open, single-user arena."""

    join_code: str = ""
    """Code a student types before voting; empty = anyone may vote."""
    password: str = ""
    """Instructor password for export and retraining; empty = those actions are open."""
    quota: int = 500
    """Most votes one annotator may cast."""
    min_seconds_between_votes: float = 1.0
    """Rate limit per annotator."""


def new_code(n_bytes: int = 3) -> str:
    """A short random code (join code or password) for `--classroom` when none is given."""
    return secrets.token_hex(n_bytes)


def check_prompt(text: object, max_chars: int = MAX_PROMPT_CHARS) -> str | None:
    """A message saying what is wrong with a prompt, or None when it can be sent to the models."""
    if not isinstance(text, str):
        return "The prompt must be text."
    stripped = text.strip()
    if not stripped:
        return "Please type a prompt first."
    if len(text) > max_chars:
        return f"The prompt is {len(text):,} characters long; the limit is {max_chars:,}."
    if not is_encodable(text):
        return "The prompt has a broken character (half of a surrogate pair); please retype it."
    junk = sum(is_junk(c) for c in stripped)
    if junk / len(stripped) > JUNK_SHARE or "\x00" in text:
        return "The prompt looks like binary data, not text; please type or paste plain text."
    return None


def is_encodable(text: str) -> bool:
    """True unless `text` holds a lone surrogate, which no tokenizer or database can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_junk(char: str) -> bool:
    """Control, unassigned, private-use or replacement characters (but not newline or tab)."""
    if char in "\n\t\r":
        return False
    return unicodedata.category(char) in {"Cc", "Cn", "Co", "Cs"} or char == "\ufffd"


def as_number(value: object) -> float | None:
    """A number (or numeric text) as a float, ±inf when too large for one; None if not a number."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        return None
    try:
        return float(value)
    except OverflowError:  # an int beyond 1e308
        return math.inf if value > 0 else -math.inf
    except ValueError:
        return None


def whole_number(value: object, low: int, high: int) -> int | None:
    """`value` as an int if it is a whole number from `low` to `high`; None for 2.5, NaN, "x"…"""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value) if low <= value <= high else None  # exact, however large
    number = as_number(value)
    if number is None or not number.is_integer() or not low <= number <= high:
        return None
    return int(number)


def check_join(classroom: Classroom, code: str) -> str | None:
    """None when `code` opens voting in this classroom."""
    if not classroom.join_code or same_secret(code, classroom.join_code):
        return None
    return "That join code is not right; ask your instructor for the code on the board."


def check_instructor(classroom: Classroom, password: str) -> str | None:
    """None when `password` allows the instructor's actions (export, retrain, simulate)."""
    if not classroom.password or same_secret(password, classroom.password):
        return None
    return "Instructor password required for this action."


def check_vote_allowed(
    classroom: Classroom, joined: bool, n_votes: int, n_recent: int
) -> str | None:
    """None when this annotator may vote now: joined, under quota, not voting too fast.

    `n_votes` counts the annotator's votes so far, `n_recent` those in the last
    `min_seconds_between_votes`; both come from the vote store, so every process agrees.
    """
    if classroom.join_code and not joined:
        return "Enter the class join code (top of the page) before voting."
    if n_votes >= classroom.quota:
        return f"You have cast your {classroom.quota} votes — thank you!"
    if n_recent > 0:
        return "Slow down a little: one vote every few seconds."
    return None


def same_secret(given: object, expected: str) -> bool:
    """Constant-time comparison of a typed secret with the expected one."""
    return isinstance(given, str) and hmac.compare_digest(given.strip(), expected)
