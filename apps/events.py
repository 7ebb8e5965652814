"""The arena's Gradio events: handler results (`apps.handlers`, `apps.board`) turned into
component updates. Module-level functions of plain values, so tests call them without a browser;
`apps.arena` lays out the page and wires components to them.

A page holds two states: `Session` (the answers on screen), written by Compare, Battle and the
votes; and `Student` (who votes), written only by the load, the join and a page's first vote.
Gradio reads a state once when an event starts and writes it on every step of a streaming
event, so an identity kept in the answers' state would be undone by answers still streaming."""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator

import gradio as gr

from apps import board
from apps.guard import Student, new_student, sign_id
from apps.handlers import (
    BATTLE_NAMES,
    MAX_COMPARE,
    Arena,
    Session,
    ask,
    compare_choices,
    gold_reveal,
    vote,
)
from apps.students import client_of, instructor_check, join, page_of, restore_student

NO_CHANGE = gr.update()


def bind(fn: Callable, arena: Arena) -> Callable:
    """`partial(fn, arena)` that keeps `fn`'s type hints, which Gradio reads to pass a gr.Request."""
    return types.MethodType(fn, arena)


def load_event(arena: Arena, token: object) -> tuple[Student, str, dict, str]:
    """A page (re)loads: the student id its browser kept, and the join box only if not joined."""
    student = restore_student(arena, token)
    joined = student.joined and bool(arena.classroom.join_code)
    message = "Joined — this browser remembers you in this class." if joined else ""
    return (
        student,
        sign_id(arena.classroom, student.annotator, student.joined, student.group),
        gr.update(visible=bool(arena.classroom.join_code) and not student.joined),
        message,
    )


def join_ready() -> tuple[dict, dict]:
    """The join code box and button, usable once the page's load has restored its session."""
    return gr.update(interactive=True), gr.update(interactive=True)


def join_event(
    arena: Arena, code: str, student: Student | None, request: gr.Request | None = None
) -> tuple[Student, str, dict, str]:
    """The join button: the code checked (with a wait after wrong ones), the box folded once in."""
    student, message = join(arena, code, student, client_of(request) or "", page_of(request))
    return (
        student,
        sign_id(arena.classroom, student.annotator, student.joined, student.group),
        gr.update(visible=not student.joined),
        message,
    )


def instructor_event(
    arena: Arena, password: str, request: gr.Request | None = None
) -> tuple[dict, dict, dict, dict, str]:
    """Unlock: the instructor's controls appear (Data › Instructor, Retrain) for this page only,
    their password boxes filled in."""
    problem = instructor_check(arena, password, request)
    if problem:
        return NO_CHANGE, NO_CHANGE, NO_CHANGE, NO_CHANGE, problem
    shown, typed = gr.update(visible=True), gr.update(value=password)
    return shown, shown, typed, typed, "Instructor controls shown."


def refresh_compare(arena: Arena, selected: list[str] | None) -> dict:
    """Compare's checkboxes with every model the arena has now."""
    choices, value = compare_choices(arena, selected)
    return gr.update(choices=choices, value=value)


def compare_event(
    arena: Arena, prompt, models, temperature, top_p, max_tokens, seed, state
) -> Iterator[tuple]:
    """Ask: stream every chosen model's answer into the slots; bad input leaves them as they were."""
    settings = (temperature, top_p, max_tokens, seed)
    streamed = False
    for new, shown, texts, lines, message in ask(arena, "compare", prompt, models, settings, state):
        if shown:  # the first new answers clear the last question's pick of the best one
            best = gr.update(choices=shown) if streamed else gr.update(choices=shown, value=None)
            streamed = True
            yield new, *slot_updates(shown, texts, lines), best, message
        elif streamed:  # failed mid-answer: back to the answers the session still holds
            kept = new.models if new.mode == "compare" and not new.voted else []
            yield new, *slot_updates(kept, new.answers, new.stats), gr.update(choices=kept), message
        else:  # refused: the answers on screen stay, and stay votable
            yield new, *[NO_CHANGE] * (2 * MAX_COMPARE), NO_CHANGE, message


