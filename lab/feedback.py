"""Feedback from the arena: adapt the reward model to a class's votes (`retrain_reward`).

Why fine-tune instead of retraining: a class casts a few hundred votes; appended to the world's
4,000 pairs and trained from scratch they are ~5% of the data and change nothing visible. So a
round starts from the reward model the arena uses now and fine-tunes it for a few epochs, at a
fraction of the reward stage's learning rate, on the vote pairs plus a replayed random sample of
the original pairs (`FeedbackConfig.replay` per vote pair), which keeps what the world taught.

How we know it learnt the class: k-fold cross-validation with folds by prompt, over the vote
pairs the current model never trained on (the new ones). Each fold's new votes are scored by the
current model (before) and by a model fine-tuned without them (after); the pooled agreement gets
a Wilson 95% interval. The model kept is fine-tuned on all votes. Cost on the tiny profile, 2 CPU
cores: k + 1 = 6 short fine-tunings, about 10 s each for 200 vote pairs (see
benchmarks/feedback_loop.py). With fewer than `min_pairs` new vote pairs there is nothing to
measure: every vote is trained on and the result says so.

Which votes are new: from the second round on, the current model is an earlier round's, already
fine-tuned on the votes cast before it. Scoring it on those (before), or holding them out of
fold models fine-tuned from it (after), would measure it on its own training data. So each
reward model a round writes keeps `votes_seen.json` beside its `model/`: every vote pair it was
trained on, its start model's and its own (a chain; the run's own reward model has none, it saw
no votes). A pair is known by its text (`pair_key`), not by its vote's id: ids mean nothing in
another vote database, and pairs passed in directly may carry none; the ids are kept too, for
people. Votes the start model saw are trained on in every fold and never held out.

A whole round, this and then a short PPO run from the current policy, is `lab.feedback_round`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import datasets
import torch
import trl

from lab import metrics as M
from lab.config import LabConfig
from lab.data import normalize_preference_row
from lab.intervals import cluster_mean_ci, wilson_interval
from lab.models import load_tokenizer, resolve_device, save_model
from lab.pairs import as_conversational, conversational_row, load_pairs
from lab.progress import Progress, ReportProgress
from lab.reward import TRAINER_LOGS, reward_model_loader, tokenize_pairs
from lab.reward_model import load_reward_model, pair_metrics, score_pairs
from lab.runlog import RunLog, is_done, read_metrics, write_json
from lab.trainers import ForwardLogs, check_launch, lora_config, trained_model, trainer_args

VOTES_SEEN = "votes_seen.json"  # beside a round's reward model/: the vote pairs it was trained on
WORLD = {"before": M.FEEDBACK_ACCURACY_BEFORE, "after": M.FEEDBACK_ACCURACY_AFTER}
GOLD = {
    "before": (M.FEEDBACK_GOLD_ACCURACY_BEFORE, M.FEEDBACK_GOLD_ACCURACY_BEFORE_CI),
    "after": (M.FEEDBACK_GOLD_ACCURACY_AFTER, M.FEEDBACK_GOLD_ACCURACY_AFTER_CI),
}
VOTES = {
    "before": (M.FEEDBACK_VOTES_ACCURACY_BEFORE, M.FEEDBACK_VOTES_ACCURACY_BEFORE_CI),
    "after": (M.FEEDBACK_VOTES_ACCURACY_AFTER, M.FEEDBACK_VOTES_ACCURACY_AFTER_CI),
}

__all__ = [
    "FeedbackConfig",
    "Progress",
    "assign_folds",
    "held_out_folds",
    "pair_key",
    "read_votes_seen",
    "retrain_reward",
    "validate_votes",
]


@dataclass
class FeedbackConfig:
    """A feedback round: how the reward model adapts to the votes, how it is measured, PPO after."""

    epochs: float = 4.0
    """Passes over the vote pairs and their replayed originals."""
    lr_scale: float = 0.5
    """Learning rate as a share of the reward stage's (`reward.lr`): adapt, don't forget. At 0.2
    a terse class's adapted model still scored its policy's padded answers above the same answers
    with the padding taken out on 61% of them, and the round's policy kept most of its padding."""
    batch_size: int = 16
    """Pairs per optimizer step."""
    replay: float = 1.0
    """Original training pairs replayed per vote pair (0 = votes only)."""
    folds: int = 5
    """Cross-validation folds (by prompt) that measure agreement with held-out votes."""
    min_pairs: int = 20
    """Below this many new vote pairs (ones the start model never trained on), none is held out."""
    ppo_updates: int = 20
    """PPO updates of the policy round (0 = no policy round)."""
    ppo_reward_delta: bool = True
    """The policy round's reward: the adapted reward model's score minus the score of the model it
    adapted from (only what the votes changed pushes the policy; the errors both models share,
    which the PPO stage already exploited, cancel out). False: the adapted model's own score,
    which cost correctness in every round measured (notebook 07, section 6)."""
    ppo_kl_coef: float = 0.2
    """beta of the policy round, to the policy it starts from: 4x the PPO stage's, because that
    policy is already optimised against a reward model, and more optimisation against an
    imperfect one costs correctness (benchmarks/feedback_loop.py; see notebook 07)."""
    samples: int = 8
    """Answers per held-out prompt that measure the round's policy against the one it started
    from (the tiny world's gold judge; 0 = not measured). One answer is a noisy view of a policy."""
    z: float = 1.96
    """Normal quantile of the intervals (1.96: 95%)."""


