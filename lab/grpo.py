"""Stage 6: GRPO. PPO without a value function: each answer is judged against its siblings.

For every prompt TRL's `GRPOTrainer` samples `num_generations` answers, scores them with the
reward `grpo.reward` names (the lab's reward model by default, or a function or classifier:
`lab.reward_sources`, as PPO), and uses (score - group mean) / group std as every token's
advantage, with a per-token KL(policy || SFT) penalty weighted by beta. `reward_function`
converts TRL's prompts and completions to the scorer's at that edge. Saved and measured at the end like every policy
(`lab.yardstick.finish_policy`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import datasets
import torch
import trl

from lab import metrics as M
from lab import recipes
from lab.config import LabConfig
from lab.models import load_tokenizer, num_params, resolve_device
from lab.responses import penalize_missing_eos
from lab.reward_sources import Scorer, load_scorer
from lab.runlog import RunLog
from lab.trainers import (
    ForwardLogs,
    causal_lm_loader,
    check_launch,
    last_logged,
    lora_config,
    trainer_args,
)
from lab.world import last_content
from lab.yardstick import finish_policy

REWARD_NAME = "reward_model"  # TRL logs rewards/<this name>/mean; `reward` is their weighted sum
TRAINER_LOGS = {  # the trainer's log keys -> the lab's metric names
    "reward": M.GRPO_REWARD,
    "reward_std": M.GRPO_REWARD_STD,
    "kl": M.GRPO_KL,
    "loss": M.GRPO_LOSS,
    "learning_rate": M.GRPO_LR,
    "entropy": M.GRPO_ENTROPY,
    "completions/mean_length": M.GRPO_LENGTH,
    "completions/clipped_ratio": M.GRPO_CLIPPED_RATIO,
    "frac_reward_zero_std": M.GRPO_ZERO_STD,
}
EVAL_NAMES = {  # `evaluate_policy`'s keys -> the lab's metric names
    "kl": M.GRPO_EVAL_KL,
    "reward": M.GRPO_EVAL_REWARD,
    "eos_rate": M.GRPO_EVAL_EOS_RATE,
    "win_tie_loss": M.GRPO_WIN_TIE_LOSS,
}


def reward_function(
    scorer: Scorer, eos_token_id: int, missing_eos_penalty: float
) -> Callable[..., list[float]]:
    """A scorer as a TRL reward function: one score per completion, less a missing-EOS penalty.

    TRL passes conversational prompts (message lists) with completions as one assistant message
    each, or standard ones as strings; a scorer takes either prompt, and the answer as plain text.
    """

    def reward_model(prompts, completions, completion_ids, **kwargs) -> list[float]:
        answers = [last_content(c, "assistant").strip() for c in completions]
        scores = torch.tensor(scorer(prompts, answers), dtype=torch.float64)
        ended = [bool(ids) and ids[-1] == eos_token_id for ids in completion_ids]  # cut at EOS
        return penalize_missing_eos(scores, torch.tensor(ended), missing_eos_penalty).tolist()

    reward_model.__name__ = REWARD_NAME
    return reward_model


def run_grpo(cfg: LabConfig, run_dir: Path, out_dir: Path) -> dict:
    """Train the SFT model against the reward model with GRPO; save and evaluate it."""
    g, log = cfg.grpo, RunLog(out_dir, report_to=cfg.log.targets())
    sft = str(run_dir / "sft" / "model")

    # 1. Data: the RL prompts (conversational), the first `max_prompts` of them.
    prompts = datasets.Dataset.from_dict({"prompt": recipes.rl_prompts(cfg, run_dir / "world")})
    if g.max_prompts:
        prompts = prompts.select(range(min(g.max_prompts, len(prompts))))

    # 2. Models: the policy starts as the SFT model; the reward is frozen. With beta > 0
    #    TRL keeps a frozen copy of the SFT model as the reference (LoRA: adapters off).
    tokenizer = load_tokenizer(sft)
    load = causal_lm_loader(cfg, g.lora_r)  # full fine-tuning: fp32 weights, bf16 autocast
    policy = load(sft)
    device = resolve_device(cfg.device)
    scorer = load_scorer(g.reward, run_dir, device, policy_tokenizer=tokenizer)
    reward_fn = reward_function(scorer, tokenizer.eos_token_id, g.missing_eos_penalty)

    # 3. Train: sample groups, score, advantages within each group, clipped policy-gradient step.
    args = trl.GRPOConfig(
        **{**trainer_args(cfg, g, out_dir), "eval_strategy": "no"},  # evaluated in step 5
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        beta=g.beta,
        loss_type=g.loss_type,
    )
    trainer = trl.GRPOTrainer(
        model=policy,
        reward_funcs=reward_fn,
        args=args,
        train_dataset=prompts,
        processing_class=tokenizer,
        peft_config=lora_config(g.lora_r, g.lora_alpha, "CAUSAL_LM"),
        callbacks=[ForwardLogs(log, TRAINER_LOGS)],
    )
    check_launch(trainer)  # before training, not after it
    trainer.train()

    # 4-6. Save, then gold against SFT, KL to SFT and reward-model score on held-out prompts.
    policy, evals = finish_policy(
        cfg, trainer, load, sft, tokenizer, run_dir, out_dir, EVAL_NAMES, scorer
    )
    return log.finish(
        {
            M.NUM_PARAMS: num_params(policy),
            M.GRPO_REWARD: last_logged(trainer, "reward"),
            **evals,
            M.GRPO_TRAIN_PROMPTS: len(prompts),
            M.GRPO_STEPS: trainer.state.global_step,
            M.STAGE_SECONDS: log.elapsed,
        }
    )
