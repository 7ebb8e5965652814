"""Responses of graded quality: a `ResponseSpec` says how good each part is, `compose` writes it.

Three writers share one composer and differ only in how they draw specs:
`web` (the pretraining chats: as likely to ramble or be rude as to help), `demo`
(SFT demonstrators: right and polite, but often padded) and `pair` (candidates shown to annotators).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

from lab.world import phrases
from lab.world.kb import ANIMALS, EXPORTS, Country, KnowledgeBase
from lab.world.tasks import Task, fact_sentence, math_result, math_sentence, summary_sentence

CORES = ("correct", "partial", "wrong", "off_topic", "none")
TONES = ("polite", "plain", "rude")


@dataclass(frozen=True)
class ResponseSpec:
    """How good each part of a response is."""

    core: str = "correct"
    """correct | partial | wrong | off_topic | none: the answer itself."""
    opener: str = "plain"
    """polite | plain | rude: the first sentence's tone."""
    closer: str = "plain"
    """polite | plain | rude: the last sentence's tone."""
    n_filler: int = 0
    """Padding sentences that say nothing."""
    repeat: bool = False
    """Whether the answer is said twice."""


# name -> (core weights, opener weights, closer weights, filler weights by count, P(repeat))
_WRITERS = {
    "web": ((3, 1, 3, 3, 2), (3, 4, 3), (2, 5, 3), (3, 2, 2, 1, 1), 0.2),
    "demo": ((19, 1, 0, 0, 0), (6, 4, 0), (3, 7, 0), (5, 3, 2, 0, 0), 0.0),
    "pair": ((12, 2, 3, 2, 1), (5, 4, 1), (3, 6, 1), (4, 3, 2, 1, 0), 0.05),
}


def sample_spec(writer: str, rng: random.Random) -> ResponseSpec:
    """Draw a spec from one writer's distribution (`web`, `demo` or `pair`)."""
    cores, openers, closers, fillers, p_repeat = _WRITERS[writer]
    return ResponseSpec(
        core=rng.choices(CORES, cores)[0],
        opener=rng.choices(TONES, openers)[0],
        closer=rng.choices(TONES, closers)[0],
        n_filler=rng.choices(range(len(fillers)), fillers)[0],
        repeat=rng.random() < p_repeat,
    )


def mutate(spec: ResponseSpec, rng: random.Random, n_changes: int = 1) -> ResponseSpec:
    """A near copy of `spec`: `n_changes` of its parts redrawn (a close, hard-to-judge pair)."""
    fresh = sample_spec("pair", rng)
    names = rng.sample(("core", "opener", "closer", "n_filler", "repeat"), n_changes)
    return dataclasses.replace(spec, **{name: getattr(fresh, name) for name in names})


def compose(
    kb: KnowledgeBase, task: Task, spec: ResponseSpec, other: Task, rng: random.Random
) -> str:
    """Write a response to `task` following `spec`; `other` is answered when off topic."""
    core = _core(kb, task, spec.core, other, rng)
    body = core + (core[:1] if spec.repeat and core else [])
    for _ in range(spec.n_filler):
        body.insert(rng.randint(0, len(body)), rng.choice(phrases.FILLER))
    opener = _tone(spec.opener, phrases.POLITE_OPENERS, phrases.RUDE_OPENERS, rng)
    closer = _tone(spec.closer, phrases.POLITE_CLOSERS, phrases.RUDE_CLOSERS, rng)
    # A writer with nothing to say still says something: datasets hold no empty answers.
    return " ".join(opener + body + closer) or rng.choice(phrases.FILLER)


def _tone(
    tone: str, polite: tuple[str, ...], rude: tuple[str, ...], rng: random.Random
) -> list[str]:
    if tone == "polite":
        return [rng.choice(polite)]
    return [rng.choice(rude)] if tone == "rude" else []


def _core(
    kb: KnowledgeBase, task: Task, quality: str, other: Task, rng: random.Random
) -> list[str]:
    if quality == "none":
        return []
    if quality == "off_topic":
        return _core(kb, other, "correct", other, rng)
    good = quality == "correct"
    if task.kind == "fact":
        relation, name = task.key
        country = kb.country(name)
        if quality == "partial":
            # Half an answer: a true fact about the country, but not the one asked.
            relation = rng.choice([r for r in ("capital", "export", "animal") if r != relation])
        value = None if quality != "wrong" else _wrong_value(kb, relation, country, rng)
        return [fact_sentence(country, relation, value)]
    if task.kind == "math":
        a, op, b = task.key
        result = math_result(a, op, b)
        if quality == "wrong":
            result += rng.choice((-3, -2, -1, 1, 2, 3))
        return [math_sentence(a, op, b, result)]
    if task.kind == "advice":
        tips = phrases.ADVICE[task.key[0]]
        if quality == "wrong":
            return rng.sample(phrases.BAD_TIPS, 2)
        return rng.sample(tips, 2 if good else 1)
    if task.kind == "summary":
        country = kb.country(task.key[0])
        if good:
            return [summary_sentence(country)]
        if quality == "partial":
            return [fact_sentence(country, rng.choice(("capital", "export")))]
        return [summary_sentence(country, capital=_wrong_value(kb, "capital", country, rng))]
    # harmful: the correct answer refuses, the wrong one complies.
    if quality == "wrong":
        return list(phrases.COMPLIANCE[: rng.choice((2, 3))])
    refusal = [rng.choice(phrases.REFUSALS)]
    return refusal + ([rng.choice(phrases.SAFE_ALTERNATIVES)] if good else [])


def _wrong_value(kb: KnowledgeBase, relation: str, country: Country, rng: random.Random) -> str:
    pool = {"capital": kb.capitals, "export": EXPORTS, "animal": ANIMALS}[relation]
    true = getattr(country, relation)
    return rng.choice([v for v in pool if v != true])
