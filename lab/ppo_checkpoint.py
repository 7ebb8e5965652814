"""PPO checkpoints: everything needed to continue exactly where training stopped.

`checkpoints/update-00010/state.pt` holds the trainable weights (adapters and head in LoRA
mode), the optimizer and the KL coefficient; beside it `rng-rank<r>.pt` holds each process's
own random states (Python's prompt sampler, the minibatch generator, torch's CPU and CUDA
generators), so that after `--resume` every process draws what it would have drawn.
`state.pt` is written last: its presence marks a complete checkpoint. `samples.jsonl` keeps
the policy's answers to a few fixed prompts at each checkpoint, to scrub through training later.

A run's state (`Learner`: model, optimizer, beta, random streams) is made, saved and restored here.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from lab.config import LabConfig
from lab.distributed import barrier, check_in_sync, is_main, process
from lab.generation import DecodingConfig, generate
from lab.ppo_math import KLController
from lab.ppo_models import ActorCritic
from lab.runlog import truncate_log
from lab.world import World, last_content

CHECKPOINTS = "checkpoints"
SAMPLES_FILE = "samples.jsonl"


def rng_states(rng: random.Random, gen: torch.Generator) -> dict:
    """This process's random states: the prompt sampler, the minibatch order, torch CPU and CUDA."""
    return {
        "python_rng": rng.getstate(),
        "torch_gen": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_states(state: dict, rng: random.Random, gen: torch.Generator) -> None:
    """Restore what `rng_states` saved."""
    rng.setstate(state["python_rng"])
    gen.set_state(state["torch_gen"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def _save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_checkpoint(
    out_dir: Path,
    step: int,
    ac,
    optimizer,
    kl_ctl: KLController,
    rng: random.Random,
    gen: torch.Generator,
) -> Path:
    """Every process writes its random states; then the main one writes `state.pt`. Returns the folder."""
    folder = Path(out_dir) / CHECKPOINTS / f"update-{step:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    _save_atomic(rng_states(rng, gen), folder / f"rng-rank{process().process_index}.pt")
    barrier()  # every rank's file is on disk before state.pt marks the checkpoint complete
    if is_main():
        state = {
            "step": step,
            "trainable": ac.trainable_state(),
            "optimizer": optimizer.state_dict(),
            "kl_coef": kl_ctl.value,
        }
        _save_atomic(state, folder / "state.pt")
    barrier()
    return folder


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    done = sorted(p.parent for p in (Path(out_dir) / CHECKPOINTS).glob("update-*/state.pt"))
    return done[-1] if done else None


def latest_update(out_dir: Path) -> int | None:
    """The update the newest complete checkpoint was saved at, or None."""
    ckpt = latest_checkpoint(out_dir)
    return None if ckpt is None else int(ckpt.name.removeprefix("update-"))


def load_checkpoint(
    folder: Path, ac, optimizer, kl_ctl: KLController, rng: random.Random, gen: torch.Generator
) -> int:
    """Restore a checkpoint in place (this process's own random states); returns its step."""
    folder = Path(folder)
    rank_file = folder / f"rng-rank{process().process_index}.pt"
    if not rank_file.exists():
        raise FileNotFoundError(
            f"{rank_file} is missing: the checkpoint was written by fewer processes than now run; "
            "resume with the same number of processes"
        )
    state = torch.load(folder / "state.pt", weights_only=False)
    ac.load_trainable_state(state["trainable"])
    optimizer.load_state_dict(state["optimizer"])
    kl_ctl.value = state["kl_coef"]
    set_rng_states(torch.load(rank_file, weights_only=False), rng, gen)
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


# ---------------------------------------------------------------- a run's state


SAMPLE_DECODING = DecodingConfig(max_new_tokens=48, temperature=0.7, seed=0)  # checkpoint samples


@dataclass
class Learner:
    """What a PPO run carries from one update to the next, all of it saved in a checkpoint."""

    ac: ActorCritic
    optimizer: torch.optim.Optimizer
    kl_ctl: KLController  # beta, fixed or adaptive
    rng: random.Random  # which prompts each batch draws
    gen: torch.Generator  # which responses each minibatch holds


def make_learner(cfg: LabConfig, ac: ActorCritic, rank: int) -> Learner:
    """The optimizer, beta and this process's random streams, every process from the same weights."""
    p = cfg.ppo
    ac.prepare_for_training()
    check_in_sync(ac.trainable_parameters())  # every process starts from the same weights
    torch.manual_seed(cfg.seed + rank)  # ...but samples its own answers
    params = ac.trainable_parameters()
    # Fused: one pass over every tensor (a GPU kernel; a vectorised loop on the CPU) instead of
    # a dozen small ops per tensor: 15% of a tiny update on the CPU went to AdamW's for-loop.
    optimizer = torch.optim.AdamW(params, lr=p.lr, eps=1e-5, fused=True)
    kl_ctl = KLController(p.kl_coef, p.kl_target or None, p.kl_horizon)
    # Each process draws its own prompts and minibatches; process 0 draws as a lone process does.
    rng, gen = random.Random(cfg.seed + rank), torch.Generator().manual_seed(cfg.seed + rank)
    return Learner(ac, optimizer, kl_ctl, rng, gen)


def resume_from(out_dir: Path, learner: Learner) -> int:
    """Load the latest checkpoint into `learner` and cut the log back to it; its update, or 0."""
    if not (ckpt := latest_checkpoint(out_dir)):
        return 0
    start = load_checkpoint(
        ckpt, learner.ac, learner.optimizer, learner.kl_ctl, learner.rng, learner.gen
    )
    truncate_log(out_dir, start)
    print(f"[ppo] resuming from {ckpt} (update {start})")
    return start


def checkpoint(
    out_dir: Path, step: int, learner: Learner, tokenizer, prompts: list, world: World | None
) -> None:
    """Save the learner at `step`, with the policy's answers to `prompts` (and their gold)."""
    check_in_sync(learner.ac.trainable_parameters())
    if is_main():  # samples drawn from their own seed: the training stream is untouched
        with learner.ac.sampler() as model:
            answers = generate(model, tokenizer, prompts, SAMPLE_DECODING)
        rows = [
            {"prompt": last_content(q, "user"), "answer": a}
            for q, a in zip(prompts, answers, strict=False)
        ]
        if world is not None:
            rows = [{**r, "gold": world.gold_score(r["prompt"], r["answer"])} for r in rows]
        append_samples(out_dir, step, rows)
    save_checkpoint(
        out_dir, step, learner.ac, learner.optimizer, learner.kl_ctl, learner.rng, learner.gen
    )  # each rank its RNG
