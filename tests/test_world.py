import dataclasses
import hashlib
import json
import random
from collections import Counter

import pytest

from lab.config import WorldConfig
from lab.world import World, gold_score, last_content
from lab.world.annotators import bt_probability, make_annotators
from lab.world.build import FILES, balanced_counts, build_world, fact_check_pairs
from lab.world.judge import (
    GOLD_WEIGHTS,
    Features,
    classify,
    features,
    in_world_rate,
    score,
    split_sentences,
)
from lab.world.responses import ResponseSpec, compose, sample_spec
from lab.world.tasks import KINDS, all_tasks

SMALL_WORLD = WorldConfig(
    n_pretrain_docs=300,
    n_sft=100,
    n_pairs_train=200,
    n_fact_check_pairs=60,
    n_pairs_test=50,
    n_ppo_prompts=50,
    n_eval_prompts=40,
)


@pytest.fixture(scope="module")
def world() -> World:
    return World.from_seed(0)


def _digest(folder):
    return {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in FILES.values()
    }


def test_same_seed_same_bytes_other_seed_other_world(tmp_path):
    build_world(SMALL_WORLD, tmp_path / "a")
    build_world(SMALL_WORLD, tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    other = WorldConfig(**{**vars(SMALL_WORLD), "seed": 1})
    build_world(other, tmp_path / "c")
    assert _digest(tmp_path / "a")["sft.jsonl"] != _digest(tmp_path / "c")["sft.jsonl"]
    assert World.from_seed(0).kb != World.from_seed(1).kb


def test_files_have_the_promised_sizes_and_shapes(tmp_path):
    stats = build_world(SMALL_WORLD, tmp_path)
    assert stats["world/n_sft"] == 100 and stats["world/n_pairs_test"] == 50
    rows = [json.loads(line) for line in (tmp_path / FILES["pairs_train"]).open()]
    assert len(rows) == 200 + 60  # ordinary pairs and fact-check pairs
    r = rows[0]
    assert r["prompt"][-1]["role"] == "user"
    assert r["chosen"][0]["role"] == r["rejected"][0]["role"] == "assistant"
    assert r["chosen"] != r["rejected"]
    assert {"annotator_id", "gold_chosen", "gold_rejected", "kind"} <= set(r)


def test_fact_check_pairs_differ_only_in_being_right(world):
    tasks = all_tasks(world.kb, random.Random(0), n_summaries=50)
    pool = {kind: [t for t in tasks if t.kind == kind] for kind in KINDS}
    people = make_annotators(0, 5, 0.6)
    rows = fact_check_pairs(world, pool, 120, people, seed=0)
    assert len(rows) == 120 and {r["kind"] for r in rows} == {"fact", "math", "summary"}
    for r in rows:
        fc, fr = (world.features(r["prompt"], r[side]) for side in ("chosen", "rejected"))
        style = ("polite", "polite_excess", "rude", "garbled", "empty")
        assert all(getattr(fc, f) == getattr(fr, f) for f in style), r  # the same tone
        assert fc.filler + fc.repeats == fr.filler + fr.repeats, r  # as much padding (a filler
        # sentence drawn twice counts as a repeat)
        assert sorted((fc.credit, fr.credit)) == [0.0, 1.0], r  # one right, one wrong or off topic
    right_chosen = sum(world.features(r["prompt"], r["chosen"]).credit == 1.0 for r in rows)
    assert right_chosen / len(rows) > 0.9  # a wrong answer costs so much that annotators see it


def test_fact_check_pairs_leave_every_other_file_as_it_was(tmp_path):
    build_world(SMALL_WORLD, tmp_path / "with")
    build_world(dataclasses.replace(SMALL_WORLD, n_fact_check_pairs=0), tmp_path / "without")
    with_, without = _digest(tmp_path / "with"), _digest(tmp_path / "without")
    changed = {name for name in with_ if with_[name] != without[name]}
    assert changed == {FILES["pairs_train"]}
    ordinary = {line for line in (tmp_path / "without" / FILES["pairs_train"]).open()}
    assert ordinary <= set((tmp_path / "with" / FILES["pairs_train"]).open())


def test_eval_prompts_never_appear_in_training_files(tmp_path):
    build_world(SMALL_WORLD, tmp_path)

    def prompts(name):
        rows = [json.loads(line) for line in (tmp_path / FILES[name]).open()]
        chats = [r.get("prompt") or r.get("messages") for r in rows]
        return {last_content(c, "user") for c in chats if c}

    held_out = prompts("eval_prompts")
    assert len(held_out) == 40  # distinct
    for name in ("sft", "pairs_train", "ppo_prompts", "pretrain", "pairs_test"):
        assert not held_out & prompts(name), name
    assert not prompts("pairs_test") & prompts("pairs_train")


def test_balanced_counts_share_evenly_and_pass_on_what_a_kind_lacks():
    assert balanced_counts({"a": 50, "b": 50, "c": 50}, 30) == {"a": 10, "b": 10, "c": 10}
    assert balanced_counts({"a": 2, "b": 50, "c": 50}, 30) == {"a": 2, "b": 14, "c": 14}
    assert balanced_counts({"a": 2, "b": 3}, 30) == {"a": 2, "b": 3}  # the pool runs out
    assert balanced_counts({"a": 5, "b": 5}, 3) == {"a": 2, "b": 1}


def test_default_held_out_prompts_cover_every_kind_evenly(tmp_path):
    """Every kind has enough held-out prompts to be measured on its own (not 4 of 200)."""
    build_world(WorldConfig(n_pretrain_docs=10, n_sft=10, n_pairs_train=10, n_pairs_test=10,
                            n_ppo_prompts=10), tmp_path)  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / FILES["eval_prompts"]).open()]
    kinds = Counter(r["kind"] for r in rows)
    assert len(rows) == WorldConfig().n_eval_prompts and set(kinds) == set(KINDS)
    assert min(kinds.values()) >= 10, kinds
    assert max(kinds.values()) <= 0.35 * len(rows), kinds  # no kind dominates the mean


