"""A feedback round: adapt the reward model to the votes, then a short PPO round from the current policy.

`feedback_round` (run by `python -m lab feedback` and the arena's Retrain tab) writes
RUN/feedback/round-NNN/ with metrics.json, reward/ and policy/ (per group: reward-G/, policy-G/);
the next round starts from them (`current_models`). How the reward model adapts, and how that is
measured on the votes it has not trained on yet (reward[-G]/votes_seen.json), is `lab.feedback`. Where the gold judge knows the truth (the tiny world), each new
policy and the one it started from answer every held-out prompt `FeedbackConfig.samples` times
(tables in ppo-G/), and metrics.json says how the answers moved (`measure_policy`).
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
from pathlib import Path

import pandas as pd

from lab import metrics as M
from lab import recipes
from lab.config import LabConfig
from lab.evaluation import save_gold_table
from lab.feedback import FeedbackConfig, check_fresh, retrain_reward, scaled, select_group
from lab.group_compare import (
    MEASURED_START_TABLE,
    MEASURED_TABLE,
    compute_style_change,
    policy_home,
)
from lab.ppo import run_ppo
from lab.progress import Progress
from lab.runlog import METRICS_FILE, write_json
from lab.votes_db import GROUP_NAME, GROUP_RULE
from lab.world import World
from lab.yardstick import sample_policy

FEEDBACK_DIR = "feedback"  # RUN/feedback/round-NNN/
ROUND = re.compile(r"round-(\d{3})")
MEASURING = 0.9  # the share of a round's progress bar done when its policies are measured

__all__ = [
    "current_models",
    "feedback_round",
    "measure_policy",
    "next_round",
    "ppo_round",
    "rounds",
]


def ppo_round(
    cfg: LabConfig,
    run_dir: Path,
    reward_dir: Path,
    out_dir: Path,
    updates: int,
    progress: Progress | None = None,
    *,
    init_policy: Path | None = None,
    kl_coef: float | None = None,
    reward_baseline: Path | None = None,
) -> dict:
    """A short PPO run from `init_policy` (the current policy) against the reward model in `reward_dir`.

    `reward_dir` is a reward stage folder (`retrain_reward`'s `out_dir`); the policy is saved
    in `out_dir/model`, beside the PPO stage's usual log, checkpoints and metrics. Without
    `init_policy` the run's SFT model starts. `kl_coef` (default: the profile's) is beta, the
    KL penalty to the policy the round starts from. With `reward_baseline` (a reward model
    folder: the one the round adapted from) the reward is the new model's score minus its score.
    """
    if updates < 1:
        raise ValueError(f"a PPO round needs at least 1 update, got {updates}")
    reward_model, out_dir = Path(reward_dir) / "model", Path(out_dir)
    if not reward_model.is_dir():
        raise FileNotFoundError(
            f"no reward model in {reward_model}: retrain the reward model before a policy round"
        )
    if init_policy is not None and not Path(init_policy).is_dir():
        raise FileNotFoundError(f"no policy at {init_policy} to start the PPO round from")
    check_fresh(out_dir)
    kl_coef = cfg.ppo.kl_coef if kl_coef is None else kl_coef
    short = dataclasses.replace(  # against `reward_dir`'s model, whatever the run's PPO used
        cfg, ppo=dataclasses.replace(cfg.ppo, updates=updates, kl_coef=kl_coef, reward="model")
    )
    metrics = run_ppo(
        short,
        Path(run_dir),
        out_dir,
        reward_model=reward_model,
        init_policy=init_policy,
        progress=progress,
        reward_baseline=reward_baseline,
    )
    if progress:
        progress(1.0, "PPO round done")
    return metrics


# ---------------------------------------------------------------- rounds


def rounds(run_dir: Path) -> list[Path]:
    """The finished feedback rounds of a run, oldest first."""
    root = Path(run_dir) / FEEDBACK_DIR
    found = [p for p in root.iterdir() if ROUND.fullmatch(p.name)] if root.is_dir() else []
    return sorted(found)


def next_round(run_dir: Path) -> Path:
    """The folder of the next feedback round: round-001, round-002, …"""
    done = rounds(run_dir)
    number = int(ROUND.fullmatch(done[-1].name)[1]) + 1 if done else 1
    return Path(run_dir) / FEEDBACK_DIR / f"round-{number:03d}"


def current_models(run_dir: Path, group: str | None = None) -> tuple[Path, Path]:
    """(reward model, policy) the arena uses now for `group`: the latest round's, else the run's.

    A group's own chain (reward-G/, policy-G/) comes first, then the shared one (reward/, policy/).
    """
    run_dir, suffixes = Path(run_dir), ([f"-{group}"] if group else []) + [""]
    newest = rounds(run_dir)[::-1]
    found = {
        kind: next(
            (r / f"{kind}{s}" for s in suffixes for r in newest if (r / f"{kind}{s}").is_dir()),
            None,
        )
        for kind in ("reward", "policy")
    }
    reward = found["reward"] / "model" if found["reward"] else run_dir / "reward" / "model"
    ppo = run_dir / "ppo" / "model"
    policy = found["policy"] or (ppo if ppo.is_dir() else run_dir / "sft" / "model")
    return reward, policy


def measure_policy(
    world: World, start: pd.DataFrame, new: pd.DataFrame, out_dir: Path, samples: int
) -> dict:
    """How the round's policy answers (`new`) moved from its start's, prompt by prompt; both
    tables are saved in `out_dir`. The metrics: samples per prompt and the change per measure."""
    save_gold_table(start, out_dir / MEASURED_START_TABLE)
    save_gold_table(new, out_dir / MEASURED_TABLE)
    change = compute_style_change(world, start, new).set_index("measure")
    numbers = change[["before", "after", "diff", "low", "high"]].to_dict("index")
    return {M.FEEDBACK_POLICY_SAMPLES: samples, M.FEEDBACK_POLICY_CHANGE: numbers}


def measure_policies(
    cfg: LabConfig, run_dir: Path, folder: Path, plan: dict, results: dict, samples: int,
    world: World, report: Progress,
) -> None:  # fmt: skip
    """`measure_policy` for each group's new policy in `folder` against the policy it started
    from (`plan`), into the group's `results`; groups that started from one policy share its answers."""
    start_tables: dict[Path, pd.DataFrame] = {}
    for i, (g, (_, _, start)) in enumerate(plan.items()):
        of = f" of {g}" if g else ""
        report(MEASURING + (1 - MEASURING) * i / len(plan), f"measuring the new policy{of}")
        m = results[g or "all"]
        policy = folder / m[M.FEEDBACK_POLICY_DIR]
        if start not in start_tables:
            start_tables[start] = sample_policy(cfg, run_dir, start, samples)
        new = sample_policy(cfg, run_dir, policy, samples)
        m |= measure_policy(world, start_tables[start], new, policy_home(policy), samples)


