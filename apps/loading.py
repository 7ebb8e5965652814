"""Starting the arena: the vote store, the run's models and settings, the tiny world's judge.

Every problem is a one-line exit naming the option (`--run`, `--db`); an arena that never
started leaves no empty vote database behind.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

from apps.guard import Classroom
from apps.handlers import Arena
from apps.pool import RUN_REWARD, ModelPool, find_run_models
from apps.votes import VoteStore
from lab import recipes
from lab.stages import settings_of


def open_store(db: Path) -> VoteStore:
    """The vote database, or a one-line exit naming it (a corrupt file is left as it is)."""
    try:
        return VoteStore(db)
    except (sqlite3.DatabaseError, OSError, ValueError) as error:
        raise SystemExit(f"--db {db}: cannot be used as the vote database: {error}") from None


def load_arena(
    run_dir: Path | None, models: dict[str, str], db: Path, classroom: Classroom | None = None
) -> Arena:
    """Open the vote store, then find and load the models (a pipeline run, plus named ones)."""
    if run_dir is not None and not Path(run_dir).is_dir():
        raise SystemExit(f"--run {run_dir}: no such folder (make pipeline writes runs/tiny)")
    store = open_store(db)  # a bad database fails before any model loads
    try:
        sources = {**(find_run_models(run_dir) if run_dir else {}), **models}
        if not sources:
            raise SystemExit(
                "no models: pass --run RUN_DIR (after `make pipeline`) or --model NAME=PATH"
            )
        reward = run_dir / RUN_REWARD if run_dir else None
        pool = ModelPool(sources, str(reward) if reward and reward.is_dir() else None)
        cfg = settings_of(run_dir, None) if run_dir else None  # None: not a pipeline run
        world = recipes.gold_judge(cfg) if cfg else None  # the tiny world's judge, if its data
    except BaseException:
        store.remove_if_unused()  # an arena that never started leaves no empty database behind
        raise
    return Arena(pool, store, classroom or Classroom(), run_dir, cfg, world, random.Random())
