"""Print PPO throughput (samples/s, rollout + update), where its time goes, and peak memory.

Models are built locally with random weights (no download): the tiny profile's Llama, or a
Llama with SmolLM2-135M's exact configuration. Random weights rarely emit EOS, so every
response runs to full length: a worst case for the rollout. `--run` takes a trained run's SFT
and reward models and its PPO prompts instead (answers of realistic length).

    OMP_NUM_THREADS=1 python benchmarks/ppo_throughput.py --run runs/sweep-base/sweep/seed-0 \
        --batch-size 32 --mini-batch-size 8 --ppo-epochs 4
    python benchmarks/ppo_throughput.py --shape smollm2-135m --batch-size 8 --lora-r 16

Beside samples/s it prints each phase's share (2 generate, 3 score, 4 log-probs and values,
7 update) and the rollout's tokens/s next to plain `generate` at the same batch.

Where the time went (issue #19; the tiny run's models, CPU, 1 thread, load ~2 on 2 cores,
batch 32, minibatch 8, 4 epochs, ms per update, before -> after): generate 254 -> 264,
score 72 -> 72, log-probs and values 264 -> 215, update 2077 -> 1654, total 2672 -> 2210.
torch.profiler: half of all CPU time is matrix products running near the core's peak (a
(392, 128) x (128, 384) product at ~80 GFLOP/s), so only fewer FLOPs help. Prompts of 10 to 38
tokens left-padded to the longest, and answers that stopped early, made about a third of
every forward's tokens padding: `lab.responses.align_left` moves each row to position 0 and
cuts each minibatch after its own longest row. The rollout reads its log-probs in the first
epoch's minibatches (the same shapes, so the first ratio stays exactly 1); log-probs and
entropy share one log-softmax. Left: the update is ~77% of the time and is the same FLOPs as
TRL's own; reusing generation's logits (as TRL does) would break the exact first ratio.

Then (issue #19 again; torch.profiler over one batch-32 update on the tiny run, CPU): after
`align_left` a third of each minibatch's tokens were still padding on the right (3,449 real
of 5,336 over 12 minibatches), and AdamW's per-tensor loop took 15% of the update.
`lab.packing` lays each minibatch's real tokens end to end (attention alone goes back to
rows), AdamW runs fused and gradient clipping foreach: the update went from 1.14-1.60 s to
0.87-0.89 s (2 threads, interleaved runs), the tiny pipeline's PPO stage from 74 s to 43 s with
the same samples and gold. What is left per update (1 thread): matrix products ~32%, SDPA
forward and backward ~15%, small element-wise ops and dispatch the rest; generate is ~15% of
an update, a third of it in `cat` (a static KV cache gave the same tokens, no faster).
The log-softmax then ran once per distinct position (`responses.logprobs_at_rows`) instead of
once per response token: on the profile, temperature, log-softmax, gather and their backwards
over (8, 37, 1024) logits had taken about 5% of the update. torch.compile (inductor) took the
update from ~1.3-1.5 to ~1.1-1.25 s but spent 71 s compiling first, longer than the tiny PPO stage.

LoRA r=16 on the SmolLM2-135M shape (batch 8, one minibatch, response 48, 4 epochs): the peak
comes in the update, whose activations (30 layers x 8 x ~84 tokens) and the heap that glibc
keeps after freeing them took the process ~3.2 GB above the rollout. With
`model.gradient_checkpointing=true` (the planner's estimate: activations 3.2 GB -> 0.5 GB)
ppo_vs_trl.py measured 2,985 MB above imports against TRL 1.12's four full models at
7,609 MB (0.39x), with the same rewards and gold and about 10-20% more time per update.

The same LoRA shape on one H100 (8 threads): decoding a token at a time is kernel launches,
and LoRA adds two small matmuls to each of 210 layers. `ActorCritic.sampler()` decodes with
the policy adapter merged into copies of the base weights (the originals put back
untouched): generate 2.33 -> 1.53 s of an update (165 -> 251 tokens/s), s/update 4.35 ->
3.78, peak memory unchanged at 2,193 MB (it is in the update). On the CPU (2 threads, load
~2): generate 7.2 -> 5.8 s, peak RSS +300 MB (the merged copies while decoding).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

import lab.ppo
from lab.config import LabConfig, ModelConfig
from lab.data import load_prompts
from lab.generation import DecodingConfig, chat_batch, generate_kwargs
from lab.models import load_tokenizer, resolve_device, tiny_llama_config
from lab.ppo import add_advantages, ppo_update, rollout
from lab.ppo_checkpoint import make_learner
from lab.ppo_models import ActorCritic
from lab.responses import response_mask
from lab.reward_sources import model_scorer
from lab.tokenizer import train_tokenizer
from lab.twins import twin_config
from lab.world.build import FILES


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


def load_models(args, p, device, folder: Path):
    """The actor-critic, reward scorer, tokenizer and prompts: a trained run's, or random weights."""
    if args.run:
        sft, reward = args.run / "sft" / "model", args.run / "reward" / "model"
        tokenizer = load_tokenizer(str(sft))
        prompts = list(load_prompts(args.run / "world" / FILES["ppo_prompts"])["prompt"])
    else:
        sft, reward, tokenizer = folder / "sft", folder / "reward", build(args.shape, folder)
        prompts = [[{"role": "user", "content": f"What is {i} plus {i + 1}?"}] for i in range(99)]
    ac = ActorCritic(str(sft), str(reward), p.lora_r, p.lora_alpha, "float32", device)
    rm = LlamaForSequenceClassification.from_pretrained(reward).to(device).eval()
    if len(prompts) < p.batch_size:  # samples/s would count answers that were never generated
        raise SystemExit(f"--batch-size {p.batch_size}: only {len(prompts)} prompts to batch")
    return ac, model_scorer(rm, tokenizer), tokenizer, prompts[: p.batch_size]


