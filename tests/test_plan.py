"""The planner: exact parameter counts, a memory example by hand, fit/propose, and the CLI."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from lab.cli import main
from lab.config import ModelConfig
from lab.models import tiny_llama_config
from lab.plan import GPUS, candidates, compute_plan, fits_in, load_arch, parse_gb, stage_setup
from lab.plan_memory import (
    GB,
    Arch,
    Setup,
    arch_from_config,
    count_params,
    estimate_memory,
    layer_activation_bytes,
    lora_params,
    matmul_params,
    trainable,
    trained_bytes,
)
from lab.profiles import load_config
from lab.twins import TWINS, twin_config


class FakeTokenizer:
    """What `tiny_llama_config` reads from a tokenizer."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self) -> int:
        return 1024


def meta_numel(model_class, config) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in model_class.from_config(config).parameters())


def test_tiny_llama_param_count_matches_the_model():
    config = tiny_llama_config(ModelConfig(), FakeTokenizer())
    assert count_params(arch_from_config(config)) == meta_numel(AutoModelForCausalLM, config)
    assert count_params(load_arch(load_config("tiny"))) == meta_numel(AutoModelForCausalLM, config)


@pytest.mark.parametrize("hub_id", list(TWINS))
def test_twin_param_counts_match_the_models(hub_id):
    config, arch = twin_config(hub_id), arch_from_config(twin_config(hub_id))
    assert count_params(arch) == meta_numel(AutoModelForCausalLM, config)
    config.num_labels = 1
    assert count_params(arch, "score") == meta_numel(AutoModelForSequenceClassification, config)


def test_known_twin_sizes():
    sizes = {h: count_params(arch_from_config(twin_config(h))) for h in TWINS}
    assert sizes == {
        "HuggingFaceTB/SmolLM2-135M": 134_515_008,
        "HuggingFaceTB/SmolLM2-360M": 361_821_120,
        "Qwen/Qwen2.5-0.5B": 494_032_768,
    }


def test_lora_param_count_matches_peft():
    from peft import LoraConfig, get_peft_model

    config = tiny_llama_config(ModelConfig(), FakeTokenizer())
    lora = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    model = get_peft_model(AutoModelForCausalLM.from_config(config), lora)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert lora_params(arch_from_config(config), 8) == trained


TOY = Arch(vocab=10, hidden=4, intermediate=8, layers=2, heads=2, kv_heads=1, head_dim=2, tied=True, qkv_bias=False)  # fmt: skip


def test_memory_by_hand():
    # Per block: q 4x4, k 4x2, v 4x2, o 4x4, gate/up/down 3 x 4x8, two norms 2x4 -> 152.
    # Model: embedding 10x4 + 2 blocks + final norm 4 -> 40 + 304 + 4 = 348.
    assert count_params(TOY) == 348
    # bf16 block activations per token: norms 2(16 + 16), attention 5 x 2 x 4, MLP 4 x 2 x 8.
    assert layer_activation_bytes(TOY, 2) == 64 + 40 + 64
    t = trainable(TOY, Setup("sft", batch=1, seq=1, dtype_bytes=2))
    assert (t.weights, t.grads, t.optimizer) == (1392, 1392, 2784)  # fp32 master weights, 2 states
    s = Setup("reward", batch=3, seq=5, dtype_bytes=4, cuda=True)
    m = estimate_memory(TOY, s)
    n = count_params(TOY, "score")  # 352: the scalar head replaces nothing (tied LM head)
    per_token = 2 * layer_activation_bytes(TOY, 4) + 4 * 4 + 2 * 4 * 4  # 2 blocks + final norm
    activations = 2 * 3 * 5 * per_token  # chosen and rejected: 30 sequences' tokens
    assert (m.weights, m.optimizer) == (4 * n, 8 * n)
    assert m.total == 4 * n + 8 * n + max(activations, 4 * n)


