"""Who is on a page: a student's id restored after a reload, the join code, the instructor's
password, each with a wait after wrong tries from one page or address."""

from __future__ import annotations

import math
import time

from apps.guard import (
    Student,
    check_instructor,
    check_join,
    join_group,
    new_student,
    read_id,
)
from apps.handlers import Arena


def restore_student(arena: Arena, token: object) -> Student:
    """The student of a page just (re)loaded: the id its browser kept, else a new one.

    Quota and rate limit count the votes of this id in the vote store, so a reload no longer
    resets them; a token this classroom did not sign (forged, or from an earlier class) is ignored.
    """
    who = read_id(arena.classroom, token)
    if who is None or (who[2] and who[2] not in arena.classroom.group_codes):
        return new_student()
    return Student(annotator=who[0], joined=who[1], group=who[2])


def join(
    arena: Arena, code: str, student: Student | None, client: str = "", page: str = ""
) -> tuple[Student, str]:
    """Enter the classroom's join code; wrong ones slow this page, and its address past a looser cap."""
    student = student or new_student()
    problem = check_join(arena.classroom, code)
    right, now = problem is None, time.monotonic()
    # One student's typos behind a NAT slow their own page (the address when the page is
    # unknown), not the class; a guesser opening a new page per guess meets the address's cap.
    wait = arena.join_backoff.attempt(page or client, right, now) or (
        arena.address_backoff.attempt(client, right, now)
    )  # a page that waits adds nothing to its address's count
    if wait > 0:
        return student, f"Too many wrong codes: try again in {math.ceil(wait)} s."
    if problem:
        return student, problem
    group = join_group(arena.classroom, code) or ""
    where = f" (group {group})" if group else ""
    return Student(student.annotator, True, group), f"Joined{where} — your votes count now."


def client_of(request: object | None) -> str | None:
    """The address of the client behind a Gradio request ('' if unknown); None for no request
    (a direct call: a test, a notebook)."""
    if request is None:
        return None
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "") or "")


def page_of(request: object | None) -> str:
    """The page (Gradio session hash) behind a request; '' if unknown."""
    return str(getattr(request, "session_hash", "") or "")


def instructor_check(arena: Arena, password: object, request: object | None) -> str | None:
    """`check_instructor`, with a wait after wrong passwords from one client (as for join
    codes), so that the password cannot be guessed through the API at full speed. A call with
    nothing typed is not a guess; a direct call (no request) has no client to slow down. A page
    that has typed the right password keeps its access while a guesser at the same address
    waits (the right password is still needed on every call)."""
    problem = check_instructor(arena.classroom, password)
    client, typed = client_of(request), isinstance(password, str) and bool(password.strip())
    if client is None or not arena.classroom.password or not typed:
        return problem
    page = page_of(request)
    if problem is None and page in arena.instructor_pages:
        return None  # this page typed it before: a guesser's wait at its address is not its own
    wait = arena.password_backoff.attempt(client, problem is None, time.monotonic())
    if wait > 0:
        return f"Too many wrong passwords: try again in {math.ceil(wait)} s."
    if problem is None and page:
        arena.instructor_pages.add(page)
    return problem
