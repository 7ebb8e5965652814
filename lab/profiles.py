"""Profiles: each is a small, visible diff from the defaults in `lab.config`.

`tiny` is the defaults themselves (CPU, offline, minutes). A real-model profile names a hub
model and the precision and sizes a single GPU wants; everything else is shared.
"""

from __future__ import annotations

from typing import Any

from lab.config import LabConfig, apply_overrides, load_yaml_overrides

PROFILES: dict[str, dict[str, Any]] = {
    "tiny": {},
    "smollm2-135m": {
        "device": "cuda",
        "model.name_or_path": "HuggingFaceTB/SmolLM2-135M",
        "model.max_length": 512,
        "model.dtype": "bfloat16",
    },
}


def load_config(
    profile: str = "tiny",
    overrides: dict[str, Any] | None = None,
    yaml_file: str | None = None,
) -> LabConfig:
    """Build a config: defaults, then the profile's diff, then a YAML file, then overrides."""
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; choose one of: {', '.join(PROFILES)}")
    cfg = LabConfig(profile=profile)
    apply_overrides(cfg, PROFILES[profile])
    if yaml_file:
        apply_overrides(cfg, load_yaml_overrides(yaml_file))
    apply_overrides(cfg, overrides or {})
    return cfg
