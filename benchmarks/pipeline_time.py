"""Wall time of the whole pipeline from scratch, stage by stage (target on tiny: under 5 minutes).

    python benchmarks/pipeline_time.py [--profile tiny] [--set key=value ...] [--out runs/tiny]

Runs every stage in a fresh temporary folder (nothing reused), then prints each stage's
time and the summary table. Run it on an otherwise idle machine: two torch jobs at once
on two cores slow each other down several times.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lab.overrides import parse_set_args
from lab.profiles import PROFILES, load_config
from lab.stages import last_stage, run_stages
from lab.summary import format_summary, summarize

TARGET_S = 300


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="tiny", help=f"one of {', '.join(PROFILES)}")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--out", type=Path, default=None, help="keep the run here (must be empty)")
    args = parser.parse_args()
    try:
        cfg = load_config(args.profile, parse_set_args(args.overrides))
    except (KeyError, TypeError, ValueError) as err:
        parser.error(str(err.args[0]) if isinstance(err, KeyError) else str(err))
    if args.out and args.out.exists() and any(args.out.iterdir()):
        raise SystemExit(f"{args.out} is not empty: the benchmark times a run from scratch")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.out or Path(tmp) / args.profile
        start = time.perf_counter()
        run_stages(cfg, run_dir, until=last_stage(cfg))  # what `lab pipeline` runs
        wall = time.perf_counter() - start
        print("\n" + format_summary(summarize(run_dir)))
    verdict = "meets" if wall < TARGET_S else "misses"
    print(
        f"\npipeline wall time: {wall:.0f} s on {torch.get_num_threads()} CPU threads "
        f"({verdict} the {TARGET_S} s target)"
    )


if __name__ == "__main__":
    main()
