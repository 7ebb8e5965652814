"""The notebooks' auto-checks accept right answers, reject wrong ones, and wait for an attempt."""

import math

import pandas as pd
import pytest

from lab import exercises as ex
from lab import metrics as M
from lab import solutions
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
    agrees = pairs["gold_chosen"] > pairs["gold_rejected"]
    with pytest.raises(AssertionError, match="not one number. Hint"):  # .mean() forgotten
        ex.check_agreement(pairs, agrees)
    seven = pd.DataFrame({"gold_chosen": [1.0] * 3 + [0.0] * 4, "gold_rejected": [0.0] * 7})
    with pytest.raises(AssertionError, match="looks rounded"):  # 3/7 typed in as 0.4286
        ex.check_agreement(seven, 0.4286)
    for typed in (0.43, 0.429, 0.4):  # rounded to fewer decimals: still typed in
        with pytest.raises(AssertionError, match="looks rounded"):
            ex.check_agreement(seven, typed)
    assert ex.check_agreement(seven, 3 / 7)


def test_template_overhead():
    tokenizer = train_tokenizer(["Hi there. Hi."] * 20, vocab_size=300)
    assert ex.check_template_overhead(tokenizer, 4)  # bos, <|user|>, eos, <|assistant|>
    with pytest.raises(AssertionError):
        ex.check_template_overhead(tokenizer, 3)


def test_perplexity():
    assert ex.check_perplexity(1.0, math.e)
    with pytest.raises(AssertionError, match="nats"):
        ex.check_perplexity(1.0, 1.0)
    with pytest.raises(AssertionError, match="looks rounded"):  # e^0.734 = 2.0834
        ex.check_perplexity(0.734, 2.08)
    for not_a_number in ([math.e, 1.0], "e"):
        with pytest.raises(AssertionError, match="not one number"):
            ex.check_perplexity(1.0, not_a_number)
    assert ex.check_perplexity(1.0, None) is False


def test_win_rate():
    assert ex.check_win_share([2.0, 1.0, 0.0], [1.0, 1.0, 1.0], 1 / 3)
    with pytest.raises(AssertionError, match="ties"):
        ex.check_win_share([2.0, 1.0, 0.0], [1.0, 1.0, 1.0], 0.5)
    # Scores equal but for float rounding: a tie to eval/win_rate, a win to a plain `>`; both pass.
    new, old = [0.9000000000000001, 2.0], [0.9, 1.0]
    assert ex.check_win_share(new, old, 0.5) and ex.check_win_share(new, old, 1.0)


def test_bt_loss():
    assert ex.check_bt_loss(lambda c, r: math.log1p(math.exp(r - c)))
    with pytest.raises(AssertionError):
        ex.check_bt_loss(lambda c, r: math.log1p(math.exp(c - r)))  # the order reversed
    import torch.nn.functional as F

    with pytest.raises(AssertionError, match="Python floats"):  # torch on floats: a hint
        ex.check_bt_loss(lambda c, r: -F.logsigmoid(c - r))


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
    assert ex.check_worst_kind(pairs, pd.Series({"fact": 0.5, "math": 1.0}))
    for wrong, words in [
        ("math", "got a str"),  # the name alone: the method is not shown
        (pd.Series({"fact": 1, "math": 2}), "off"),  # a count, not a rate
        (pd.Series({"math": 1.0}), "no number for fact"),
        (pd.Series([1.0, 0.5], index=["math", "math"]), "appears twice"),
    ]:
        with pytest.raises(AssertionError, match=words):
            ex.check_worst_kind(pairs, wrong)


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
    assert ex.check_kl_budget(log, 1.5, window=3)  # a neighbour of the peak: a fair reading
    for wrong in (4.5, 0.0, log[0]["ppo/kl"], 3.5):  # far off, no drift, the first update
        with pytest.raises(AssertionError, match="Hint") as error:
            ex.check_kl_budget(log, wrong, window=3)
        assert "to" not in str(error.value).split("Hint")[0], "the message gives a range away"
    with pytest.raises(AssertionError, match="not one number"):  # a Series of two runs
        ex.check_kl_budget(log, pd.Series([2.0, 0.5]), window=3)
    assert ex.check_kl_budget(log, None) is False


