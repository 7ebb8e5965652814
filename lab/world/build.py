"""Generate the tiny world's datasets into a run folder, reproducibly from the seed.

Prompts are split three ways first (eval / test / train, disjoint by text), so held-out
evaluation never sees a training prompt. Then each file is drawn from its pool.
"""

from __future__ import annotations

import json
import random
import statistics
from collections.abc import Iterable
from pathlib import Path

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
MIN_GOLD_GAP = 0.1  # pairs closer than this in gold score are redrawn: no true preference
P_NEAR_PAIR = 0.7  # share of pairs whose answers differ in one or two parts only


def build_world(cfg: WorldConfig, out_dir: Path) -> dict:
    """Write every dataset file of the world to `out_dir` and return its statistics."""
    world = World.from_seed(cfg.seed, cfg.n_countries)
    rng = random.Random(f"build-{cfg.seed}")
    pools = split_pools(all_tasks(world.kb, rng, n_summaries=4 * cfg.n_eval_prompts + 2000), rng)
    people = make_annotators(cfg.seed, cfg.n_annotators, cfg.annotator_noise)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {
        "pretrain": pretrain_docs(world, pools["train"], cfg.n_pretrain_docs, rng),
        "sft": [demo(world, t, pools["train"], rng) for t in draw(pools["train"], cfg.n_sft, rng)],
        "pairs_train": pairs(world, pools["train"], cfg.n_pairs_train, people, rng),
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


def split_pools(tasks: list[Task], rng: random.Random) -> dict[str, dict[str, list[Task]]]:
    """Split each kind's prompts into disjoint eval / test / train pools."""
    pools: dict[str, dict[str, list[Task]]] = {"eval": {}, "test": {}, "train": {}}
    for kind in KINDS:
        of_kind = [t for t in tasks if t.kind == kind]
        rng.shuffle(of_kind)
        n_eval = max(1, round(HELD_OUT["eval"] * len(of_kind)))
        n_test = max(1, round(HELD_OUT["test"] * len(of_kind)))
        pools["eval"][kind] = of_kind[:n_eval]
        pools["test"][kind] = of_kind[n_eval : n_eval + n_test]
        pools["train"][kind] = of_kind[n_eval + n_test :]
    return pools


def draw(pool: dict[str, list[Task]], n: int, rng: random.Random) -> list[Task]:
    """`n` tasks, kinds drawn by `KIND_WEIGHTS`, prompts with replacement."""
    kinds = rng.choices(list(KIND_WEIGHTS), list(KIND_WEIGHTS.values()), k=n)
    return [rng.choice(pool[k]) for k in kinds]


def draw_distinct(pool: dict[str, list[Task]], n: int, rng: random.Random) -> list[Task]:
    """Up to `n` distinct tasks, kinds in `KIND_WEIGHTS` proportions as far as the pool allows."""
    want = {k: round(w * n) for k, w in KIND_WEIGHTS.items()}
    chosen = [t for k in KINDS for t in rng.sample(pool[k], min(want[k], len(pool[k])))]
    spare = [t for k in KINDS for t in pool[k] if t not in chosen]
    rng.shuffle(spare)
    chosen += spare[: max(0, n - len(chosen))]
    rng.shuffle(chosen)
    return chosen[:n]


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
        person = rng.choice(people)
        if not person.prefers_first(fa, fb, rng):
            (a, fa), (b, fb) = (b, fb), (a, fa)
        out.append(
            {
                "prompt": [user(task.prompt)],
                "chosen": [assistant(a)],
                "rejected": [assistant(b)],
                "kind": task.kind,
                "annotator_id": person.annotator_id,
                "gold_chosen": round(score(fa), 4),
                "gold_rejected": round(score(fb), 4),
            }
        )
    return out


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
    stats: dict = {f"world/n_{name}": len(items) for name, items in rows.items()}
    for split in ("pairs_train", "pairs_test"):
        agree = [r["gold_chosen"] > r["gold_rejected"] for r in rows[split]]
        stats[f"world/{split}_annotator_gold_agreement"] = round(sum(agree) / len(agree), 4)
    stats["world/sft_gold_mean"] = round(statistics.fmean(r["gold"] for r in rows["sft"]), 4)
    return stats
