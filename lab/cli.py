"""`python -m lab <stage> [--profile tiny] [--out DIR] [--set k=v ...] [--config FILE] [--force]`.

`python -m lab feedback --run RUN --db VOTES.sqlite [--ppo-updates K] [--per-group] [--group G]`
runs one feedback round on the arena's votes (see `lab.feedback_round`).
`python -m lab sweep --seeds 5 [--profile tiny]` runs the pipeline once per seed (see `lab.sweep`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import yaml

from lab.distributed import is_main
from lab.overrides import apply_overrides, parse_set_args, to_dict
from lab.profiles import PROFILES, load_config
from lab.recipes import RECIPES
from lab.stages import STAGE_NAMES, STAGES, check_stages, last_stage, run_stages
from lab.summary import (
    REPORT_FILE,
    SUMMARY_FILE,
    SWEEP_DIR,
    SWEEP_FILE,
    format_summary,
    summarize,
)
from lab.sweep import format_sweep, run_sweep


def build_parser() -> argparse.ArgumentParser:
    """The lab's command line."""
    parser = argparse.ArgumentParser(prog="python -m lab", description="RLHF Lab: run a stage.")
    parser.add_argument(
        "stage",
        choices=[*STAGE_NAMES, "pipeline", "config", "plan", "feedback", "sweep"],
        help="stage to run (earlier stages run first if missing); "
        "'pipeline' runs all; 'config' prints the settings; 'plan' estimates memory and time; "
        "'feedback' adapts a run's reward model and policy to the arena's votes; "
        "'sweep' runs the pipeline on --seeds N seeds and reports each model's spread",
    )
    parser.add_argument(
        "--profile",
        default=None,
        help=f"one of {', '.join(PROFILES)}, optionally +recipe ({', '.join(RECIPES)}), "
        "e.g. smollm2-360m+tldr (default tiny)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="run folder (default runs/<profile>)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a setting, e.g. --set pretrain.steps=100 (repeatable)",
    )
    parser.add_argument("--config", default=None, help="YAML file of settings to override")
    parser.add_argument("--force", action="store_true", help="rerun the stage even if it is done")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted stage (ppo) from its last checkpoint",
    )
    parser.add_argument(
        "--gpu", default=None, help="plan: T4 (default), L4, A100-40, A100-80, H100 or cpu"
    )
    parser.add_argument("--gpu-mem", default=None, help="plan: memory to fit in, e.g. 16GB")
    parser.add_argument(
        "--seeds", type=int, default=None, help="sweep: how many seeds (0, 1, ... N-1; default 5)"
    )
    parser.add_argument("--run", type=Path, help="feedback: the run folder, e.g. runs/tiny")
    parser.add_argument("--db", type=Path, help="feedback: the arena's vote database")
    parser.add_argument(
        "--ppo-updates", type=int, default=None, help="feedback: PPO updates (0 = no policy round)"
    )
    parser.add_argument(
        "--per-group", action="store_true", help="feedback: a reward model and policy per group"
    )
    parser.add_argument("--group", default=None, help="feedback: only this group's votes")
    return parser


STAGE_RUNS = {*STAGE_NAMES, "pipeline"}
T = TypeVar("T")
# Options that only some commands read: any other command refuses them rather than ignore them.
ONLY_FOR: dict[str, set[str]] = {
    "profile": STAGE_RUNS | {"config", "plan", "sweep"},
    "out": STAGE_RUNS | {"sweep"},
    "force": STAGE_RUNS,
    "resume": {stage.name for stage in STAGES if stage.resumable},
    "gpu": {"plan"},
    "gpu_mem": {"plan"},
    "seeds": {"sweep"},
    "run": {"feedback"},
    "db": {"feedback"},
    "ppo_updates": {"feedback"},
    "per_group": {"feedback"},
    "group": {"feedback"},
}
# What a feedback round's policy was rewarded with (metrics.json's feedback/ppo_reward).
REWARDS = {"delta": "new reward model minus the old", "model": "the new reward model"}
DEFAULTS = {"profile": "tiny", "gpu": "T4", "seeds": 5}  # filled in once the check has passed


def unread_options(args: argparse.Namespace) -> list[str]:
    """The options given on the command line that `args.stage` would ignore, as typed."""
    return [
        "--" + name.replace("_", "-")
        for name, stages in ONLY_FOR.items()
        if args.stage not in stages
        and getattr(args, name) is not None
        and getattr(args, name) is not False  # 0 is a value given (0 == False in Python)
    ]


