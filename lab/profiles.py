"""Profiles: each is a small, visible diff from the defaults in `lab.config`.

`tiny` is the defaults themselves (CPU, offline, minutes). A real-model profile names a hub
model and what a single GPU wants: bf16, gradient checkpointing, longer sequences, learning
rates for a pretrained model, and micro-batches that fit 16 GB (`python -m lab plan` checks).
`qwen2.5-0.5b` trains LoRA adapters in every stage, so PPO holds one copy of the base.
A task recipe (`lab.recipes`) is added with `+`: `smollm2-360m+tldr`.
"""

from __future__ import annotations

from typing import Any

from lab.config import LabConfig
from lab.overrides import apply_overrides, check_settable, load_yaml_overrides
from lab.recipes import HUB_RECIPES, RECIPES

# What every real model on one GPU shares.
GPU: dict[str, Any] = {
    "device": "cuda",
    "model.dtype": "bfloat16",
    "model.max_length": 512,
    "model.gradient_checkpointing": True,
    "sft.lr": 2e-5,
    "sft.grad_accum": 4,
    "reward.lr": 1e-5,
    "reward.grad_accum": 4,
    "ppo.lr": 3e-6,
    "ppo.max_new_tokens": 64,
    "dpo.lr": 5e-7,
    "dpo.grad_accum": 4,
    "grpo.lr": 1e-6,
    "grpo.grad_accum": 4,
    "orpo.lr": 5e-6,  # one model, no reference; the paper's lambda on real models' answers
    "orpo.beta": 0.1,
    "orpo.grad_accum": 4,
}

# LoRA everywhere: adapters with higher learning rates; PPO shares one base.
LORA: dict[str, Any] = {
    **{f"{stage}.lora_r": 16 for stage in ("sft", "reward", "ppo", "dpo", "grpo", "orpo")},
    "sft.lr": 2e-4,
    "reward.lr": 1e-4,
    "ppo.lr": 2e-5,
    "dpo.lr": 5e-6,
    "grpo.lr": 1e-5,
    "orpo.lr": 5e-5,
}

PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {},
    "smollm2-135m": {**GPU, "model.name_or_path": "HuggingFaceTB/SmolLM2-135M"},
    # PPO's four full models, in fp32 beside the two it trains, need 17.4 GB: a
    # 16 GB card takes PPO's LoRA instead (one base, three roles; `python -m lab plan`).
    "smollm2-360m": {
        **GPU,
        "model.name_or_path": "HuggingFaceTB/SmolLM2-360M",
        "ppo.lora_r": LORA["ppo.lora_r"],
        "ppo.lr": LORA["ppo.lr"],
    },  # fmt: skip
    "qwen2.5-0.5b": {**GPU, **LORA, "model.name_or_path": "Qwen/Qwen2.5-0.5B"},
}


def load_config(
    profile: str = "tiny",
    overrides: dict[str, Any] | None = None,
    yaml_file: str | None = None,
) -> LabConfig:
    """Build a config: defaults, the profile's diff, its recipes' (`name+recipe`), YAML, overrides."""
    name, *recipes = profile.split("+")
    if name not in PROFILES:
        raise KeyError(f"unknown profile {name!r}; choose one of: {', '.join(PROFILES)}")
    unknown = [r for r in recipes if r not in RECIPES]
    if unknown:
        raise KeyError(f"unknown recipe {unknown[0]!r}; choose one of: {', '.join(RECIPES)}")
    cfg = LabConfig(profile=profile)
    apply_overrides(cfg, PROFILES[name])
    for recipe in recipes:
        apply_overrides(cfg, RECIPES[recipe])
        if cfg.model.name_or_path:  # a hub model: the recipe's hub variant, if it has one
            apply_overrides(cfg, HUB_RECIPES.get(recipe, {}))
    if yaml_file:
        settings = load_yaml_overrides(yaml_file)
        if settings.get("profile") == profile:  # a file `python -m lab config` printed
            del settings["profile"]
        check_settable(settings, str(yaml_file))
        apply_overrides(cfg, settings)
    check_settable(overrides or {}, "--set")
    apply_overrides(cfg, overrides or {})
    return cfg
