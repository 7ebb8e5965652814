"""A real architecture on CPU: SmolLM2-135M's twin (real config, random weights) runs SFT,
the reward model and PPO with LoRA for a few steps, through the same code as the tiny model,
with a ChatML chat template like the real SmolLM2's (a turn ends at <|im_end|>, not at EOS).
"""

from __future__ import annotations

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lab import metrics as M
from lab.models import load_tokenizer
from lab.ppo_checkpoint import latest_checkpoint
from lab.profiles import load_config
from lab.reward import PAIRS_FILE
from lab.runlog import read_metrics
from lab.stages import run_stages
from lab.twins import make_twin
from tests.conftest import SMALL, chatml

TWIN = "HuggingFaceTB/SmolLM2-135M"
FEW_STEPS = {
    "world.n_eval_prompts": 8,  # a 135M model on CPU: keep evaluation small
    "world.n_pairs_test": 40,
    "model.max_length": 128,
    "sft.batch_size": 4,
    "sft.epochs": 0.015,  # 2 steps of 4 demonstrations
    "sft.lr": 1e-3,
    "reward.max_train_pairs": 16,
    "reward.batch_size": 4,
    "reward.epochs": 1.0,
    "ppo.lora_r": 8,
    "ppo.updates": 2,
    "ppo.batch_size": 4,
    "ppo.mini_batch_size": 2,
    "ppo.ppo_epochs": 1,
    "ppo.max_new_tokens": 16,
    "ppo.lr": 1e-3,
    "ppo.checkpoint_every": 2,
    "ppo.n_samples": 2,
}


def test_smollm2_135m_twin_runs_sft_reward_and_lora_ppo(small_run, tmp_path):
    tokenizer = chatml(AutoTokenizer.from_pretrained(small_run / "pretrain" / "model"))
    assert tokenizer.eos_token != "<|im_end|>"
    twin = make_twin(TWIN, tmp_path / "twin", tokenizer)
    run = tmp_path / "run"
    cfg = load_config("tiny", {**SMALL, **FEW_STEPS, "model.name_or_path": str(twin)})
    results = run_stages(cfg, run, until="ppo")

    # The lab ends answers where the template ends a turn, and the SFT model keeps that EOS.
    assert load_tokenizer(str(twin)).eos_token == "<|im_end|>"
    assert AutoTokenizer.from_pretrained(run / "sft" / "model").eos_token == "<|im_end|>"
    # SFT: two steps already pull the random model's held-out loss down.
    sft = results["sft"]
    assert sft[M.NUM_PARAMS] > 100_000_000  # the real size, not the tiny one
    assert sft["sft/eval_loss"] < sft["sft/base_eval_loss"]
    # Reward model: four steps on the twin (16 pairs, 4 a step), then every held-out pair scored.
    reward = results["reward"]
    assert reward["reward/train_pairs"] == 16 and reward["reward/steps"] == 4
    pairs = pd.read_json(run / "reward" / PAIRS_FILE, lines=True)
    assert len(pairs) == 40 and pairs[["chosen_score", "rejected_score"]].notna().all().all()
    # PPO in LoRA mode: two updates moved the merged policy away from the SFT weights.
    assert read_metrics(run / "ppo")["ppo/updates"] == 2
    name = "model.layers.0.self_attn.q_proj.weight"
    before = AutoModelForCausalLM.from_pretrained(run / "sft" / "model").state_dict()[name]
    after = AutoModelForCausalLM.from_pretrained(run / "ppo" / "model").state_dict()[name]
    assert not torch.equal(before, after)
    # ...and every adapter learned, the value function's included: LoRA's B starts at zero.
    state = torch.load(latest_checkpoint(run / "ppo") / "state.pt", weights_only=False)
    zero = [k for k, v in state["trainable"].items() if not v.abs().sum() > 0]
    assert not zero, f"{len(zero)} trainable tensors still zero, e.g. {zero[:3]}"
    assert any(".value." in k and "lora_B" in k for k in state["trainable"])