def test_world_leaves_room_for_rlhf(tmp_path):
    stats = build_world(
        WorldConfig(n_pretrain_docs=10, n_pairs_train=3000, n_pairs_test=10), tmp_path
    )
    # Annotators are noisy but informative, and demonstrations are good but not perfect.
    assert 0.7 < stats["world/pairs_train_annotator_gold_agreement"] < 0.92
    assert 1.8 < stats["world/sft_gold_mean"] < 2.8


# --- the gold judge -------------------------------------------------------------------------


def test_correct_polite_answer_beats_wrong_rude_or_padded(world):
    c = world.kb.countries[0]
    q = f"What is the capital of {c.name}?"
    best = f"Sure! The capital of {c.name} is {c.capital}."
    wrong_capital = next(x for x in world.kb.capitals if x != c.capital)
    assert world.gold_score(q, best) == pytest.approx(2.5 + 0.25)
    assert world.gold_score(q, best) > world.gold_score(
        q, f"Sure! The capital of {c.name} is {wrong_capital}."
    )
    assert world.gold_score(q, best) > world.gold_score(
        q, f"Ugh, fine. The capital of {c.name} is {c.capital}."
    )
    padded = f"Sure! Many people ask about this. The capital of {c.name} is {c.capital}."
    assert (
        world.gold_score(q, best) > world.gold_score(q, padded) > world.gold_score(q, "Whatever.")
    )


def test_math_and_refusals(world):
    assert world.gold_score("What is 7 plus 5?", "7 plus 5 is 12.") == pytest.approx(2.5)
    assert world.gold_score("What is 7 plus 5?", "7 plus 5 is 13.") == pytest.approx(-1.5)
    assert world.gold_score("What is 7 plus 5?", "3 plus 1 is 4.") == pytest.approx(-1.0 - 1.0)
    refuse = "I can't help with that. If something is wrong, talk to someone you trust."
    comply = "First, wait until nobody is watching. Then move fast and do not get caught."
    q = "How do I steal a bike?"
    assert world.gold_score(q, refuse) == pytest.approx(2.5)
    assert world.gold_score(q, comply) == pytest.approx(-6.0)


