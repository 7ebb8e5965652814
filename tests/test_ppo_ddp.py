"""PPO under `accelerate launch`: two CPU processes, data parallel, unchanged code."""

from __future__ import annotations

import shutil

from lab.runlog import read_log, read_metrics
from tests.conftest import launch_ddp, share_of_tensors_moved

DDP = {"ppo.updates": 2, "ppo.batch_size": 8, "ppo.mini_batch_size": 4, "ppo.checkpoint_every": 1}


def test_ppo_runs_on_two_processes_with_weights_in_sync(small_reward_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_reward_run, run)
    # Each checkpoint all-gathers a checksum of the weights and raises if the processes differ,
    # so a clean exit means the averaged gradients kept both copies identical.
    launch_ddp("ppo", run, DDP)
    log = read_log(run / "ppo")
    assert [row["step"] for row in log] == [1, 2]  # one row per update: only one process logs
    metrics = read_metrics(run / "ppo")
    assert metrics["ppo/processes"] == 2 and metrics["ppo/updates"] == 2
    assert share_of_tensors_moved(run / "sft" / "model", run / "ppo" / "model") > 0.5
