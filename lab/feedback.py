"""Feedback from the arena: retrain the reward model on a class's votes, then a short PPO round.

The instructor's loop: students vote in the arena; `retrain_reward` trains a new reward model
on the original pairs plus the votes and measures both models, before and after, on the
world's held-out pairs and on held-out votes; `ppo_round` trains a policy against the new
reward model. Both write stage-like folders the arena can load.
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import datasets
import torch

from lab import metrics as M
from lab.config import LabConfig
from lab.data import normalize_preference_row
from lab.models import resolve_device
from lab.ppo import run_ppo
from lab.reward import (
    Progress,
    conversational_row,
    load_pairs,
    load_reward_model,
    pair_accuracy,
    pair_metrics,
    run_reward,
    score_pairs,
)
from lab.runlog import METRICS_FILE, write_json

HOLDOUT_SHARE = 0.2  # of the votes, kept out of training to measure the class's taste
MIN_VOTES_TO_HOLD_OUT = 20  # below this every vote is worth more as training data
BEFORE = {
    "world": M.FEEDBACK_ACCURACY_BEFORE,
    "gold": M.FEEDBACK_GOLD_ACCURACY_BEFORE,
    "votes": M.FEEDBACK_VOTES_ACCURACY_BEFORE,
}
AFTER = {
    "world": M.FEEDBACK_ACCURACY_AFTER,
    "gold": M.FEEDBACK_GOLD_ACCURACY_AFTER,
    "votes": M.FEEDBACK_VOTES_ACCURACY_AFTER,
}

__all__ = ["Progress", "ppo_round", "retrain_reward", "split_votes", "validate_votes"]


# ---------------------------------------------------------------- votes


def validate_votes(votes: list[dict] | datasets.Dataset) -> datasets.Dataset:
    """The arena's votes as conversational pairs; a bad vote raises, naming its row and field."""
    rows = []
    for i, row in enumerate(votes):
        where = f"votes, row {i} (0-based)"
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a prompt/chosen/rejected dict, got {row!r:.60}")
        rows.append(conversational_row(normalize_preference_row(row, where)))
    if not rows:
        raise ValueError("no votes: nothing to retrain the reward model on")
    return datasets.Dataset.from_list(rows)


def split_votes(votes: datasets.Dataset, seed: int) -> tuple[datasets.Dataset, datasets.Dataset]:
    """Votes -> (train, held out): about `HOLDOUT_SHARE` of them, whole prompts at a time, seeded.

    A prompt's votes all land on one side, so held-out accuracy is measured on prompts the new
    model never trained on. Fewer than `MIN_VOTES_TO_HOLD_OUT` votes, or one prompt only:
    nothing is held out.
    """
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(votes["prompt"]):
        groups.setdefault(json.dumps(prompt, sort_keys=True), []).append(i)
    keys = sorted(groups)  # sorted first: the same votes in any order give the same split
    random.Random(seed).shuffle(keys)
    target = round(HOLDOUT_SHARE * len(votes)) if len(votes) >= MIN_VOTES_TO_HOLD_OUT else 0
    held: list[int] = []
    for key in keys:
        if len(held) >= target:
            break
        held += groups[key]
    if len(held) == len(votes):  # a single prompt: keep it for training
        held = []
    train = sorted(set(range(len(votes))) - set(held))
    return votes.select(train), votes.select(sorted(held))


# ---------------------------------------------------------------- measuring


def measure(
    model_dir: Path, world_pairs: datasets.Dataset, votes: datasets.Dataset, device: torch.device
) -> dict[str, float | None]:
    """A reward model's accuracy on the world's held-out pairs (labels, gold) and on the votes."""
    model, tokenizer = load_reward_model(model_dir, device)
    world = pair_metrics(world_pairs, *score_pairs(model, tokenizer, world_pairs))
    return {
        "world": world[M.REWARD_ACCURACY],
        "gold": world.get(M.REWARD_GOLD_ACCURACY),  # None for data without a gold judge
        "votes": pair_accuracy(*score_pairs(model, tokenizer, votes)) if len(votes) else None,
    }


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """A progress callback for one phase: its 0..1 becomes start..end of the whole job."""
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