def test_group_advantages():
    def advantages(rewards):
        mean = sum(rewards) / len(rewards)
        std = (sum((r - mean) ** 2 for r in rewards) / len(rewards)) ** 0.5
        return [(r - mean) / (std + 1e-4) for r in rewards]

    assert ex.check_group_advantages(advantages)  # the population std passes too
    with pytest.raises(AssertionError, match="epsilon"):  # no epsilon: 0/0 for equal rewards
        ex.check_group_advantages(lambda rs: [r - sum(rs) / len(rs) for r in rs])
    import statistics

    def no_epsilon(rs):  # pure Python divides 0 by 0: a hint, not a ZeroDivisionError
        mean, std = statistics.mean(rs), statistics.stdev(rs)
        return [(r - mean) / std for r in rs]

    def median(rs):  # the median, not the mean: equal on symmetric groups
        mid, std = statistics.median(rs), statistics.stdev(rs)
        return [(r - mid) / (std + 1e-4) for r in rs]

    for wrong in (no_epsilon, median):
        with pytest.raises(AssertionError, match="epsilon"):
            ex.check_group_advantages(wrong)

    def no_return(rs):
        [r - statistics.mean(rs) for r in rs]

    def tensor_maths(rs):  # a list has no .mean()
        return (rs - rs.mean()) / (rs.std() + 1e-4)

    for wrong in (no_return, tensor_maths, lambda rs: 0.0):
        with pytest.raises(AssertionError, match="one advantage per reward"):
            ex.check_group_advantages(wrong)
    assert ex.check_group_advantages(None) is False


def test_tone_reward_names_an_answer_that_is_not_a_list():
    for wrong in (lambda prompts, completions: None, lambda prompts, completions: 1.0):
        with pytest.raises(AssertionError, match="one number per completion"):
            ex.check_tone_reward(wrong)
    with pytest.raises(AssertionError, match="1 rewards for 6 completions"):
        ex.check_tone_reward(lambda prompts, completions: [0.0])


# Each worked solution's inputs (what the notebook has at that point), its check, a wrong answer.
def _pairs():
    return pd.DataFrame(
        {
            "kind": ["math", "math", "fact", "fact"],
            "chosen_score": [0.0, 0.0, 1.0, 0.0],
            "rejected_score": [1.0, 1.0, 0.0, 1.0],
            "gold_chosen": [1.0, 1.0, 2.0, 1.0],
            "gold_rejected": [0.0, 0.0, 1.0, 0.5],
        }
    ).assign(  # as notebook 03 computes it
        rm_agrees_with_gold=lambda p: (
            (p.chosen_score - p.rejected_score) * (p.gold_chosen - p.gold_rejected) > 0
        )
    )


def _models():
    return pd.DataFrame(
        {"gold_mean": [0.0, 0.6, 0.2, 0.5], "kl_to_sft": [0.0, 3.0, 0.5, 1.0]},
        index=["sft", "ppo", "dpo", "grpo"],
    )


def _free_log():
    gold = [min(i, 30 - i) / 10 for i in range(30)]  # peaks at update 16, where KL is 7.5
    log = pd.DataFrame(
        {"step": range(1, 31), M.PPO_GOLD: gold, M.PPO_KL: [0.5 * i for i in range(30)]}
    )
    log.index += 100  # rows picked from a longer table, as in notebook 05
    return log


def _votes():
    """Two votes a terse class cast: one for the plain answer, one (noise) for the padded one."""
    plain, padded = "2 plus 3 is 5.", "Sure! Hope this helps! 2 plus 3 is 5."
    return [{"prompt": "What is 2 plus 3?", "chosen": plain, "rejected": padded},
            {"prompt": "What is 2 plus 3?", "chosen": padded, "rejected": plain}]  # fmt: skip


