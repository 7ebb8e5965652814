"""The arena's handlers: plain functions of (arena, inputs, session) that tests call directly.

`build_app` in `apps.arena` wires them to components; everything a user types reaches
the models and the vote store only through these functions and the checks in `apps.guard`.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from apps.guard import Classroom, check_join, check_prompt, check_vote_allowed
from apps.jobs import Job
from apps.pool import Answer, AnswerStats, ModelPool
from apps.votes import Vote, VoteStore
from lab.config import LabConfig
from lab.generation import DecodingConfig
from lab.world import World

MAX_NEW_TOKENS = 256  # the most the arena lets a client ask for
MAX_COMPARE = 5  # answers side by side on the Compare tab: base, SFT, PPO, DPO, GRPO
BATTLE_NAMES = ("Model A", "Model B")


@dataclass
class Arena:
    """Everything the handlers share: models, votes, classroom rules and the pipeline run."""

    pool: ModelPool
    store: VoteStore
    classroom: Classroom = field(default_factory=Classroom)
    run_dir: Path | None = None
    cfg: LabConfig | None = None
    world: World | None = None
    rng: random.Random = field(default_factory=random.Random)
    job: Job | None = None
    cache: dict = field(default_factory=dict)  # derived views (the leaderboard), keyed by votes


@dataclass
class Session:
    """One browser session's state (kept in `gr.State`, never shared between users)."""

    annotator: str
    joined: bool = False
    mode: str = ""  # "compare" or "battle": what the answers on screen came from
    prompt: str = ""
    models: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    stats: list[str] = field(default_factory=list)
    decoding: dict = field(default_factory=dict)
    voted: bool = True  # nothing to vote on yet


def new_session() -> Session:
    """A fresh session with a pseudonymous annotator id."""
    return Session(annotator=f"anon-{uuid.uuid4().hex[:10]}")


def join(arena: Arena, code: str, session: Session | None) -> tuple[Session, str]:
    """Enter the classroom's join code."""
    session = session or new_session()
    problem = check_join(arena.classroom, code)
    if problem:
        return session, problem
    return dataclasses.replace(session, joined=True), "Joined — your votes count now."


def check_decoding(temperature: float, top_p: float, max_new_tokens: float, seed: float) -> str:
    """A message when decoding settings are out of range ('' when fine); clients may send anything."""
    try:
        if not 0 <= float(temperature) <= 2:
            return "Temperature must be between 0 and 2."
        if not 0 < float(top_p) <= 1:
            return "Top-p must be above 0 and at most 1."
        if not 1 <= int(max_new_tokens) <= MAX_NEW_TOKENS:
            return f"Max tokens must be between 1 and {MAX_NEW_TOKENS}."
        int(seed)
    except (TypeError, ValueError):
        return "Decoding settings must be numbers."
    return ""


def format_stats(stats: AnswerStats) -> str:
    """The line under an answer: reward score, length in tokens, KL to the SFT model."""
    reward = "n/a" if stats.reward is None else f"{stats.reward:+.2f}"
    kl = "n/a" if stats.kl is None else f"{stats.kl:.2f} nats"
    return f"reward {reward} · {stats.n_tokens} tokens · KL to SFT {kl}"


def answer_all(
    arena: Arena, prompt: str, names: list[str], decoding: DecodingConfig
) -> Iterator[tuple[list[str], list[str]]]:
    """Stream every model's answer in turn: yields (texts, stats lines) as they grow."""
    texts, stats = [""] * len(names), [""] * len(names)
    for i, name in enumerate(names):
        for part in arena.pool.stream(name, prompt, decoding):
            if isinstance(part, Answer):
                texts[i] = part.text
                stats[i] = format_stats(arena.pool.stats(name, prompt, part))
            else:
                texts[i] = part
            yield texts, stats


def ask(
    arena: Arena,
    mode: str,
    prompt: str,
    names: list[str],
    settings: tuple[float, float, float, float],
    session: Session | None,
) -> Iterator[tuple[Session, list[str], list[str], list[str], str]]:
    """Send `prompt` to `names` (compare) or to a fair random pair (battle); stream the answers.

    Yields (session, names, texts, stats, message); in a battle the stats stay hidden (and the
    names are known only to the session) until the vote.
    """
    session = session or new_session()  # an API client's first call has no session yet
    problem = check_prompt(prompt) or check_decoding(*settings)
    if mode == "battle":
        names = pick_pair(arena.pool.available, arena.rng)
        problem = problem or ("" if names else "The arena needs two working models for a battle.")
    else:
        names = [n for n in names if n in arena.pool.available][:MAX_COMPARE]
        problem = problem or ("" if names else "Pick at least one available model.")
    if problem:
        yield session, [], [], [], problem
        return
    temperature, top_p, max_new_tokens, seed = settings
    decoding = DecodingConfig(int(max_new_tokens), float(temperature), float(top_p), int(seed))
    texts, stats = [], []
    for texts, stats in answer_all(arena, prompt, names, decoding):
        yield session, names, texts, (stats if mode == "compare" else []), "Answering…"
    done = Session(
        session.annotator,
        session.joined,
        mode,
        prompt,
        names,
        list(texts),
        list(stats),
        dataclasses.asdict(decoding),
        voted=False,
    )
    hint = "Which answer is best?" if mode == "compare" else "Which is better, A or B?"
    yield done, names, texts, (stats if mode == "compare" else []), hint


def pick_pair(names: list[str], rng: random.Random) -> list[str]:
    """Two different models, every ordered pair equally likely; [] when fewer than two."""
    return rng.sample(names, 2) if len(names) >= 2 else []


def vote(arena: Arena, outcome: str, winner: int | None, session: Session) -> tuple[Session, str]:
    """Record one vote on the answers on screen; acknowledged only once it is committed."""
    session = session or new_session()
    if session.voted or not session.answers:
        return session, "Ask the models first, then vote on their answers."
    if len(session.models) < 2:
        return session, "Voting compares answers: pick at least two models."
    if outcome == "win" and (winner is None or not 0 <= winner < len(session.models)):
        return session, "Choose which answer is best before voting."
    now = time.time()
    problem = check_vote_allowed(
        arena.classroom,
        session.joined,
        arena.store.count(session.annotator),
        arena.store.count(session.annotator, since=now - arena.classroom.min_seconds_between_votes),
    )
    if problem:
        return session, problem
    vote_id = arena.store.add(
        Vote(
            annotator=session.annotator,
            mode=session.mode,
            prompt=session.prompt,
            models=tuple(session.models),
            responses=tuple(session.answers),
            outcome=outcome,
            winner=winner if outcome == "win" else None,
            decoding=session.decoding,
        )
    )
    message = f"Vote #{vote_id} saved — thank you."
    if session.mode == "battle":
        message += " " + reveal(session)
    return dataclasses.replace(session, voted=True), message


def reveal(session: Session) -> str:
    """Which model was A and which was B (shown only after the vote)."""
    return " · ".join(
        f"{label} was **{name}**" for label, name in zip(BATTLE_NAMES, session.models, strict=True)
    )
