"""The arena's handlers: plain functions of (arena, inputs, session) that tests call directly.

`build_app` in `apps.arena` wires them to components; everything a user types reaches
the models and the vote store only through these functions and the checks in `apps.guard`.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from apps.guard import (
    ADDRESS_FREE_TRIES,
    Classroom,
    JoinBackoff,
    Student,
    as_number,
    check_prompt,
    check_vote_allowed,
    whole_number,
)
from apps.jobs import Job
from apps.judges import disagreement, gold_lines, judge_answers
from apps.pool import Answer, AnswerStats, ModelPool
from apps.votes import Vote, VoteStore
from lab.config import LabConfig
from lab.generation import DecodingConfig
from lab.leaderboard import OUTCOMES
from lab.world import World

MAX_NEW_TOKENS = 256  # the most the arena lets a client ask for
# Between 0 (greedy) and this, logits / temperature overflow to inf and sampling fails.
MIN_TEMPERATURE = 0.01
MAX_SEED = 2**32 - 1  # torch.manual_seed overflows above 2**64 - 1; a smaller bound reads better
ALREADY_VOTED = "You have already voted on these answers: ask again for a new vote."
ANSWERING = "The answers are still coming: vote once they are complete."
GREEDY_BATTLE = (
    "Battles sample: at temperature 0 every answer is fixed, and Compare would show who wrote it. "
    "Set a temperature above 0."
)
# Below these a battle is greedy in all but name: its own seed hardly changes an answer, and
# Compare on the same prompt shows it under its model's name. Battles on the tiny run that
# Compare named a model of: top-p 0.05: 15 of 20; top-p 0.2 or temperature 0.1: 8 of 20;
# temperature 0.3 or top-p 0.5 alone 1 or 0 of 20, but both at once 9 of 20 (0.5 and 0.7: 3);
# temperature 0.5 with top-p 0.9: 0 of 40, as at the page's default 0.7 with 1.0.
MIN_BATTLE_TEMPERATURE = 0.5
MIN_BATTLE_TOP_P = 0.9
NEAR_GREEDY_BATTLE = (
    f"Battles sample: below temperature {MIN_BATTLE_TEMPERATURE} or top-p {MIN_BATTLE_TOP_P} "
    "answers barely vary, and Compare would show who wrote them. Raise the setting for a battle."
)
MAX_COMPARE = 6  # answers side by side on the Compare tab: base, SFT, PPO, DPO, GRPO, ORPO
BATTLE_NAMES = ("Model A", "Model B")
BATTLE_DRAWS = 3  # pairs a battle may draw before it keeps two identical answers
REDRAWING = "Both models wrote the same answer, so there is nothing to choose: asking another pair…"
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
    job_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Held from "is a job running?" to the new job's start: two clicks start one round."""
    cache_locks: dict = field(default_factory=dict, repr=False)
    """One lock per `cache` key, so one thread computes a view while the others wait for it."""
    cache_guard: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Held while a key's lock is looked up or made."""
    voted_battles: set[str] = field(default_factory=set, repr=False)
    """Battle ids already voted on: each request has its own copy of the session, not this."""
    join_backoff: JoinBackoff = field(default_factory=JoinBackoff, repr=False)
    """Wrong join codes per page (Gradio session hash), for the wait before its next try."""
    address_backoff: JoinBackoff = field(
        default_factory=lambda: JoinBackoff(free_tries=ADDRESS_FREE_TRIES), repr=False
    )
    """Wrong join codes per client address, from every page there: a looser cap (a NAT, a proxy)."""
    password_backoff: JoinBackoff = field(default_factory=JoinBackoff, repr=False)
    """Wrong instructor passwords per client address, the same way."""
    instructor_pages: set[str] = field(default_factory=set, repr=False)
    """Pages (Gradio session hashes) where the right instructor password was typed: guesses
    from the same address (a proxy, one NAT for the room) do not make the instructor wait."""


@dataclass
class Session:
    """The answers on one page and what a vote on them needs (a `gr.State`, never shared)."""

    mode: str = ""  # "compare" or "battle": what the answers on screen came from
    prompt: str = ""
    models: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    stats: list[str] = field(default_factory=list)
    rewards: list[float | None] = field(default_factory=list)  # the reward model's, as shown
    decoding: dict = field(default_factory=dict)
    voted: bool = True  # nothing to vote on yet
    battle_id: str = ""  # new with every set of answers; one vote per id (`Arena.voted_battles`)


