"""`python -m lab <stage> [--profile tiny] [--out DIR] [--set k=v ...] [--config FILE] [--force]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from lab.config import parse_set_args, to_dict
from lab.distributed import is_main
from lab.profiles import PROFILES, load_config
from lab.recipes import RECIPES
from lab.stages import STAGE_NAMES, run_stages
from lab.summary import REPORT_FILE, SUMMARY_FILE, format_summary, summarize


def build_parser() -> argparse.ArgumentParser:
    """The lab's command line."""
    parser = argparse.ArgumentParser(prog="python -m lab", description="RLHF Lab: run a stage.")
    parser.add_argument(
        "stage",
        choices=[*STAGE_NAMES, "pipeline", "config", "plan"],
        help="stage to run (earlier stages run first if missing); "
        "'pipeline' runs all; 'config' prints the settings; 'plan' estimates memory and time",
    )
    parser.add_argument(
        "--profile",
        default="tiny",
        help=f"one of {', '.join(PROFILES)}, optionally +recipe ({', '.join(RECIPES)}), "
        "e.g. smollm2-360m+tldr",
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
    parser.add_argument("--gpu", default="T4", help="plan: T4, L4, A100-40, A100-80, H100 or cpu")
    parser.add_argument("--gpu-mem", default=None, help="plan: memory to fit in, e.g. 16GB")
    return parser


def print_plan(cfg, gpu: str, gpu_mem: str | None) -> int:
    """`python -m lab plan`: the memory/time table of every stage (reads configs only)."""
    from lab.plan import GPUS, compute_plan, format_plan, parse_gb, plan_notes

    try:
        gb = parse_gb(gpu_mem) if gpu_mem else GPUS[gpu].memory_gb if gpu in GPUS else None
        plans = compute_plan(cfg, gpu, gb)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    name = cfg.model.name_or_path or "tiny Llama"
    title = f"{cfg.profile} ({name}, {cfg.model.dtype}) on {gpu}, {gb:g} GB"
    print(format_plan(cfg, plans, title, gb, plan_notes(cfg, gpu)))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        cfg = load_config(args.profile, parse_set_args(args.overrides), args.config)
    except (KeyError, TypeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.stage == "config":
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        return 0
    if args.stage == "plan":
        return print_plan(cfg, args.gpu, args.gpu_mem)
    run_dir = args.out or Path("runs") / args.profile
    until = STAGE_NAMES[-1] if args.stage == "pipeline" else args.stage
    results = run_stages(cfg, run_dir, until, force=args.force, resume=args.resume)
    if not is_main():  # under `accelerate launch` the main process reports
        return 0
    if args.stage != "pipeline":  # one stage: its numbers in full
        shown = {k: v for k, v in results[until].items() if isinstance(v, int | float | str)}
        print(f"[{until}] " + json.dumps(shown, default=str))
    print("\n" + format_summary(summarize(run_dir)))
    print(f"\nWrote {run_dir / SUMMARY_FILE} and {run_dir / REPORT_FILE}")
    return 0
