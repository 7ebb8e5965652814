"""Auto-checks for the notebooks' exercises: pass, fail with a hint, or wait for an attempt.

Each check takes the student's answer; `None` means "not attempted yet" and only prints
the task, so a fresh notebook runs top to bottom. A wrong answer raises with a hint.
"""

from __future__ import annotations

import pandas as pd

from lab.world import World

# A reward model that is easy to fool (300 pairs) and no KL leash: over-optimisation in minutes.
OVEROPTIMISATION = {"reward.max_train_pairs": 300, "ppo.kl_coef": 0.0, "ppo.kl_target": 0.0}


def _pending(task: str) -> bool:
    print(f"Exercise not attempted yet: {task}")
    return False


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
    assert abs(agreement - truth) < 1e-6, (
        f"got {agreement:.4f}. Hint: a pair agrees when gold_chosen > gold_rejected; take the mean."
    )
    print(f"Correct: annotators agree with gold on {truth:.1%} of pairs.")
    return True


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
        f"got {n_tokens}. Hint: decode `full` with tokenizer.convert_ids_to_tokens and count what is not 'Hi'."
    )
    print(f"Correct: {truth} tokens of template; every prompt pays them.")
    return True


def check_perplexity(eval_loss: float, perplexity: float | None) -> bool:
    """Exercise 01.2: perplexity from the mean next-token loss (in nats)."""
    if perplexity is None:
        return _pending("turn the eval loss into a perplexity")
    import math

    truth = math.exp(eval_loss)
    assert abs(perplexity - truth) < 1e-3 * truth, (
        f"got {perplexity:.3f}. Hint: the loss is a mean negative log-likelihood in nats."
    )
    print(f"Correct: perplexity {truth:.2f}: as unsure as a fair choice among {truth:.1f} tokens.")
    return True


def check_win_rate(new_gold: list[float], old_gold: list[float], win_rate: float | None) -> bool:
    """Exercise 02.1: the share of prompts where the new model's answer beats the old one's."""
    if win_rate is None:
        return _pending("compute the SFT model's win rate against the base model")
    from lab.evaluation import compute_win_rate

    truth = compute_win_rate(new_gold, old_gold)
    assert abs(win_rate - truth.win) < 1e-6, (
        f"got {win_rate:.4f}. Hint: compare the two gold columns row by row; count strict wins only "
        f"(ties are {truth.tie:.1%} here)."
    )
    print(f"Correct: wins {truth.win:.1%}, ties {truth.tie:.1%}, losses {truth.loss:.1%}.")
    return True


def check_bt_loss(loss_fn) -> bool:
    """Exercise 03.1: the reward model's pairwise loss, -log sigmoid(r_chosen - r_rejected)."""
    if loss_fn is None:
        return _pending("write the Bradley-Terry loss as a function of the two rewards")
    import math

    for rc, rr in [(0.0, 0.0), (2.0, 0.0), (-1.0, 1.5), (30.0, -30.0)]:
        truth = math.log1p(math.exp(-(rc - rr)))
        got = float(loss_fn(rc, rr))
        assert abs(got - truth) < 1e-4, (
            f"loss({rc}, {rr}) = {got:.4f}, expected {truth:.4f}. Hint: P(chosen wins) = sigmoid(rc - rr)."
        )
    print("Correct: ln 2 at a tie, near 0 when chosen wins clearly, large when the order is wrong.")
    return True


def check_worst_kind(pairs: pd.DataFrame, kind: str | None) -> bool:
    """Exercise 03.2: the task kind on which the reward model disagrees with gold most often."""
    if kind is None:
        return _pending("find the task kind where the reward model disagrees with gold most")
    rm_right = (pairs["chosen_score"] - pairs["rejected_score"]) * (
        pairs["gold_chosen"] - pairs["gold_rejected"]
    ) > 0
    errors = (~rm_right).groupby(pairs["kind"]).mean()
    assert kind == errors.idxmax(), (
        f"{kind!r} has error rate {errors.get(kind, float('nan')):.1%}; another kind is worse. "
        "Hint: group by 'kind' and compare the RM's order with the gold order."
    )
    print(
        f"Correct: {kind} ({errors[kind]:.1%} disagreement). Why would this kind be hard to judge?"
    )
    return True