def group_round(
    cfg, fb, run_dir: Path, folder: Path, group, rows, reward: Path, policy: Path, progress
) -> dict:
    """One group's part of a round: reward-G/ adapted from `reward`, policy-G/ from `policy`."""
    suffix, share = (f"-{group}" if group else ""), (0.5 if fb.ppo_updates else 1.0)
    m = retrain_reward(
        cfg, run_dir, rows, folder / f"reward{suffix}", scaled(progress, 0, share),
        reward_model=reward, fb=fb,
    )  # fmt: skip
    m |= {M.FEEDBACK_GROUP: group or "", M.FEEDBACK_REWARD_DIR: f"reward{suffix}"}
    if fb.ppo_updates:
        ppo = ppo_round(
            cfg, run_dir, folder / f"reward{suffix}", folder / f"ppo{suffix}", fb.ppo_updates,
            scaled(progress, share, 1.0), init_policy=policy, kl_coef=fb.ppo_kl_coef,
            reward_baseline=reward if fb.ppo_reward_delta else None,
        )  # fmt: skip
        (folder / f"ppo{suffix}" / "model").rename(folder / f"policy{suffix}")
        m |= {k: v for k, v in ppo.items() if k != M.STAGE_SECONDS}
        m |= {
            M.FEEDBACK_PPO_SECONDS: ppo.get(M.STAGE_SECONDS),
            M.FEEDBACK_POLICY_FROM: str(policy),
            M.FEEDBACK_PPO_REWARD: "delta" if fb.ppo_reward_delta else "model",
            M.FEEDBACK_POLICY_DIR: f"policy{suffix}",
        }
    return m