# ---------------------------------------------------------------- pure helpers


def assign_folds(prompts: list, k: int, seed: int) -> list[int]:
    """A fold in 0..k-1 per vote: whole prompts at a time, balanced, seeded, order-independent."""
    groups: dict[str, list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(json.dumps(prompt, sort_keys=True), []).append(i)
    keys = sorted(groups)  # sorted first: the same votes in any order get the same folds
    random.Random(seed).shuffle(keys)
    folds, sizes = [0] * len(prompts), [0] * k
    for key in keys:  # each prompt joins the smallest fold so far
        fold = sizes.index(min(sizes))
        sizes[fold] += len(groups[key])
        for i in groups[key]:
            folds[i] = fold
    return folds


def held_out_folds(prompts: list, seen: list[bool], k: int, seed: int) -> list[int | None]:
    """A fold in 0..k-1 per new vote pair (`assign_folds` over the new ones alone), None for a
    pair the start model already trained on: it is in the training part of every fold."""
    new = [i for i, was_seen in enumerate(seen) if not was_seen]
    folds: list[int | None] = [None] * len(prompts)
    for i, fold in zip(new, assign_folds([prompts[i] for i in new], k, seed), strict=True):
        folds[i] = fold
    return folds


def can_hold_out(prompts: list, seen: list[bool], fb: FeedbackConfig) -> bool:
    """Enough new vote pairs to measure: `min_pairs` of them, on at least one prompt per fold."""
    new = [json.dumps(p, sort_keys=True) for p, was_seen in zip(prompts, seen, strict=True)
           if not was_seen]  # fmt: skip
    return len(new) >= fb.min_pairs and len(set(new)) >= fb.folds


def pair_key(row: dict) -> str:
    """A vote pair's identity, a digest of its prompt/chosen/rejected (as `validate_votes` gives
    them): the same text is the same pair, whichever vote, or vote database, it came from."""
    text = json.dumps([row["prompt"], row["chosen"], row["rejected"]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def read_votes_seen(model_dir: Path) -> dict:
    """{"vote_ids": [...], "pairs": [pair_key, ...]}: what the reward model at `model_dir` (a
    round's reward[-G]/model) was trained on, through its chain; empty without a record."""
    path = Path(model_dir).parent / VOTES_SEEN
    return json.loads(path.read_text()) if path.is_file() else {"vote_ids": [], "pairs": []}


def seen_by(start: Path, votes: datasets.Dataset) -> tuple[dict, list[bool]]:
    """The record of the reward model at `start`, and per vote pair: did it train on it?

    A round's model from before rounds kept records may have trained on any of these votes:
    all count as seen, so none is held out and the round says agreement was not measured."""
    record = read_votes_seen(start)
    folder = Path(start).parent
    unrecorded = not (folder / VOTES_SEEN).is_file() and is_done(folder)
    if unrecorded and M.FEEDBACK_REWARD_FROM in read_metrics(folder):  # adapted to votes
        return record, [True] * len(votes)
    known = set(record["pairs"])
    return record, [pair_key(row) in known for row in votes]


def with_votes(seen: dict, rows: list[dict], votes: datasets.Dataset) -> dict:
    """The record `seen` plus the vote pairs `votes` (from `rows`, which carry their `vote_id`)."""
    ids = {int(row["vote_id"]) for row in rows if row.get("vote_id") is not None}
    return {
        "vote_ids": sorted(set(seen["vote_ids"]) | ids),
        "pairs": sorted(set(seen["pairs"]) | {pair_key(row) for row in votes}),
    }


def select_group(pairs: list[dict], group: str | None) -> list[dict]:
    """The pairs of one group (all when None); an unknown group raises, naming the known ones."""
    if group is None:
        return list(pairs)
    chosen = [row for row in pairs if row.get("group", "") == group]
    if not chosen:
        known = sorted({row.get("group", "") for row in pairs} - {""})
        raise ValueError(
            f"no votes of group {group!r}; groups with votes: {', '.join(known) or 'none'}"
        )
    return chosen


def validate_votes(votes: list[dict] | datasets.Dataset) -> datasets.Dataset:
    """The arena's votes as conversational pairs; a bad vote raises, naming its row and field."""
    rows = []
    for i, row in enumerate(votes):
        where = f"votes, row {i} (0-based)"
        if isinstance(row, dict) and row.get("vote_id") is not None:
            where = f"vote {row['vote_id']}, pair {i} (0-based)"  # the arena's own id
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected a prompt/chosen/rejected dict, got {row!r:.60}")
        rows.append(conversational_row(normalize_preference_row(row, where)))
    if not rows:
        raise ValueError("no votes: nothing to retrain the reward model on")
    return datasets.Dataset.from_list(rows)


def check_fresh(out_dir: Path) -> None:
    """Refuse a folder that already holds files: one round's outputs never mix with another's."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; give each round a folder of its own")


def scaled(progress: Progress, start: float, end: float) -> Progress:
    """A progress callback for one phase: its 0..1 becomes start..end of the whole job."""
    return lambda fraction, message: progress(start + (end - start) * fraction, message)


# ---------------------------------------------------------------- fine-tuning and measuring


def with_replay(
    votes: datasets.Dataset, originals: datasets.Dataset, share: float, seed: int
) -> datasets.Dataset:
    """The vote pairs plus `share` random original pairs per vote pair, shuffled."""
    n = min(round(share * len(votes)), len(originals))
    replayed = originals.shuffle(seed=seed).select(range(n))
    both = datasets.concatenate_datasets([votes, as_conversational(replayed).cast(votes.features)])
    return both.shuffle(seed=seed)


def fine_tune(
    cfg: LabConfig,
    fb: FeedbackConfig,
    start: Path,
    pairs: datasets.Dataset,
    out_dir: Path,
    log: RunLog | None = None,
    progress: Progress | None = None,
):
    """The reward model at `start`, fine-tuned on `pairs` (Bradley-Terry loss); (model, tokenizer)."""
    tokenizer = load_tokenizer(str(start))
    torch.manual_seed(cfg.seed)
    load = reward_model_loader(cfg, tokenizer, cfg.reward.lora_r)  # fp32 weights if fully tuned
    stage = dataclasses.replace(
        cfg.reward, epochs=fb.epochs, lr=cfg.reward.lr * fb.lr_scale, batch_size=fb.batch_size,
        grad_accum=1,
    )  # fmt: skip
    callbacks = ([ForwardLogs(log, TRAINER_LOGS)] if log else []) + (
        [ReportProgress(progress)] if progress else []
    )
    args = {**trainer_args(cfg, stage, out_dir), "eval_strategy": "no"}
    trainer = trl.RewardTrainer(
        model=load(str(start)),
        args=trl.RewardConfig(**args, max_length=None),  # already cut
        train_dataset=tokenize_pairs(pairs, tokenizer, cfg.model.max_length),
        processing_class=tokenizer,
        peft_config=lora_config(cfg.reward.lora_r, cfg.reward.lora_alpha, "SEQ_CLS"),
        callbacks=callbacks,
    )
    check_launch(trainer)
    trainer.train()
    return trained_model(trainer, load, str(start), out_dir), tokenizer


def agreement(model, tokenizer, votes: datasets.Dataset) -> list[bool]:
    """Per vote pair: does the reward model score the class's choice strictly higher?"""
    chosen, rejected = score_pairs(model, tokenizer, votes)
    return [c > r for c, r in zip(chosen, rejected, strict=True)]


def cross_validate(
    cfg, fb, start: Path, votes, seen: list[bool], originals, work_dir: Path, progress: Progress
) -> dict:
    """Agreement with the new vote pairs before and after, with intervals: after from a model
    trained without its fold. The pairs the start model has `seen` are trained on in every fold."""
    folds = held_out_folds(votes["prompt"], seen, fb.folds, cfg.seed)
    new = [i for i, f in enumerate(folds) if f is not None]
    before = agreement(*load_reward_model(start, resolve_device(cfg.device)), votes.select(new))
    after: dict[int, bool] = {}
    for k in range(fb.folds):
        held = [i for i, f in enumerate(folds) if f == k]
        train = votes.select([i for i, f in enumerate(folds) if f != k])  # seen ones: None != k
        report = scaled(progress, k / fb.folds, (k + 1) / fb.folds)
        train = with_replay(train, originals, fb.replay, cfg.seed + k)
        model, tokenizer = fine_tune(cfg, fb, start, train, work_dir / f"fold-{k}", None, report)
        after |= zip(held, agreement(model, tokenizer, votes.select(held)), strict=True)
        shutil.rmtree(work_dir / f"fold-{k}", ignore_errors=True)
    shutil.rmtree(work_dir, ignore_errors=True)
    result, after = {}, [after[i] for i in new]
    for when, hits in (("before", before), ("after", after)):
        result |= share_and_interval(hits, fb.z, *VOTES[when])
    # The change, vote by vote on the same votes, resampled by prompt (the folds' unit).
    changes = [int(a) - int(b) for a, b in zip(after, before, strict=True)]
    prompts = [json.dumps(votes[i]["prompt"], sort_keys=True) for i in new]
    result[M.FEEDBACK_VOTES_ACCURACY_CHANGE_CI] = list(cluster_mean_ci(changes, prompts))
    return result


def share_and_interval(hits: list[bool], z: float, name: str, ci_name: str) -> dict:
    """{name: share of hits, ci_name: [low, high]}."""
    return {name: sum(hits) / len(hits), ci_name: list(wilson_interval(sum(hits), len(hits), z))}


# ---------------------------------------------------------------- the two jobs


def too_few_votes_note(n_new: int, n_seen: int, fb: FeedbackConfig) -> str:
    """Why agreement with the class was not measured."""
    others = f" ({n_seen} more it had trained on already)" if n_seen else ""
    return (
        f"only {n_new} vote pairs are new since the reward model this round starts from{others}, "
        f"fewer than {fb.min_pairs}, or on fewer prompts than {fb.folds} folds: all were trained "
        "on, none held out, so agreement with the class is not measured"
    )


def world_before_after(old: dict, new: dict, n_pairs: int, z: float) -> dict:
    """Accuracy on the world's held-out pairs against labels, and against gold with an interval."""
    result = {}
    for when, m in (("before", old), ("after", new)):
        result[WORLD[when]] = m[M.REWARD_ACCURACY]
        if M.REWARD_GOLD_ACCURACY in m:  # absent for data without a gold judge
            hits = round(m[M.REWARD_GOLD_ACCURACY] * n_pairs)
            result |= share_and_interval([True] * hits + [False] * (n_pairs - hits), z, *GOLD[when])
    return result


def counts(n_votes: int, n_seen: int, n_train: int, folds: int, seconds: float) -> dict:
    """What a retraining used: vote pairs (the new ones held out in `folds` folds, 0 = none;
    `n_seen` the start model had trained on), replay, time."""
    return {
        M.FEEDBACK_VOTE_PAIRS_TRAIN: n_votes,
        M.FEEDBACK_VOTE_PAIRS_HELDOUT: n_votes - n_seen if folds else 0,
        M.FEEDBACK_VOTE_PAIRS_SEEN: n_seen,
        M.FEEDBACK_REPLAY_PAIRS: n_train - n_votes,
        M.FEEDBACK_FOLDS: folds,
        M.REWARD_TRAIN_PAIRS: n_train,
        M.FEEDBACK_REWARD_SECONDS: seconds,
        M.STAGE_SECONDS: seconds,
    }


def retrain_reward(
    cfg: LabConfig,
    run_dir: Path,
    new_pairs: list[dict] | datasets.Dataset,
    out_dir: Path,
    progress: Progress | None = None,
    *,
    reward_model: Path | None = None,
    group: str | None = None,
    fb: FeedbackConfig | None = None,
) -> dict:
    """Fine-tune the current reward model on the votes; agreement with the class and gold, before/after.

    `reward_model`: the arena's model now (default: the run's); `group`: that group's votes only.
    Writes a reward stage folder, with `VOTES_SEEN`, at `out_dir`; returns its metrics."""
    fb, report = fb or FeedbackConfig(), progress or (lambda fraction, message: None)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    rows = select_group(list(new_pairs), group)
    votes = validate_votes(rows)  # first: a bad vote fails before any slow work
    start = Path(reward_model or run_dir / "reward" / "model")
    if not (run_dir / "world").is_dir() or not start.is_dir():
        raise FileNotFoundError(f"no reward model at {start}: run the pipeline to 'reward'")
    check_fresh(out_dir)
    device, t0 = resolve_device(cfg.device), time.perf_counter()
    originals, world_pairs = load_pairs(cfg, run_dir / "world")
    record, seen = seen_by(start, votes)
    measured = can_hold_out(votes["prompt"], seen, fb)
    result = {M.FEEDBACK_GROUP: group or "", M.FEEDBACK_REWARD_FROM: str(start)}

    # 1. Before and after on held-out votes, the new ones: k-fold cross-validation by prompt.
    if measured:
        part = scaled(report, 0.0, 0.8)
        result |= cross_validate(cfg, fb, start, votes, seen, originals, out_dir / "cv", part)
    else:
        result[M.FEEDBACK_NOTE] = too_few_votes_note(len(seen) - sum(seen), sum(seen), fb)
    result[M.FEEDBACK_CV_SECONDS] = time.perf_counter() - t0

    # 2. The model kept: fine-tuned on every vote pair (plus replay).
    report(0.8 if measured else 0.0, "fine-tuning on all the votes")
    log = RunLog(out_dir)
    train = with_replay(votes, originals, fb.replay, cfg.seed)
    model, tokenizer = fine_tune(
        cfg, fb, start, train, out_dir, log, scaled(report, 0.8 if measured else 0.0, 0.95)
    )
    save_model(model, tokenizer, out_dir / "model")
    write_json(out_dir / VOTES_SEEN, with_votes(record, rows, votes))  # the next round's start

    # 3. The world's held-out pairs, against labels and gold: before and after.
    report(0.95, "scoring the world's held-out pairs")
    old = pair_metrics(world_pairs, *score_pairs(*load_reward_model(start, device), world_pairs))
    new = pair_metrics(world_pairs, *score_pairs(model, tokenizer, world_pairs))
    result |= world_before_after(old, new, len(world_pairs), fb.z)
    trained = sum(agreement(model, tokenizer, votes)) / len(votes)
    result |= {**new, M.FEEDBACK_VOTES_ACCURACY_TRAINED: trained}
    n_folds, seconds = fb.folds if measured else 0, time.perf_counter() - t0
    result |= counts(len(votes), sum(seen), len(train), n_folds, seconds)
    log.finish(result)
    report(1.0, "reward model adapted to the votes")
    return result