def fmt_share(metrics: dict, name: str, ci_name: str) -> str:
    """'0.812 [0.780, 0.840]', or 'n/a' when the number is missing."""
    value, ci = metrics.get(name), metrics.get(ci_name)
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def fmt_change(interval: list[float] | None) -> str:
    """' (change [+0.020, +0.160], paired)': the agreement's change on the same held-out votes,
    resampled by prompt; '' when not measured."""
    return "" if not interval else f" (change [{interval[0]:+.3f}, {interval[1]:+.3f}], paired)"


def format_round(folder: Path, summary: dict) -> str:
    """A feedback round's before/after, a few lines per group."""
    from lab import metrics as M
    from lab.group_compare import STYLE_LABELS, format_change

    lines = [f"{folder} ({summary[M.FEEDBACK_ROUND_SECONDS]:.0f} s)"]
    for label, m in summary["groups"].items():
        votes = [
            fmt_share(m, M.FEEDBACK_VOTES_ACCURACY_BEFORE, M.FEEDBACK_VOTES_ACCURACY_BEFORE_CI),
            fmt_share(m, M.FEEDBACK_VOTES_ACCURACY_AFTER, M.FEEDBACK_VOTES_ACCURACY_AFTER_CI),
        ]
        gold = [
            fmt_share(m, M.FEEDBACK_GOLD_ACCURACY_BEFORE, M.FEEDBACK_GOLD_ACCURACY_BEFORE_CI),
            fmt_share(m, M.FEEDBACK_GOLD_ACCURACY_AFTER, M.FEEDBACK_GOLD_ACCURACY_AFTER_CI),
        ]
        lines += [
            f"[{label}] {m[M.FEEDBACK_VOTE_PAIRS_TRAIN]} vote pairs, "
            f"{m[M.FEEDBACK_FOLDS]} folds, reward model {m[M.FEEDBACK_REWARD_SECONDS]:.0f} s",
            f"  held out: {m[M.FEEDBACK_VOTE_PAIRS_HELDOUT]} vote pairs (only ones new since the "
            f"reward model it starts from; never the {m[M.FEEDBACK_VOTE_PAIRS_SEEN]} it had "
            "trained on already)",
            f"  agreement with the class, held-out votes: {votes[0]} -> {votes[1]}"
            + fmt_change(m.get(M.FEEDBACK_VOTES_ACCURACY_CHANGE_CI)),
            f"  accuracy vs gold, world's held-out pairs: {gold[0]} -> {gold[1]}",
        ]
        if M.FEEDBACK_NOTE in m:
            lines.append(f"  note: {m[M.FEEDBACK_NOTE]}")
        if M.FEEDBACK_POLICY_DIR in m:
            lines.append(
                f"  policy: {folder / m[M.FEEDBACK_POLICY_DIR]} (from {m[M.FEEDBACK_POLICY_FROM]}, "
                f"{m['ppo/updates']} PPO updates, {m[M.FEEDBACK_PPO_SECONDS]:.0f} s, rewarded: "
                f"{REWARDS[m[M.FEEDBACK_PPO_REWARD]]})"
            )
        if M.FEEDBACK_POLICY_CHANGE in m:
            lines.append(
                f"  the policy, {m[M.FEEDBACK_POLICY_SAMPLES]} answers per held-out prompt, "
                "before -> after (change [95% interval]):"
            )
            for measure, numbers in m[M.FEEDBACK_POLICY_CHANGE].items():
                name = STYLE_LABELS[measure]
                lines.append(f"    {name}: {numbers['before']:.2f} -> {format_change(numbers)}")
    return "\n".join(lines)


