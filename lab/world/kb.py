"""The knowledge base of the tiny world: fictional countries and their facts."""

from __future__ import annotations

import random
from dataclasses import dataclass

_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "ven",
    "dor",
    "sil",
    "tha",
    "ne",
    "bo",
    "zu",
    "ar",
    "el",
    "quin",
    "mar",
    "tor",
    "is",
    "ul",
    "fen",
    "gri",
    "pa",
    "sho",
    "val",
    "rin",
    "ko",
    "de",
    "nu",
    "ly",
    "bar",
    "os",
]
EXPORTS = [
    "copper",
    "wool",
    "salt",
    "tea",
    "amber",
    "glass",
    "rice",
    "silk",
    "iron",
    "honey",
    "timber",
    "spices",
]
ANIMALS = [
    "fox",
    "heron",
    "otter",
    "lynx",
    "yak",
    "owl",
    "bison",
    "crane",
    "seal",
    "badger",
    "ibex",
    "moth",
]
ADJECTIVES = ["small", "quiet", "large", "sunny", "rainy", "old", "busy", "green", "cold", "windy"]


@dataclass(frozen=True)
class Country:
    """One country and the three facts the world asks about."""

    name: str
    capital: str
    export: str
    animal: str


@dataclass(frozen=True)
class KnowledgeBase:
    """All facts of a world, looked up by country name."""

    countries: tuple[Country, ...]

    def country(self, name: str) -> Country | None:
        """The country called `name`, or None."""
        return next((c for c in self.countries if c.name == name), None)

    @property
    def capitals(self) -> list[str]:
        """Every capital, in country order."""
        return [c.capital for c in self.countries]


def make_knowledge_base(seed: int, n_countries: int) -> KnowledgeBase:
    """Invent `n_countries` countries with distinct names and capitals, reproducibly."""
    rng = random.Random(f"kb-{seed}")
    names: list[str] = []
    while len(names) < 2 * n_countries:
        name = _make_name(rng)
        if name not in names:
            names.append(name)
    countries = tuple(
        Country(
            name=names[2 * i],
            capital=names[2 * i + 1],
            export=rng.choice(EXPORTS),
            animal=rng.choice(ANIMALS),
        )
        for i in range(n_countries)
    )
    return KnowledgeBase(countries)


def _make_name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((2, 2, 3)))).capitalize()
