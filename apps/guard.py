"""What the arena accepts: prompt checks, classroom join codes, instructor password, vote limits.

Every check returns a message for the user (or None when all is well); nothing here raises
on user input, and no message ever repeats the user's text back (it is never rendered).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import numbers
import secrets
import threading
import unicodedata
import uuid
from dataclasses import dataclass, field

from lab.votes_db import GROUP_NAME, GROUP_RULE

MAX_PROMPT_CHARS = 1000
JUNK_SHARE = 0.1  # above this share of control / unassigned characters, a paste is binary junk
FREE_TRIES = 3  # wrong join codes a page (or client) may type before it has to wait
ADDRESS_FREE_TRIES = 30  # from every page at one address (a NAT): a class of 30, one typo each
MAX_WAIT_S = 60.0  # the longest wait between two tries, however many were wrong


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
    secret: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    """Signs the student id kept in each browser, so that nobody can forge one."""
    group_codes: dict[str, str] = field(default_factory=dict)
    """Group name -> a join code that also puts the student in that group (their votes carry it)."""


def new_code(n_bytes: int = 3) -> str:
    """A short random code (join code or password) for `--classroom` when none is given."""
    return secrets.token_hex(n_bytes)


def check_prompt(text: object, max_chars: int = MAX_PROMPT_CHARS) -> str | None:
    """A message saying what is wrong with a prompt, or None when it can be sent to the models."""
    if not isinstance(text, str):
        return "The prompt must be text."
    stripped = text.strip()
    if not any(is_visible(c) for c in stripped):  # blank, or only zero-width characters
        return "Please type a prompt first."
    if len(text) > max_chars:
        return f"The prompt is {len(text):,} characters long; the limit is {max_chars:,}."
    if not is_encodable(text):
        return "The prompt has a broken character (half of a surrogate pair); please retype it."
    junk = sum(is_junk(c) for c in stripped)
    if junk / len(stripped) > JUNK_SHARE or "\x00" in text:
        return "The prompt looks like binary data, not text; please type or paste plain text."
    return None


def is_visible(char: str) -> bool:
    """False for spaces and for invisible format characters (zero-width space, BOM, marks)."""
    return not char.isspace() and unicodedata.category(char) != "Cf"


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
    """None when `code` opens voting in this classroom: the class's code or a group's."""
    if not classroom.join_code or join_group(classroom, code) is not None:
        return None
    return "That join code is not right; ask your instructor for the code on the board."


def join_group(classroom: Classroom, code: object) -> str | None:
    """The group a join code puts a student in ('' for the class's own code), None if no code."""
    for group, group_code in classroom.group_codes.items():
        if same_secret(code, group_code, any_case=True):
            return group
    return "" if same_secret(code, classroom.join_code, any_case=True) else None


def parse_groups(text: str) -> list[str]:
    """'terse,warm' -> ['terse', 'warm']; a bad or repeated name raises, naming it."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if not GROUP_NAME.fullmatch(name):
            raise ValueError(f"--groups: {name!r} is not a group name ({GROUP_RULE})")
    if len(set(names)) != len(names):
        raise ValueError(f"--groups: a group is named twice in {text!r}")
    return names


def check_group(group: object) -> str | None:
    """None when `group` is empty or a group's name (spaces around it are dropped)."""
    if not isinstance(group, str):
        return "Group: type a group name, or leave it empty."
    if group.strip() and not GROUP_NAME.fullmatch(group.strip()):
        return f"Group: a group's name is {GROUP_RULE}; or leave it empty."
    return None


def check_instructor(classroom: Classroom, password: str) -> str | None:
    """None when `password` allows the instructor's actions (export, retrain, simulate)."""
    if not classroom.password or same_secret(password, classroom.password):
        return None
    if isinstance(password, str) and password.strip():
        return "Wrong instructor password."
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


def sign_id(classroom: Classroom, annotator: str, joined: bool, group: str = "") -> str:
    """A student's pseudonymous id, join status and group as a signed token for their browser."""
    body = f"{annotator}|{int(joined)}" + (f":{group}" if joined and group else "")
    return f"{body}|{_mac(classroom.secret, body)}"


def read_id(classroom: Classroom, token: object) -> tuple[str, bool, str] | None:
    """(annotator, joined, group) from a token `sign_id` made with this classroom's secret."""
    if not isinstance(token, str) or token.count("|") != 2:
        return None
    annotator, member, mac = token.split("|")
    joined, _, group = member.partition(":")
    body = f"{annotator}|{member}"
    if (
        not annotator
        or joined not in ("0", "1")
        or not same_secret(mac, _mac(classroom.secret, body))
    ):
        return None
    return annotator, joined == "1", group


def browser_secret(classroom: Classroom) -> str:
    """Gradio's key for the browser's copy of the student id: it follows the classroom's secret."""
    # So a restart with the same codes reads the id back. Never the secret itself: Gradio
    # sends this key to every page, and the secret signs the ids.
    return _mac(classroom.secret, "gradio-browser-state")


def _mac(secret: str, body: str) -> str:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:32]


def backoff_seconds(failures: int, free_tries: int = FREE_TRIES) -> float:
    """The wait after `failures` wrong join codes (or passwords) in a row: none for `free_tries`, then doubling."""
    return 0.0 if failures < free_tries else min(2.0 ** (failures - free_tries), MAX_WAIT_S)


@dataclass
class JoinBackoff:
    """Wrong secrets (join codes, or the instructor password) per client (its address): each
    one past FREE_TRIES doubles the wait.

    A client that is waiting is refused at once, the right secret included, so guessing
    costs time; a right one clears the count.
    """

    failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Client -> (wrong codes in a row, monotonic time from which it may try again)."""
    free_tries: int = FREE_TRIES
    """Wrong codes a client may type before it has to wait."""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attempt(self, client: str, right: bool, now: float) -> float:
        """Count one try of a code; the seconds `client` must still wait (> 0: try refused).

        Checking the wait and counting the try are one step under the lock, so a burst of
        tries sent at once cannot all pass the check before any is counted.
        """
        with self.lock:
            count, allowed_from = self.failures.get(client, (0, 0.0))
            if now < allowed_from:
                return allowed_from - now
            if right:
                self.failures.pop(client, None)
            else:
                wait = backoff_seconds(count + 1, self.free_tries)
                self.failures[client] = (count + 1, now + wait)
            return 0.0


def same_secret(given: object, expected: str, any_case: bool = False) -> bool:
    """Constant-time comparison of a typed secret with the expected one; `any_case` for join
    codes, which phones capitalise. Compared as UTF-8 bytes: a typed "é" is a wrong guess."""
    if not isinstance(given, str):
        return False
    given = given.strip()
    if any_case:
        given, expected = given.casefold(), expected.casefold()
    return hmac.compare_digest(
        given.encode("utf-8", "replace"), expected.encode("utf-8", "replace")
    )


# A state of its own, apart from `Session`: a streaming answer writes its session at every step
# and would write back an identity read before a join or a page's load (see `apps.events`).
@dataclass(frozen=True)
class Student:
    """Who votes on a page: a pseudonymous id, whether they joined, their group."""

    annotator: str
    joined: bool = False
    group: str = ""  # the group whose join code the student typed; their votes carry it


def new_student() -> Student:
    """A new student with a pseudonymous annotator id, not joined."""
    return Student(annotator=f"anon-{uuid.uuid4().hex[:10]}")
