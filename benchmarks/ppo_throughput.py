"""Print PPO throughput (samples/s, rollout + update) and peak memory for a model shape.

Models are built locally with random weights (no download): the tiny profile's Llama, or a
Llama with SmolLM2-135M's exact configuration. Random weights rarely emit EOS, so every
response runs to full length: a worst case for the rollout.

    python benchmarks/ppo_throughput.py --shape tiny --batch-size 64 --response-length 48
    python benchmarks/ppo_throughput.py --shape smollm2-135m --batch-size 8 --lora-r 16
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from lab.config import LabConfig, ModelConfig
from lab.models import resolve_device, tiny_llama_config
from lab.ppo import add_advantages, ppo_update, rollout
from lab.ppo_models import ActorCritic
from lab.tokenizer import train_tokenizer
from lab.twins import twin_config


def build(shape: str, folder: Path):
    """Save a random-weight policy and reward model of `shape` in `folder`; returns the tokenizer."""
    tokenizer = train_tokenizer(
        ["What is 3 plus 4? 3 plus 4 is 7. The capital of Vorland is Mirat."] * 50, 1024
    )
    config = tiny_llama_config(ModelConfig(), tokenizer)
    if shape == "smollm2-135m":
        ids = {f"{t}_token_id": getattr(tokenizer, f"{t}_token_id") for t in ("bos", "eos", "pad")}
        config = twin_config("HuggingFaceTB/SmolLM2-135M", **ids)  # the real shapes, offline
    for name, cls in (("sft", LlamaForCausalLM), ("reward", LlamaForSequenceClassification)):
        model = cls(LlamaConfig(**{**config.to_dict(), "num_labels": 1}))
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    return tokenizer


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated, or the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["tiny", "smollm2-135m"], default="tiny")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mini-batch-size", type=int, default=16)
    parser.add_argument("--response-length", type=int, default=48)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--lora-r", type=int, default=0)
    parser.add_argument("--updates", type=int, default=3, help="timed updates (after one warm-up)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    cfg = LabConfig()
    p = cfg.ppo
    p.batch_size, p.mini_batch_size, p.max_new_tokens = (
        args.batch_size,
        args.mini_batch_size,
        args.response_length,
    )
    p.ppo_epochs, p.lora_r = args.ppo_epochs, args.lora_r
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokenizer = build(args.shape, folder)
        ac = ActorCritic(
            str(folder / "sft"), str(folder / "reward"), p.lora_r, p.lora_alpha, "float32", device
        )
        rm = LlamaForSequenceClassification.from_pretrained(folder / "reward").to(device).eval()
    ac.prepare_for_training()
    optimizer = torch.optim.AdamW(ac.trainable_parameters(), lr=1e-5)
    gen = torch.Generator().manual_seed(0)
    prompts = [
        [{"role": "user", "content": f"What is {i} plus {i + 1}?"}] for i in range(p.batch_size)
    ]
    timings = []
    for step in range(args.updates + 1):
        start = time.perf_counter()
        r = rollout(ac, tokenizer, rm, tokenizer, prompts, cfg)
        add_advantages(r, p.kl_coef, cfg)
        ppo_update(ac, optimizer, r, cfg, gen)
        if step:  # the first update warms up allocators and kernels
            timings.append(time.perf_counter() - start)
    seconds = sum(timings) / len(timings)
    trainable = sum(x.numel() for x in ac.trainable_parameters())
    print(
        f"shape             {args.shape} ({'LoRA r=' + str(p.lora_r) if p.lora_r else 'full fine-tuning'})"
    )
    print(f"device            {device}, threads {torch.get_num_threads()}")
    print(
        f"settings          batch {p.batch_size}, minibatch {p.mini_batch_size}, response {p.max_new_tokens}, epochs {p.ppo_epochs}"
    )
    print(f"trainable params  {trainable:,}")
    print(f"s/update          {seconds:.2f}")
    print(f"samples/s         {p.batch_size / seconds:.1f}")
    print(f"peak memory (MB)  {peak_memory_mb(device):,.0f}")


if __name__ == "__main__":
    main()
