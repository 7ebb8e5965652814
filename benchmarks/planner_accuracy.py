"""Print the planner's peak-memory estimate against a measured run, for each architecture twin.

Each case builds a twin (`lab.twins.make_twin`: the real config, random weights) and runs the
lab's own code for a few steps: TRL's SFTTrainer and RewardTrainer configured by
`lab.trainers.trainer_args`, and PPO's `ActorCritic` + `rollout` + `ppo_update`. Every case runs in
a fresh process. On CPU the peak is the process's peak RSS (VmHWM, reset with
/proc/self/clear_refs once the models are loaded) minus the RSS before loading, with glibc told
to return large blocks at once (MALLOC_MMAP_THRESHOLD_); on CUDA it is
`torch.cuda.max_memory_allocated`. The planner is asked for the same batch, length, dtype
(float32: CPU bf16 is slow) and device.

    OMP_NUM_THREADS=1 python benchmarks/planner_accuracy.py            # every twin and case
    python benchmarks/planner_accuracy.py --twins HuggingFaceTB/SmolLM2-135M --cases sft reward
    python benchmarks/planner_accuracy.py --device cuda
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEQ, BATCH, STEPS = 128, 4, 3
PPO = {"batch_size": 8, "mini_batch_size": 4, "max_new_tokens": 16, "ppo_epochs": 1}
PPO_PROMPT_WORDS = 40
CASES = {  # name -> (stage, lora_r, gradient checkpointing)
    "sft": ("sft", 0, False),
    "sft-ckpt": ("sft", 0, True),
    "reward": ("reward", 0, False),
    "ppo-full": ("ppo", 0, False),
    "ppo-lora": ("ppo", 16, False),
    "ppo-lora-ckpt": ("ppo", 16, True),
}
DEFAULT_CASES = {
    "HuggingFaceTB/SmolLM2-135M": ["sft", "reward", "ppo-full", "ppo-lora"],
    "HuggingFaceTB/SmolLM2-360M": ["sft", "reward", "ppo-lora"],
    "Qwen/Qwen2.5-0.5B": ["sft", "reward", "ppo-lora"],
}
WORDS = [
    "the",
    "capital",
    "of",
    "vorland",
    "is",
    "mirat",
    "and",
    "its",
    "export",
    "is",
    "tin",
    "while",
    "sheep",
    "graze",
]


# ---------------------------------------------------------------- measuring (child process)


def tokenizer_for_twins():
    """The tiny world's kind of tokenizer (byte-level BPE, chat template), trained in a second."""
    from lab.tokenizer import train_tokenizer

    return train_tokenizer([" ".join(WORDS)] * 50, 1024)


def text(n_words: int, seed: int) -> str:
    """`n_words` words, deterministic."""
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(n_words))


