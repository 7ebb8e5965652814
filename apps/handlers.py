"""The arena's handlers: plain functions of (arena, inputs, session) that tests call directly.

`build_app` in `apps.arena` wires them to components; everything a user types reaches
the models and the vote store only through these functions and the checks in `apps.guard`.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from apps.guard import (
    Classroom,
    as_number,
    check_join,
    check_prompt,
    check_vote_allowed,
    whole_number,
)
from apps.jobs import Job
from apps.pool import RUN_REWARD, Answer, AnswerStats, ModelPool, find_run_models
from apps.votes import Vote, VoteStore
from lab import recipes
from lab.config import LabConfig
from lab.generation import DecodingConfig
from lab.leaderboard import OUTCOMES
from lab.stages import load_run_config
from lab.world import World

MAX_NEW_TOKENS = 256  # the most the arena lets a client ask for
# Between 0 (greedy) and this, logits / temperature overflow to inf and sampling fails.
MIN_TEMPERATURE = 0.01
MAX_SEED = 2**32 - 1  # torch.manual_seed overflows above 2**64 - 1; a smaller bound reads better
ALREADY_VOTED = "You have already voted on these answers: ask again for a new vote."
MAX_COMPARE = 5  # answers side by side on the Compare tab: base, SFT, PPO, DPO, GRPO
BATTLE_NAMES = ("Model A", "Model B")
logger = logging.getLogger(__name__)


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
    vote_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Held around a vote's checks and its insert, so concurrent votes see each other."""
    voted_battles: set[str] = field(default_factory=set, repr=False)
    """Battle ids already voted on: each request has its own copy of the session, not this."""


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
    battle_id: str = ""  # new with every set of answers; one vote per id (`Arena.voted_battles`)


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


def parse_decoding(settings: tuple) -> tuple[DecodingConfig | None, str]:
    """Client settings -> (DecodingConfig, '') or (None, a message); clients may send anything."""
    if len(settings) != 4 or None in [as_number(v) for v in settings]:
        return None, "Decoding settings must be numbers."
    temperature, top_p = as_number(settings[0]), as_number(settings[1])
    max_new_tokens = whole_number(settings[2], 1, MAX_NEW_TOKENS)
    seed = whole_number(settings[3], 0, MAX_SEED)
    if not (temperature == 0 or MIN_TEMPERATURE <= temperature <= 2):  # NaN fails every test
        return None, f"Temperature must be 0 (greedy) or between {MIN_TEMPERATURE} and 2."
    if not 0 < top_p <= 1:
        return None, "Top-p must be above 0 and at most 1."
    if max_new_tokens is None:
        return None, f"Max tokens must be a whole number between 1 and {MAX_NEW_TOKENS}."
    if seed is None:
        return None, f"The seed must be a whole number between 0 and {MAX_SEED:,}."
    return DecodingConfig(max_new_tokens, temperature, top_p, seed), ""


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
    names are known only to the session) until the vote. Bad input gets one message and
    leaves the session as it was.
    """
    session = session or new_session()  # an API client's first call has no session yet
    decoding, problem = parse_decoding(settings)
    problem = check_prompt(prompt) or problem
    if mode == "battle":
        names = pick_pair(arena.pool.available, arena.rng)
        problem = problem or ("" if names else "The arena needs two working models for a battle.")
    else:
        names = pick_models(names, arena.pool.available)
        problem = problem or ("" if names else "Pick at least one available model.")
    if problem:
        yield session, [], [], [], problem
        return
    texts, stats = [], []
    try:
        for texts, stats in answer_all(arena, prompt, names, decoding):
            yield session, names, texts, (stats if mode == "compare" else []), "Answering…"
    except Exception:  # noqa: BLE001 - the client gets one line, the server log the traceback
        logger.exception("answering %r failed", names)
        yield session, [], [], [], "The models could not answer that prompt; please try another."
        return
    done = dataclasses.replace(
        session,
        mode=mode,
        prompt=prompt,
        models=names,
        answers=list(texts),
        stats=list(stats),
        decoding=dataclasses.asdict(decoding),
        voted=False,
        battle_id=uuid.uuid4().hex,
    )
    hint = "Which answer is best?" if mode == "compare" else "Which is better, A or B?"
    yield done, names, texts, (stats if mode == "compare" else []), hint


def pick_models(names: object, available: list[str]) -> list[str]:
    """The requested models that are available, each once, in order, at most MAX_COMPARE."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        return []
    wanted = [n for n in names if isinstance(n, str) and n in available]
    return list(dict.fromkeys(wanted))[:MAX_COMPARE]


