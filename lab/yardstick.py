"""The yardstick every policy is measured with at the end of its stage (PPO, DPO, GRPO).

The same held-out prompts, decoding and estimators for every model, so that their numbers
compare: gold of each answer (and win / tie / loss against SFT, prompt by prompt), then
exact KL to the SFT model and reward-model score of fresh samples (`compute_kl_and_reward`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lab import recipes
from lab.config import LabConfig
from lab.evaluation import (
    GOLD_TABLE,
    compute_kl_and_reward,
    evaluate_model,
    save_gold_table,
    summarize_gold,
    win_metrics,
)
from lab.models import load_causal_lm, save_model
from lab.reward_model import load_reward_model
from lab.trainers import causal_lm_loader, trained_model


def evaluate_policy(
    cfg: LabConfig,
    policy,
    tokenizer,
    run_dir: Path,
    out_dir: Path,
    names: dict[str, str],
    reward_model: Path | None = None,
) -> dict:
    """Gold against SFT, KL to SFT and reward-model score on the held-out prompts.

    `names` maps `kl`, `reward`, `eos_rate` and `win_tie_loss` to the stage's metric names;
    `reward_model` is the reward model the policy trained against (default: the run's).
    """
    world, prompts = recipes.gold_judge(cfg), recipes.eval_prompts(cfg, run_dir / "world")

    # Gold: the same prompts and decoding as the SFT stage's table, prompt by prompt.
    table = evaluate_model(policy, tokenizer, world, prompts)
    save_gold_table(table, out_dir / GOLD_TABLE)
    sft_table = pd.read_json(run_dir / "sft" / GOLD_TABLE, lines=True)

    # KL to the SFT model and reward-model score, on fresh samples with the same decoding.
    reference = load_causal_lm(str(run_dir / "sft" / "model"), cfg.model.dtype, cfg.device)
    rm, rm_tokenizer = load_reward_model(
        reward_model or run_dir / "reward" / "model", policy.device
    )
    drift = compute_kl_and_reward(policy, reference, tokenizer, rm, rm_tokenizer, prompts)
    return {
        **summarize_gold(table),
        **win_metrics(table, sft_table, names["win_tie_loss"]),
        **{names[k]: v for k, v in drift.items()},
    }


def finish_policy(
    cfg: LabConfig, trainer, start: str, tokenizer, run_dir: Path, out_dir: Path, names
) -> tuple:
    """A TRL stage's end: the trained policy saved as a plain model folder, then measured.

    `start` is the model the policy was loaded from (`causal_lm_loader`), where LoRA adapters go
    back on; returns `(policy, the yardstick's metrics under the stage's names)`.
    """
    policy = trained_model(trainer, causal_lm_loader(cfg), start, out_dir)
    save_model(policy, tokenizer, out_dir / "model")
    return policy, evaluate_policy(cfg, policy, tokenizer, run_dir, out_dir, names)
