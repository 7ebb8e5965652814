"""Named class tastes: each prefers what its description says, and a class votes by it with noise."""

import random

import pytest

from lab.world import World, default_world
from lab.world.judge import GOLD_WEIGHTS, score
from lab.world.tasks import all_tasks
from lab.world.tastes import (
    TASTES,
    compute_style_only_pairs,
    make_class,
    taste_weights,
    terse_reward,
    warm_reward,
)

PROMPT = "What is 2 plus 3?"
PLAIN = "2 plus 3 is 5."
PADDED = "Sure! Let me think about this for a moment. 2 plus 3 is 5. Hope this helps!"
POLITE = "Happy to help. 2 plus 3 is 5. Have a nice day!"
WRONG = "2 plus 3 is 6."


def utility(taste: str, answer: str) -> float:
    return score(default_world().features(PROMPT, answer), taste_weights(taste))


def test_every_taste_has_weights_and_a_one_line_description():
    assert {"terse", "warm"} <= set(TASTES)
    for weights, description in TASTES.values():
        assert weights != GOLD_WEIGHTS and description and "\n" not in description


def test_terse_prefers_the_short_unpadded_answer_and_still_correctness():
    assert utility("terse", PLAIN) > utility("terse", POLITE) > utility("terse", WRONG)
    assert utility("terse", PLAIN) > utility("terse", PADDED)
    assert utility("terse", PLAIN) - utility("terse", PADDED) > 1.5  # clearly, not by a hair
    assert score(default_world().features(PROMPT, PADDED)) > 0  # gold itself doesn't mind much


def test_warm_prefers_the_polite_answer_and_still_correctness():
    assert utility("warm", POLITE) - utility("warm", PLAIN) > 1.5
    assert utility("warm", PLAIN) > utility("warm", "Happy to help. " + WRONG)


def test_tastes_disagree_where_they_should():
    assert (utility("terse", PLAIN) > utility("terse", POLITE)) != (
        utility("warm", PLAIN) > utility("warm", POLITE)
    )


def test_a_class_shares_its_taste_and_votes_by_it_with_noise():
    people = make_class("terse", 20, seed=3)
    assert len(people) == len({p.annotator_id for p in people}) == 20
    assert all(p.weights == taste_weights("terse") for p in people)
    assert len({p.temperature for p in people}) == 20  # each its own noise
    assert make_class("terse", 20, seed=3) == people  # seeded
    world, rng = default_world(), random.Random(0)
    plain, polite = (world.features(PROMPT, a) for a in (PLAIN, POLITE))
    votes = [p.prefers_first(plain, polite, rng) for p in people for _ in range(50)]
    assert 0.9 < sum(votes) / len(votes) < 1.0  # mostly the taste, sometimes not: noise
    warm = make_class("warm", 20, seed=3)
    assert sum(p.prefers_first(plain, polite, rng) for p in warm for _ in range(50)) < 100


def test_an_unknown_taste_names_itself_and_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown taste 'grumpy'; known tastes: terse, warm"):
        make_class("grumpy", 5, seed=0)
    with pytest.raises(ValueError, match="n >= 1"):
        make_class("terse", 0, seed=0)


def test_a_taste_as_a_reward_function_scores_as_the_taste():
    from lab.reward_sources import load_scorer

    answers = [PLAIN, POLITE, WRONG]
    terse = terse_reward([PROMPT] * 3, answers)
    assert terse == [utility("terse", a) for a in answers] and terse[0] > terse[1] > terse[2]
    warm = warm_reward([PROMPT] * 3, answers)
    assert warm[1] > warm[0] > warm[2]
    scorer = load_scorer("function:lab.world.tastes.terse_reward", run_dir=".")
    assert scorer([PROMPT], [PADDED]) == [utility("terse", PADDED)]
    # Another world's fact question would be scored on style alone (a wrong fact free): refused.
    tasks = all_tasks(World.from_seed(1).kb, random.Random(0), n_summaries=5)
    other = next(t.prompt for t in tasks if default_world().task(t.prompt) is None)
    with pytest.raises(ValueError, match="knows the default tiny world only"):
        terse_reward([PROMPT, other], [PLAIN, PLAIN])


def test_style_only_pairs_are_the_pairs_that_differ_in_that_style_alone():
    polite_first = "Happy to help. 2 plus 3 is 5."
    pairs = [
        {"prompt": PROMPT, "chosen": PLAIN, "rejected": polite_first},  # only the opener: kept
        {"prompt": PROMPT, "chosen": POLITE, "rejected": PLAIN},  # politer won: kept
        {"prompt": PROMPT, "chosen": PLAIN, "rejected": "Happy to help. " + WRONG},  # and a fact
        {"prompt": PROMPT, "chosen": PLAIN, "rejected": PADDED},  # and filler
        {"prompt": PROMPT, "chosen": PLAIN, "rejected": PLAIN + " "},  # the same to the judge
    ]
    table = compute_style_only_pairs(default_world(), pairs)
    assert table["rejected"].tolist() == [polite_first, PLAIN]
    assert table["chosen_has_less"].tolist() == [True, False]
    fillers = compute_style_only_pairs(default_world(), pairs, ("polite", "filler"))
    assert PADDED in fillers["rejected"].tolist() and len(fillers) == 3
    with pytest.raises(ValueError, match="unknown style feature 'pleasantries'; the judge counts"):
        compute_style_only_pairs(default_world(), pairs, ("pleasantries",))