def round_groups(
    pairs: list[dict], fb: FeedbackConfig, group: str | None, per_group: bool
) -> list[str | None]:
    """The groups a round trains for ([None]: every vote; [group]; every group's, per group),
    after checking the request: each problem is one line, before anything is written."""
    if per_group and group:
        raise ValueError("either one group's votes (--group) or one round per group (--per-group)")
    if not pairs:
        raise ValueError("no vote pairs: votes with a winner and two distinct answers make pairs")
    if fb.samples < 0:
        raise ValueError(
            f"samples: answers per prompt that measure a policy, 0 or more; got {fb.samples}"
        )
    groups = sorted({row.get("group", "") for row in pairs} - {""}) if per_group else [group]
    if per_group and not groups:
        raise ValueError("--per-group: no vote has a group")
    for g in groups:  # a group names the round's folders (reward-G/, policy-G/)
        if g is not None and not GROUP_NAME.fullmatch(g):
            raise ValueError(f"vote group {g[:40]!r} cannot name a round's folders: {GROUP_RULE}")
    return groups


def feedback_round(
    cfg: LabConfig,
    run_dir: Path,
    pairs: list[dict],
    fb: FeedbackConfig | None = None,
    group: str | None = None,
    per_group: bool = False,
    progress: Progress | None = None,
) -> tuple[Path, dict]:
    """One round: per group (or for all votes) adapt the reward model, then a PPO round from the
    current policy, then (tiny world) measure each new policy against its start; writes
    RUN/feedback/round-NNN/ and returns it with its metrics."""
    fb, report, run_dir = fb or FeedbackConfig(), progress or (lambda f, m: None), Path(run_dir)
    # 1. Check everything first: nothing is written unless the round can run.
    groups = round_groups(pairs, fb, group, per_group)
    plan = {g: (select_group(pairs, g), *current_models(run_dir, g)) for g in groups}
    for _, reward, policy in plan.values():
        for path in (reward, policy) if fb.ppo_updates else (reward,):
            if not path.is_dir():
                raise FileNotFoundError(f"no model at {path}: run the pipeline to 'ppo' first")
    folder = next_round(run_dir)
    partial_dir = folder.with_name(folder.name + ".partial")  # renamed once the round is done
    shutil.rmtree(partial_dir, ignore_errors=True)
    t0, results = time.perf_counter(), {}
    world = recipes.gold_judge(cfg) if fb.ppo_updates and fb.samples else None
    share = MEASURING if world is not None else 1.0
    try:
        # 2. Per group: reward model, then policy.
        for i, (g, (rows, reward, policy)) in enumerate(plan.items()):
            part = scaled(report, share * i / len(plan), share * (i + 1) / len(plan))
            results[g or "all"] = group_round(
                cfg, fb, run_dir, partial_dir, g, rows, reward, policy, part
            )
        # 3. Where a gold judge knows the truth: each new policy against its start, K answers a prompt.
        if world is not None:
            measure_policies(cfg, run_dir, partial_dir, plan, results, fb.samples, world, report)
    except BaseException:
        shutil.rmtree(partial_dir, ignore_errors=True)  # a failed round leaves nothing behind
        raise

    # 4. Save the round's numbers; the folder appears whole, under its final name.
    summary = {
        "round": folder.name,
        M.FEEDBACK_ROUND_SECONDS: time.perf_counter() - t0,
        "groups": results,
    }
    write_json(partial_dir / METRICS_FILE, summary)
    partial_dir.rename(folder)
    report(1.0, f"{folder.name} done")
    return folder, summary
