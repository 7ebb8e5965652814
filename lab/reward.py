"""Stage 2: the reward model. A scalar head on the SFT model, trained on preference pairs.

Bradley-Terry: P(chosen beats rejected) = sigmoid(r(chosen) - r(rejected)); TRL's
`RewardTrainer` minimises -log sigmoid(r_chosen - r_rejected) over the annotators' votes.
`score` formats text exactly as the trainer did, so PPO, the evaluation and the app read
the rewards the model was trained to give.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import datasets
import torch
import trl
from transformers import AutoModelForSequenceClassification, TrainerCallback
from trl.trainer.utils import pad

from lab import metrics as M
from lab.config import LabConfig
from lab.data import PREFERENCE_FIELDS, load_preferences
from lab.distributed import is_main
from lab.generation import as_messages
from lab.models import DTYPES, load_tokenizer, num_params, resolve_device, save_model
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
from lab.world.build import FILES, write_jsonl

PAIRS_FILE = "pairs_eval.jsonl"  # per-pair scores on the held-out pairs
# Stored in the reward model's config: a fingerprint of the chat template it was trained with.
TEMPLATE_KEY = "lab_chat_template_sha256"
TRAINER_LOGS = {
    "loss": M.REWARD_LOSS,
    "learning_rate": M.REWARD_LR,
    "accuracy": M.REWARD_TRAIN_ACCURACY,
    "eval_accuracy": M.REWARD_ACCURACY,
    "eval_margin": M.REWARD_MARGIN,
}
Progress = Callable[[float, str], None]  # (fraction done in [0, 1], a short message)


# ---------------------------------------------------------------- formatting and scoring


def as_conversation(prompt, response) -> list[dict]:
    """Prompt (string or messages) + response (string or one assistant message) -> messages."""
    reply = [{"role": "assistant", "content": response}] if isinstance(response, str) else response
    if len(reply) != 1 or reply[0]["role"] != "assistant":
        raise ValueError(f"a response is a string or one assistant message, got {reply!r:.80}")
    return as_messages(prompt) + list(reply)


def encode(tokenizer, prompt, response, max_length: int | None = None) -> list[int]:
    """Token ids as RewardTrainer makes them: the chat template over prompt + response.

    The template ends the response at EOS, where the reward head reads. A sequence longer than
    `max_length` keeps its last tokens: the end must survive, the oldest context can go.
    """
    conversation = as_conversation(prompt, response)
    ids = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
    return ids[-max_length:] if max_length else ids


def template_hash(tokenizer) -> str:
    """A fingerprint of the chat template, stored with the reward model to catch a wrong tokenizer."""
    return hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest()[:16]


def check_same_template(policy_tokenizer, rm_tokenizer, policy: str, reward: str) -> None:
    """Refuse a reward model whose chat template differs from the policy's.

    `score` re-renders the policy's text with the reward model's template: they must match.
    """
    if template_hash(policy_tokenizer) != template_hash(rm_tokenizer):
        raise ValueError(
            f"{policy} and {reward} use different chat templates; train the RM from this SFT model"
        )


def check_reward_model(model, tokenizer) -> None:
    """Refuse a tokenizer that would format or pad text differently from training."""
    config = model.config
    if config.num_labels != 1:
        raise ValueError(
            f"a reward model has one output (num_labels=1), this one has {config.num_labels}"
        )
    if tokenizer.chat_template is None:
        raise ValueError(
            "the tokenizer has no chat template; score() formats text with it, as training did"
        )
    trained_with = getattr(config, TEMPLATE_KEY, None)
    if trained_with is not None and trained_with != template_hash(tokenizer):
        raise ValueError(
            "this tokenizer's chat template differs from the one the reward model was trained with; "
            "load the tokenizer from the reward model's own folder"
        )
    if config.pad_token_id != tokenizer.pad_token_id:
        raise ValueError(
            f"pad token mismatch: the model reads the last token before pad id {config.pad_token_id}, "
            f"the tokenizer pads with {tokenizer.pad_token_id}; use the reward model's own tokenizer"
        )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} tokens, the model only "
            f"{model.get_input_embeddings().num_embeddings}: not the reward model's tokenizer"
        )


def load_reward_model(folder: str | Path, device: str | torch.device = "cpu"):
    """A saved reward model, frozen in eval mode, and its own tokenizer, checked to match."""
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model = model.to(resolve_device(str(device))).eval().requires_grad_(False)
    tokenizer = load_tokenizer(str(folder))
    check_reward_model(model, tokenizer)
    return model, tokenizer


@torch.no_grad()
def score(
    model,
    tokenizer,
    prompts: Sequence,
    responses: Sequence,
    batch_size: int = 32,
    max_length: int | None = None,
) -> list[float]:
    """The reward of each response to its prompt (strings or messages), one float per pair.

    Sequences are padded on the right, as TRL's preference collator does, whatever the
    tokenizer's padding side. The head reads the rightmost non-pad token, so left padding
    would find the same EOS, but only right padding also keeps every token's position as in
    training (RoPE barely notices a shift; absolute positions would). `max_length` defaults
    to `tokenizer.model_max_length`, which the reward stage sets to the length it trained with.
    """
    check_reward_model(model, tokenizer)
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    max_length = max_length or tokenizer.model_max_length
    ids = [
        torch.tensor(encode(tokenizer, p, r, max_length))
        for p, r in zip(prompts, responses, strict=True)
    ]
    model.eval()
    rewards: list[float] = []
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        input_ids = pad(chunk, padding_value=tokenizer.pad_token_id, padding_side="right")  # (B, T)
        mask = pad([torch.ones_like(x) for x in chunk], padding_value=0, padding_side="right")
        logits = model(
            input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)
        ).logits
        rewards += logits[:, 0].float().tolist()  # (B, 1) -> B floats
    return rewards


def score_pairs(model, tokenizer, pairs: datasets.Dataset) -> tuple[list[float], list[float]]:
    """The scores of every pair's chosen and of its rejected response."""
    chosen = score(model, tokenizer, pairs["prompt"], pairs["chosen"])
    return chosen, score(model, tokenizer, pairs["prompt"], pairs["rejected"])