def compare_choices(arena: Arena, selected: list[str] | None) -> tuple[list[str], list[str]]:
    """Compare's model list as it is now (a feedback round adds models live), and the
    selection kept to the models still there."""
    available = arena.pool.available
    kept = [name for name in selected or [] if name in available]
    return available, kept or available[:MAX_COMPARE]


def pick_pair(names: list[str], rng: random.Random) -> list[str]:
    """Two different models, every ordered pair equally likely; [] when fewer than two."""
    return rng.sample(names, 2) if len(names) >= 2 else []


def vote(arena: Arena, outcome: str, winner: int | None, session: Session) -> tuple[Session, str]:
    """Record one vote on the answers on screen; acknowledged only once it is committed.

    The checks and the insert run under `arena.vote_lock`: of several votes sent at once on one
    set of answers exactly one is stored, and bursts cannot get round the quota or rate limit.
    """
    session = session or new_session()
    problem = check_ballot(outcome, winner, session)
    if problem:
        return session, problem
    with arena.vote_lock:
        if session.battle_id in arena.voted_battles:
            return dataclasses.replace(session, voted=True), ALREADY_VOTED
        now = time.time()
        problem = check_vote_allowed(
            arena.classroom,
            session.joined,
            arena.store.count(session.annotator),
            arena.store.count(
                session.annotator, since=now - arena.classroom.min_seconds_between_votes
            ),
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
        arena.voted_battles.add(session.battle_id)
    message = f"Vote #{vote_id} saved — thank you."
    if session.mode == "battle":
        message += " " + reveal(session)
    return dataclasses.replace(session, voted=True), message


def check_ballot(outcome: object, winner: object, session: Session) -> str | None:
    """What is wrong with this vote on this session's answers, before any limit; None if nothing."""
    if session.voted or not session.answers or not session.battle_id:
        return "Ask the models first, then vote on their answers."
    if len(session.models) < 2:
        return "Voting compares answers: pick at least two models."
    if outcome not in OUTCOMES:
        return f"A vote is one of {', '.join(OUTCOMES)}."
    if outcome == "win" and not (
        isinstance(winner, numbers.Integral)
        and not isinstance(winner, bool)
        and 0 <= winner < len(session.models)
    ):
        return "Choose which answer is best before voting."
    return None


def reveal(session: Session) -> str:
    """Which model was A and which was B (shown only after the vote)."""
    return " · ".join(
        f"{label} was **{name}**" for label, name in zip(BATTLE_NAMES, session.models, strict=True)
    )


# ---------------------------------------------------------------- loading


def run_config(run_dir: Path) -> LabConfig | None:
    """The run's settings, or None for a folder the pipeline did not write."""
    try:
        return load_run_config(run_dir)
    except FileNotFoundError:
        return None


def open_store(db: Path) -> VoteStore:
    """The vote database, or a one-line exit naming it (a corrupt file is left as it is)."""
    try:
        return VoteStore(db)
    except (sqlite3.DatabaseError, OSError, ValueError) as error:
        raise SystemExit(f"--db {db}: cannot be used as the vote database: {error}") from None


def load_arena(
    run_dir: Path | None, models: dict[str, str], db: Path, classroom: Classroom | None = None
) -> Arena:
    """Open the vote store, then find and load the models (a pipeline run, plus named ones)."""
    if run_dir is not None and not Path(run_dir).is_dir():
        raise SystemExit(f"--run {run_dir}: no such folder (make pipeline writes runs/tiny)")
    store = open_store(db)  # a bad database fails before any model loads
    sources = {**(find_run_models(run_dir) if run_dir else {}), **models}
    if not sources:
        raise SystemExit(
            "no models: pass --run RUN_DIR (after `make pipeline`) or --model NAME=PATH"
        )
    reward = run_dir / RUN_REWARD if run_dir else None
    pool = ModelPool(sources, str(reward) if reward and reward.is_dir() else None)
    cfg = run_config(run_dir) if run_dir else None
    world = recipes.gold_judge(cfg) if cfg else None  # the tiny world's judge, if its data
    return Arena(pool, store, classroom or Classroom(), run_dir, cfg, world, random.Random())
