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
from lab.stages import STAGE_NAMES, run_stages
from lab.summary import REPORT_FILE, SUMMARY_FILE, format_summary, summarize


def build_parser() -> argparse.ArgumentParser:
    """The lab's command line."""
    parser = argparse.ArgumentParser(prog="python -m lab", description="RLHF Lab: run a stage.")
    parser.add_argument(
        "stage",
        choices=[*STAGE_NAMES, "pipeline", "config"],
        help="stage to run (earlier stages run first if missing); "
        "'pipeline' runs all; 'config' prints the settings",
    )
    parser.add_argument("--profile", default="tiny", choices=list(PROFILES))
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
    return parser


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