def test_full_fine_tuning_in_bf16_counts_fp32_weights_grads_and_adamw():
    # The profile's bf16 is autocast: trained weights, their gradients and both AdamW states are
    # fp32 (4 + 4 + 8 bytes a parameter); LoRA keeps the bf16 base and fp32 adapters.
    arch = arch_from_config(twin_config("HuggingFaceTB/SmolLM2-360M"))
    n = count_params(arch)
    s = stage_setup(load_config("smollm2-360m"), "sft", GPUS["A100-80"])
    assert (s.dtype_bytes, s.lora_r, trained_bytes(s)) == (2, 0, 4)
    m = estimate_memory(arch, s)
    assert (m.weights, m.optimizer) == (4 * n, 8 * n)
    fp32 = estimate_memory(arch, dataclasses.replace(s, dtype_bytes=4))
    assert fp32.weights == m.weights and fp32.optimizer == m.optimizer
    # Autocast's bf16 copies of every matmul weight live through forward and backward.
    assert m.phase == "forward/backward" and m.activations > matmul_params(arch) * 2
    lora = trainable(arch, dataclasses.replace(s, lora_r=16))
    assert lora.weights == 2 * n + 4 * lora_params(arch, 16)
    # DPO's reference is built in the policy's dtype (TRL), and so is PPO's (its KL starts at 0),
    # beside an fp32 policy and value model and the reward model as its stage saved it (fp32).
    dpo = estimate_memory(arch, dataclasses.replace(s, stage="dpo"))
    assert dpo.weights == 8 * n
    ppo = estimate_memory(arch, dataclasses.replace(s, stage="ppo", new_tokens=8, rollout_batch=4))
    assert ppo.weights == 2 * 4 * n + 2 * 4 * count_params(arch, "score")
    # smollm2-360m's PPO trains LoRA over a bf16 base, but reads its reward model as the reward
    # stage saved it, fully tuned: fp32.
    lora_ppo = stage_setup(load_config("smollm2-360m"), "ppo", GPUS["T4"])
    assert (lora_ppo.lora_r, lora_ppo.reward_bytes) == (16, 4)
    with_half_rm = dataclasses.replace(lora_ppo, reward_bytes=2)
    gap = estimate_memory(arch, lora_ppo).weights - estimate_memory(arch, with_half_rm).weights
    assert gap == 2 * count_params(arch, "score")


def test_a_setup_that_does_not_fit_gets_a_proposal_that_does():
    overrides = {"model.name_or_path": "HuggingFaceTB/SmolLM2-135M", "model.dtype": "bfloat16"}
    cfg = load_config("tiny", {**overrides, "model.max_length": 512, "reward.batch_size": 64})
    plans = {p.setup.stage: p for p in compute_plan(cfg, "T4")}
    assert not plans["reward"].fits
    proposal = plans["reward"].proposal
    assert proposal.batch * proposal.accum == 64  # the effective batch is kept
    assert fits_in(plans["reward"].proposal_memory, 16, cuda=True)


def test_candidates_try_batch_then_checkpointing_then_lora():
    order = candidates(Setup("sft", batch=4, seq=8))
    assert [(c.batch, c.accum, c.checkpointing, c.lora_r) for c in order[:4]] == [
        (2, 2, False, 0),
        (1, 4, False, 0),
        (4, 1, True, 0),
        (2, 2, True, 0),
    ]
    assert order[6].lora_r == 16


def test_checkpointing_and_lora_save_memory():
    arch = arch_from_config(twin_config("Qwen/Qwen2.5-0.5B"))
    s = Setup("sft", batch=8, seq=512, dtype_bytes=2)
    full = estimate_memory(arch, s).total
    assert estimate_memory(arch, dataclasses.replace(s, checkpointing=True)).total < full
    assert estimate_memory(arch, dataclasses.replace(s, lora_r=16)).total < full


def test_orpo_needs_no_reference_model():
    # DPO holds a frozen copy of the policy; ORPO does not. With LoRA, DPO's reference is the
    # base with its adapters off, so the two peaks meet.
    arch = arch_from_config(twin_config("HuggingFaceTB/SmolLM2-135M"))
    full = Setup("dpo", batch=8, seq=512, dtype_bytes=2)
    orpo = dataclasses.replace(full, stage="orpo")
    weights = count_params(arch) * 4  # in the policy's dtype (TRL): fp32, full in a bf16 profile
    assert estimate_memory(arch, full).weights - estimate_memory(arch, orpo).weights == weights
    lora = {"lora_r": 16}
    dpo_lora = estimate_memory(arch, dataclasses.replace(full, **lora)).total
    assert estimate_memory(arch, dataclasses.replace(orpo, **lora)).total == dpo_lora


