"""Auto-checks for the notebooks' exercises: pass, fail with a hint, or wait for an attempt.

Each check takes the student's answer; `None` means "not attempted yet" and only prints
the task, so a fresh notebook runs top to bottom. A wrong answer raises with a hint.
"""

from __future__ import annotations

import pandas as pd

from lab.world import World


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
