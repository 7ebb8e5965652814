"""Run every break-it exercise's solution on a profile and check that its symptom shows.

    python benchmarks/break_it.py [--profile tiny] [--run runs/tiny] [--only kl0 ...]

Each exercise changes one setting in a copy of the run (`lab.stages.run_variant`, reusing
the stages the change does not touch) and hands the result to the notebook's auto-check.
Prints one line per exercise: the symptom the check measured, or why it did not show.
Expect ~15 minutes on 2 CPU cores for the tiny profile (the base run is made first if missing).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from lab import exercises as ex
from lab.config import LabConfig
from lab.profiles import PROFILES, load_config
from lab.runlog import read_log
from lab.stages import run_stages, run_variant, settings_of


def tiny_reward_data(cfg: LabConfig, run: Path) -> bool:
    """03.3: a reward model trained on 64 pairs."""
    _, _, res = run_variant(cfg, run, "rm64", {"reward.max_train_pairs": 64}, until="reward")
    return ex.check_tiny_reward_data(run_stages(cfg, run, "reward")["reward"], res["reward"])


def kl_off(cfg: LabConfig, run: Path) -> bool:
    """04.1: PPO with no KL penalty, same updates."""
    _, _, res = run_variant(cfg, run, "kl0", {"ppo.kl_coef": 0.0}, until="ppo")
    return ex.check_reward_hacking(run_stages(cfg, run, "ppo")["ppo"], res["ppo"])


def whitening_off(cfg: LabConfig, run: Path) -> bool:
    """04.2: PPO on raw (unwhitened) advantages."""
    _, out, _ = run_variant(cfg, run, "raw-adv", {"ppo.whiten_advantages": False}, until="ppo")
    return ex.check_whitening_off(read_log(run / "ppo"), read_log(out / "ppo"))


def eos_penalty_off(cfg: LabConfig, run: Path) -> bool:
    """04.3: a 16-token budget, with and without the missing-EOS penalty."""
    logs = {}
    for name, penalty in {"penalty": cfg.ppo.missing_eos_penalty, "no-penalty": 0.0}.items():
        budget = {"ppo.max_new_tokens": 16, "ppo.missing_eos_penalty": penalty}
        _, out, _ = run_variant(cfg, run, f"eos16-{name}", budget, until="ppo")
        logs[name] = read_log(out / "ppo")
    return ex.check_eos_penalty(logs)


def overoptimisation(cfg: LabConfig, run: Path) -> bool:
    """05.1: a weaker reward model, no KL penalty, twice the updates (as notebook 05)."""
    change = {**ex.OVEROPTIMISATION, "ppo.updates": 2 * cfg.ppo.updates}
    _, out, _ = run_variant(cfg, run, "overopt", change, until="ppo")
    return ex.check_overoptimisation(read_log(out / "ppo"))


EXERCISES: dict[str, Callable[[LabConfig, Path], bool]] = {
    "rm64": tiny_reward_data,
    "kl0": kl_off,
    "raw-adv": whitening_off,
    "eos16": eos_penalty_off,
    "overopt": overoptimisation,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny", choices=list(PROFILES))
    parser.add_argument("--run", type=Path, default=None, help="base run (default runs/<profile>)")
    parser.add_argument("--only", nargs="+", choices=list(EXERCISES), default=list(EXERCISES))
    args = parser.parse_args()
    run = args.run or Path("runs") / args.profile
    cfg = settings_of(run, load_config(args.profile))  # the run's own settings, if it has some
    run_stages(cfg, run, "ppo")
    verdicts = {}
    for name in args.only:
        start = time.perf_counter()
        try:
            verdicts[name] = "symptom shown" if EXERCISES[name](cfg, run) else "not run"
        except AssertionError as err:
            verdicts[name] = f"NO SYMPTOM: {err}"
        verdicts[name] += f" ({time.perf_counter() - start:.0f} s)"
    print("\n".join(f"{name:8s} {verdict}" for name, verdict in verdicts.items()))


if __name__ == "__main__":
    main()
