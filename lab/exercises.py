"""Auto-checks for the notebooks' exercises: pass, fail with a hint, or wait for an attempt.

Each check takes the student's answer; `None` means "not attempted yet" and only prints
the task, so a fresh notebook runs top to bottom. A wrong answer raises with a hint.
Worked solutions for a student who is stuck are in `lab.solutions`.
"""

from __future__ import annotations

import math

import pandas as pd

from lab import metrics as M
from lab.world import World
from lab.world.judge import classify, score, split_sentences
from lab.world.tastes import taste_weights

# A reward model that is easy to fool (300 pairs) and no KL leash: over-optimisation in minutes.
OVEROPTIMISATION = {"reward.max_train_pairs": 300, "ppo.kl_coef": 0.0, "ppo.kl_target": 0.0}


def _pending(task: str) -> bool:
    print(f"Exercise not attempted yet: {task}")
    return False


def _one_number(got: object, hint: str) -> float:
    """The student's answer as a float, or a hint when it is not one number (a Series, say)."""
    try:
        return float(got)
    except (TypeError, ValueError):
        raise AssertionError(f"got a {type(got).__name__}, not one number. Hint: {hint}") from None


def _rounded(got: float, truths: list[float]) -> bool:
    """Is `got` one of `truths` rounded to 1-4 decimals (typed in: right, but no method shown)?"""
    return any(abs(got - round(t, k)) < 1e-12 for t in truths for k in range(1, 5))


def _same_share(got: object, truths: list[float], hint: str, correct: str) -> bool:
    """A share the student computed, against the true one (or any of `truths`, where there is
    more than one right way): a hint if it is off, else `correct`."""
    got = _one_number(got, hint)
    near = min(abs(got - t) for t in truths)
    assert near < 1e-6 or not _rounded(got, truths), (
        f"got {got}, which looks rounded. Hint: compute it from the data and pass the result "
        "itself, every decimal."
    )
    assert near < 1e-6, f"got {got:.4f}. Hint: {hint}"
    print(f"Correct: {correct}")
    return True


def _call(fn, *args: float) -> float:
    """`fn(*args)` as a float; a hint, not a traceback, when it fails on plain floats."""
    try:
        return _one_number(fn(*args), "return one number (a float) per call.")
    except (TypeError, AttributeError) as err:
        raise AssertionError(
            f"{getattr(fn, '__name__', 'your function')}{args} failed: {err}. Hint: the "
            "arguments are Python floats; use math (math.exp, math.log1p), or make tensors of "
            "them first (torch.tensor(x))."
        ) from None


def check_best_answer(world: World, prompt: str, answer: str | None, target: float = 2.75) -> bool:
    """Exercise 00.1: write an answer the gold judge scores at least `target`."""
    if answer is None:
        return _pending(f"write an answer to {prompt!r} scoring >= {target}")
    got = world.gold_score(prompt, answer)
    f = world.features(prompt, answer)
    assert got >= target, (
        f"gold {got:.2f} < {target}: the judge counted {f}. "
        "Hint: one correct answer sentence in the world's exact wording, one or two polite phrases, nothing else."
    )
    print(f"Correct: gold score {got:.2f}")
    return True


def check_agreement(pairs: pd.DataFrame, agreement: float | None) -> bool:
    """Exercise 00.2: the share of pairs where the annotator's choice agrees with gold."""
    if agreement is None:
        return _pending("compute how often annotators agree with the gold judge")
    truth = float((pairs["gold_chosen"] > pairs["gold_rejected"]).mean())
    return _same_share(
        agreement, [truth], "a pair agrees when gold_chosen > gold_rejected; take the mean.",
        f"annotators agree with gold on {truth:.1%} of pairs.",
    )  # fmt: skip


def check_template_overhead(tokenizer, n_tokens: int | None) -> bool:
    """Exercise 01.1: how many tokens the chat template adds around a one-turn prompt."""
    if n_tokens is None:
        return _pending("count the tokens the chat template adds around a user message")
    content = tokenizer("Hi", add_special_tokens=False)["input_ids"]
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, return_dict=True
    )["input_ids"]
    truth = len(full) - len(content)
    assert n_tokens == truth, (
        f"got {n_tokens}. Hint: len(full) minus the message's own tokens, "
        "tokenizer('Hi', add_special_tokens=False) (a word can be more than one token)."
    )
    print(f"Correct: {truth} tokens of template; every prompt pays them.")
    return True