def new_session() -> Session:
    """A session with nothing on screen yet."""
    return Session()


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
) -> Iterator[tuple[list[str], list[AnswerStats | None]]]:
    """Stream every model's answer at once: yields (texts, stats, None until measured) as they grow."""
    texts, stats = [""] * len(names), [None] * len(names)
    for i, part in arena.pool.stream_many(names, prompt, decoding):
        if isinstance(part, Answer):
            texts[i] = part.text
            stats[i] = arena.pool.stats(names[i], prompt, part)
        else:
            texts[i] = part
        yield texts, stats


def compare_answers(
    arena: Arena, prompt: str, names: list[str], decoding: DecodingConfig
) -> Iterator[tuple[list[str], list[str], list[AnswerStats | None], str]]:
    """The chosen models' answers as they grow: (names, texts, stats, message)."""
    for texts, stats in answer_all(arena, prompt, names, decoding):
        yield names, texts, stats, "Answering…"


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
    session = session or new_session()  # a page's first answers
    note = ""  # what Compare left out of the models asked for
    decoding, problem = parse_decoding(settings)
    problem = check_prompt(prompt) or problem
    if mode == "battle":
        problem = problem or battle_problem(arena, decoding)
        if decoding is not None:
            decoding = battle_decoding(decoding, arena.rng)
        answers = battle_answers(arena, prompt, decoding, arena.rng)
    else:
        names, note = pick_models(names, arena.pool.available)
        problem = problem or ("" if names else f"{note} Pick at least one available model.".strip())
        answers = compare_answers(arena, prompt, names, decoding)
    if problem:
        yield session, [], [], [], problem
        return
    names, texts, stats, lines = [], [], [], []
    # While the answers stream in, the page holds a session with nothing to vote on: a vote
    # clicked now must not land on the previous answers, which are no longer on screen.
    answering = dataclasses.replace(
        session, mode=mode, models=[], answers=[], voted=False, battle_id=""
    )
    try:
        for names, texts, stats, message in answers:
            lines = [format_stats(s) if s else "" for s in stats]
            yield answering, names, texts, (lines if mode == "compare" else []), message
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
        stats=lines,
        rewards=[s.reward if s else None for s in stats],
        decoding=dataclasses.asdict(decoding),
        voted=False,
        battle_id=uuid.uuid4().hex,
    )
    hint = (
        f"Which answer is best? {note}".strip() if mode == "compare" else "Which is better, A or B?"
    )
    yield done, names, texts, (lines if mode == "compare" else []), hint


def pick_models(names: object, available: list[str]) -> tuple[list[str], str]:
    """The requested models that are available, each once, in order, at most MAX_COMPARE; and
    a note on what was left out (a model gone since the page was built, a name an API client
    made up), without repeating the names: a client may send anything."""
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        return [], ""
    known = [n for n in names if isinstance(n, str) and n in available]
    wanted, notes = list(dict.fromkeys(known)), []
    if unknown := len(names) - len(known):
        notes.append(f"{unknown} of the models asked for {'is' if unknown == 1 else 'are'} "
                     "not in this arena (left out).")  # fmt: skip
    if len(wanted) > MAX_COMPARE:
        notes.append(f"At most {MAX_COMPARE} models answer at once: the first {MAX_COMPARE} did.")
    return wanted[:MAX_COMPARE], " ".join(notes)


def compare_choices(arena: Arena, selected: list[str] | None) -> tuple[list[str], list[str]]:
    """Compare's model list as it is now (a feedback round adds models live), and the
    selection kept to the models still there."""
    available = arena.pool.available
    kept = [name for name in selected or [] if name in available]
    return available, kept or available[:MAX_COMPARE]


def pick_pair(
    names: list[str], rng: random.Random, avoid: set[frozenset[str]] | None = None
) -> list[str]:
    """Two different models, every ordered pair equally likely; [] when fewer than two.

    `avoid`: pairs already tried in this battle, left out while any other pair remains."""
    if len(names) < 2:
        return []
    pairs = [[a, b] for a in names for b in names if a != b]
    fresh = [p for p in pairs if frozenset(p) not in (avoid or set())]
    return rng.choice(fresh or pairs)


def battle_problem(arena: Arena, decoding: DecodingConfig | None) -> str:
    """What stops a battle that a good prompt and good settings do not ('' if nothing)."""
    if len(arena.pool.available) < 2:
        return "The arena needs two working models for a battle."
    if decoding is None:
        return ""
    if decoding.temperature == 0:
        return GREEDY_BATTLE
    if decoding.temperature < MIN_BATTLE_TEMPERATURE or decoding.top_p < MIN_BATTLE_TOP_P:
        return NEAR_GREEDY_BATTLE
    return ""


