"""PPO under `accelerate launch`: two CPU processes, data parallel, unchanged code."""

from __future__ import annotations

import os
import shutil
import subprocess

from transformers import AutoModelForCausalLM

from lab.runlog import read_log, read_metrics
from tests.conftest import LAUNCH_DDP, SMALL

DDP = {"ppo.updates": 2, "ppo.batch_size": 8, "ppo.mini_batch_size": 4, "ppo.checkpoint_every": 1}


def test_ppo_runs_on_two_processes_with_weights_in_sync(small_reward_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_reward_run, run)
    settings = [arg for k, v in {**SMALL, **DDP}.items() for arg in ("--set", f"{k}={v}")]
    command = [
        *LAUNCH_DDP,
        *("-m", "lab", "ppo", "--out", str(run), *settings),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    # Each checkpoint all-gathers a checksum of the weights and raises if the processes differ,
    # so a zero exit means the averaged gradients kept both copies identical.
    assert done.returncode == 0, done.stderr[-4000:]
    log = read_log(run / "ppo")
    assert [row["step"] for row in log] == [1, 2]  # one row per update: only one process logs
    metrics = read_metrics(run / "ppo")
    assert metrics["ppo/processes"] == 2 and metrics["ppo/updates"] == 2
    assert AutoModelForCausalLM.from_pretrained(run / "ppo" / "model") is not None
