"""Simulated voters for demos and load tests: the tiny world's annotators (gold judge + taste + noise).

python -m apps.simulate --run runs/tiny --votes 50
"""

from __future__ import annotations

import argparse
import dataclasses
import random
from pathlib import Path

from apps.votes import Vote
from lab.data import load_prompts
from lab.evaluation import EVAL_DECODING
from lab.world import World, last_content
from lab.world.annotators import Annotator, make_annotators
from lab.world.build import FILES


def judge_battle(
    world: World, annotator: Annotator, prompt: str, answers: list[str], rng: random.Random
) -> tuple[str, int | None]:
    """One simulated vote on two answers: ("win", index), ("tie", None) or ("both_bad", None)."""
    a, b = (world.features(prompt, answer) for answer in answers)
    if a == b:
        return "tie", None
    gold = [world.gold_score(prompt, answer) for answer in answers]
    if max(gold) < 0 and rng.random() < 0.5:  # two poor answers: half the time say so
        return "both_bad", None
    return "win", (0 if annotator.prefers_first(a, b, rng) else 1)


def simulate_votes(arena, n: int, seed: int = 0, noise: float = 0.3) -> list[int]:
    """Cast `n` battle votes by simulated annotators on the world's eval prompts; returns vote ids."""
    if arena.world is None or arena.run_dir is None:
        raise ValueError("simulated annotators need the tiny world's run folder (--run)")
    rng = random.Random(seed)
    people = make_annotators(seed, 20, noise)
    prompts = [
        last_content(p, "user")
        for p in load_prompts(arena.run_dir / "world" / FILES["eval_prompts"])["prompt"]
    ]
    ids = []
    for _ in range(n):
        names = rng.sample(arena.pool.available, 2)
        prompt = rng.choice(prompts)
        decoding = dataclasses.replace(EVAL_DECODING, seed=rng.randrange(10**6))
        answers = [arena.pool.answer(name, prompt, decoding).text for name in names]
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
        )
        ids.append(arena.store.add(vote))
    return ids


def main(argv: list[str] | None = None) -> None:
    """Cast simulated votes into an arena database."""
    from apps.arena import load_arena  # the CLI's own loading, so both read a run the same way

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"))
    parser.add_argument("--db", type=Path, default=Path("data/arena.sqlite"))
    parser.add_argument("--votes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    arena = load_arena(args.run, {}, args.db)
    ids = simulate_votes(arena, args.votes, args.seed)
    print(f"cast {len(ids)} simulated votes into {args.db}")


if __name__ == "__main__":
    main()
