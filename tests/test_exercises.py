"""The notebooks' auto-checks accept right answers, reject wrong ones, and wait for an attempt."""

import math

import pandas as pd
import pytest

from lab import exercises as ex
from lab.tokenizer import train_tokenizer
from lab.world import World

WORLD = World.from_seed(0)


def test_unattempted_exercises_only_print(capsys):
    assert ex.check_best_answer(WORLD, "What is 9 minus 4?", None) is False
    assert "not attempted" in capsys.readouterr().out


def test_best_answer():
    assert ex.check_best_answer(WORLD, "What is 9 minus 4?", "Sure! 9 minus 4 is 5.")
    with pytest.raises(AssertionError, match="Hint"):
        ex.check_best_answer(WORLD, "What is 9 minus 4?", "9 minus 4 is 6.")


def test_agreement():
    pairs = pd.DataFrame(
        {"gold_chosen": [1.0, 0.0, 2.0, 1.0], "gold_rejected": [0.0, 1.0, 1.0, 0.5]}
    )
    assert ex.check_agreement(pairs, 0.75)
    with pytest.raises(AssertionError):
        ex.check_agreement(pairs, 0.5)


def test_template_overhead():
    tokenizer = train_tokenizer(["Hi there. Hi."] * 20, vocab_size=300)
    assert ex.check_template_overhead(tokenizer, 4)  # bos, <|user|>, eos, <|assistant|>
    with pytest.raises(AssertionError):
        ex.check_template_overhead(tokenizer, 3)


def test_perplexity():
    assert ex.check_perplexity(1.0, math.e)
    with pytest.raises(AssertionError):
        ex.check_perplexity(1.0, 1.0)


def test_win_rate():
    assert ex.check_win_rate([2.0, 1.0, 0.0], [1.0, 1.0, 1.0], 1 / 3)
    with pytest.raises(AssertionError, match="ties"):
        ex.check_win_rate([2.0, 1.0, 0.0], [1.0, 1.0, 1.0], 0.5)


def test_bt_loss():
    assert ex.check_bt_loss(lambda c, r: math.log1p(math.exp(r - c)))
    with pytest.raises(AssertionError):
        ex.check_bt_loss(lambda c, r: math.log1p(math.exp(c - r)))  # the order reversed


def test_worst_kind():
    pairs = pd.DataFrame(
        {
            "kind": ["math", "math", "fact", "fact"],
            "chosen_score": [0.0, 0.0, 1.0, 0.0],
            "rejected_score": [1.0, 1.0, 0.0, 1.0],
            "gold_chosen": [1.0, 1.0, 1.0, 1.0],
            "gold_rejected": [0.0, 0.0, 0.0, 0.0],
        }
    )
    assert ex.check_worst_kind(pairs, "math")
    with pytest.raises(AssertionError):
        ex.check_worst_kind(pairs, "fact")


def test_reward_hacking():
    leash = {"ppo/eval_kl": 3.0, "ppo/eval_reward": 3.5, "eval/gold_mean": 1.7}
    hacked = {"ppo/eval_kl": 12.0, "ppo/eval_reward": 5.0, "eval/gold_mean": 1.0}
    assert ex.check_reward_hacking(leash, hacked)
    with pytest.raises(AssertionError):
        ex.check_reward_hacking(hacked, leash)
    assert ex.check_reward_hacking(leash, None) is False