def voter(student: Student | None) -> tuple[Student, object]:
    """The voter, and the page's student update: a new id only where none is (an API client)."""
    if student is not None:
        return student, NO_CHANGE
    student = new_student()
    return student, student


def compare_vote_event(
    arena: Arena, outcome: str, choice, state: Session | None, student: Student | None
) -> tuple:
    """A Compare vote; once stored, each answer's stats line gains its gold score."""
    winner = state.models.index(choice) if state and choice in state.models else None
    student, kept = voter(student)
    new, message = vote(arena, outcome, winner, state, student, mode="compare")
    if not just_voted(state, new):
        return new, kept, *[NO_CHANGE] * MAX_COMPARE, message
    lines, warning = gold_reveal(arena, new, new.models)
    stats = [gr.update(value=lines[i]) if i < len(lines) else NO_CHANGE for i in range(MAX_COMPARE)]
    return new, kept, *stats, join_lines(message, warning)


def slot_updates(names: list[str], texts: list[str], lines: list[str]) -> list:
    """Fill the first len(names) answer slots, hide the rest: boxes first, then stats lines."""
    boxes = [
        gr.update(label=names[i], value=texts[i], visible=True)
        if i < len(names)
        else gr.update(value="", visible=False)
        for i in range(MAX_COMPARE)
    ]
    stats = [
        gr.update(value=lines[i] if i < len(lines) else "", visible=i < len(names))
        for i in range(MAX_COMPARE)
    ]
    return [*boxes, *stats]


def battle_event(
    arena: Arena, prompt, temperature, top_p, max_tokens, seed, state
) -> Iterator[tuple]:
    """Battle: two anonymous answers stream in; names and stats stay hidden until the vote."""
    settings = (temperature, top_p, max_tokens, seed)
    streamed = False
    for new, shown, texts, _, message in ask(arena, "battle", prompt, [], settings, state):
        if not shown and not streamed:  # refused: the battle on screen stays, and stays votable
            yield new, *[NO_CHANGE] * 4, message
            continue
        if not shown:  # failed mid-answer: back to the battle the session still holds
            shown = new.models if new.mode == "battle" and not new.voted else []
            texts = new.answers if shown else []
        streamed = True
        texts = (texts + ["", ""])[:2]
        hidden = [
            gr.update(label=label, value=t) for label, t in zip(BATTLE_NAMES, texts, strict=True)
        ]
        yield new, *hidden, "", "", message


def battle_vote_event(
    arena: Arena, outcome: str, winner: int | None, state: Session | None, student: Student | None
) -> tuple:
    """A battle vote; once stored, the names, the stats and each answer's gold score appear."""
    student, kept = voter(student)
    new, message = vote(arena, outcome, winner, state, student, mode="battle")
    if not just_voted(state, new):  # nothing new recorded: reveal nothing
        return new, kept, *[NO_CHANGE] * 4, message
    names = [f"{label} ({name})" for label, name in zip(BATTLE_NAMES, new.models, strict=True)]
    lines, warning = gold_reveal(arena, new, names)
    labels = [
        gr.update(label=f"{label}: {name}")
        for label, name in zip(BATTLE_NAMES, new.models, strict=True)
    ]
    return new, kept, *labels, *lines, join_lines(message, warning)


def just_voted(before: Session | None, after: Session) -> bool:
    """True when the answers on screen were unvoted before this request and voted after it
    (by this request, or by a copy sent at the same time: either way their names may show)."""
    return before is not None and not before.voted and after.voted


def join_lines(*lines: str) -> str:
    """Non-empty lines as one Markdown block, a paragraph each."""
    return "\n\n".join(line for line in lines if line)


def dashboard_event(arena: Arena, stage: str | None) -> tuple[dict, object]:
    """The dashboard tab opens: every stage logged so far, the chosen one drawn."""
    stages = board.dashboard_stages(arena.run_dir)
    stage = stage if stage in stages else (stages[-1] if stages else None)
    return gr.update(choices=stages, value=stage), board.dashboard(arena, stage or "")
