"""The yardstick every policy is measured with at the end of its stage (PPO, DPO, GRPO).

The same held-out prompts, decoding and estimators for every model, so that their numbers
compare: gold of each answer (and win / tie / loss against SFT, prompt by prompt), then
exact KL to the SFT model and reward-model score of fresh samples (`compute_kl_and_reward`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lab import metrics as M
from lab import recipes
from lab.config import LabConfig
from lab.evaluation import (
    GOLD_TABLE,
    compute_kl_and_reward,
    compute_sentence_counts,
    evaluate_model,
    evaluate_samples,
    save_gold_table,
    summarize_gold,
    win_metrics,
)
from lab.models import load_causal_lm, load_tokenizer, save_model
from lab.reward_sources import Scorer, load_scorer
from lab.trainers import trained_model

START_GOLD_TABLE = "eval_start.jsonl"  # the start model's answers, when it is not the SFT model


def evaluate_policy(
    cfg: LabConfig,
    policy,
    tokenizer,
    run_dir: Path,
    out_dir: Path,
    names: dict[str, str],
    reward_model: Path | None = None,
    start: str | None = None,
    scorer: Scorer | None = None,
) -> dict:
    """Gold against the start model, KL to it and the reward on the held-out prompts.

    `names` maps `kl`, `reward`, `eos_rate` and `win_tie_loss` to the stage's metric names;
    `reward_model` is the reward model the policy trained against (default: the run's), or
    `scorer` the reward it trained on. `start` is the model the policy started from (default:
    the run's SFT model); another start (the base) is measured too, as the "before" numbers.
    """
    world, prompts = recipes.gold_judge(cfg), recipes.eval_prompts(cfg, run_dir / "world")
    sft = str(run_dir / "sft" / "model")
    start = str(start or sft)

    # Gold: the same prompts and decoding as the start model's table, prompt by prompt.
    table = evaluate_model(policy, tokenizer, world, prompts)
    save_gold_table(table, out_dir / GOLD_TABLE)
    # The reference in the policy's own precision (fp32 after full fine-tuning; TRL builds DPO's
    # and GRPO's references so too): KL then measures training, not bf16 rounding.
    reference = load_causal_lm(start, str(policy.dtype).removeprefix("torch."), cfg.device)
    if start == sft:
        start_table = pd.read_json(run_dir / "sft" / GOLD_TABLE, lines=True)
    else:
        start_table = evaluate_model(reference, tokenizer, world, prompts)
        save_gold_table(start_table, out_dir / START_GOLD_TABLE)

    # KL to the start model and the reward, on fresh samples with the same decoding.
    scorer = scorer or load_scorer("model", run_dir, policy.device, reward_model)
    drift = compute_kl_and_reward(policy, reference, tokenizer, None, None, prompts, scorer=scorer)
    out = {
        **summarize_gold(table),
        **win_metrics(table, start_table, names["win_tie_loss"]),
        **{names[k]: v for k, v in drift.items()},
    }
    if start != sft:
        out |= before_and_after(reference, tokenizer, scorer, prompts, world, table, start_table)
    return out


def sample_policy(cfg: LabConfig, run_dir: Path, policy: Path, samples: int) -> pd.DataFrame:
    """`samples` answers of the saved policy in `policy` to each of the run's held-out prompts,
    gold-scored and stacked (`evaluate_samples`: sample 0 is the table its stage saved)."""
    model = load_causal_lm(str(policy), cfg.model.dtype, cfg.device)
    world, prompts = recipes.gold_judge(cfg), recipes.eval_prompts(cfg, Path(run_dir) / "world")
    return evaluate_samples(model, load_tokenizer(str(policy)), world, prompts, samples)


def before_and_after(reference, tokenizer, scorer, prompts, world, table, start_table) -> dict:
    """The start model's reward, and polite / toxic / garbled sentences per answer before and after."""
    before = compute_kl_and_reward(
        reference, reference, tokenizer, None, None, prompts, scorer=scorer
    )
    out = {M.EVAL_REWARD_START: before["reward"]}
    if world is None:
        return out
    names = {"polite": M.EVAL_POLITE, "rude_unsafe": M.EVAL_RUDE_UNSAFE, "garbled": M.EVAL_GARBLED}
    start_names = {
        "polite": M.EVAL_START_POLITE,
        "rude_unsafe": M.EVAL_START_RUDE_UNSAFE,
        "garbled": M.EVAL_START_GARBLED,
    }
    out |= {names[k]: v for k, v in compute_sentence_counts(world, table).items()}
    out |= {start_names[k]: v for k, v in compute_sentence_counts(world, start_table).items()}
    return out


BEFORE_AFTER = {  # measure -> (metric before, metric after); the reward's is the stage's own
    "polite per answer": (M.EVAL_START_POLITE, M.EVAL_POLITE),
    "rude + unsafe per answer": (M.EVAL_START_RUDE_UNSAFE, M.EVAL_RUDE_UNSAFE),
    "garbled per answer": (M.EVAL_START_GARBLED, M.EVAL_GARBLED),
}


def compute_before_after(metrics: dict, reward_metric: str = M.PPO_EVAL_REWARD) -> pd.DataFrame:
    """The start model's numbers beside the policy's (a stage's metrics from `before_and_after`):
    one row per measure, columns `before` and `after`."""
    pairs = {"reward": (M.EVAL_REWARD_START, reward_metric), **BEFORE_AFTER}
    rows = [
        {"measure": name, "before": metrics[b], "after": metrics[a]}
        for name, (b, a) in pairs.items()
        if b in metrics and a in metrics
    ]
    return pd.DataFrame(rows).set_index("measure")


def finish_policy(
    cfg: LabConfig, trainer, load, start: str, tokenizer, run_dir: Path, out_dir: Path, names,
    scorer=None,
) -> tuple:  # fmt: skip
    """A TRL stage's end: the trained policy saved as a plain model folder, then measured.

    `load` loaded the policy from `start` (`causal_lm_loader`), where LoRA adapters go back on;
    `scorer` the reward it trained on (default: the run's reward model); returns `(policy, the
    yardstick's metrics under the stage's names)`.
    """
    policy = trained_model(trainer, load, start, out_dir)
    save_model(policy, tokenizer, out_dir / "model")
    return policy, evaluate_policy(cfg, policy, tokenizer, run_dir, out_dir, names, scorer=scorer)