def check_fresh(out_dir: Path) -> None:
    """Refuse a folder that already holds files: one round's outputs never mix with another's."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; give each round a folder of its own")


# ---------------------------------------------------------------- the two jobs


def retrain_reward(
    cfg: LabConfig,
    run_dir: Path,
    new_pairs: list[dict] | datasets.Dataset,
    out_dir: Path,
    progress: Progress | None = None,
) -> dict:
    """Train a new reward model on the original pairs plus the votes; accuracy before and after.

    `out_dir` looks like a reward stage folder (model/, metrics.json, log.jsonl); its
    metrics.json holds the stage's numbers plus the `feedback/*` ones, which are returned.
    """
    report = progress or (lambda fraction, message: None)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    votes = validate_votes(new_pairs)  # first: a bad vote fails before any slow work
    for stage in ("sft", "reward"):
        if not (run_dir / stage / "model").is_dir():
            raise FileNotFoundError(f"no {stage} model in {run_dir}: run the pipeline to 'reward'")
    check_fresh(out_dir)
    device = resolve_device(cfg.device)

    # 1. Split the votes: about a fifth held out, whole prompts at a time.
    train_votes, held_votes = split_votes(votes, cfg.seed)
    _, world_pairs = load_pairs(cfg, run_dir / "world")  # the held-out pairs the stage uses

    # 2. Before: the current reward model on the world's held-out pairs and the held-out votes.
    report(0.0, "scoring the current reward model")
    before = measure(run_dir / "reward" / "model", world_pairs, held_votes, device)

    # 3. Train a new reward model from the SFT model on the original pairs + the vote pairs.
    sft = str(run_dir / "sft" / "model")
    stage = run_reward(
        cfg, sft, run_dir / "world", out_dir, train_votes, progress=scaled(report, 0.1, 0.9)
    )

    # 4. After: the same accuracies with the new model.
    report(0.9, "scoring the new reward model")
    after = measure(out_dir / "model", world_pairs, held_votes, device)
    result = {
        **stage,
        **{BEFORE[k]: v for k, v in before.items()},
        **{AFTER[k]: v for k, v in after.items()},
        M.FEEDBACK_VOTE_PAIRS_TRAIN: len(train_votes),
        M.FEEDBACK_VOTE_PAIRS_HELDOUT: len(held_votes),
    }
    if not len(held_votes):
        result[M.FEEDBACK_NOTE] = (
            f"only {len(votes)} votes (fewer than {MIN_VOTES_TO_HOLD_OUT}, or one prompt): "
            "all were trained on, none held out, so vote accuracy is not measured"
        )
    write_json(out_dir / METRICS_FILE, result)
    report(1.0, "reward model retrained")
    return result


def ppo_round(
    cfg: LabConfig,
    run_dir: Path,
    reward_dir: Path,
    out_dir: Path,
    updates: int,
    progress: Progress | None = None,
) -> dict:
    """A short PPO run from the run's SFT model against the reward model in `reward_dir`.

    `reward_dir` is a reward stage folder (`retrain_reward`'s `out_dir`); the policy is saved
    in `out_dir/model`, beside the PPO stage's usual log, checkpoints and metrics.
    """
    if updates < 1:
        raise ValueError(f"a PPO round needs at least 1 update, got {updates}")
    reward_model, out_dir = Path(reward_dir) / "model", Path(out_dir)
    if not reward_model.is_dir():
        raise FileNotFoundError(f"no reward model in {reward_model}; pass a reward stage folder")
    check_fresh(out_dir)
    short = dataclasses.replace(cfg, ppo=dataclasses.replace(cfg.ppo, updates=updates))
    metrics = run_ppo(short, Path(run_dir), out_dir, reward_model=reward_model, progress=progress)
    if progress:
        progress(1.0, "PPO round done")
    return metrics