def rss_kb(field: str = "VmRSS") -> int:
    """This process's resident memory (or its peak, VmHWM), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


class PeakMeter:
    """Peak bytes above a baseline: CUDA allocator statistics, or RSS on CPU."""

    def __init__(self, device: str):
        self.cuda = device == "cuda"
        self.base = self.current()

    def current(self) -> float:
        import torch

        if self.cuda:
            return torch.cuda.memory_allocated()
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return rss_kb() * 1024

    def reset(self) -> None:
        """Forget the peak so far (model loading's transient copies)."""
        import torch

        self.current()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            Path("/proc/self/clear_refs").write_text("5")

    def peak(self) -> float:
        import torch

        if self.cuda:
            return torch.cuda.max_memory_allocated() - self.base
        return rss_kb("VmHWM") * 1024 - self.base


def lab_config(device: str, stage: str, lora_r: int, checkpointing: bool = False):
    """The tiny profile with the benchmark's sizes, float32, on `device`."""
    from lab.profiles import load_config

    sizes = {f"{stage}.batch_size": BATCH, f"{stage}.lora_r": lora_r}
    if stage == "ppo":
        sizes = {f"ppo.{k}": v for k, v in PPO.items()} | {"ppo.lora_r": lora_r}
    model = {"model.max_length": SEQ, "model.gradient_checkpointing": checkpointing}
    return load_config("tiny", {"device": device, **model, **sizes})


def sft_data(n: int):
    """Prompt/completion demonstrations; every other one is short, so batches carry padding."""
    import datasets

    rows = [
        {
            "prompt": [{"role": "user", "content": text(20, i)}],
            "completion": [{"role": "assistant", "content": text(400 if i % 2 else 40, i)}],
        }
        for i in range(n)
    ]
    return datasets.Dataset.from_list(rows)


def run_sft_steps(folder: Path, device: str, lora_r: int, ckpt: bool, meter: PeakMeter) -> int:
    """A few SFTTrainer steps, configured as `lab.sft.run_sft` does."""
    import trl

    from lab.models import load_causal_lm, load_tokenizer
    from lab.trainers import lora_config, trainer_args

    cfg = lab_config(device, "sft", lora_r, ckpt)
    model, tokenizer = load_causal_lm(str(folder), "float32", device), load_tokenizer(str(folder))
    args = {**trainer_args(cfg, cfg.sft, folder / "out"), "eval_strategy": "no", "max_steps": STEPS}
    trainer = trl.SFTTrainer(
        model=model,
        args=trl.SFTConfig(**args, max_length=SEQ, completion_only_loss=True),
        train_dataset=sft_data(BATCH * STEPS),
        processing_class=tokenizer,
        peft_config=lora_config(lora_r, 16, "CAUSAL_LM"),
    )
    meter.reset()
    trainer.train()
    return SEQ


def run_reward_steps(folder: Path, device: str, lora_r: int, ckpt: bool, meter: PeakMeter) -> int:
    """A few RewardTrainer steps, configured as `lab.reward.run_reward` does."""
    import datasets
    import torch
    import trl
    from transformers import AutoModelForSequenceClassification

    from lab.models import load_tokenizer
    from lab.reward import tokenize_pairs
    from lab.trainers import lora_config, trainer_args

    cfg = lab_config(device, "reward", lora_r, ckpt)
    tokenizer = load_tokenizer(str(folder))
    pairs = datasets.Dataset.from_list(
        [
            {"prompt": text(20, i), "chosen": text(400, i), "rejected": text(40, i)}
            for i in range(BATCH * STEPS)
        ]
    )
    model = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=1, pad_token_id=tokenizer.pad_token_id, dtype=torch.float32
    )
    args = {
        **trainer_args(cfg, cfg.reward, folder / "out"),
        "eval_strategy": "no",
        "max_steps": STEPS,
    }
    trainer = trl.RewardTrainer(
        model=model,
        args=trl.RewardConfig(**args, max_length=None),
        train_dataset=tokenize_pairs(pairs, tokenizer, SEQ),
        processing_class=tokenizer,
        peft_config=lora_config(lora_r, 16, "SEQ_CLS"),
    )
    meter.reset()
    trainer.train()
    return SEQ