def check_perplexity(eval_loss: float, perplexity: float | None) -> bool:
    """Exercise 01.2: perplexity from the mean next-token loss (in nats)."""
    if perplexity is None:
        return _pending("turn the eval loss into a perplexity")
    truth = math.exp(eval_loss)
    perplexity = _one_number(perplexity, "math.exp of the loss: one number.")
    assert abs(perplexity - truth) < 1e-3 * truth or not _rounded(perplexity, [truth]), (
        f"got {perplexity}, which looks rounded. Hint: pass the computed value, every decimal."
    )
    assert abs(perplexity - truth) < 1e-3 * truth, (
        f"got {perplexity:.3f}. Hint: the loss is a mean negative log-likelihood in nats."
    )
    print(f"Correct: perplexity {truth:.2f}: as unsure as a fair choice among {truth:.1f} tokens.")
    return True


def check_win_share(new_gold: list[float], old_gold: list[float], share: float | None) -> bool:
    """Exercise 02.1: the share of prompts where the new model's answer beats the old one's (strict
    wins; `eval/win_rate`, the lab's win rate, adds half the ties)."""
    if share is None:
        return _pending("compute the share of prompts the SFT model wins outright")
    from lab.evaluation import compute_win_rate

    truth = compute_win_rate(new_gold, old_gold)  # a win by more than float rounding
    strict = sum(n > o for n, o in zip(new_gold, old_gold, strict=True)) / len(new_gold)
    return _same_share(
        share, [truth.win, strict],
        "compare the two gold columns row by row; count strict wins only "
        f"(ties are {truth.tie:.1%} here).",
        f"wins {truth.win:.1%}, ties {truth.tie:.1%}, losses {truth.loss:.1%}.",
    )  # fmt: skip


def check_bt_loss(loss_fn) -> bool:
    """Exercise 03.1: the reward model's pairwise loss, -log sigmoid(r_chosen - r_rejected)."""
    if loss_fn is None:
        return _pending("write the Bradley-Terry loss as a function of the two rewards")
    for rc, rr in [(0.0, 0.0), (2.0, 0.0), (-1.0, 1.5), (30.0, -30.0)]:
        truth = math.log1p(math.exp(-(rc - rr)))
        got = _call(loss_fn, rc, rr)
        assert abs(got - truth) < 1e-4, (
            f"loss({rc}, {rr}) = {got:.4f}, expected {truth:.4f}. Hint: P(chosen wins) = sigmoid(rc - rr)."
        )
    print("Correct: ln 2 at a tie, near 0 when chosen wins clearly, large when the order is wrong.")
    return True


def _same_per_name(got: object, truth: pd.Series, what: str, hint: str) -> None:
    """A Series the student computed (a number per kind, per method...) against the true one."""
    assert isinstance(got, pd.Series), (
        f"got a {type(got).__name__}. Hint: one number per {what}, as a pandas Series indexed "
        f"by {what} ({', '.join(map(str, truth.index))}); the check then names the largest."
    )
    assert got.index.is_unique, f"a {what} appears twice in your Series. Hint: {hint}"
    values = pd.to_numeric(got.reindex(truth.index), errors="coerce")
    missing = [name for name in truth.index if pd.isna(values[name])]
    assert not missing, f"no number for {', '.join(map(str, missing))}. Hint: {hint}"
    off = {
        name: float(values[name]) for name in truth.index if abs(values[name] - truth[name]) > 1e-6
    }
    assert not off, f"{', '.join(f'{k}: {v:.4f}' for k, v in off.items())} are off. Hint: {hint}"


def check_worst_kind(pairs: pd.DataFrame, errors: pd.Series | None) -> bool:
    """Exercise 03.2: how often the reward model disagrees with gold on each task kind."""
    if errors is None:
        return _pending("compute the reward model's disagreement rate with gold per task kind")
    rm_right = (pairs["chosen_score"] - pairs["rejected_score"]) * (
        pairs["gold_chosen"] - pairs["gold_rejected"]
    ) > 0
    truth = (~rm_right).groupby(pairs["kind"]).mean()
    _same_per_name(
        errors, truth, "kind",
        "the share of each kind's pairs whose RM order differs from the gold order "
        "(a mean per kind, not a count).",
    )  # fmt: skip
    worst = truth.idxmax()
    print(f"Correct: {worst} is the worst ({truth[worst]:.1%} disagreement). Why would this "
          "kind be hard to judge?")  # fmt: skip
    return True