# ---------------------------------------------------------------- metrics


def pair_accuracy(chosen: Sequence[float], rejected: Sequence[float]) -> float:
    """Share of pairs where the chosen response scores strictly higher (a tie counts as wrong)."""
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(chosen)


def gold_accuracy(
    chosen: Sequence[float],
    rejected: Sequence[float],
    gold_chosen: Sequence[float],
    gold_rejected: Sequence[float],
) -> float:
    """Share of pairs the scores order as the gold judge does (label = sign of the gold gap).

    A tie, in the scores or in gold, counts as wrong.
    """
    agree = [
        (c - r) * (gc - gr) > 0
        for c, r, gc, gr in zip(chosen, rejected, gold_chosen, gold_rejected, strict=True)
    ]
    return sum(agree) / len(agree)


def pair_metrics(pairs: datasets.Dataset, chosen: list[float], rejected: list[float]) -> dict:
    """Accuracy against the labels, against gold (when the pairs carry gold scores), and margin."""
    out = {
        M.REWARD_ACCURACY: pair_accuracy(chosen, rejected),
        M.REWARD_MARGIN: sum(c - r for c, r in zip(chosen, rejected, strict=True)) / len(chosen),
    }
    if {"gold_chosen", "gold_rejected"} <= set(pairs.column_names):
        out[M.REWARD_GOLD_ACCURACY] = gold_accuracy(
            chosen, rejected, pairs["gold_chosen"], pairs["gold_rejected"]
        )
    return out


# ---------------------------------------------------------------- data


def load_pairs(
    cfg: LabConfig, world_dir: Path, extra_pairs: datasets.Dataset | None = None
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Training and held-out pairs: the world's two files, or `train_data` with `holdout` set aside.

    The world's files must be valid. Another source's invalid rows are skipped with a warning
    and counted (`n_skipped`): real data has a few, and they are never dropped silently.
    `extra_pairs` (already validated, e.g. a class's votes) join the training pairs in full,
    after `max_train_pairs` has cut the original ones; both become conversational to match.
    """
    r = cfg.reward
    if r.train_data:
        pairs = load_preferences(r.train_data, on_invalid="skip").shuffle(seed=cfg.seed)
        n_eval = min(r.holdout, len(pairs) // 2)
        held_out, train = pairs.select(range(n_eval)), pairs.select(range(n_eval, len(pairs)))
    else:
        train = load_preferences(world_dir / FILES["pairs_train"])
        held_out = load_preferences(world_dir / FILES["pairs_test"])
    if r.max_train_pairs:
        train = train.select(range(min(r.max_train_pairs, len(train))))
    if extra_pairs is not None:
        # Keep the source's list of skipped rows, which `n_skipped` counts; not its columns.
        info = datasets.DatasetInfo(description=train.info.description)
        both = [as_conversational(train), as_conversational(extra_pairs)]
        train = datasets.concatenate_datasets(both, info=info)
    return train, held_out


def conversational_row(row: dict) -> dict:
    """One explicit pair as messages: a string prompt becomes a user turn, a response an assistant one."""
    return {
        "prompt": as_messages(row["prompt"]),
        **{f: as_conversation(row["prompt"], row[f])[-1:] for f in ("chosen", "rejected")},
    }


def as_conversational(pairs: datasets.Dataset) -> datasets.Dataset:
    """Explicit pairs, standard or conversational, as conversational ones; other columns dropped."""
    return pairs.select_columns(list(PREFERENCE_FIELDS)).map(conversational_row)


def n_skipped(pairs: datasets.Dataset) -> int:
    """Rows `load_preferences(..., on_invalid="skip")` dropped from the source of `pairs`."""
    return len(pairs.info.description.splitlines())


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


# ---------------------------------------------------------------- the stage


def with_scalar_head(path: str, tokenizer, dtype: str, device: str):
    """The model at `path` with a one-number head: fresh on a causal LM, or a saved reward model's."""
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=1, pad_token_id=tokenizer.pad_token_id, dtype=DTYPES[dtype]
    )
    setattr(model.config, TEMPLATE_KEY, template_hash(tokenizer))
    return model.to(resolve_device(device))


class ReportProgress(TrainerCallback):
    """Report a trainer's progress to a `Progress` callback: optimizer steps done / steps planned."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step / max(state.max_steps, 1)
        self.progress(done, f"training step {state.global_step}/{state.max_steps}")


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
    r, log = cfg.reward, RunLog(out_dir)

    # 1. Data: preference pairs as chat text, tokenized the way `score` will read them.
    train, held_out = load_pairs(cfg, world_dir, extra_pairs)
    tokenizer = load_tokenizer(sft_model)
    tokenizer.model_max_length = cfg.model.max_length  # saved with the model: `score` cuts here too

    # 2. Model: the SFT model with a fresh scalar head in place of the LM head.
    torch.manual_seed(cfg.seed)
    load = partial(with_scalar_head, tokenizer=tokenizer, dtype=cfg.model.dtype, device=cfg.device)
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
            "reward/train_pairs": len(train),
            "reward/eval_pairs": len(held_out),
            "reward/skipped_pairs": n_skipped(train),
            "reward/steps": trainer.state.global_step,
            M.STAGE_SECONDS: log.elapsed,
        }
    )
