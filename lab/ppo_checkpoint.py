"""PPO checkpoints: everything needed to continue exactly where training stopped.

`checkpoints/update-00010/state.pt` holds the trainable weights (adapters and head in LoRA
mode), the optimizer, the KL coefficient and every random state; `samples.jsonl` keeps the
policy's answers to a few fixed prompts at each checkpoint, to scrub through training later.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import torch

from lab.ppo_math import KLController

CHECKPOINTS = "checkpoints"
SAMPLES_FILE = "samples.jsonl"


def save_checkpoint(
    out_dir: Path,
    step: int,
    ac,
    optimizer,
    kl_ctl: KLController,
    rng: random.Random,
    gen: torch.Generator,
) -> Path:
    """Write `update-<step>/state.pt` atomically; returns its folder."""
    folder = Path(out_dir) / CHECKPOINTS / f"update-{step:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "trainable": ac.trainable_state(),
        "optimizer": optimizer.state_dict(),
        "kl_coef": kl_ctl.value,
        "python_rng": rng.getstate(),
        "torch_gen": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    tmp = folder / "state.pt.tmp"
    torch.save(state, tmp)
    tmp.replace(folder / "state.pt")
    return folder


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    done = sorted(p.parent for p in (Path(out_dir) / CHECKPOINTS).glob("update-*/state.pt"))
    return done[-1] if done else None


def load_checkpoint(
    folder: Path, ac, optimizer, kl_ctl: KLController, rng: random.Random, gen: torch.Generator
) -> int:
    """Restore a checkpoint in place; returns the number of updates it had completed."""
    state = torch.load(Path(folder) / "state.pt", weights_only=False)
    ac.load_trainable_state(state["trainable"])
    optimizer.load_state_dict(state["optimizer"])
    kl_ctl.value = state["kl_coef"]
    rng.setstate(state["python_rng"])
    gen.set_state(state["torch_gen"])
    torch.set_rng_state(state["torch_rng"])
    return state["step"]


def append_samples(out_dir: Path, step: int, rows: list[dict]) -> None:
    """Add this checkpoint's answers to `samples.jsonl`."""
    with (Path(out_dir) / SAMPLES_FILE).open("a", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({"update": step, **row}, ensure_ascii=False) + "\n")


def read_samples(out_dir: Path) -> list[dict]:
    """Every checkpoint's sample answers, in order."""
    path = Path(out_dir) / SAMPLES_FILE
    return [json.loads(line) for line in path.open(encoding="utf-8")] if path.exists() else []