def check_reward_hacking(with_kl: dict | None, without_kl: dict | None) -> bool:
    """Exercise 04.1: with kl_coef=0 the policy drifts further and the proxy outruns the gold judge."""
    if with_kl is None or without_kl is None:
        return _pending("train PPO with kl_coef=0 and compare its metrics with the default run")
    drift = without_kl[M.PPO_EVAL_KL] > with_kl[M.PPO_EVAL_KL]
    gap_kl0 = without_kl[M.PPO_EVAL_REWARD] - without_kl[M.EVAL_GOLD_MEAN]
    gap_default = with_kl[M.PPO_EVAL_REWARD] - with_kl[M.EVAL_GOLD_MEAN]
    assert drift, (
        "without the KL penalty the policy should move further from the SFT model (ppo/eval_kl)"
    )
    assert gap_kl0 > gap_default, (
        "without the KL penalty the reward model's score should run ahead of the gold score. "
        "Hint: train for the same number of updates, and compare ppo/eval_reward - eval/gold_mean."
    )
    print(
        f"Reward hacking: proxy - gold gap {gap_default:.2f} -> {gap_kl0:.2f}; KL {with_kl[M.PPO_EVAL_KL]:.1f} -> {without_kl[M.PPO_EVAL_KL]:.1f}"
    )
    return True


def _mean(rows: list[dict], name: str) -> float:
    """The mean of `name` over log rows (e.g. the first or last five updates)."""
    values = [row[name] for row in rows if name in row]
    return sum(values) / len(values)


