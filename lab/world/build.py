"""Generate the tiny world's datasets into a run folder, reproducibly from the seed.

Prompts are split three ways first (eval / test / train, disjoint by text), so held-out
evaluation never sees a training prompt. Then each file is drawn from its pool.
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
from collections.abc import Iterable
from pathlib import Path

from lab import metrics as M
from lab.config import WorldConfig
from lab.world import World, phrases
from lab.world.annotators import Annotator, make_annotators
from lab.world.judge import score
from lab.world.responses import compose, mutate, sample_spec
from lab.world.tasks import KINDS, Task, all_tasks, fact_sentence, math_sentence, passage

FILES = {
    "pretrain": "pretrain.jsonl",
    "sft": "sft.jsonl",
    "pairs_train": "preferences_train.jsonl",
    "pairs_test": "preferences_test.jsonl",
    "ppo_prompts": "prompts_ppo.jsonl",
    "eval_prompts": "prompts_eval.jsonl",
}
KIND_WEIGHTS = {"fact": 0.25, "math": 0.25, "advice": 0.15, "summary": 0.2, "harmful": 0.15}
HELD_OUT = {"eval": 0.15, "test": 0.15}
MAX_EVAL_SHARE = 1 / 3  # of a kind's prompts held out, when an even spread of kinds needs it
MIN_GOLD_GAP = 0.1  # pairs closer than this in gold score are redrawn: no true preference
P_NEAR_PAIR = 0.7  # share of pairs whose answers differ in one or two parts only
CHECKABLE = ("fact", "math", "summary")  # kinds whose answer is right or wrong, not better or worse


def build_world(cfg: WorldConfig, out_dir: Path) -> dict:
    """Write every dataset file of the world to `out_dir` and return its statistics."""
    world = World.from_seed(cfg.seed, cfg.n_countries)
    rng = random.Random(f"build-{cfg.seed}")
    tasks = all_tasks(world.kb, rng, n_summaries=4 * cfg.n_eval_prompts + 2000)
    pools = split_pools(tasks, rng, cfg.n_eval_prompts)
    people = make_annotators(cfg.seed, cfg.n_annotators, cfg.annotator_noise)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {
        "pretrain": pretrain_docs(world, pools["train"], cfg.n_pretrain_docs, rng),
        "sft": [demo(world, t, pools["train"], rng) for t in draw(pools["train"], cfg.n_sft, rng)],
        "pairs_train": with_fact_checks(
            pairs(world, pools["train"], cfg.n_pairs_train, people, rng),
            fact_check_pairs(world, pools["train"], cfg.n_fact_check_pairs, people, cfg.seed),
            cfg.seed,
        ),
        "pairs_test": pairs(world, pools["test"], cfg.n_pairs_test, people, rng),
        "ppo_prompts": [prompt_row(t) for t in draw(pools["train"], cfg.n_ppo_prompts, rng)],
        "eval_prompts": [
            prompt_row(t) for t in draw_distinct(pools["eval"], cfg.n_eval_prompts, rng)
        ],
    }
    for name, items in rows.items():
        write_jsonl(out_dir / FILES[name], items)
    (out_dir / "world.json").write_text(
        json.dumps({"seed": cfg.seed, "countries": [vars(c) for c in world.kb.countries]}, indent=1)
    )
    return world_stats(rows)


def split_pools(
    tasks: list[Task], rng: random.Random, n_eval: int = 0
) -> dict[str, dict[str, list[Task]]]:
    """Split each kind's prompts into disjoint eval / test / train pools.

    The eval pool of a kind holds `HELD_OUT["eval"]` of its prompts, or more, up to
    `MAX_EVAL_SHARE`, where that is needed for `n_eval` prompts spread evenly over the kinds.
    """
    of_kind = {k: [t for t in tasks if t.kind == k] for k in KINDS}
    even = balanced_counts({k: round(MAX_EVAL_SHARE * len(v)) for k, v in of_kind.items()}, n_eval)
    pools: dict[str, dict[str, list[Task]]] = {"eval": {}, "test": {}, "train": {}}
    for kind, ts in of_kind.items():
        rng.shuffle(ts)
        n_held = max(1, round(HELD_OUT["eval"] * len(ts)), even[kind])
        n_test = max(1, round(HELD_OUT["test"] * len(ts)))
        pools["eval"][kind] = ts[:n_held]
        pools["test"][kind] = ts[n_held : n_held + n_test]
        pools["train"][kind] = ts[n_held + n_test :]
    return pools


def draw(pool: dict[str, list[Task]], n: int, rng: random.Random) -> list[Task]:
    """`n` tasks, kinds drawn by `KIND_WEIGHTS`, prompts with replacement."""
    kinds = rng.choices(list(KIND_WEIGHTS), list(KIND_WEIGHTS.values()), k=n)
    return [rng.choice(pool[k]) for k in kinds]


def balanced_counts(available: dict[str, int], n: int) -> dict[str, int]:
    """How many of `n` prompts each kind gets: equal shares, a kind short of prompts giving
    its remainder to the others equally. `{"a": 2, "b": 50}, 10 -> {"a": 2, "b": 8}`."""
    counts = dict.fromkeys(available, 0)
    while sum(counts.values()) < n:
        open_kinds = [k for k in available if counts[k] < available[k]]
        if not open_kinds:
            break
        for k in open_kinds[: n - sum(counts.values())]:
            counts[k] += 1
    return counts


def draw_distinct(pool: dict[str, list[Task]], n: int, rng: random.Random) -> list[Task]:
    """Up to `n` distinct tasks, as evenly spread over the kinds as the pool allows."""
    counts = balanced_counts({k: len(pool[k]) for k in KINDS}, n)
    chosen = [t for k in KINDS for t in rng.sample(pool[k], counts[k])]
    rng.shuffle(chosen)
    return chosen


def pretrain_docs(world: World, pool: dict, n: int, rng: random.Random) -> list[dict]:
    """The base model's corpus: encyclopedia, sums, tip lists, rambling and mixed-quality chats."""
    kb, docs = world.kb, []
    for _ in range(n):
        kind = rng.choices(("chat", "passage", "math", "tips", "ramble"), (40, 20, 15, 10, 15))[0]
        if kind == "chat":
            t = draw(pool, 1, rng)[0]
            response = compose(kb, t, sample_spec("web", rng), draw(pool, 1, rng)[0], rng)
            docs.append({"messages": [user(t.prompt), assistant(response)]})
            continue
        if kind == "passage":
            text = passage(rng.choice(kb.countries), rng)
        elif kind == "math":
            sums = [
                (rng.randint(0, 20), rng.choice(("plus", "minus")), rng.randint(0, 20))
                for _ in range(6)
            ]
            text = " ".join(math_sentence(a, op, b) for a, op, b in sums if op == "plus" or a >= b)
        elif kind == "tips":
            goal = rng.choice(list(phrases.ADVICE))
            text = f"Tips to {goal}: " + " ".join(rng.sample(phrases.ADVICE[goal], 3))
        else:
            c = rng.choice(kb.countries)
            bits = [
                *phrases.FILLER,
                *phrases.RUDE,
                fact_sentence(c, rng.choice(("capital", "export"))),
            ]
            text = " ".join(rng.choices(bits, k=rng.randint(3, 7)))
        docs.append({"text": text})
    return docs


