"""Stage 3: the reward model. A scalar head on the SFT model, trained on preference pairs.

Bradley-Terry: P(chosen beats rejected) = sigmoid(r(chosen) - r(rejected)); TRL's
`RewardTrainer` minimises -log sigmoid(r_chosen - r_rejected) over the annotators' votes.
The model it saves is read through `lab.reward_model` (`load_reward_model`, `score`), which
formats text exactly as the trainer did here.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

import datasets
import torch
import trl
from transformers import PreTrainedModel

from lab import metrics as M
from lab.config import LabConfig
from lab.distributed import is_main
from lab.models import load_tokenizer, num_params, save_model, trainable_dtype
from lab.pairs import load_pairs, n_skipped
from lab.progress import Progress, ReportProgress
from lab.reward_model import encode, pair_metrics, score_pairs, with_scalar_head
from lab.runlog import RunLog
from lab.trainers import (
    ForwardLogs,
    check_launch,
    last_logged,
    lora_config,
    trained_model,
    trainer_args,
)
from lab.world import last_content
from lab.world.build import write_jsonl

PAIRS_FILE = "pairs_eval.jsonl"  # per-pair scores on the held-out pairs
TRAINER_LOGS = {
    "loss": M.REWARD_LOSS,
    "learning_rate": M.REWARD_LR,
    "accuracy": M.REWARD_TRAIN_ACCURACY,
    "eval_accuracy": M.REWARD_ACCURACY,
    "eval_margin": M.REWARD_MARGIN,
}


def reward_model_loader(cfg: LabConfig, tokenizer, lora_r: int) -> Callable[[str], PreTrainedModel]:
    """`load(path)`: a reward model to train with `lora_r` (`with_scalar_head`), on the profile's
    device, in `trainable_dtype` (fp32 master weights for full fine-tuning, bf16 autocast)."""
    dtype = trainable_dtype(cfg.model.dtype, lora_r)
    return partial(with_scalar_head, tokenizer=tokenizer, dtype=dtype, device=cfg.device)


def tokenize_pairs(pairs: datasets.Dataset, tokenizer, max_length: int) -> datasets.Dataset:
    """`chosen_ids` / `rejected_ids` by `encode`: RewardTrainer's own tokens, cut to `max_length`."""

    def tokenize(row):
        return {
            "chosen_ids": encode(tokenizer, row["prompt"], row["chosen"], max_length),
            "rejected_ids": encode(tokenizer, row["prompt"], row["rejected"], max_length),
        }

    return pairs.map(tokenize, remove_columns=pairs.column_names)


def pair_rows(pairs: datasets.Dataset, chosen: list[float], rejected: list[float]) -> list[dict]:
    """One row per held-out pair: texts, scores, and whatever else the pair carried (gold, kind)."""
    extras = [c for c in pairs.column_names if c not in ("prompt", "chosen", "rejected")]
    return [
        {
            "prompt": last_content(row["prompt"], "user"),
            "chosen": last_content(row["chosen"], "assistant"),
            "rejected": last_content(row["rejected"], "assistant"),
            "chosen_score": c,
            "rejected_score": r,
            **{k: row[k] for k in extras},
        }
        for row, c, r in zip(pairs, chosen, rejected, strict=True)
    ]


def run_reward(
    cfg: LabConfig,
    sft_model: str,
    world_dir: Path,
    out_dir: Path,
    extra_pairs: datasets.Dataset | None = None,
    progress: Progress | None = None,
) -> dict:
    """Train a reward model from `sft_model` on preference pairs; save it with per-pair scores.

    `extra_pairs` are trained on besides the usual pairs (see `load_pairs`).
    """
    r, log = cfg.reward, RunLog(out_dir, report_to=cfg.log.targets())

    # 1. Data: preference pairs as chat text, tokenized the way `score` will read them.
    train, held_out = load_pairs(cfg, world_dir, extra_pairs)
    tokenizer = load_tokenizer(sft_model)
    tokenizer.model_max_length = cfg.model.max_length  # saved with the model: `score` cuts here too

    # 2. Model: the SFT model with a fresh scalar head in place of the LM head.
    torch.manual_seed(cfg.seed)
    load = reward_model_loader(cfg, tokenizer, r.lora_r)  # full fine-tuning: fp32 weights
    model = load(sft_model)

    # 3. Train: Bradley-Terry loss on (chosen, rejected) pairs, full fine-tuning or LoRA.
    callbacks = [ForwardLogs(log, TRAINER_LOGS)] + ([ReportProgress(progress)] if progress else [])
    args = trl.RewardConfig(**trainer_args(cfg, r, out_dir), max_length=None)  # already cut
    trainer = trl.RewardTrainer(
        model=model,
        args=args,
        train_dataset=tokenize_pairs(train, tokenizer, cfg.model.max_length),
        eval_dataset=tokenize_pairs(held_out, tokenizer, cfg.model.max_length),
        processing_class=tokenizer,
        peft_config=lora_config(r.lora_r, r.lora_alpha, "SEQ_CLS"),  # SEQ_CLS also trains the head
        callbacks=callbacks,
    )
    check_launch(trainer)  # before training, not after it
    trainer.evaluate()  # step 0: an untrained head, accuracy near chance
    trainer.train()

    # 4. Evaluate: score the held-out pairs with `score`, the function every later stage uses.
    model = trained_model(trainer, load, sft_model, out_dir)
    chosen, rejected = score_pairs(model, tokenizer, held_out)

    # 5. Save a plain model folder, and every held-out pair's scores for histograms.
    save_model(model, tokenizer, out_dir / "model")
    if is_main():
        write_jsonl(out_dir / PAIRS_FILE, pair_rows(held_out, chosen, rejected))
    return log.finish(
        {
            M.NUM_PARAMS: num_params(model),
            M.REWARD_LOSS: last_logged(trainer, "loss"),
            **pair_metrics(held_out, chosen, rejected),
            M.REWARD_TRAIN_PAIRS: len(train),
            M.REWARD_EVAL_PAIRS: len(held_out),
            M.REWARD_SKIPPED_PAIRS: n_skipped(train),
            M.REWARD_STEPS: trainer.state.global_step,
            M.STAGE_SECONDS: log.elapsed,
        }
    )