def timed(phases: dict[str, float], name: str, fn):
    """`fn`, adding the seconds each call takes to `phases[name]`."""

    def run(*args, **kwargs):
        start = time.perf_counter()
        out = fn(*args, **kwargs)
        phases[name] = phases.get(name, 0.0) + time.perf_counter() - start
        return out

    return run


def time_updates(ac, scorer, tokenizer, prompts, cfg, updates: int) -> tuple[dict, int]:
    """Mean seconds per phase of one PPO update (after a warm-up), and response tokens per update."""
    p, phases = cfg.ppo, {}
    optimizer = make_learner(cfg, ac, rank=0).optimizer  # the optimizer PPO itself builds
    gen = torch.Generator().manual_seed(0)
    ac.policy.generate = timed(phases, "2 generate", ac.policy.generate)  # what sampler() yields
    scorer = timed(phases, "3 score", scorer)
    lab.ppo.token_stats = timed(phases, "4 log-probs, values", lab.ppo.token_stats)
    tokens = 0
    for step in range(updates + 1):
        if step == 1:  # the first update warms up allocators and kernels
            phases.clear()
            tokens = 0
        start = time.perf_counter()
        r = rollout(ac, tokenizer, scorer, prompts, cfg, gen)
        phases["2-4 rollout"] = phases.get("2-4 rollout", 0.0) + time.perf_counter() - start
        add_advantages(r, p.kl_coef, cfg)
        ppo_update(ac, optimizer, r, cfg, gen)
        phases["total"] = phases.get("total", 0.0) + time.perf_counter() - start
        tokens += int(r.response_mask.sum())
    phases["7 update"] = phases["total"] - phases["2-4 rollout"]
    return {k: v / updates for k, v in phases.items()}, tokens // updates


@torch.no_grad()
def plain_generate_tokens_per_s(model, tokenizer, prompts, p, repeats: int) -> float:
    """Response tokens per second of `model.generate` alone, the rollout's batch and settings."""
    model.eval()
    query = chat_batch(tokenizer, prompts, model.device)
    decoding = DecodingConfig(max_new_tokens=p.max_new_tokens, temperature=p.temperature)
    tokens, seconds = 0, 0.0
    for step in range(repeats + 1):
        start = time.perf_counter()
        out = model.generate(**query, **generate_kwargs(decoding, tokenizer))
        if step:
            seconds += time.perf_counter() - start
            response = out[:, query["input_ids"].shape[1] :]
            tokens += int(response_mask(response, tokenizer.eos_token_id)[0].sum())
    return tokens / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["tiny", "smollm2-135m"], default="tiny")
    parser.add_argument("--run", type=Path, help="a run folder: its SFT, reward model and prompts")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--mini-batch-size", type=int, default=16)
    parser.add_argument("--response-length", type=int, default=48)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--lora-r", type=int, default=0)
    parser.add_argument("--updates", type=int, default=3, help="timed updates (after one warm-up)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    for name in ("batch_size", "mini_batch_size", "response_length", "ppo_epochs", "updates"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more, got {getattr(args, name)}")
    if args.lora_r < 0:
        parser.error(f"--lora-r must be 0 (full fine-tuning) or more, got {args.lora_r}")

    cfg = LabConfig()
    p = cfg.ppo
    p.batch_size, p.mini_batch_size = args.batch_size, args.mini_batch_size
    p.max_new_tokens, p.ppo_epochs, p.lora_r = args.response_length, args.ppo_epochs, args.lora_r
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        ac, scorer, tokenizer, prompts = load_models(args, p, device, Path(tmp))
    phases, tokens = time_updates(ac, scorer, tokenizer, prompts, cfg, args.updates)
    with ac.sampler() as model:
        plain = plain_generate_tokens_per_s(model, tokenizer, prompts, p, args.updates)
    seconds = phases["total"]
    trainable = sum(x.numel() for x in ac.trainable_parameters())
    mode = f"LoRA r={p.lora_r}" if p.lora_r else "full fine-tuning"
    print(f"shape             {args.run or args.shape} ({mode})")
    print(
        f"device            {device}, threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}"
    )
    print(
        f"settings          batch {p.batch_size}, minibatch {p.mini_batch_size}, "
        f"response {p.max_new_tokens}, epochs {p.ppo_epochs}"
    )
    print(f"trainable params  {trainable:,}")
    for name in sorted(k for k in phases if k[0].isdigit()):
        print(f"  {name:<22}{phases[name]:7.2f} s  {phases[name] / seconds:6.1%}")
    print(f"s/update          {seconds:.2f}")
    print(f"samples/s         {p.batch_size / seconds:.1f}")
    print(f"rollout tokens/s  {tokens / phases['2-4 rollout']:.0f} (steps 2-4), "
          f"{tokens / phases['2 generate']:.0f} (its generate); plain generate {plain:.0f}")  # fmt: skip
    print(f"peak memory (MB)  {peak_memory_mb(device):,.0f}")


if __name__ == "__main__":
    main()