def demo(world: World, task: Task, pool: dict, rng: random.Random) -> dict:
    """One SFT demonstration: a demonstrator's answer (right, sometimes padded)."""
    response = compose(world.kb, task, sample_spec("demo", rng), draw(pool, 1, rng)[0], rng)
    return {
        "prompt": [user(task.prompt)],
        "completion": [assistant(response)],
        "kind": task.kind,
        "gold": round(world.gold_score(task.prompt, response), 4),
    }


def pairs(
    world: World, pool: dict, n: int, people: list[Annotator], rng: random.Random
) -> list[dict]:
    """`n` preference pairs: two candidates per prompt, ordered by one annotator's vote."""
    out = []
    for task in draw(pool, n, rng):
        for _ in range(100):
            spec_a = sample_spec("pair", rng)
            near = rng.random() < P_NEAR_PAIR
            spec_b = mutate(spec_a, rng, rng.choice((1, 2))) if near else sample_spec("pair", rng)
            a, b = (
                compose(world.kb, task, s, draw(pool, 1, rng)[0], rng) for s in (spec_a, spec_b)
            )
            fa, fb = world.features(task.prompt, a), world.features(task.prompt, b)
            if a != b and abs(score(fa) - score(fb)) >= MIN_GOLD_GAP:
                break
        else:
            raise RuntimeError(f"could not draw two distinguishable answers to {task.prompt!r}")
        out.append(vote(world, task, a, b, rng.choice(people), rng))
    return out


