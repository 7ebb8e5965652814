"""Every stage under `accelerate launch`: two CPU processes, data parallel, unchanged code.

PPO has its own test (`test_ppo_ddp.py`); here pretraining (the lab's loop) and SFT and the
reward model (TRL's trainers) run in two processes, and one process writes each folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from transformers import AutoModelForCausalLM

from lab.config import PretrainConfig
from lab.runlog import read_log, read_metrics
from tests.conftest import LAUNCH_DDP, SMALL

DDP = {"pretrain.steps": 40, "pretrain.eval_every": 20, "sft.epochs": 2.0, "reward.epochs": 1.0}


def test_pretrain_sft_and_reward_run_on_two_processes(small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run / "world", run / "world")
    shutil.copy(small_run / "config.json", run / "config.json")
    settings = [arg for k, v in {**SMALL, **DDP}.items() for arg in ("--set", f"{k}={v}")]
    command = [*LAUNCH_DDP, "-m", "lab", "reward", "--out", str(run), *settings]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-4000:]

    # Pretraining: averaged gradients, one log row per step, written once; the loss fell.
    log = read_log(run / "pretrain")
    assert [row["step"] for row in log] == list(range(1, 41))
    pretrain = read_metrics(run / "pretrain")
    per_step = PretrainConfig().batch_size * PretrainConfig().seq_len  # per process
    assert pretrain["pretrain/tokens_seen"] == 2 * 40 * per_step
    assert pretrain["pretrain/loss"] < pretrain["pretrain/first_loss"]
    # SFT (TRL, data parallel): the held-out loss fell below the base model's.
    sft = read_metrics(run / "sft")
    assert sft["sft/eval_loss"] < sft["sft/base_eval_loss"]
    assert AutoModelForCausalLM.from_pretrained(run / "sft" / "model") is not None
    # Reward model (TRL, data parallel): trained and evaluated, above chance on held-out pairs.
    assert read_metrics(run / "reward")["reward/accuracy"] > 0.5
