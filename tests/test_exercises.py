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


def _log(**series):
    """Log rows from equal-length lists: _log(**{"ppo/kl": [...]}) -> [{"step": 1, ...}, ...]."""
    n = len(next(iter(series.values())))
    return [{"step": i + 1, **{k: v[i] for k, v in series.items()}} for i in range(n)]


def test_overoptimisation():
    steps = range(30)
    hacked = _log(
        **{
            "ppo/reward": [1 + 0.1 * i for i in steps],
            "ppo/gold": [min(i, 30 - i) / 10 for i in steps],
        }
    )
    assert ex.check_overoptimisation(hacked)
    healthy = _log(
        **{"ppo/reward": [1 + 0.1 * i for i in steps], "ppo/gold": [i / 10 for i in steps]}
    )
    with pytest.raises(AssertionError, match="no fall yet"):
        ex.check_overoptimisation(healthy)
    assert ex.check_overoptimisation(None) is False


def test_whitening_off():
    whitened = _log(**{"ppo/grad_norm": [2.0] * 5 + [1.0] * 5, "ppo/kl": [0.5] * 5 + [3.0] * 5})
    raw = _log(**{"ppo/grad_norm": [2.0] * 5 + [0.5] * 5, "ppo/kl": [0.5] * 5 + [2.0] * 5})
    assert ex.check_whitening_off(whitened, raw)
    with pytest.raises(AssertionError, match="grad norm"):
        ex.check_whitening_off(raw, whitened)
    assert ex.check_whitening_off(whitened, None) is False


def test_eos_penalty():
    penalty = _log(**{"ppo/eos_rate": [0.4] * 5 + [0.9] * 5})
    no_penalty = _log(**{"ppo/eos_rate": [0.4] * 10})
    assert ex.check_eos_penalty({"penalty": penalty, "no-penalty": no_penalty})
    with pytest.raises(AssertionError, match="EOS rate"):
        ex.check_eos_penalty({"penalty": no_penalty, "no-penalty": penalty})
    assert ex.check_eos_penalty(None) is False


def test_tiny_reward_data_breaks_the_reward_model_for_real(small_cfg, small_reward_run):
    """Exercise 03.3 end to end: 64 pairs instead of all; the check recognises the symptom."""
    from lab.runlog import read_metrics
    from lab.stages import run_variant

    _, out, results = run_variant(
        small_cfg, small_reward_run, "rm64", {"reward.max_train_pairs": 64}, until="reward"
    )
    assert read_metrics(out / "sft") == read_metrics(small_reward_run / "sft"), "SFT reused"
    assert ex.check_tiny_reward_data(read_metrics(small_reward_run / "reward"), results["reward"])


def test_kl_budget():
    gold = [0.0, 0.5, 1.0, 1.5, 2.0, 1.5, 1.0, 0.5, 0.0, -0.5]
    log = _log(**{"ppo/gold": gold, "ppo/kl": [0.5 * i for i in range(10)]})
    assert ex.check_kl_budget(log, 2.0, window=3)
    with pytest.raises(AssertionError, match="Hint"):
        ex.check_kl_budget(log, 4.5, window=3)
    assert ex.check_kl_budget(log, None) is False