def run_ppo_updates(folder: Path, device: str, lora_r: int, ckpt: bool, meter: PeakMeter) -> int:
    """Two PPO updates with the lab's `ActorCritic`, `rollout` and `ppo_update`; returns P + R."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from lab.models import load_tokenizer
    from lab.ppo import add_advantages, ppo_update, rollout
    from lab.ppo_models import ActorCritic
    from lab.reward_model import load_reward_model
    from lab.reward_sources import model_scorer

    cfg = lab_config(device, "ppo", lora_r, ckpt)
    tokenizer = load_tokenizer(str(folder))
    rm_dir = folder / "reward"
    rm = AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=1, pad_token_id=tokenizer.pad_token_id
    )
    rm.save_pretrained(rm_dir)
    tokenizer.save_pretrained(rm_dir)
    del rm
    meter.base = meter.current()  # the saved reward model's scratch is not PPO's
    ac = ActorCritic(str(folder), str(rm_dir), lora_r, 16, "float32", torch.device(device), ckpt)
    scorer = model_scorer(*load_reward_model(rm_dir, device))
    ac.prepare_for_training()
    optimizer = torch.optim.AdamW(ac.trainable_parameters(), lr=1e-5, eps=1e-5)
    prompts = [[{"role": "user", "content": text(PPO_PROMPT_WORDS, i)}] for i in range(8)]
    gen = torch.Generator().manual_seed(0)
    meter.reset()
    for _ in range(2):  # the second rollout runs with the optimizer's states allocated
        r = rollout(ac, tokenizer, scorer, prompts[: cfg.ppo.batch_size], cfg)
        add_advantages(r, cfg.ppo.kl_coef, cfg)
        ppo_update(ac, optimizer, r, cfg, gen)
    return r.ids.shape[1]


RUNNERS = {"sft": run_sft_steps, "reward": run_reward_steps, "ppo": run_ppo_updates}


def measure(twin: str, case: str, device: str) -> dict:
    """Build the twin, run the case, return the peak bytes and the sequence length it ran at."""
    import torch  # noqa: F401  (imports first: their memory is not the run's)
    import trl  # noqa: F401

    from lab.twins import make_twin

    stage, lora_r, ckpt = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_twin(twin, Path(tmp) / "twin", tokenizer_for_twins())
        meter = PeakMeter(device)
        start = time.perf_counter()
        seq = RUNNERS[stage](folder, device, lora_r, ckpt, meter)
        return {"peak": meter.peak(), "seq": seq, "seconds": time.perf_counter() - start}


# ---------------------------------------------------------------- comparing (parent process)


def estimate(twin: str, case: str, seq: int, device: str) -> float:
    """The planner's peak for the case's setup."""
    from lab.plan_memory import Setup, arch_from_config, estimate_memory
    from lab.twins import twin_config

    stage, lora_r, ckpt = CASES[case]
    batch = PPO["mini_batch_size"] if stage == "ppo" else BATCH
    rl = {"new_tokens": PPO["max_new_tokens"], "rollout_batch": PPO["batch_size"]}
    setup = Setup(
        stage, batch, seq, lora_r=lora_r, checkpointing=ckpt, dtype_bytes=4, cuda=device == "cuda",
        **(rl if stage == "ppo" else {}),
    )  # fmt: skip
    return estimate_memory(arch_from_config(twin_config(twin)), setup).total


def run_case(twin: str, case: str, device: str) -> dict:
    """Measure in a fresh process (allocator state and peak are its own)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    cmd = [sys.executable, __file__, "--child", twin, case, "--device", device]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{twin} {case} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def twin_names() -> list[str]:
    """Every hub model with an architecture twin (`lab.twins.TWINS`)."""
    from lab.twins import TWINS

    return list(TWINS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twins", nargs="*", default=list(DEFAULT_CASES))
    parser.add_argument("--cases", nargs="*", default=None, help=f"among {list(CASES)}")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.device)))
        return
    if unknown := [c for c in args.cases or [] if c not in CASES]:
        parser.error(f"--cases: unknown case {unknown[0]!r}; cases: {', '.join(CASES)}")
    known = twin_names() if args.cases else list(DEFAULT_CASES)  # without --cases: its defaults
    if not args.twins:
        parser.error(f"--twins: at least one twin; twins: {', '.join(known)}")
    if unknown := [t for t in args.twins if t not in known]:
        parser.error(f"--twins: no twin {unknown[0]!r} to measure; twins: {', '.join(known)}")
    print(f"batch {BATCH} x seq {SEQ} (PPO: {PPO}), float32, {args.device}")
    print(
        f"{'twin':28} {'case':9} {'seq':>4} {'planned GB':>10} {'measured GB':>11} {'error':>7}  time"
    )
    for twin in args.twins:
        for case in args.cases or DEFAULT_CASES[twin]:
            got = run_case(twin, case, args.device)
            planned = estimate(twin, case, got["seq"], args.device)
            error = planned / got["peak"] - 1
            print(
                f"{twin:28} {case:9} {got['seq']:>4} {planned / 1e9:>10.3f} "
                f"{got['peak'] / 1e9:>11.3f} {error:>+7.1%}  {got['seconds']:.0f} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
