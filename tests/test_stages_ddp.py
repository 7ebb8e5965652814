"""Every stage under `accelerate launch`: two CPU processes, data parallel, unchanged code.

PPO has its own test (`test_ppo_ddp.py`); here pretraining (the lab's loop) and SFT, the reward
model, DPO and GRPO (TRL's trainers) run in two processes, and one process writes each folder.
"""

from __future__ import annotations

import shutil

from lab.config import PretrainConfig
from lab.runlog import read_log, read_metrics
from tests.conftest import launch_ddp, share_of_tensors_moved

DDP = {"pretrain.steps": 40, "pretrain.eval_every": 20, "sft.epochs": 2.0, "reward.epochs": 1.0}


def test_pretrain_sft_and_reward_run_on_two_processes(small_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_run / "world", run / "world")
    shutil.copy(small_run / "config.json", run / "config.json")
    launch_ddp("reward", run, DDP)

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
    assert share_of_tensors_moved(run / "pretrain" / "model", run / "sft" / "model") > 0.5
    # Reward model (TRL, data parallel): trained and evaluated, above chance on held-out pairs.
    assert read_metrics(run / "reward")["reward/accuracy"] > 0.5


def test_dpo_and_grpo_run_on_two_processes(small_ppo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_ppo_run, run)  # PPO done: only DPO and GRPO run
    launch_ddp("grpo", run, {"dpo.max_train_pairs": 256, "grpo.max_prompts": 32})

    # DPO: the implicit reward ranks held-out pairs better than chance and the policy moved.
    dpo = read_metrics(run / "dpo")
    assert dpo["dpo/eval_rewards_accuracy"] > 0.5 and dpo["dpo/eval_kl"] > 0
    # GRPO: trained on both processes' groups, then evaluated like every policy.
    grpo = read_metrics(run / "grpo")
    assert grpo["grpo/train_prompts"] == 32 and grpo["grpo/eval_kl"] > 0
    for stage in ("dpo", "grpo"):  # a plain model folder; the trainer's own save is cleaned up
        assert share_of_tensors_moved(run / "sft" / "model", run / stage / "model") > 0.5
        assert not (run / stage / "trained").exists()
