"""Worked solutions of the notebooks' exercises, for a student who is stuck: `solution("05.1")`.

Each is the code a student would write in the exercise's cell and one line on why it works;
tests/test_exercises.py runs every one against its check in `lab.exercises`.
"""

from __future__ import annotations

SOLUTIONS = {
    "00.1": (
        'my_answer = "Sure! 9 minus 4 is 5."',
        "The judge rewards a correct sentence in the world's wording and a little politeness; "
        "padding, extra facts and fawning cost points (see world.features).",
    ),
    "00.2": (
        'my_agreement = (pairs["gold_chosen"] > pairs["gold_rejected"]).mean()',
        "A pair agrees when the annotator's choice is also gold's; the mean of a boolean is a share.",
    ),
    "01.1": (
        'full = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}],\n'
        '                                     add_generation_prompt=True, return_dict=True)["input_ids"]\n'
        'content = tokenizer("Hi", add_special_tokens=False)["input_ids"]\n'
        "my_overhead = len(full) - len(content)",
        "Everything in `full` that is not the message is template: BOS, role markers, EOS.",
    ),
    "01.2": (
        "import math\n\nmy_perplexity = math.exp(metrics[M.PRETRAIN_EVAL_LOSS])",
        "The loss is a mean negative log-likelihood in nats; its exponential is the perplexity.",
    ),
    "02.1": (
        'my_win_share = (sft_table["gold"] > base_table["gold"]).mean()',
        "Strict wins only: a tie is not a win (eval/win_rate counts ties as half, this check does not).",
    ),
    "03.1": (
        "import math\n\n\ndef my_loss(r_chosen, r_rejected):\n"
        "    return math.log1p(math.exp(-(r_chosen - r_rejected)))  # -log sigmoid(rc - rr)",
        "P(chosen wins) = sigmoid(rc - rr) (Bradley-Terry); the loss is its negative log.",
    ),
    "03.2": (
        'disagree = ~pairs["rm_agrees_with_gold"]\n'
        'my_errors = disagree.groupby(pairs["kind"]).mean()',
        "Group the disagreements by task kind; the mean of a boolean is a rate.",
    ),
    "03.3": (
        "TRY_IT = True  # then run the cell as it is",
        "Accuracy drops towards 50%: 64 pairs are too few for the model to find what the judge likes.",
    ),
    "04.1": (
        "TRY_IT = True  # then run the cell as it is (a few minutes)",
        "With kl_coef = 0 nothing holds the policy near SFT: KL grows, and the reward model's score "
        "runs ahead of gold because the policy finds what the reward model over-rates.",
    ),
    "04.2": (
        "TRY_IT = True  # then run the cell as it is",
        "Raw advantages shrink as the critic learns to predict returns, so do the gradients "
        "(ppo/grad_norm) and how far the policy moves (ppo/kl); whitening keeps the step size steady.",
    ),
    "04.3": (
        "TRY_IT = True  # then run the cell as it is",
        "A cut-off answer is scored as if complete; only the missing-EOS penalty makes ending pay.",
    ),
    "05.1": (
        "smooth = free_log[M.PPO_GOLD].rolling(5, center=True).mean()\n"
        "my_kl = free_log.loc[smooth.idxmax(), M.PPO_KL]",
        "Single batches are noisy, so smooth gold first; the KL at its peak is the budget past which "
        "reward-model gains stop being real gains.",
    ),
    "06.1": (
        "import math\n\n\ndef my_dpo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta):\n"
        "    margin = beta * ((pi_chosen - ref_chosen) - (pi_rejected - ref_rejected))\n"
        "    return math.log1p(math.exp(-margin))  # -log sigmoid(margin)",
        "beta * log(pi / pi_ref) is DPO's implicit reward; the loss is Bradley-Terry on it.",
    ),
    "06.2": (
        "import statistics\n\n\ndef my_advantages(rewards):\n"
        "    mean, std = statistics.mean(rewards), statistics.stdev(rewards)\n"
        "    return [(r - mean) / (std + 1e-4) for r in rewards]",
        "The group is the baseline (no value function): above-average answers are pushed up. The "
        "epsilon keeps a group of equal rewards at zero advantage instead of 0/0.",
    ),
    "06.3": (
        'gain = table["gold_mean"] - table.loc["sft", "gold_mean"]\n'
        'my_per_kl = (gain / table["kl_to_sft"]).loc[["ppo", "dpo", "grpo"]]',
        "KL to SFT is what a method spends; gold over SFT is what it buys.",
    ),
    "07.1": (
        "from lab.world.judge import score\nfrom lab.world.tastes import taste_weights\n\n"
        "w = taste_weights(TASTE)\n"
        'hits = [score(world.features(p["prompt"], p["chosen"]), w)\n'
        '        > score(world.features(p["prompt"], p["rejected"]), w) for p in pairs]\n'
        "my_ceiling = sum(hits) / len(hits)",
        "The votes are noisy: even the class's own taste, without noise, disagrees with some. "
        "No reward model can agree with held-out votes more often than this, on average.",
    ),
    "07.2": (
        'my_wins = (new["utility"].to_numpy() > old["utility"].to_numpy()).mean()',
        "Both tables answer the same held-out prompts in the same order; ties (often the very "
        "same answer) are not wins.",
    ),
    "08.1": (
        "from lab.world.judge import classify, split_sentences\n\n"
        "def my_reward(prompts, completions):\n"
        "    tone = {'polite': 1, 'rude': -1}\n"
        "    return [float(sum(tone.get(classify(s)[0], 0) for s in split_sentences(t)))\n"
        "            for t in completions]",
        "A reward function sees only text, like the classifier; unlike it, it cannot be fooled by "
        "text it never saw, but it also knows nothing beyond its two lists.",
    ),
}


def solution(exercise: str) -> None:
    """Print the worked solution of an exercise, e.g. `solution("05.1")`."""
    if exercise not in SOLUTIONS:
        raise KeyError(f"no exercise {exercise!r}; there are {', '.join(SOLUTIONS)}")
    code, why = SOLUTIONS[exercise]
    print(f"Exercise {exercise}, a worked solution:\n\n{code}\n\nWhy: {why}")