def battle_decoding(decoding: DecodingConfig, rng: random.Random) -> DecodingConfig:
    """A battle's decoding: the page's settings with a seed of its own. With the page's seed,
    asking Compare the same prompt would show the very same answers under the models' names."""
    return dataclasses.replace(decoding, seed=rng.randrange(MAX_SEED + 1))


def same_answers(texts: list[str]) -> bool:
    """Two answers that are one text (up to surrounding whitespace): a vote on them teaches nothing."""
    return len(texts) == 2 and texts[0].strip() == texts[1].strip()


def battle_answers(
    arena: Arena, prompt: str, decoding: DecodingConfig, rng: random.Random
) -> Iterator[tuple[list[str], list[str], list[AnswerStats | None], str]]:
    """A blind battle's answers as they grow: (names, texts, stats, message).

    Two models often write the very same answer (a quarter of a simulated class's battles on
    the tiny profile), and a vote on two identical answers is a student's time for no
    preference. So the battle asks another pair, up to `BATTLE_DRAWS` pairs, and keeps the last
    answers either way. The first pair is uniform; each draw avoids the pairs already tried.
    """
    tried: set[frozenset[str]] = set()
    for draw in range(BATTLE_DRAWS):
        names = pick_pair(arena.pool.available, rng, tried)
        tried.add(frozenset(names))
        texts: list[str] = []
        for texts, stats in answer_all(arena, prompt, names, decoding):
            yield names, texts, stats, (REDRAWING if draw else "Answering…")
        if not same_answers(texts):
            return


def vote(
    arena: Arena,
    outcome: str,
    winner: int | None,
    session: Session | None,
    student: Student,
    mode: str = "",
) -> tuple[Session, str]:
    """`student`'s vote on the answers on screen; acknowledged only once it is committed.

    `mode` is the tab the vote comes from ("" = any): Compare and Battle share one session, so
    a vote cast on one tab must not land on the answers the other tab asked for.
    The checks and the insert run under `arena.vote_lock`: of several votes sent at once on one
    set of answers exactly one is stored, and bursts cannot get round the quota or rate limit.
    """
    session = session or new_session()
    problem = check_ballot(outcome, winner, session, mode)
    if problem:
        return session, problem
    with arena.vote_lock:
        if session.battle_id in arena.voted_battles:
            return dataclasses.replace(session, voted=True), ALREADY_VOTED
        now = time.time()
        problem = check_vote_allowed(
            arena.classroom,
            student.joined,
            arena.store.count(student.annotator),
            arena.store.count(
                student.annotator, since=now - arena.classroom.min_seconds_between_votes
            ),
        )
        if problem:
            return session, problem
        vote_id = arena.store.add(
            Vote(
                annotator=student.annotator,
                mode=session.mode,
                prompt=session.prompt,
                models=tuple(session.models),
                responses=tuple(session.answers),
                outcome=outcome,
                winner=winner if outcome == "win" else None,
                decoding=session.decoding,
                group=student.group,
            )
        )
        arena.voted_battles.add(session.battle_id)
    message = f"Vote #{vote_id} saved — thank you."
    if session.mode == "battle":
        message += " " + reveal(session)
    return dataclasses.replace(session, voted=True), message


def check_ballot(outcome: object, winner: object, session: Session, mode: str = "") -> str | None:
    """What is wrong with this vote on this session's answers, before any limit; None if nothing."""
    if not session.answers and not session.voted:
        return ANSWERING
    if not session.answers or not session.battle_id:
        return "Ask the models first, then vote on their answers."
    if session.voted:
        return ALREADY_VOTED
    if mode and session.mode != mode:
        return f"Your latest answers came from the {session.mode.title()} tab: vote there."
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


def gold_reveal(arena: Arena, session: Session, names: list[str]) -> tuple[list[str], str]:
    """After a vote: the stats lines with gold scores, and the disagreement warning ('' if none)."""
    if arena.world is None:
        return list(session.stats), ""
    try:
        judged = judge_answers(
            arena.pool, arena.world, session.prompt, session.answers, session.rewards
        )
    except Exception:  # noqa: BLE001 - the vote is stored; the reveal only lacks its gold line
        logger.exception("judging the answers to reveal failed")
        return list(session.stats), ""
    return gold_lines(session.stats, judged), disagreement(names, judged)
