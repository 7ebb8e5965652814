"""Stage 6: ORPO. The SFT model learns from the same preference pairs as DPO, with no reference.

ORPO's loss on a pair is the SFT loss on the chosen answer plus λ · -log σ(log odds(chosen) -
log odds(rejected)) (`lab.preference_math.odds_ratio_loss`): nothing is frozen, so it needs one
model in memory where DPO needs two. TRL ships it as `trl.experimental.orpo.ORPOTrainer`.
Then the same yardstick as DPO and GRPO: gold on the held-out prompts against SFT, and KL to
SFT and the reward model's score on fresh samples (`lab.yardstick.finish_policy`).

TRL's ORPO tokenizes text and appends EOS to an answer that does not end with it; a ChatML
template (SmolLM2, Qwen2.5) closes a turn with `<|im_end|>` and a newline, so the pairs are
rendered here and each answer cut after its last EOS (`chat_text_pairs`): the answers end as
SFT and DPO see them. TRL also prepends BOS to a prompt that does not start with it: a tokenizer
whose chat template writes no BOS (ChatML) reaches TRL without one (`without_unwritten_bos`), so
ORPO's prompts start as every other stage's do.
"""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import datasets

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

with warnings.catch_warnings():  # known: TRL 1.x moved ORPO to `trl.experimental`
    warnings.simplefilter("ignore")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

TRAINER_LOGS = {  # the trainer's log keys -> the lab's metric names
    "loss": M.ORPO_LOSS,
    "learning_rate": M.ORPO_LR,
    "nll_loss": M.ORPO_NLL,
    "log_odds_chosen": M.ORPO_LOG_ODDS_RATIO,  # TRL's name for the mean log odds ratio
    "rewards/accuracies": M.ORPO_ACCURACY,
    "rewards/margins": M.ORPO_MARGIN,
    "eval_loss": M.ORPO_EVAL_LOSS,
    "eval_nll_loss": M.ORPO_EVAL_NLL,
    "eval_log_odds_chosen": M.ORPO_EVAL_LOG_ODDS_RATIO,
    "eval_rewards/accuracies": M.ORPO_EVAL_ACCURACY,
    "eval_rewards/margins": M.ORPO_EVAL_MARGIN,
}
EVAL_NAMES = {  # `evaluate_policy`'s keys -> the lab's metric names
    "kl": M.ORPO_EVAL_KL,
    "reward": M.ORPO_EVAL_REWARD,
    "eos_rate": M.ORPO_EVAL_EOS_RATE,
    "win_tie_loss": M.ORPO_WIN_TIE_LOSS,
}


def ending_at(text: str, eos: str) -> str:
    """`text` cut right after its last `eos` (unchanged without one)."""
    end = text.rfind(eos)
    return text if end < 0 else text[: end + len(eos)]


def chat_text_pairs(pairs: datasets.Dataset, tokenizer) -> datasets.Dataset:
    """Conversational pairs as the chat template writes them (text prompt, chosen, rejected, as
    TRL renders them), each answer ending at its EOS, so TRL adds no second one."""

    def render(row: dict) -> dict:
        prompt = tokenizer.apply_chat_template(
            row["prompt"], tokenize=False, add_generation_prompt=True
        )
        full = {side: tokenizer.apply_chat_template(row["prompt"] + row[side], tokenize=False)
                for side in ("chosen", "rejected")}  # fmt: skip
        answers = {
            side: ending_at(text[len(prompt) :], tokenizer.eos_token) for side, text in full.items()
        }
        return {"prompt": prompt, **answers}

    return datasets.Dataset.from_list([render(row) for row in pairs])


def without_unwritten_bos(tokenizer):
    """`tokenizer`, or where its chat template writes no BOS, a copy without a BOS token."""
    start = [{"role": "user", "content": "Hi."}]
    text = tokenizer.apply_chat_template(start, tokenize=False, add_generation_prompt=True)
    if tokenizer.bos_token is None or text.startswith(tokenizer.bos_token):
        return tokenizer
    plain = copy.deepcopy(tokenizer)
    plain.bos_token = None
    return plain


def run_orpo(cfg: LabConfig, run_dir: Path, out_dir: Path) -> dict:
    """Train the SFT model on the reward stage's preference pairs with ORPO; save and evaluate it."""
    o, log = cfg.orpo, RunLog(out_dir, report_to=cfg.log.targets())
    sft = str(run_dir / "sft" / "model")

    # 1. Data: DPO's pairs in the chat format SFT taught, each answer ending at its EOS.
    tokenizer = load_tokenizer(sft)
    train, held_out = (
        chat_text_pairs(pairs, tokenizer)
        for pairs in policy_pairs(cfg, run_dir / "world", o.max_train_pairs)
    )

    # 2. Model: the policy starts as the SFT model, and there is no reference model at all.
    load = causal_lm_loader(cfg, o.lora_r)  # full fine-tuning: fp32 weights, bf16 autocast
    policy = load(sft)

    # 3. Train: NLL(chosen) + beta * -log sigmoid(log odds(chosen) - log odds(rejected)).
    args = ORPOConfig(
        **trainer_args(cfg, o, out_dir),
        beta=o.beta,
        max_length=cfg.model.max_length,
        eval_on_start=True,  # the SFT model's own odds on the held-out pairs: ORPO's baseline
    )
    trainer = ORPOTrainer(
        model=policy,
        args=args,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=without_unwritten_bos(tokenizer),  # the model saves with `tokenizer`
        peft_config=lora_config(o.lora_r, o.lora_alpha, "CAUSAL_LM"),
        callbacks=[ForwardLogs(log, TRAINER_LOGS)],
    )
    check_launch(trainer)  # before training, not after it
    trainer.train()

    # 4-6. Save, then gold against SFT, KL to SFT and reward-model score on held-out prompts.
    policy, evals = finish_policy(cfg, trainer, load, sft, tokenizer, run_dir, out_dir, EVAL_NAMES)
    return log.finish(
        {
            M.NUM_PARAMS: num_params(policy),
            M.ORPO_LOSS: last_logged(trainer, "loss"),
            M.ORPO_NLL: last_logged(trainer, "nll_loss"),
            M.ORPO_EVAL_LOSS: last_logged(trainer, "eval_loss"),
            M.ORPO_EVAL_ACCURACY: last_logged(trainer, "eval_rewards/accuracies"),
            M.ORPO_EVAL_LOG_ODDS_RATIO: last_logged(trainer, "eval_log_odds_chosen"),
            **evals,
            M.ORPO_TRAIN_PAIRS: len(train),
            M.ORPO_EVAL_PAIRS: len(held_out),
            M.ORPO_STEPS: trainer.state.global_step,
            M.STAGE_SECONDS: log.elapsed,
        }
    )