def run_feedback(args: argparse.Namespace) -> int:
    """`python -m lab feedback`: one round on the votes in `--db`; errors are one line, exit 2."""
    import dataclasses

    from lab.feedback import FeedbackConfig
    from lab.feedback_round import feedback_round
    from lab.stages import load_run_config
    from lab.votes_db import left_out_note, read_votes, to_preferences

    try:
        if args.run is None or args.db is None:
            raise ValueError("feedback needs --run RUN_DIR and --db VOTES.sqlite")
        if args.config:
            raise ValueError("feedback uses the run's own settings (RUN/config.json): use --set")
        cfg = load_run_config(args.run)
        apply_overrides(cfg, parse_set_args(args.overrides))
        fb = FeedbackConfig()
        if args.ppo_updates is not None:
            if args.ppo_updates < 0:
                raise ValueError(f"--ppo-updates must be 0 or more, got {args.ppo_updates}")
            fb = dataclasses.replace(fb, ppo_updates=args.ppo_updates)
        votes = read_votes(args.db)
        pairs, left_out = to_preferences(votes), left_out_note(votes, args.group or None)
        if not pairs:
            raise ValueError(
                f"no vote pairs in {args.db}: votes with a winner make pairs{left_out}"
            )
        if left_out:
            print(f"note: {len(pairs)} vote pairs{left_out}")
        folder, summary = feedback_round(
            cfg, args.run, pairs, fb, group=args.group, per_group=args.per_group
        )
    except (OSError, KeyError, TypeError, ValueError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    print(format_round(folder, summary))
    print(format_policies(cfg, folder))
    return 0


def format_policies(cfg, folder: Path) -> str:
    """The round's policies beside the one they started from, on the held-out prompts
    (tiny world only: the gold judge measures them); empty when the round trained no policy."""
    from lab.group_compare import compute_group_styles, read_answers, read_measured, round_policies
    from lab.recipes import gold_judge

    world = gold_judge(cfg)
    if world is None:
        return ""
    try:
        tables = read_answers(round_policies(folder))
        measured = read_measured(folder)  # several answers per prompt, if the round measured them
    except (FileNotFoundError, ValueError):
        return ""  # a round with 0 PPO updates has no policy to show
    styles = compute_group_styles(world, measured or tables).set_index("policy").round(2)
    return "the policies on the held-out prompts (means per answer):\n" + styles.to_string()


def print_plan(cfg, gpu: str, gpu_mem: str | None) -> int:
    """`python -m lab plan`: the memory/time table of every stage (reads configs only)."""
    from lab.plan import GPUS, compute_plan, format_plan, parse_gb, plan_notes

    try:
        gb = parse_gb(gpu_mem) if gpu_mem else GPUS[gpu].memory_gb if gpu in GPUS else None
        plans = compute_plan(cfg, gpu, gb)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, AttributeError) as err:  # a folder the planner cannot read as a Llama-like
        model = cfg.model.name_or_path or "the tiny Llama"
        print(f"error: cannot plan for {model}: {one_line(err)}", file=sys.stderr)
        return 2
    name = cfg.model.name_or_path or "tiny Llama"
    title = f"{cfg.profile} ({name}, {cfg.model.dtype}) on {gpu}, {gb:g} GB"
    print(format_plan(cfg, plans, title, gb, plan_notes(cfg, gpu)))
    return 0


def explained(run: Callable[..., T], *args, **kwargs) -> T | None:
    """`run(*args, **kwargs)`, or None after one line on stderr when it fails on what it was
    given (a data file, a setting, a folder). `LAB_TRACEBACK=1` shows the traceback instead."""
    try:
        return run(*args, **kwargs)
    except (OSError, KeyError, TypeError, ValueError) as err:
        if os.environ.get("LAB_TRACEBACK"):
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        print("(LAB_TRACEBACK=1 shows where it failed)", file=sys.stderr)
        return None


def one_line(err: BaseException) -> str:
    """An error as one line: its first line (a KeyError's text without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text.splitlines()[0] if text.strip() else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if unread := unread_options(args):
        print(f"error: {args.stage} does not read {', '.join(unread)}", file=sys.stderr)
        return 2
    for name, value in DEFAULTS.items():
        setattr(args, name, value if getattr(args, name) is None else getattr(args, name))
    if args.stage == "feedback":
        return run_feedback(args)
    try:
        cfg = load_config(args.profile, parse_set_args(args.overrides), args.config)
        check_stages(cfg)
    except (KeyError, TypeError, ValueError) as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    if args.stage == "config":
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    if args.stage == "plan":
        return print_plan(cfg, args.gpu, args.gpu_mem)
    run_dir = args.out or Path("runs") / args.profile
    if run_dir.exists() and not run_dir.is_dir():
        print(f"error: --out {run_dir} is a file, not a run folder", file=sys.stderr)
        return 2
    if args.stage == "sweep":
        if args.seeds < 2:
            print(
                f"error: --seeds needs at least 2 seeds for an interval, got {args.seeds}",
                file=sys.stderr,
            )
            return 2
        sweep = explained(run_sweep, cfg, run_dir, list(range(args.seeds)))
        if sweep is None:
            return 2
        print("\n" + format_sweep(sweep))
        print(f"\nWrote {run_dir / SWEEP_DIR / SWEEP_FILE}")
        return 0
    until = last_stage(cfg) if args.stage == "pipeline" else args.stage
    results = explained(run_stages, cfg, run_dir, until, force=args.force, resume=args.resume)
    if results is None:
        return 2
    if not is_main():  # under `accelerate launch` the main process reports
        return 0
    if args.stage != "pipeline":  # one stage: its numbers in full
        shown = {k: v for k, v in results[until].items() if isinstance(v, int | float | str)}
        print(f"[{until}] " + json.dumps(shown, default=str))
    print("\n" + format_summary(summarize(run_dir)))
    print(f"\nWrote {run_dir / SUMMARY_FILE} and {run_dir / REPORT_FILE}")
    return 0
