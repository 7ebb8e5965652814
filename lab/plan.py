"""The planner: `python -m lab plan` — will a profile fit a GPU, and how long will it take?

Peak memory comes from `lab.plan_memory` (tensor by tensor, from the config alone, no weights
loaded); time is FLOPs / (GPU peak x utilisation), plus generation's bytes / bandwidth. When a
stage does not fit, the nearest setting that does is proposed as `--set` lines.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from lab.config import LabConfig
from lab.models import trainable_dtype
from lab.plan_memory import (
    DTYPE_BYTES,
    GB,
    Arch,
    Memory,
    Setup,
    arch_from_config,
    count_params,
    estimate_memory,
    kv_cache_bytes,
    matmul_params,
)
from lab.stages import STAGES as PIPELINE
from lab.stages import wanted

STAGES = ("pretrain", "sft", "reward", "ppo", "dpo", "grpo", "orpo")
CUDA_CONTEXT_GB = 0.75  # CUDA context and kernels: on the card, outside the allocator
HEADROOM = 1.10  # allocator fragmentation: a plan fits when peak x this + context <= memory


@dataclass(frozen=True)
class GPU:
    """A device the planner knows: memory, peak throughput and what a real run gets of it."""

    memory_gb: float
    """Memory on the card."""
    tflops_half: float
    """Peak dense bf16/fp16 tensor TFLOPs."""
    tflops_fp32: float
    """Peak fp32 TFLOPs (no TF32)."""
    bandwidth_gbs: float
    """Memory bandwidth, GB/s."""
    bf16: bool = True
    """Supports bfloat16 (a T4 does not: use float16)."""
    utilisation: float = 0.35
    """Share of peak FLOPs (and bandwidth) a small-model training run reaches."""
    cuda: bool = True
    """A CUDA device (else this machine's CPU)."""


GPUS: dict[str, GPU] = {
    "T4": GPU(16, 65, 8.1, 320, bf16=False),
    "L4": GPU(24, 121, 30.3, 300),
    "A100-40": GPU(40, 312, 19.5, 1555),
    "A100-80": GPU(80, 312, 19.5, 2039),
    "H100": GPU(80, 989, 67, 3350),
    "cpu": GPU(24, 0.1, 0.1, 10, utilisation=0.5, cuda=False),  # 2 cores of this lab machine
}


# ---------------------------------------------------------------- time


@dataclass(frozen=True)
class Work:
    """What a stage computes: tokens trained on, tokens only read forward, tokens generated."""

    train_tokens: float
    """Tokens through forward and backward of the trained model."""
    forward_tokens: float
    """Tokens through forward-only passes (reference, reward model, rollout log-probs)."""
    generated: float
    """Decoding steps (each reads every weight once)."""
    gen_batch: int = 1
    """Sequences decoded together."""


def stage_work(cfg: LabConfig, s: Setup) -> Work:
    """Work of a whole stage, every sequence taken at its longest (`s.seq`): an upper bound.

    Data sizes are the tiny world's, or a recipe's caps (`data.max_examples`, `max_train_pairs`).
    """
    w, seq = cfg.world, s.seq
    n_sft = cfg.data.max_examples if cfg.data.sft and cfg.data.max_examples else w.n_sft
    n_world_pairs = w.n_pairs_train + w.n_fact_check_pairs
    n_pairs = cfg.reward.max_train_pairs if cfg.reward.train_data else n_world_pairs

    def pairs(limit: int) -> int:
        return min(n_pairs, limit or n_pairs)

    if s.stage == "pretrain":
        return Work(cfg.pretrain.steps * cfg.pretrain.batch_size * seq, 0, 0)
    if s.stage == "sft":
        return Work(n_sft * (1 - cfg.sft.eval_fraction) * cfg.sft.epochs * seq, 0, 0)
    if s.stage == "reward":
        return Work(2 * pairs(cfg.reward.max_train_pairs) * cfg.reward.epochs * seq, 0, 0)
    if s.stage == "dpo":
        n = 2 * pairs(cfg.dpo.max_train_pairs) * cfg.dpo.epochs * seq
        return Work(n, n, 0)
    if s.stage == "orpo":  # no reference model: chosen and rejected through the policy only
        return Work(2 * pairs(cfg.orpo.max_train_pairs) * cfg.orpo.epochs * seq, 0, 0)
    if s.stage == "ppo":
        p = cfg.ppo
        n = p.updates * p.batch_size * seq  # rollout: policy, reference, value, reward model
        return Work(2 * p.ppo_epochs * n, 4 * n, p.updates * p.max_new_tokens, p.batch_size)
    g = cfg.grpo
    prompts = g.max_prompts or cfg.world.n_ppo_prompts  # 0: every RL prompt (the world's count)
    n = prompts * g.num_generations * g.epochs
    return Work(n * seq, 2 * n * seq, n / g.batch_size * g.max_completion_length, g.batch_size)


def estimate_seconds(a: Arch, s: Setup, work: Work, gpu: GPU) -> float:
    """FLOPs / (peak x utilisation) for training and forward passes; bytes / bandwidth to decode.

    Training is 6 N per token (4 N with LoRA: no weight gradients; +2 N with checkpointing),
    forward 2 N, plus causal attention (2 L seq H per token forward).
    """
    n = matmul_params(a, "score" if s.stage == "reward" else "lm")
    attention = 2 * a.layers * s.seq * a.heads * a.head_dim
    per_train = (4 if s.lora_r else 6) * n + 3 * attention + (2 * n if s.checkpointing else 0)
    flops = work.train_tokens * per_train + work.forward_tokens * (2 * n + attention)
    tflops = gpu.tflops_half if s.dtype_bytes < 4 else gpu.tflops_fp32
    compute = flops / (tflops * 1e12 * gpu.utilisation)
    kv = kv_cache_bytes(a, work.gen_batch, s.seq // 2, s.dtype_bytes)  # mean length while decoding
    step = count_params(a) * s.dtype_bytes + kv
    return compute + work.generated * step / (gpu.bandwidth_gbs * GB * gpu.utilisation)


# ---------------------------------------------------------------- from a LabConfig


def load_arch(cfg: LabConfig) -> Arch:
    """The model's shapes: the tiny Llama, a known hub id's twin, or a local folder's config.json."""
    m = cfg.model
    if not m.name_or_path:
        return Arch(
            cfg.tokenizer.vocab_size, m.hidden_size, m.intermediate_size, m.num_layers,
            m.num_heads, m.num_kv_heads, m.hidden_size // m.num_heads, True, False,
        )  # fmt: skip
    from lab.twins import TWINS, twin_config

    if m.name_or_path in TWINS:
        return arch_from_config(twin_config(m.name_or_path))
    from pathlib import Path

    if not (Path(m.name_or_path) / "config.json").exists():
        known = ", ".join(TWINS)
        raise ValueError(
            f"cannot plan {m.name_or_path!r} offline: not a local model folder, and not a hub id "
            f"with a twin in lab.twins ({known})"
        )
    from transformers import AutoConfig

    return arch_from_config(AutoConfig.from_pretrained(m.name_or_path))


def stage_setup(cfg: LabConfig, stage: str, gpu: GPU) -> Setup:
    """The knobs of `stage` as `cfg` sets them (`grad_accum` splits `batch_size` into micro-batches)."""
    m = cfg.model
    base = {
        "stage": stage,
        "seq": m.max_length,
        "dtype_bytes": DTYPE_BYTES[m.dtype],
        "cuda": gpu.cuda,
        "checkpointing": getattr(m, "gradient_checkpointing", False),
    }
    if stage == "pretrain":
        p = cfg.pretrain
        return Setup(**{**base, "seq": p.seq_len, "checkpointing": False}, batch=p.batch_size)
    section = getattr(cfg, stage)
    accum = getattr(section, "grad_accum", 1)
    base |= {"accum": accum, "lora_r": section.lora_r}
    # The RL stages' frozen reward model is read back in the dtype its stage trained it in.
    saved = DTYPE_BYTES[trainable_dtype(m.dtype, cfg.reward.lora_r)]
    if stage == "ppo":  # the lab's own loop: mini-batches, no accumulation
        rl = {"new_tokens": section.max_new_tokens, "rollout_batch": section.batch_size}
        rl["reward_bytes"] = saved
        return Setup(**base, **rl, batch=max(1, section.mini_batch_size // accum))
    if stage == "grpo":
        rl = {"new_tokens": section.max_completion_length, "rollout_batch": section.batch_size}
        rl["reward_bytes"] = saved
        return Setup(**base, **rl, batch=max(1, section.batch_size // accum))
    return Setup(**base, batch=max(1, section.batch_size // accum))


@dataclass
class StagePlan:
    """One stage's estimate on one device, and the nearest setup that fits when it does not."""

    setup: Setup
    """The knobs the estimate is for."""
    memory: Memory
    """Peak memory, by kind."""
    seconds: float
    """Estimated wall time of the whole stage (upper bound: every sequence at full length)."""
    fits: bool
    """Peak x headroom + CUDA context fits in the device's memory."""
    proposal: Setup | None = None
    """The first setup that fits (smaller batch + accumulation, checkpointing, LoRA r=16)."""
    proposal_memory: Memory | None = None
    """Its peak memory."""


def fits_in(memory: Memory, gpu_gb: float, cuda: bool) -> bool:
    """Whether a peak fits, with allocator headroom and the CUDA context."""
    return memory.total * HEADROOM / GB + (CUDA_CONTEXT_GB if cuda else 0) <= gpu_gb


def candidates(s: Setup) -> list[Setup]:
    """Setups to try, nearest first: halve the batch (accumulating to keep the effective batch;
    an RL stage's rollout batch shrinks alike), then add checkpointing, LoRA r=16, then both."""
    lora = s.lora_r or 16
    levels = [{}, {"checkpointing": True}, {"lora_r": lora}]
    levels.append({"checkpointing": True, "lora_r": lora})
    if s.stage == "pretrain":  # the lab's pretraining loop has no checkpointing switch
        levels = [{}, {"lora_r": lora}]
    # Micro-batches that divide the effective batch exactly: `grad_accum` must divide
    # `batch_size` (`trainers.trainer_args` refuses the rest), and the effective batch is kept.
    effective = s.batch * s.accum
    micro = [b for b in range(s.batch, 0, -1) if effective % b == 0]
    out = []
    for level in levels:
        for batch in micro:
            rollout = s.rollout_batch
            if s.stage == "ppo" and rollout:  # PPO's rollout shrinks with its mini-batch;
                rollout = max(1, rollout * batch // s.batch)  # GRPO's is its effective batch
            accum = effective // batch
            out.append(
                dataclasses.replace(s, **level, batch=batch, accum=accum, rollout_batch=rollout)
            )
    return out[1:]  # the first is `s` itself


def plan_stage(a: Arch, cfg: LabConfig, stage: str, gpu: GPU, gpu_gb: float) -> StagePlan:
    """Estimate a stage; when it does not fit, the first candidate that does."""
    s = stage_setup(cfg, stage, gpu)
    memory = estimate_memory(a, s)
    plan = StagePlan(s, memory, estimate_seconds(a, s, stage_work(cfg, s), gpu), False)
    plan.fits = fits_in(memory, gpu_gb, gpu.cuda)
    if not plan.fits:
        for c in candidates(s):
            if fits_in(m := estimate_memory(a, c), gpu_gb, gpu.cuda):
                plan.proposal, plan.proposal_memory = c, m
                break
    return plan


def compute_plan(cfg: LabConfig, gpu_name: str, gpu_gb: float | None = None) -> list[StagePlan]:
    """Every stage of `cfg`'s pipeline on `gpu_name` (pretrain only for the tiny Llama)."""
    if gpu_name not in GPUS:
        raise ValueError(f"unknown GPU {gpu_name!r}; choose one of: {', '.join(GPUS)}")
    gpu, a = GPUS[gpu_name], load_arch(cfg)
    pipeline = {stage.name: stage for stage in PIPELINE}
    stages = [st for st in STAGES if wanted(cfg, pipeline[st], until="")]  # as `lab pipeline`
    stages = stages if not cfg.model.name_or_path else [st for st in stages if st != "pretrain"]
    return [
        plan_stage(a, cfg, st, gpu, gpu.memory_gb if gpu_gb is None else gpu_gb) for st in stages
    ]


# ---------------------------------------------------------------- report


def describe(cfg: LabConfig, s: Setup, original: Setup) -> str:
    """A proposal as the `--set` changes that give it."""
    section, parts = getattr(cfg, s.stage), []
    if s.accum != original.accum and hasattr(section, "grad_accum"):
        parts.append(f"{s.stage}.grad_accum={s.accum}")
    elif s.batch != original.batch:  # no accumulation setting: the micro-batch itself shrinks
        field = "mini_batch_size" if s.stage == "ppo" else "batch_size"
        parts.append(f"{s.stage}.{field}={s.batch}")
    if s.rollout_batch != original.rollout_batch and s.stage == "ppo":
        parts.append(f"ppo.batch_size={s.rollout_batch}")
    if s.checkpointing and not original.checkpointing:
        parts.append("model.gradient_checkpointing=true")
    if s.lora_r != original.lora_r:
        parts.append(f"{s.stage}.lora_r={s.lora_r}")
    return "--set " + " --set ".join(parts)


def plan_notes(cfg: LabConfig, gpu_name: str) -> list[str]:
    """Warnings about the settings on this device."""
    notes = []
    if cfg.model.dtype == "bfloat16" and not GPUS[gpu_name].bf16:
        notes.append(f"note: {gpu_name} has no bfloat16; run with --set model.dtype=float16 "
                     "(same memory, fp16 speed)")  # fmt: skip
    return notes


def format_plan(
    cfg: LabConfig, plans: list[StagePlan], title: str, gpu_gb: float, notes: list[str] = ()
) -> str:
    """A readable table: memory by kind, peak, fits, time; proposals underneath."""
    head = f"{'stage':8} {'batch':>5} {'weights':>8} {'grads':>7} {'optim':>7} {'activ':>7}"
    head += f" {'peak GB':>8}  {'fits':5} {'time':>9}  peak phase"
    lines = [title, head, "-" * len(head)]
    for p in plans:
        m, s = p.memory, p.setup
        cells = [m.weights, m.grads, m.optimizer, m.activations]
        row = f"{s.stage:8} {s.batch:>5} " + " ".join(f"{x / GB:>7.2f}" for x in cells)
        fit = "yes" if p.fits else "NO"
        lines.append(f"{row} {m.total / GB:>8.2f}  {fit:5} {format_time(p.seconds):>9}  {m.phase}")
    for p in plans:
        if p.fits:
            continue
        if p.proposal is None:
            lines.append(f"{p.setup.stage}: does not fit in {gpu_gb:g} GB even with LoRA r=16, "
                         "batch 1 and gradient checkpointing")  # fmt: skip
        else:
            change = describe(cfg, p.proposal, p.setup)
            lines.append(f"{p.setup.stage}: fits with {change}: "
                         f"{p.proposal_memory.total / GB:.2f} GB")  # fmt: skip
    context = f" + {CUDA_CONTEXT_GB} GB CUDA context" if plans[0].setup.cuda else ""
    lines.append(f"(fits = peak x {HEADROOM}{context} <= {gpu_gb:g} GB; "
                 "time assumes every sequence at full length)")  # fmt: skip
    return "\n".join([*lines, *notes])


def format_time(seconds: float) -> str:
    """Seconds as s, min or h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(gb|g|gib|gi)?", re.IGNORECASE)
"""A memory size: a number, then GB or G (10^9 bytes) or GiB or Gi (2^30 bytes), or nothing (GB)."""


def parse_gb(text: str) -> float:
    """`16GB`, `16`, `16 GiB` -> gigabytes."""
    size = SIZE.fullmatch(text.strip())
    if size is None:
        raise ValueError(f"--gpu-mem expects a size like 16GB or 16GiB, got {text!r}")
    number, unit = size.groups()
    gb = float(number) * (1.073741824 if (unit or "").lower().startswith("gi") else 1.0)
    if gb <= 0:
        raise ValueError(f"--gpu-mem expects a size above 0 GB, got {text!r}")
    return gb