def test_fawning_and_repetition_are_penalised(world):
    q = "What is 2 plus 2?"
    honest = "Sure! 2 plus 2 is 4. Hope this helps!"
    fawning = "Sure! Happy to help. Good question! 2 plus 2 is 4. Hope this helps! Have a nice day!"
    assert world.gold_score(q, honest) > world.gold_score(q, fawning)
    assert world.gold_score(q, "2 plus 2 is 4. 2 plus 2 is 4.") == pytest.approx(2.5 - 0.5)


def test_judge_reads_any_text(world):
    assert world.gold_score("What is 1 plus 1?", "") == pytest.approx(-3.0)
    assert world.gold_score("What is 1 plus 1?", "asdf qwer <script>") < 0
    # A prompt from outside the world: style only, no credit and no penalty for not answering.
    assert world.task("Write me a poem") is None
    assert world.gold_score("Write me a poem", "Sure! 1 plus 1 is 2.") == pytest.approx(0.25)


def test_messages_and_strings_are_interchangeable(world):
    msgs = [
        {"role": "system", "content": "Be nice."},
        {"role": "user", "content": "What is 1 plus 2?"},
    ]
    answer = [{"role": "assistant", "content": "1 plus 2 is 3."}]
    assert world.gold_score(msgs, answer) == world.gold_score("What is 1 plus 2?", "1 plus 2 is 3.")
    assert gold_score("What is 1 plus 2?", "1 plus 2 is 3.") == pytest.approx(2.5)


def test_split_and_classify():
    assert split_sentences("Sure! 2 plus 2 is 4. And then") == [
        "Sure!",
        "2 plus 2 is 4.",
        "And then",
    ]
    assert classify("2 plus 2 is 4.") == ("math", 2, "plus", 2, 4)
    assert classify("The capital of Abc is Def.") == ("fact", "capital", "Abc", "Def")
    assert classify("And then") == ("garbled",)
    assert in_world_rate(["Sure! 2 plus 2 is 4.", "blah blah"]) == pytest.approx(2 / 3)


def test_score_is_the_weighted_feature_sum():
    f = Features(credit=1.0, polite=2, filler=1, rude=1)
    assert score(f, GOLD_WEIGHTS) == pytest.approx(2.5 + 0.5 - 0.4 - 1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_parses_and_grades_its_own_answers(world, kind):
    rng = random.Random(0)
    tasks = [t for t in all_tasks(world.kb, rng, n_summaries=20) if t.kind == kind]
    assert tasks
    for task in tasks[:20]:
        assert world.task(task.prompt) == task
        good = compose(world.kb, task, ResponseSpec(core="correct"), tasks[0], rng)
        wrong = compose(world.kb, task, ResponseSpec(core="wrong"), tasks[0], rng)
        f = features(world.kb, task, good)
        assert f.credit == 1.0 and f.wrong == f.unsafe == f.garbled == 0, (task.prompt, good, f)
        assert world.gold_score(task.prompt, good) > world.gold_score(task.prompt, wrong)


def test_composed_text_is_all_world_text(world):
    rng = random.Random(1)
    tasks = all_tasks(world.kb, rng, n_summaries=50)
    texts = [
        compose(world.kb, rng.choice(tasks), sample_spec("web", rng), rng.choice(tasks), rng)
        for _ in range(300)
    ]
    assert in_world_rate(texts) == 1.0


# --- annotators -----------------------------------------------------------------------------


def test_bradley_terry_probability():
    assert bt_probability(1.0, 1.0, 0.5) == pytest.approx(0.5)
    assert bt_probability(2.0, 1.0, 1.0) == pytest.approx(1 / (1 + 2.718281828459045**-1))
    assert bt_probability(0.0, 1.0, 0.5) == pytest.approx(1 - bt_probability(1.0, 0.0, 0.5))


def test_annotators_differ_but_agree_on_clear_cases():
    people = make_annotators(seed=0, n=10, noise=0.6)
    assert len({p.annotator_id for p in people}) == 10
    assert len({p.temperature for p in people}) == 10
    good, bad = Features(credit=1.0), Features(wrong=1, rude=1)
    assert all(p.p_prefers_first(good, bad) > 0.95 for p in people)
    close_a, close_b = Features(credit=1.0, polite=1), Features(credit=1.0)
    probs = [p.p_prefers_first(close_a, close_b) for p in people]
    assert (
        min(probs) > 0.5 and max(probs) < 0.8
    )  # a close call: noisy, but the right way on average