TOKENIZER = train_tokenizer(["Hi there. Hi."] * 20, vocab_size=300)
CASES = {
    "00.1": (
        dict,
        lambda ns: ex.check_best_answer(WORLD, "What is 9 minus 4?", ns["my_answer"]),
        {"my_answer": "9 minus 4 is 6."},
    ),
    "00.2": (
        lambda: {"pairs": _pairs()},
        lambda ns: ex.check_agreement(ns["pairs"], ns["my_agreement"]),
        {"my_agreement": 0.5},
    ),
    "01.1": (
        lambda: {"tokenizer": TOKENIZER},
        lambda ns: ex.check_template_overhead(ns["tokenizer"], ns["my_overhead"]),
        {"my_overhead": 1},
    ),
    "01.2": (
        lambda: {"metrics": {M.PRETRAIN_EVAL_LOSS: 1.3}, "M": M},
        lambda ns: ex.check_perplexity(1.3, ns["my_perplexity"]),
        {"my_perplexity": 1.3},
    ),
    "02.1": (
        lambda: {
            "sft_table": pd.DataFrame({"gold": [2.0, 1.0, 0.0]}),
            "base_table": pd.DataFrame({"gold": [1.0, 1.0, 1.0]}),
        },  # fmt: skip
        lambda ns: ex.check_win_share([2.0, 1.0, 0.0], [1.0, 1.0, 1.0], ns["my_win_share"]),
        {"my_win_share": 0.5},
    ),
    "03.1": (
        dict,
        lambda ns: ex.check_bt_loss(ns["my_loss"]),
        {"my_loss": lambda c, r: math.log1p(math.exp(c - r))},
    ),
    "03.2": (
        lambda: {"pairs": _pairs()},
        lambda ns: ex.check_worst_kind(ns["pairs"], ns["my_errors"]),
        {"my_errors": (~_pairs()["rm_agrees_with_gold"]).groupby(_pairs()["kind"]).sum()},
    ),
    "05.1": (
        lambda: {"free_log": _free_log(), "M": M},
        lambda ns: ex.check_kl_budget(ns["free_log"].to_dict("records"), ns["my_kl"]),
        {"my_kl": 0.5},
    ),
    "06.1": (
        dict,
        lambda ns: ex.check_dpo_loss(ns["my_dpo_loss"]),
        {"my_dpo_loss": lambda pc, pr, rc, rr, beta: math.log1p(math.exp(-beta * (pc - pr)))},
    ),
    "06.2": (
        dict,
        lambda ns: ex.check_group_advantages(ns["my_advantages"]),
        {"my_advantages": lambda rs: [r - sum(rs) / len(rs) for r in rs]},
    ),
    "06.3": (
        lambda: {"table": _models()},
        lambda ns: ex.check_gold_per_kl(ns["table"], ns["my_per_kl"]),
        {"my_per_kl": _models()["gold_mean"].loc[["ppo", "dpo", "grpo"]]},  # gain, KL ignored
    ),
    "07.1": (
        lambda: {"world": WORLD, "pairs": _votes(), "TASTE": "terse"},
        lambda ns: ex.check_taste_ceiling(ns["world"], ns["pairs"], "terse", ns["my_ceiling"]),
        {"my_ceiling": 1.0},
    ),
    "07.2": (
        lambda: {
            "old": pd.DataFrame({"utility": [1.0, 0.0, 2.0]}),
            "new": pd.DataFrame({"utility": [2.0, 0.0, 1.0]}),
        },  # fmt: skip
        lambda ns: ex.check_taste_wins(ns["old"], ns["new"], ns["my_wins"]),
        {"my_wins": 0.5},  # a tie counted as half a win
    ),
    "08.1": (
        lambda: {},
        lambda ns: ex.check_tone_reward(ns["my_reward"]),
        {"my_reward": lambda prompts, completions: [1.0] * len(completions)},
    ),
}
TRY_IT = {"03.3", "04.1", "04.2", "04.3"}  # train a variant; their checks are tested above


@pytest.mark.parametrize("exercise", sorted(CASES))
def test_worked_solution_passes_and_a_wrong_answer_fails(exercise):
    inputs, check, wrong = CASES[exercise]
    namespace = inputs()
    exec(solutions.SOLUTIONS[exercise][0], namespace)  # the cell as the solution writes it
    assert check(namespace)
    with pytest.raises(AssertionError):
        check({**inputs(), **wrong})


def test_every_exercise_has_a_solution(capsys):
    assert set(solutions.SOLUTIONS) == set(CASES) | TRY_IT
    assert all("TRY_IT = True" in solutions.SOLUTIONS[name][0] for name in TRY_IT)
    solutions.solution("06.2")
    assert "statistics.stdev" in capsys.readouterr().out
    with pytest.raises(KeyError, match="05.1"):
        solutions.solution("9.9")