def vote(world: World, task: Task, a: str, b: str, person: Annotator, rng: random.Random) -> dict:
    """One preference row: answers `a` and `b` to `task`, ordered by `person`'s vote."""
    fa, fb = world.features(task.prompt, a), world.features(task.prompt, b)
    if not person.prefers_first(fa, fb, rng):
        (a, fa), (b, fb) = (b, fb), (a, fa)
    return {
        "prompt": [user(task.prompt)],
        "chosen": [assistant(a)],
        "rejected": [assistant(b)],
        "kind": task.kind,
        "annotator_id": person.annotator_id,
        "gold_chosen": round(score(fa), 4),
        "gold_rejected": round(score(fb), 4),
    }


def fact_check_pairs(
    world: World, pool: dict, n: int, people: list[Annotator], seed: int
) -> list[dict]:
    """`n` pairs whose answers differ only in whether the answer is right: a correct answer
    against the same tone and padding with a wrong value, or with another question's answer.

    Ordinary pairs rarely contrast a right fact with a wrong one in the same words, so a reward
    model learns style from them and cannot check facts. These pairs make it look at the fact.
    They have a random stream of their own: every other file is the same with or without them.
    """
    rng, out = random.Random(f"fact-check-{seed}"), []
    while len(out) < n:
        kind = rng.choice(CHECKABLE)
        task, other = rng.choice(pool[kind]), rng.choice(pool[kind])  # `other`: the same kind
        spec = sample_spec("pair", rng)
        wrong = rng.choice(("wrong", "off_topic"))
        specs = (dataclasses.replace(spec, core="correct"), dataclasses.replace(spec, core=wrong))
        a, b = (compose(world.kb, task, s, other, rng) for s in specs)
        if a == b:  # `other` was the same question
            continue
        out.append(vote(world, task, a, b, rng.choice(people), rng))
    return out


def with_fact_checks(ordinary: list[dict], checks: list[dict], seed: int) -> list[dict]:
    """The training pairs: ordinary and fact-check pairs mixed, so that a cap on pairs keeps both."""
    if not checks:
        return ordinary  # without them, the world is what it always was, byte for byte
    both = ordinary + checks
    random.Random(f"fact-check-mix-{seed}").shuffle(both)
    return both


def prompt_row(task: Task) -> dict:
    """A prompt-only row (PPO rollouts and evaluation)."""
    return {"prompt": [user(task.prompt)], "kind": task.kind}


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """One JSON object per line, UTF-8, keys in a fixed order (reproducible bytes)."""
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def world_stats(rows: dict[str, list[dict]]) -> dict:
    """Sizes and sanity numbers: annotator agreement with gold, SFT gold mean."""
    stats: dict = {f"{M.WORLD_PREFIX}n_{name}": len(items) for name, items in rows.items()}
    for split in ("pairs_train", "pairs_test"):
        agree = [r["gold_chosen"] > r["gold_rejected"] for r in rows[split]]
        stats[M.WORLD_AGREEMENT.format(split=split)] = round(sum(agree) / len(agree), 4)
    stats[M.WORLD_SFT_GOLD_MEAN] = round(statistics.fmean(r["gold"] for r in rows["sft"]), 4)
    return stats