def check_reward_hacking(with_kl: dict | None, without_kl: dict | None) -> bool:
    """Exercise 04.1: with kl_coef=0 the policy drifts further and the proxy outruns the gold judge."""
    if with_kl is None or without_kl is None:
        return _pending("train PPO with kl_coef=0 and compare its metrics with the default run")
    drift = without_kl["ppo/eval_kl"] > with_kl["ppo/eval_kl"]
    gap_kl0 = without_kl["ppo/eval_reward"] - without_kl["eval/gold_mean"]
    gap_default = with_kl["ppo/eval_reward"] - with_kl["eval/gold_mean"]
    assert drift, (
        "without the KL penalty the policy should move further from the SFT model (ppo/eval_kl)"
    )
    assert gap_kl0 > gap_default, (
        "without the KL penalty the reward model's score should run ahead of the gold score. "
        "Hint: train for the same number of updates, and compare ppo/eval_reward - eval/gold_mean."
    )
    print(
        f"Reward hacking: proxy - gold gap {gap_default:.2f} -> {gap_kl0:.2f}; KL {with_kl['ppo/eval_kl']:.1f} -> {without_kl['ppo/eval_kl']:.1f}"
    )
    return True


def _mean(rows: list[dict], name: str) -> float:
    """The mean of `name` over log rows (e.g. the first or last five updates)."""
    values = [row[name] for row in rows if name in row]
    return sum(values) / len(values)


def check_overoptimisation(log: list[dict] | None) -> bool:
    """Exercise 05.1: with no KL penalty the proxy keeps rising while gold peaks and falls back."""
    if log is None:
        return _pending("run PPO with kl_coef=0 for longer and read proxy and gold from its log")
    gold = [row["ppo/gold"] for row in log]
    window = max(len(gold) // 10, 3)
    smooth = [sum(gold[i : i + window]) / window for i in range(len(gold) - window + 1)]
    peak, last = max(smooth), smooth[-1]
    proxy_rise = _mean(log[-window:], "ppo/reward") - _mean(log[:window], "ppo/reward")
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
        name: _mean(log[-5:], "ppo/grad_norm") / _mean(log[:5], "ppo/grad_norm")
        for name, log in {"whitened": with_whitening, "raw": without}.items()
    }
    assert shrink["raw"] < 0.8 * shrink["whitened"], (
        f"grad norm kept {shrink['raw']:.0%} (raw) vs {shrink['whitened']:.0%} (whitened) of its start. "
        "Hint: compare the same number of updates, and read ppo/grad_norm early and late."
    )
    kl = {
        name: _mean(log[-5:], "ppo/kl") for name, log in {"w": with_whitening, "r": without}.items()
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
    acc = {k: m["reward/accuracy"] for k, m in {"full": full, "tiny": tiny}.items()}
    gold = {k: m["reward/gold_accuracy"] for k, m in {"full": full, "tiny": tiny}.items()}
    assert acc["tiny"] < acc["full"] - 0.05 and gold["tiny"] < gold["full"] - 0.05, (
        f"held-out accuracy {acc['tiny']:.1%} (tiny) vs {acc['full']:.1%} (full). "
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
    eos = {name: _mean(log[-5:], "ppo/eos_rate") for name, log in logs.items()}
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
    peak = _smoothed_peak(log, "ppo/gold", min(window, len(log)))
    around = [row["ppo/kl"] for row in log[max(peak - window, 0) : peak + window + 1]]
    low, high = min(around), max(around)
    assert low - 0.25 <= kl <= high + 0.25, (
        f"KL {kl:.2f}: gold peaked around update {log[peak]['step']}, where ppo/kl was "
        f"{low:.2f} to {high:.2f}. Hint: smooth ppo/gold over {window} updates, find the maximum."
    )
    print(
        f"Correct: gold peaked near update {log[peak]['step']} at KL ~{log[peak]['ppo/kl']:.2f}; "
        "past that budget, reward-model gains are no longer real gains."
    )
    return True