def check_overoptimisation(log: list[dict] | None) -> bool:
    """With no KL penalty the proxy keeps rising while gold peaks and falls back (the check of
    `benchmarks/break_it.py`'s long unleashed run; notebook 05 asks for the KL budget instead)."""
    if log is None:
        return _pending("run PPO with kl_coef=0 for longer and read proxy and gold from its log")
    gold = [row[M.PPO_GOLD] for row in log]
    window = max(len(gold) // 10, 3)
    smooth = [sum(gold[i : i + window]) / window for i in range(len(gold) - window + 1)]
    peak, last = max(smooth), smooth[-1]
    proxy_rise = _mean(log[-window:], M.PPO_REWARD) - _mean(log[:window], M.PPO_REWARD)
    assert proxy_rise > 0, "the reward model's score (ppo/reward) should keep rising"
    assert peak - last > 0.1, (
        f"gold peaked at {peak:.2f} and ends at {last:.2f}: no fall yet. "
        "Hint: train longer (more updates) with kl_coef=0; the fall comes once the KL is large."
    )
    print(
        f"Over-optimisation: proxy +{proxy_rise:.2f}; gold peaked at {peak:.2f}, ends at {last:.2f}"
    )
    return True


def check_whitening_off(with_whitening: list[dict] | None, without: list[dict] | None) -> bool:
    """Exercise 04.2: raw advantages shrink as the critic learns, so the policy's steps shrink."""
    if with_whitening is None or without is None:
        return _pending("train PPO with whiten_advantages=False and compare the two logs")
    shrink = {
        name: _mean(log[-5:], M.PPO_GRAD_NORM) / _mean(log[:5], M.PPO_GRAD_NORM)
        for name, log in {"whitened": with_whitening, "raw": without}.items()
    }
    assert shrink["raw"] < 0.8 * shrink["whitened"], (
        f"grad norm kept {shrink['raw']:.0%} (raw) vs {shrink['whitened']:.0%} (whitened) of its start. "
        "Hint: compare the same number of updates, and read ppo/grad_norm early and late."
    )
    kl = {
        name: _mean(log[-5:], M.PPO_KL) for name, log in {"w": with_whitening, "r": without}.items()
    }
    assert kl["r"] < kl["w"], "with smaller steps the policy should also move less far (ppo/kl)"
    print(
        f"Steps shrink without whitening: the gradient norm keeps {shrink['raw']:.0%} of its start "
        f"(whitened: {shrink['whitened']:.0%}); KL reached {kl['r']:.2f} instead of {kl['w']:.2f}."
    )
    return True


def check_tiny_reward_data(full: dict | None, tiny: dict | None) -> bool:
    """Exercise 03.3: a reward model trained on a handful of pairs is close to a coin flip."""
    if full is None or tiny is None:
        return _pending("train a reward model on 64 pairs and compare its held-out accuracy")
    acc = {k: m[M.REWARD_ACCURACY] for k, m in {"full": full, "tiny": tiny}.items()}
    gold = {k: m[M.REWARD_GOLD_ACCURACY] for k, m in {"full": full, "tiny": tiny}.items()}
    assert acc["tiny"] < acc["full"] - 0.05 and gold["tiny"] < gold["full"] - 0.05, (
        f"held-out accuracy {acc['tiny']:.1%} (tiny) vs {acc['full']:.1%} (full), agreement "
        f"with gold {gold['tiny']:.1%} vs {gold['full']:.1%}: both should fall by over 5 points. "
        "Hint: set reward.max_train_pairs to a small number such as 64 and train into another folder."
    )
    print(
        f"Too little data: accuracy {acc['full']:.1%} -> {acc['tiny']:.1%}, "
        f"agreement with gold {gold['full']:.1%} -> {gold['tiny']:.1%}. PPO would chase this noise."
    )
    return True


def check_eos_penalty(logs: dict[str, list[dict]] | None) -> bool:
    """Exercise 04.3: on a tight token budget, only the missing-EOS penalty teaches the policy to stop."""
    if logs is None:
        return _pending("train with max_new_tokens=16 with and without missing_eos_penalty")
    eos = {name: _mean(log[-5:], M.PPO_EOS_RATE) for name, log in logs.items()}
    assert eos["penalty"] > eos["no-penalty"] + 0.1, (
        f"late EOS rate {eos['penalty']:.0%} with the penalty, {eos['no-penalty']:.0%} without. "
        "Hint: both runs need the same short budget (ppo.max_new_tokens=16) and the same updates."
    )
    print(
        f"Finished answers: {eos['penalty']:.0%} with the penalty, {eos['no-penalty']:.0%} without. "
        "Without it, a cut-off answer is scored as if it were complete."
    )
    return True


def _smoothed_peak(log: list[dict], name: str, window: int) -> int:
    """Index of the highest `window`-update moving average of `name` (centred)."""
    values = [row[name] for row in log]
    means = [sum(values[i : i + window]) / window for i in range(len(values) - window + 1)]
    return means.index(max(means)) + window // 2


def check_kl_budget(log: list[dict] | None, kl: float | None, window: int = 5) -> bool:
    """Exercise 05.1: the KL to SFT at which the (smoothed) gold score peaked."""
    if log is None or kl is None:
        return _pending("find the KL to SFT at which the gold score peaked")
    hint = f"smooth ppo/gold over {window} updates, find its maximum, read ppo/kl there."
    kl = _one_number(kl, hint)
    peak = _smoothed_peak(log, M.PPO_GOLD, min(window, len(log)))
    # Any update inside the smoothing window of the peak is a right reading, give or take 10%.
    around = [row[M.PPO_KL] for row in log[max(peak - window // 2, 0) : peak + window // 2 + 1]]
    low, high = min(around), max(around)
    assert 0.9 * low - 0.02 <= kl <= 1.1 * high + 0.02, f"KL {kl:.2f} is not it. Hint: {hint}"
    print(
        f"Correct: gold peaked near update {log[peak]['step']} at KL ~{log[peak][M.PPO_KL]:.2f}; "
        "past that budget, reward-model gains are no longer real gains."
    )
    return True


def check_dpo_loss(loss_fn) -> bool:
    """Exercise 06.1: DPO's loss from the four log-probs of a pair and beta."""
    if loss_fn is None:
        return _pending(
            "write DPO's loss from policy and reference log-probs of chosen and rejected"
        )
    cases = [
        (0.0, 0.0, 0.0, 0.0, 0.1),
        (-2.0, -5.0, -3.0, -3.0, 0.1),
        (-9.0, -1.0, -4.0, -2.0, 0.5),
    ]
    for pc, pr, rc, rr, beta in cases:
        margin = beta * ((pc - rc) - (pr - rr))  # implicit reward of chosen minus rejected
        truth = math.log1p(math.exp(-margin))
        got = _call(loss_fn, pc, pr, rc, rr, beta)
        assert abs(got - truth) < 1e-4, (
            f"loss{(pc, pr, rc, rr, beta)} = {got:.4f}, expected {truth:.4f}. Hint: the implicit "
            "reward is beta * (log pi - log pi_ref); then it is the reward model's loss on the pair."
        )
    print("Correct: ln 2 while the policy equals the reference; DPO is a reward model in disguise.")
    return True


def check_group_advantages(advantages_fn) -> bool:
    """Exercise 06.2: GRPO's advantages: each reward against its group's mean, over its std."""
    if advantages_fn is None:
        return _pending("write GRPO's group-relative advantages for one group of rewards")
    hint = (
        "subtract the group's mean, divide by its standard deviation plus a small epsilon "
        "(1e-4), so a group of equal rewards gives zeros, not NaN."
    )
    for group in ([1.0, 2.0, 3.0, 4.0], [3.0, -1.0], [0.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]):
        mean = sum(group) / len(group)
        try:
            got = [float(a) for a in advantages_fn(group)]
        except ArithmeticError as err:  # 0 / 0 in pure Python: no epsilon
            raise AssertionError(f"advantages({group}) failed: {err}. Hint: {hint}") from None
        except (TypeError, AttributeError, ValueError) as err:  # no return, one number, list maths
            raise AssertionError(
                f"advantages({group}) failed: {err}. Hint: the group is a Python list of floats "
                "(torch.tensor(group) to use tensor maths); return one advantage per reward."
            ) from None
        assert len(got) == len(group), f"{len(got)} advantages for a group of {len(group)}"
        fits = []
        for ddof in (0, 1):  # TRL uses the unbiased std (ddof 1); either teaches the idea
            std = math.sqrt(sum((r - mean) ** 2 for r in group) / (len(group) - ddof))
            truth = [(r - mean) / (std + 1e-4) for r in group]
            fits.append(all(abs(g - t) < 1e-3 for g, t in zip(got, truth, strict=True)))
        assert any(fits), f"advantages({group}) = {got}. Hint: {hint}"
    print(f"Correct: a group whose answers all score the same teaches nothing ({M.GRPO_ZERO_STD}).")
    return True


def check_gold_per_kl(table: pd.DataFrame, per_kl: pd.Series | None) -> bool:
    """Exercise 06.3: each method's gold gain over SFT per nat of KL it spent."""
    if per_kl is None:
        return _pending("compute each method's gold gain over SFT per nat of KL to SFT")
    methods = table.loc[[m for m in ("ppo", "dpo", "grpo") if m in table.index]]
    truth = (methods["gold_mean"] - table.loc["sft", "gold_mean"]) / methods["kl_to_sft"]
    _same_per_name(
        per_kl, truth, "method", "(gold_mean - SFT's gold_mean) / kl_to_sft, for ppo, dpo, grpo."
    )
    best = truth.idxmax()
    print(f"Correct: {best} bought the most, {truth[best]:.2f} gold per nat of KL "
          f"({truth.round(2).to_dict()}).")  # fmt: skip
    return True


def check_taste_ceiling(world: World, pairs: list[dict], taste: str, share: float | None) -> bool:
    """Exercise 07.1: how often the class's own noiseless taste agrees with its votes."""
    if share is None:
        return _pending(f"compute how often the noiseless {taste!r} taste picks the voted answer")
    weights = taste_weights(taste)
    agree = [
        score(world.features(p["prompt"], p["chosen"]), weights)
        > score(world.features(p["prompt"], p["rejected"]), weights)
        for p in pairs
    ]
    truth = sum(agree) / len(agree)
    return _same_share(
        share, [truth],
        "score both answers of each pair with score(world.features(prompt, answer), "
        "taste_weights(TASTE)); count chosen > rejected.",
        f"the taste itself agrees with {truth:.1%} of the votes: the most any model can.",
    )  # fmt: skip


def check_tone_reward(reward_fn) -> bool:
    """Exercise 08.1: a reward function, polite minus rude sentences per answer, by the judge."""
    if reward_fn is None:
        return _pending("write my_reward(prompts, completions) -> polite minus rude sentences")
    texts = ["Sure! 2 plus 3 is 5.", "Ugh, fine. Whatever.", "Sure! Hope this helps! Obviously.",
             "The capital of Shoos is Grilo.", "", "Sure! Sure!"]  # fmt: skip
    truth = [
        float(sum({"polite": 1, "rude": -1}.get(classify(s)[0], 0) for s in split_sentences(t)))
        for t in texts
    ]
    try:
        got = [float(x) for x in reward_fn(["Hi."] * len(texts), texts)]
    except (TypeError, AttributeError, ValueError) as err:  # no return, one number, ...
        raise AssertionError(
            f"my_reward(prompts, completions) failed: {err}. Hint: return a list with one "
            "number per completion."
        ) from None
    assert len(got) == len(texts), f"{len(got)} rewards for {len(texts)} completions"
    assert got == truth, (
        f"got {got} for {texts}, expected {truth}. Hint: split_sentences(text), then "
        "classify(sentence)[0] is 'polite' or 'rude' (or something else); count every sentence."
    )
    print("Correct: put it in a module and `--set ppo.reward=function:mymodule.my_reward`.")
    return True


def check_taste_wins(old: pd.DataFrame, new: pd.DataFrame, share: float | None) -> bool:
    """Exercise 07.2: the share of prompts where the new policy's answer is strictly better
    under the class's taste (`compute_answer_style`'s utility)."""
    if share is None:
        return _pending("compute on what share of prompts the new policy beats the old one")
    truth = float((new["utility"].to_numpy() > old["utility"].to_numpy()).mean())
    return _same_share(
        share, [truth], "compare the two tables' utility column prompt by prompt; a tie is not a win.",
        f"the new policy wins on {truth:.1%} of prompts.",
    )  # fmt: skip
