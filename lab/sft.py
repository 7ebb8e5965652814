"""Stage 2: supervised fine-tuning. Teach the base model to answer like the demonstrators.

TRL's `SFTTrainer` on the world's prompt/completion demonstrations, with the loss on the
completion only: the model learns to answer, not to ask. Then the gold judge compares the
SFT model with the base model on held-out prompts, answer by answer.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import trl

from lab import metrics as M
from lab import recipes
from lab.config import LabConfig
from lab.evaluation import (
    BASE_GOLD_TABLE,
    GOLD_TABLE,
    evaluate_model,
    save_gold_table,
    summarize_gold,
    win_metrics,
)
from lab.models import load_tokenizer, num_params, save_model
from lab.runlog import RunLog
from lab.trainers import (
    ForwardLogs,
    causal_lm_loader,
    check_launch,
    last_logged,
    lora_config,
    trained_model,
    trainer_args,
)

TRAINER_LOGS = {  # the trainer's log keys -> the lab's metric names
    "loss": M.SFT_LOSS,
    "learning_rate": M.SFT_LR,
    "mean_token_accuracy": M.SFT_TOKEN_ACCURACY,
    "eval_loss": M.SFT_EVAL_LOSS,
}


def run_sft(cfg: LabConfig, base: str, world_dir: Path, out_dir: Path) -> dict:
    """Fine-tune `base` on the world's demonstrations; save model, tokenizer and gold tables."""
    s, log = cfg.sft, RunLog(out_dir, report_to=cfg.log.targets())
    world = recipes.gold_judge(cfg)  # None for a recipe's data: no known truth

    # 1. Data: conversational prompt/completion demonstrations, a few held out for the eval loss.
    demos = recipes.sft_examples(cfg, world_dir).select_columns(["prompt", "completion"])
    split = demos.train_test_split(test_size=s.eval_fraction, seed=cfg.seed)
    prompts = recipes.eval_prompts(cfg, world_dir)

    # 2. Model: the base model and its tokenizer (a local folder or a hub id, the same call).
    load = causal_lm_loader(cfg, s.lora_r)  # full fine-tuning: fp32 weights, bf16 autocast
    model = load(base)
    tokenizer = load_tokenizer(base)

    # 3. Before: the base model's answers to the held-out prompts, gold-scored.
    base_table = evaluate_model(model, tokenizer, world, prompts)

    # 4. Train: next-token loss on the completion only (full fine-tuning or LoRA).
    args = trl.SFTConfig(
        **trainer_args(cfg, s, out_dir),
        max_length=cfg.model.max_length,
        completion_only_loss=True,
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=split["train"],
        eval_dataset=split["test"],
        processing_class=tokenizer,
        peft_config=lora_config(s.lora_r, s.lora_alpha, "CAUSAL_LM"),
        callbacks=[ForwardLogs(log, TRAINER_LOGS)],
    )
    check_launch(trainer)  # before training, not after it
    base_eval_loss = trainer.evaluate()["eval_loss"]  # logged at step 0
    trainer.train()  # evaluates after every epoch
    eval_loss = last_logged(trainer, "eval_loss")

    # 5. After: the SFT model on the same prompts, with the same decoding seed.
    model = trained_model(trainer, load, base, out_dir)
    sft_table = evaluate_model(model, tokenizer, world, prompts)

    # 6. Save a plain model folder, and the answers behind every number.
    save_model(model, tokenizer, out_dir / "model")
    save_gold_table(sft_table, out_dir / GOLD_TABLE)
    save_gold_table(base_table, out_dir / BASE_GOLD_TABLE)
    return log.finish(
        {
            M.NUM_PARAMS: num_params(model),
            M.SFT_LOSS: last_logged(trainer, "loss"),
            M.SFT_BASE_EVAL_LOSS: base_eval_loss,
            M.SFT_EVAL_LOSS: eval_loss,
            M.SFT_EVAL_PPL: math.exp(eval_loss),
            **gold_metrics(sft_table, base_table),
            M.SFT_TRAIN_EXAMPLES: len(split["train"]),
            M.SFT_STEPS: trainer.state.global_step,
            M.STAGE_SECONDS: log.elapsed,
            M.SFT_SAMPLES: samples(base_table, sft_table, s.n_samples),
        }
    )


def gold_metrics(sft_table: pd.DataFrame, base_table: pd.DataFrame) -> dict:
    """Gold of the SFT model's answers (`eval/...`) and the base model's (`eval/base_...`), and
    SFT's win / tie / loss against the base model, prompt by prompt."""
    return {
        **summarize_gold(sft_table),
        **{k.replace("eval/", "eval/base_"): v for k, v in summarize_gold(base_table).items()},
        **win_metrics(sft_table, base_table, M.SFT_WIN_TIE_LOSS),
    }


def samples(before: pd.DataFrame, after: pd.DataFrame, n: int) -> list[dict]:
    """The first `n` held-out prompts with both models' answers and gold scores."""
    return [
        {
            "prompt": b["prompt"],
            "base": b["answer"],
            "base_gold": b["gold"],
            "sft": a["answer"],
            "sft_gold": a["gold"],
        }
        for b, a in zip(
            before.head(n).to_dict("records"), after.head(n).to_dict("records"), strict=True
        )
    ]
