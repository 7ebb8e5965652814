"""Simulated voters for demos and load tests: the tiny world's annotators, or a class with a taste.

python -m apps.simulate --run runs/tiny --votes 50
python -m apps.simulate --run runs/tiny --db data/arena.sqlite --votes 200 --taste terse --group terse

Each vote is a blind battle between two models of the arena's pool, drawn and answered as the
arena's battles are (`apps.handlers.battle_answers`: another pair when two answers are the same
text); the vote is stored with mode "simulated".
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path

from apps.handlers import battle_answers
from apps.loading import load_arena
from apps.votes import Vote
from lab.data import load_prompts
from lab.evaluation import EVAL_DECODING
from lab.votes_db import GROUP_NAME, GROUP_RULE
from lab.world import World, last_content
from lab.world.annotators import Annotator, make_annotators
from lab.world.build import FILES
from lab.world.judge import score
from lab.world.tastes import TASTES, make_class

CLASS_SIZE = 20  # simulated people who vote; each vote is cast by one of them at random


def judge_battle(
    world: World, annotator: Annotator, prompt: str, answers: list[str], rng: random.Random
) -> tuple[str, int | None]:
    """One simulated vote on two answers: ("win", index), ("tie", None) or ("both_bad", None)."""
    a, b = (world.features(prompt, answer) for answer in answers)
    if a == b:
        return "tie", None
    utility = [score(f, annotator.weights) for f in (a, b)]
    if max(utility) < 0 and rng.random() < 0.5:  # two poor answers: half the time say so
        return "both_bad", None
    return "win", (0 if annotator.prefers_first(a, b, rng) else 1)


def simulate_votes(
    arena,
    n: int,
    seed: int = 0,
    taste: str | None = None,
    group: str | None = None,
    noise: float = 0.3,
) -> list[int]:
    """Cast `n` battle votes on the world's eval prompts; returns vote ids.

    The voters are the world's annotators (gold judge, a little taste, noise), or with `taste`
    a class sharing that taste (`lab.world.tastes`); every vote is stored with `group`.
    """
    if arena.world is None or arena.run_dir is None:
        raise ValueError("simulated annotators need the tiny world's run folder (--run)")
    if group and not GROUP_NAME.fullmatch(group):
        raise ValueError(f"--group: not a group's name ({GROUP_RULE})")
    if len(arena.pool.available) < 2:
        raise ValueError("a battle needs two working models in the arena's pool")
    rng = random.Random(seed)
    people = (
        make_class(taste, CLASS_SIZE, seed, noise)
        if taste
        else make_annotators(seed, CLASS_SIZE, noise)
    )
    prompts = [
        last_content(p, "user")
        for p in load_prompts(arena.run_dir / "world" / FILES["eval_prompts"])["prompt"]
    ]
    ids = []
    for _ in range(n):
        prompt = rng.choice(prompts)
        decoding = dataclasses.replace(EVAL_DECODING, seed=rng.randrange(10**6))
        *_, (names, answers, _, _) = battle_answers(arena, prompt, decoding, rng)
        person = rng.choice(people)
        outcome, winner = judge_battle(arena.world, person, prompt, answers, rng)
        vote = Vote(
            person.annotator_id,
            "simulated",
            prompt,
            tuple(names),
            tuple(answers),
            outcome,
            winner,
            dataclasses.asdict(decoding),
            group or "",
        )
        ids.append(arena.store.add(vote))
    return ids


def main(argv: list[str] | None = None) -> None:
    """Cast simulated votes into an arena database."""

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"))
    parser.add_argument("--db", type=Path, default=Path("data/arena.sqlite"))
    parser.add_argument("--votes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--taste", choices=list(TASTES), help="a class sharing this taste votes")
    parser.add_argument("--group", default="", help="the group the votes are stored with")
    args = parser.parse_args(argv)
    if args.group and not GROUP_NAME.fullmatch(args.group):
        parser.error(f"--group: not a group's name ({GROUP_RULE})")
    if args.votes < 1:
        parser.error(f"--votes: at least 1, got {args.votes}")
    arena = load_arena(args.run, {}, args.db)
    try:
        ids = simulate_votes(arena, args.votes, args.seed, args.taste, args.group)
    except (OSError, ValueError) as err:  # the run cannot vote: say so, leave no empty database
        arena.store.remove_if_unused()
        raise SystemExit(f"error: {err}") from None
    who = f"a {args.taste} class" if args.taste else "the world's annotators"
    group = f" (group {args.group!r})" if args.group else ""
    print(f"cast {len(ids)} simulated votes by {who} into {args.db}{group}")


if __name__ == "__main__":
    main()
