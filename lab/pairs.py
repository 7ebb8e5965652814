"""Preference pairs: the run's training and held-out pairs, and the one conversational format.

Every preference stage (the reward model, DPO, the arena's feedback round) reads its pairs
through `load_pairs`: the world's two files, or `reward.train_data` with a holdout set aside.
"""

from __future__ import annotations

from pathlib import Path

import datasets

from lab.config import LabConfig
from lab.data import PREFERENCE_FIELDS, load_preferences
from lab.generation import as_messages
from lab.world.build import FILES


def as_conversation(prompt, response) -> list[dict]:
    """Prompt (string or messages) + response (string or one assistant message) -> messages."""
    reply = [{"role": "assistant", "content": response}] if isinstance(response, str) else response
    if len(reply) != 1 or reply[0]["role"] != "assistant":
        raise ValueError(f"a response is a string or one assistant message, got {reply!r:.80}")
    return as_messages(prompt) + list(reply)


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


def policy_pairs(
    cfg: LabConfig, world_dir: Path, max_pairs: int = 0
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The pairs a policy trains on directly (DPO, ORPO): the reward model's training and
    held-out pairs, the training ones cut to `max_pairs` (0: all), both as conversations
    (the chat format SFT taught)."""
    train, held_out = load_pairs(cfg, world_dir)
    if max_pairs:
        train = train.select(range(min(max_pairs, len(train))))
    return as_conversational(train), as_conversational(held_out)
