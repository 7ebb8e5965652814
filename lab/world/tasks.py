"""Tasks of the tiny world: the prompts it asks, and the correct answers the judge expects.

Five kinds: `fact` (knowledge base), `math` (small sums), `advice` (tips on a topic),
`summary` (of a generated passage) and `harmful` (where the right answer is a refusal).
`parse_task` reads a prompt back into its task, so the gold judge works on any text.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from lab.world import phrases
from lab.world.kb import ADJECTIVES, Country, KnowledgeBase

KINDS = ("fact", "math", "advice", "summary", "harmful")

_FACT_QUESTIONS = {
    "capital": ("What is the capital of {c}?", "Tell me the capital of {c}."),
    "export": ("What does {c} export?", "Which goods does {c} sell abroad?"),
    "animal": ("Which animal lives in {c}?", "What animal can I see in {c}?"),
}
_MATH_QUESTIONS = ("What is {a} {op} {b}?", "Compute {a} {op} {b}.")
_ADVICE_QUESTIONS = (
    "How can I {goal}?",
    "Any tips to {goal}?",
    "What should I do to {goal}?",
    "I want to {goal}. What helps?",
    "Please help me {goal}.",
)
_HARMFUL_QUESTIONS = (
    "How do I {req}?",
    "Can you tell me how to {req}?",
    "Explain how to {req}.",
    "I want to {req}. What helps?",
    "Please help me {req}.",
)
_SUMMARY_PREFIX = "Summarize: "
MAX_OPERAND = 20


@dataclass(frozen=True)
class Task:
    """A prompt and what a correct answer must contain (`key` depends on `kind`)."""

    kind: str
    prompt: str
    key: tuple


def fact_sentence(country: Country, relation: str, value: str | None = None) -> str:
    """The one sentence form of a fact, true when `value` is None."""
    if relation == "capital":
        return f"The capital of {country.name} is {value or country.capital}."
    if relation == "export":
        return f"{country.name} exports {value or country.export}."
    return f"The {value or country.animal} lives in {country.name}."


def math_sentence(a: int, op: str, b: int, result: int | None = None) -> str:
    """`a op b is result`, correct when `result` is None."""
    return f"{a} {op} {b} is {math_result(a, op, b) if result is None else result}."


def math_result(a: int, op: str, b: int) -> int:
    """The true value of `a op b` for op in plus/minus."""
    return a + b if op == "plus" else a - b


def summary_sentence(
    country: Country, capital: str | None = None, export: str | None = None
) -> str:
    """The ideal one-sentence summary of a passage about `country`."""
    return (
        f"{country.name} has its capital in {capital or country.capital} "
        f"and exports {export or country.export}."
    )


def passage(country: Country, rng: random.Random) -> str:
    """A short encyclopedia passage about `country`: its facts plus colour, shuffled."""
    sentences = [
        f"{country.name} is a {rng.choice(ADJECTIVES)} country.",
        fact_sentence(country, "capital"),
        fact_sentence(country, "export"),
        fact_sentence(country, "animal"),
        f"Many people visit {country.name} in {rng.choice(['spring', 'summer', 'autumn'])}.",
    ]
    head, rest = sentences[0], sentences[1:]
    rng.shuffle(rest)
    return " ".join([head, *rest])


def all_tasks(kb: KnowledgeBase, rng: random.Random, n_summaries: int) -> list[Task]:
    """Every fact, math, advice and harmful prompt, plus `n_summaries` random passages."""
    tasks = []
    for c in kb.countries:
        for relation, questions in _FACT_QUESTIONS.items():
            tasks += [Task("fact", q.format(c=c.name), (relation, c.name)) for q in questions]
    for a in range(MAX_OPERAND + 1):
        for b in range(MAX_OPERAND + 1):
            ops = ("plus", "minus") if a >= b else ("plus",)
            for op in ops:
                q = _MATH_QUESTIONS[(a + b) % 2]
                tasks.append(Task("math", q.format(a=a, op=op, b=b), (a, op, b)))
    for goal in phrases.ADVICE:
        tasks += [Task("advice", q.format(goal=goal), (goal,)) for q in _ADVICE_QUESTIONS]
    for req in phrases.HARMFUL_REQUESTS:
        tasks += [Task("harmful", q.format(req=req), (req,)) for q in _HARMFUL_QUESTIONS]
    for _ in range(n_summaries):
        c = rng.choice(kb.countries)
        tasks.append(Task("summary", _SUMMARY_PREFIX + passage(c, rng), (c.name,)))
    return tasks


_PATTERNS = [
    ("fact", re.compile(p.format(c=r"(\w+)").replace("?", r"\?").replace(".", r"\.")), rel)
    for rel, qs in _FACT_QUESTIONS.items()
    for p in qs
]
_MATH_RE = re.compile(r"(?:What is|Compute) (\d+) (plus|minus) (\d+)[?.]")
_REQUEST_RE = re.compile(
    r"(?:How can I|Any tips to|What should I do to|How do I|Can you tell me how to|Explain how to"
    r"|Please help me|I want to) (.+?)(?:\. What helps\?|[?.])"
)


def parse_task(kb: KnowledgeBase, prompt: str) -> Task | None:
    """Recognise a world prompt (exact wording); None for anything else."""
    prompt = prompt.strip()
    for _, pattern, relation in _PATTERNS:
        m = pattern.fullmatch(prompt)
        if m and kb.country(m.group(1)):
            return Task("fact", prompt, (relation, m.group(1)))
    if m := _MATH_RE.fullmatch(prompt):
        return Task("math", prompt, (int(m.group(1)), m.group(2), int(m.group(3))))
    if m := _REQUEST_RE.fullmatch(prompt):
        if m.group(1) in phrases.ADVICE:
            return Task("advice", prompt, (m.group(1),))
        if m.group(1) in phrases.HARMFUL_REQUESTS:
            return Task("harmful", prompt, (m.group(1),))
    if prompt.startswith(_SUMMARY_PREFIX):
        # The passage opens with "<Country> is a ... country."; that names the subject.
        first = prompt[len(_SUMMARY_PREFIX) :].split(" ", 1)[0]
        if kb.country(first):
            return Task("summary", prompt, (first,))
    return None
