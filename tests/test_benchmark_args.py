"""The benchmark scripts answer a bad command-line argument with argparse's one-line error
(exit status 2, the flag named) before loading any model, never with a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from lab.notebook import REPO_ROOT

CASES: dict[str, list[tuple[list[str], str]]] = {  # script -> (bad arguments, the flag named)
    "feedback_loop.py": [
        (["--votes", "0"], "--votes"),
        (["--set", "no_such_field=1"], "--set"),  # the lab's KeyError, as one line
        (["--set", "folds=0"], "--set"),  # cross-validation needs a fold
    ],
    "arena_latency.py": [(["--clients", "0"], "--clients"), (["--alone", "-1"], "--alone")],
    "planner_accuracy.py": [(["--twins", "foo"], "--twins"), (["--cases", "bar"], "--cases")],
    "ppo_vs_trl.py": [
        (["--batch-size", "10", "--mini-batches", "4"], "--mini-batches"),
        (["--lab-set", "ppo.updates=0"], "--lab-set"),  # the lab's ValueError, as one line
        (["--trl-path", "/nope"], "--trl-path"),
    ],
    "pretrain_speed.py": [(["--steps", "0"], "--steps"), (["--threads", "0"], "--threads")],
}


def run_script(script: str, args: tuple[str, ...]) -> subprocess.CompletedProcess:
    """`benchmarks/<script> args` in a fresh interpreter, from the repo root, on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(REPO_ROOT / "benchmarks" / script), *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT
    )


@pytest.fixture(scope="module")
def runs() -> Iterator[dict[tuple[str, tuple[str, ...]], Future]]:
    """Every case, started up front two at a time: each spends seconds of one core importing
    torch and the rest before its check refuses the argument."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        yield {
            (script, tuple(args)): pool.submit(run_script, script, tuple(args))
            for script, cases in CASES.items()
            for args, _ in cases
        }


def refused(runs: dict, script: str, args: list[str]) -> str:
    """The last line of the case's error, once it is known it exited with argparse's status 2
    and printed no traceback."""
    done = runs[(script, tuple(args))].result()
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert done.returncode == 2, done.stderr[-3000:]
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("script", "args", "flag"),
    [(script, args, flag) for script, cases in CASES.items() for args, flag in cases],
)
def test_a_bad_argument_is_one_line_naming_its_flag(
    runs: dict, script: str, args: list[str], flag: str
) -> None:
    line = refused(runs, script, args)
    assert flag in line
    if flag == "--trl-path":  # where TRL 1.12 comes from, as ppo_vs_trl's docstring says
        assert "pip install --no-deps --target /nope trl==1.12.0" in line