def test_parse_gb():
    assert parse_gb("16GB") == 16
    assert parse_gb("24") == 24
    assert parse_gb("16GiB") == pytest.approx(17.18, abs=0.01)
    assert parse_gb(" 8 gb ") == parse_gb("8G") == 8 and parse_gb("0.5") == 0.5
    assert parse_gb("80gi") == pytest.approx(85.9, abs=0.01)
    for bad in ("lots", "16MB", "16bg", "16gigi", "16ib", "inf", "nan", "-4GB", "GB", ""):
        with pytest.raises(ValueError, match="--gpu-mem expects a size like 16GB"):
            parse_gb(bad)
    with pytest.raises(ValueError, match="above 0 GB, got '0GB'"):
        parse_gb("0GB")


def test_cli_plan_tiny(capsys):
    assert main(["plan", "--profile", "tiny", "--gpu", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "pretrain" in out and "peak GB" in out and "grpo" in out and "orpo" in out


def test_cli_plan_twin_hub_id(capsys):
    args = [
        "plan",
        "--set",
        "model.name_or_path=Qwen/Qwen2.5-0.5B",
        "--set",
        "model.dtype=bfloat16",
    ]
    assert main([*args, "--gpu-mem", "16GB"]) == 0
    out = capsys.readouterr().out
    assert "Qwen/Qwen2.5-0.5B" in out and "ppo" in out and "pretrain" not in out


def test_cli_plan_unknown_gpu_or_model_is_a_clear_error(capsys):
    assert main(["plan", "--gpu", "V100"]) == 2
    assert "unknown GPU 'V100'" in capsys.readouterr().err
    assert main(["plan", "--set", "model.name_or_path=someone/unknown-7b"]) == 2
    assert "cannot plan 'someone/unknown-7b' offline" in capsys.readouterr().err


def test_every_gpu_has_positive_numbers():
    assert all(g.memory_gb > 0 and g.tflops_half > 0 and g.bandwidth_gbs > 0 for g in GPUS.values())
    assert GB == 1e9


@pytest.mark.parametrize(
    "argv, unread",
    [
        (["config", "--gpu", "H100", "--seeds", "3"], "config does not read --gpu, --seeds"),
        (["plan", "--out", "runs/x", "--force"], "plan does not read --out, --force"),
        (
            ["feedback", "--profile", "tiny", "--out", "x"],
            "feedback does not read --profile, --out",
        ),
        (["sweep", "--gpu-mem", "8GB", "--resume"], "sweep does not read --resume, --gpu-mem"),
        (["world", "--resume"], "world does not read --resume"),  # only PPO resumes
        (["ppo", "--db", "votes.sqlite", "--per-group"], "ppo does not read --db, --per-group"),
        (
            ["config", "--ppo-updates", "0", "--seeds", "0"],
            "config does not read --seeds, --ppo-updates",
        ),
    ],
)
def test_an_option_a_command_would_ignore_is_refused(argv, unread, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written, here or anywhere
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == f"error: {unread}"
    assert list(tmp_path.iterdir()) == []


def test_a_stage_that_fails_on_its_input_says_so_in_one_line(capsys, tmp_path):
    (tmp_path / "afile").write_text("")
    assert main(["world", "--out", str(tmp_path / "afile" / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error: ") and "Not a directory" in err[0] and len(err) == 2
    assert "LAB_TRACEBACK=1" in err[1]


def test_proposals_keep_the_effective_batch_and_only_stages_that_run():
    cfg = load_config("smollm2-135m", {"sft.batch_size": 100, "sft.grad_accum": 1})
    plans = {p.setup.stage: p for p in compute_plan(cfg, "T4", 2.5)}
    sft = plans["sft"].proposal
    assert sft is not None and 100 % sft.accum == 0 and sft.batch * sft.accum == 100  # accepted
    assert plans["grpo"].setup.rollout_batch == cfg.grpo.batch_size
    recipe = [p.setup.stage for p in compute_plan(load_config("tiny+sentiment"), "T4")]
    assert recipe == ["pretrain", "ppo"]  # what `lab pipeline` runs for it
    every_prompt = load_config("tiny", {"grpo.max_prompts": 0})  # 0 = every RL prompt, not none
    grpo = {p.setup.stage: p for p in compute_plan(every_prompt, "T4")}["grpo"]
    assert (
        grpo.seconds
        > {p.setup.stage: p for p in compute_plan(load_config("tiny"), "T4")}["grpo"].seconds
    )
