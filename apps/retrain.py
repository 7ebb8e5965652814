"""Instructor handlers that close the loop: retrain the reward model on the class's votes,
optionally run a short PPO round, and add the new models to the arena; simulated voters."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from apps.guard import check_instructor
from apps.handlers import Arena
from apps.jobs import Progress, start_job
from apps.simulate import simulate_votes
from apps.votes import to_preferences
from lab.config import LabConfig
from lab.feedback import ppo_round, retrain_reward
from lab.stages import load_run_config

FEEDBACK_DIR = "feedback"  # <run>/feedback/round-NNN/{reward,ppo}/
MAX_SIMULATED = 500


def run_config(run_dir: Path) -> LabConfig | None:
    """The run's settings, or None for a folder the pipeline did not write."""
    try:
        return load_run_config(run_dir)
    except FileNotFoundError:
        return None


def next_round(run_dir: Path) -> Path:
    """The folder of the next feedback round: round-001, round-002, …"""
    root = run_dir / FEEDBACK_DIR
    done = sorted(root.glob("round-*")) if root.exists() else []
    return root / f"round-{len(done) + 1:03d}"


def start(arena: Arena, password: str, ppo_updates: float) -> str:
    """Start retraining in the background (instructor only; one job at a time)."""
    problem = check_instructor(arena.classroom, password)
    if problem:
        return problem
    if arena.cfg is None or arena.run_dir is None:
        return "Retraining needs the pipeline's run folder (start the arena with --run)."
    if arena.job is not None and arena.job.running:
        return "A retraining job is already running."
    pairs = to_preferences(arena.store.votes())
    if not pairs:
        return "No preference pairs yet: votes with a winner make pairs."
    folder, updates = next_round(arena.run_dir), int(ppo_updates or 0)
    arena.job = start_job(folder.name, lambda report: work(arena, pairs, folder, updates, report))
    return f"Retraining on {len(pairs)} vote pairs in {folder} …"


def work(arena: Arena, pairs: list[dict], folder: Path, updates: int, report: Progress) -> dict:
    """Retrain the reward model, then (optionally) PPO against it; swap the new models in."""
    share = 0.5 if updates else 1.0  # of the progress bar for the reward model

    def reward_progress(fraction: float, message: str) -> None:
        report(share * fraction, f"reward model: {message}")

    result = retrain_reward(arena.cfg, arena.run_dir, pairs, folder / "reward", reward_progress)
    arena.pool.set_reward(str(folder / "reward" / "model"))
    if updates:

        def ppo_progress(fraction: float, message: str) -> None:
            report(share + (1 - share) * fraction, f"PPO: {message}")

        result.update(
            ppo_round(
                arena.cfg, arena.run_dir, folder / "reward", folder / "ppo", updates, ppo_progress
            )
        )
        arena.pool.add(f"ppo-{folder.name}", str(folder / "ppo" / "model"))
    return result


def status(arena: Arena) -> tuple[str, pd.DataFrame]:
    """The job's progress line and, once done, its before/after numbers."""
    if arena.job is None:
        return "No retraining yet.", pd.DataFrame()
    result = arena.job.result or {}
    table = pd.DataFrame(
        [{"metric": k, "value": v} for k, v in result.items() if isinstance(v, int | float)]
    )
    return arena.job.status(), table


def simulate(arena: Arena, password: str, n: float) -> str:
    """Cast `n` votes by simulated annotators (instructor only)."""
    problem = check_instructor(arena.classroom, password)
    if problem:
        return problem
    if arena.world is None:
        return "Simulated annotators need the tiny world (start the arena with --run runs/tiny)."
    n = int(n or 0)
    if not 1 <= n <= MAX_SIMULATED:
        return f"Choose between 1 and {MAX_SIMULATED} simulated votes."
    ids = simulate_votes(arena, n, seed=arena.rng.randrange(10**6))
    return f"Cast {len(ids)} simulated votes."
