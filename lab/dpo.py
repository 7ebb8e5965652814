"""Stage 6: DPO. The SFT model learns from the preference pairs directly, with no reward model.

DPO's implicit reward is r(x, y) = beta * log(pi(y|x) / pi_sft(y|x)); TRL's `DPOTrainer` minimises
-log sigmoid(r(chosen) - r(rejected)) on the pairs the reward model was trained on, with the SFT
model as the frozen reference. Then the same yardsticks as PPO: gold on the held-out prompts
against SFT, and KL to SFT and the reward model's score on fresh samples.

Like every policy, it is saved and measured at the end by `lab.yardstick.finish_policy`.
"""

from __future__ import annotations

from pathlib import Path

import trl

from lab import metrics as M
from lab.config import LabConfig
from lab.models import load_tokenizer, num_params
from lab.pairs import policy_pairs
from lab.runlog import RunLog
from lab.trainers import (
    ForwardLogs,
    causal_lm_loader,
    check_launch,
    last_logged,
    lora_config,
    trainer_args,
)
from lab.yardstick import finish_policy

TRAINER_LOGS = {  # the trainer's log keys -> the lab's metric names
    "loss": M.DPO_LOSS,
    "learning_rate": M.DPO_LR,
    "rewards/accuracies": M.DPO_ACCURACY,
    "rewards/margins": M.DPO_MARGIN,
    "rewards/chosen": M.DPO_REWARD_CHOSEN,
    "rewards/rejected": M.DPO_REWARD_REJECTED,
    "eval_loss": M.DPO_EVAL_LOSS,
    "eval_rewards/accuracies": M.DPO_EVAL_ACCURACY,
    "eval_rewards/margins": M.DPO_EVAL_MARGIN,
}
EVAL_NAMES = {  # `evaluate_policy`'s keys -> the lab's metric names
    "kl": M.DPO_EVAL_KL,
    "reward": M.DPO_EVAL_REWARD,
    "eos_rate": M.DPO_EVAL_EOS_RATE,
    "win_tie_loss": M.DPO_WIN_TIE_LOSS,
}


def run_dpo(cfg: LabConfig, run_dir: Path, out_dir: Path) -> dict:
    """Train the SFT model on the reward stage's preference pairs with DPO; save and evaluate it."""
    d, log = cfg.dpo, RunLog(out_dir, report_to=cfg.log.targets())
    sft = str(run_dir / "sft" / "model")

    # 1. Data: the reward model's pairs, as conversations (the chat format SFT taught).
    train, held_out = policy_pairs(cfg, run_dir / "world", d.max_train_pairs)

    # 2. Model: the policy starts as the SFT model. ref_model=None: TRL loads a frozen copy of
    #    it as the reference (full fine-tuning), or turns the adapters off (LoRA).
    tokenizer = load_tokenizer(sft)
    load = causal_lm_loader(cfg, d.lora_r)  # full fine-tuning: fp32 weights, bf16 autocast
    policy = load(sft)

    # 3. Train: -log sigmoid(beta * (log-ratio of chosen - log-ratio of rejected)).
    args = trl.DPOConfig(
        **trainer_args(cfg, d, out_dir),
        beta=d.beta,
        loss_type=[d.loss_type],
        max_length=cfg.model.max_length,
    )
    trainer = trl.DPOTrainer(
        model=policy,
        ref_model=None,
        args=args,
        train_dataset=train,
        eval_dataset=held_out,  # scored after every epoch: does the implicit reward generalise?
        processing_class=tokenizer,
        peft_config=lora_config(d.lora_r, d.lora_alpha, "CAUSAL_LM"),
        callbacks=[ForwardLogs(log, TRAINER_LOGS)],
    )
    check_launch(trainer)  # before training, not after it
    trainer.train()

    # 4-6. Save, then gold against SFT, KL to SFT and reward-model score on held-out prompts.
    policy, evals = finish_policy(cfg, trainer, load, sft, tokenizer, run_dir, out_dir, EVAL_NAMES)
    return log.finish(
        {
            M.NUM_PARAMS: num_params(policy),
            M.DPO_LOSS: last_logged(trainer, "loss"),
            M.DPO_EVAL_LOSS: last_logged(trainer, "eval_loss"),
            M.DPO_EVAL_ACCURACY: last_logged(trainer, "eval_rewards/accuracies"),
            M.DPO_EVAL_MARGIN: last_logged(trainer, "eval_rewards/margins"),
            **evals,
            M.DPO_TRAIN_PAIRS: len(train),
            M.DPO_EVAL_PAIRS: len(held_out),
            M.DPO_STEPS: trainer.state.global_step,
            M.STAGE_SECONDS: log.elapsed,
        }
    )
