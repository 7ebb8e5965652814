"""Shared fixtures: a small world and a briefly pretrained base, built once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The tiny profile, made smaller still so the whole suite runs in minutes on 2 CPU cores.
SMALL = {
    "world.n_pretrain_docs": 8000,
    "world.n_sft": 600,
    "world.n_pairs_train": 1200,
    "world.n_pairs_test": 400,
    "world.n_ppo_prompts": 200,
    "world.n_eval_prompts": 60,
    "pretrain.steps": 250,
    "pretrain.eval_every": 50,
    "sft.epochs": 6.0,
    "reward.epochs": 2.0,
    "ppo.updates": 12,
    "ppo.batch_size": 32,
    "ppo.checkpoint_every": 4,
    "dpo.max_train_pairs": 640,
    "orpo.max_train_pairs": 640,
    "grpo.max_prompts": 256,
}


@pytest.fixture(scope="session")
def small_cfg():
    """The tiny profile with the SMALL overrides."""
    from lab.profiles import load_config

    return load_config("tiny", SMALL)


@pytest.fixture(scope="session")
def small_run(small_cfg, tmp_path_factory) -> Path:
    """A run folder with the world built and the base model pretrained (shared, read-only)."""
    from lab.stages import run_stages

    run_dir = tmp_path_factory.mktemp("run")
    run_stages(small_cfg, run_dir, until="pretrain")
    return run_dir


@pytest.fixture(scope="session")
def small_sft_run(small_cfg, small_run, tmp_path_factory) -> Path:
    """A copy of `small_run` with the SFT stage done (shared, read-only)."""
    from lab.stages import run_stages

    run_dir = tmp_path_factory.mktemp("sft_run")
    shutil.copytree(small_run, run_dir, dirs_exist_ok=True)
    run_stages(small_cfg, run_dir, until="sft")
    return run_dir


@pytest.fixture(scope="session")
def small_reward_run(small_cfg, small_sft_run) -> Path:
    """`small_sft_run` with the reward stage done too (it adds `reward/`, leaving `sft/` as is)."""
    from lab.stages import run_stages

    run_stages(small_cfg, small_sft_run, until="reward")
    return small_sft_run


@pytest.fixture(scope="session")
def small_ppo_run(small_cfg, small_reward_run, tmp_path_factory) -> Path:
    """A copy of `small_reward_run` with the PPO stage done too (shared, read-only)."""
    from lab.stages import run_stages

    run_dir = tmp_path_factory.mktemp("ppo_run")
    shutil.copytree(small_reward_run, run_dir, dirs_exist_ok=True)
    run_stages(small_cfg, run_dir, until="ppo")
    return run_dir


@pytest.fixture(scope="session")
def arena_server(small_ppo_run, tmp_path_factory):
    """The arena on the small run, served on a free local port: (arena, url)."""
    from apps.arena import build_app, example_prompts
    from apps.guard import Classroom
    from apps.loading import load_arena

    db = tmp_path_factory.mktemp("arena_server") / "arena.sqlite"
    arena = load_arena(small_ppo_run, {}, db, Classroom(min_seconds_between_votes=0))
    demo = build_app(arena, example_prompts(arena)).queue(default_concurrency_limit=8)
    yield arena, serve(demo)
    demo.close()


def serve(demo) -> str:
    """Launch a Gradio app on a free local port in the background; returns its URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
    return url


# SmolLM2's and Qwen2.5's template, without the default system prompt.
CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chatml(tokenizer):
    """The tiny tokenizer with ChatML's two special tokens and template (EOS stays `<|end|>`)."""
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    return tokenizer


def launch_ddp(stage: str, run: Path, overrides: dict) -> None:
    """`accelerate launch` the repo's `ddp.yaml` (two processes, gloo without a GPU) up to `stage`."""
    ddp = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "ddp.yaml"
    settings = [arg for k, v in {**SMALL, **overrides}.items() for arg in ("--set", f"{k}={v}")]
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ddp)]
    command += ["-m", "lab", stage, "--out", str(run), *settings]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-4000:]


def share_of_tensors_moved(before: Path, after: Path) -> float:
    """Share of the weight tensors of the model in `after` that differ from `before`'s."""
    import torch
    from transformers import AutoModelForCausalLM

    a, b = (AutoModelForCausalLM.from_pretrained(d).state_dict() for d in (before, after))
    assert a.keys() == b.keys()
    return sum(not torch.equal(a[k], b[k]) for k in a) / len(a)


def untrained_pool(folder: Path, num_layers: int = 1):
    """Two untrained tiny Llamas on one tokenizer as "sft" (the reference) and "ppo", in a pool:
    fast, and far from always saying EOS."""
    from apps.pool import ModelPool
    from lab.config import ModelConfig
    from lab.models import build_tiny_llama, save_model
    from lab.tokenizer import train_tokenizer

    tokenizer = train_tokenizer(["What is 2 plus 3? It is 5. Hello there."] * 20, vocab_size=300)
    cfg = ModelConfig(
        hidden_size=32, num_layers=num_layers, num_heads=2, num_kv_heads=1, intermediate_size=64
    )
    for seed, name in enumerate(("sft", "ppo")):
        save_model(build_tiny_llama(cfg, tokenizer, seed), tokenizer, folder / name)
    return ModelPool({name: str(folder / name) for name in ("sft", "ppo")})


def measured_again(cfg, run: Path, stage: str) -> dict:
    """A stage's KL to SFT and reward on the held-out prompts, measured again on its saved
    model, on the device the stage ran on (a GPU samples from another random stream than a
    CPU): the yardstick is seeded, so the stage's own metrics must be these numbers."""
    from lab.evaluation import compute_kl_and_reward
    from lab.models import load_causal_lm, load_tokenizer
    from lab.recipes import eval_prompts
    from lab.reward_sources import load_scorer

    policy = load_causal_lm(str(run / stage / "model"), "float32", cfg.device)
    sft = load_causal_lm(str(run / "sft" / "model"), "float32", cfg.device)
    tokenizer = load_tokenizer(str(run / stage / "model"))
    scorer = load_scorer("model", run, policy.device)
    prompts = eval_prompts(cfg, run / "world")
    return compute_kl_and_reward(policy, sft, tokenizer, None, None, prompts, scorer=scorer)
