"""Compare the lab's PPO with TRL 1.12's experimental PPOTrainer at identical settings.

TRL removed its PPOTrainer in 1.13, so TRL 1.12 lives in its own folder, never in the venv:

    .venv/bin/pip install --no-deps --target /tmp/trl112 trl==1.12.0
    OMP_NUM_THREADS=1 python benchmarks/ppo_vs_trl.py --shape tiny --updates 10 --repeats 2
    OMP_NUM_THREADS=1 python benchmarks/ppo_vs_trl.py --shape smollm2-135m --updates 2 \
        --batch-size 8 --mini-batches 1 --ppo-epochs 4 --lora-r 16 \
        --lab-set model.gradient_checkpointing=true

`--repeats` alternates the sides (lab, TRL, lab, TRL, ...) so that a busy machine slows both
alike; the table gives each side's mean and the lab's samples/s and peak memory over TRL's.

Each side runs in a fresh subprocess (TRL's with PYTHONPATH=--trl-path) and reports per-update
times (from after model loading to the end of each update) and mean RM scores (minus the
missing-EOS penalty, as both log them), peak memory (training only: GPU memory allocated on a
GPU, else peak RSS minus RSS after imports), and
on the tiny world the gold score of the final policy on the held-out prompts.

Measured on one H100 (torch 2.11, 8 threads; this script, 10 updates, response 48, 4 epochs):
tiny at batch 8, one minibatch: 19.6 against TRL's 9.3 samples/s (2.10x), 123 vs 165 MB; at
batch 32, four minibatches: 32.0 against 22.1 (1.45x; the update is 69% of the time by
`ppo_throughput.py --run runs/tiny --batch-size 32 --mini-batch-size 8 --ppo-epochs 4`).
SmolLM2-135M shape, LoRA r=16 with gradient checkpointing, batch 8: 1,672 MB against TRL's four full models at
6,748 MB (0.25x) and its LoRA policy at 5,161 MB (0.32x), at 0.49x TRL's full-model speed: LoRA
decoding is launch-bound there (165 tokens/s, 54% of the update, the same with plain `generate`;
decoding with the adapter merged, `ActorCritic.sampler()`, then took it to 251 tokens/s).
After the update's statistics stayed on the GPU and AdamW went fused: batch 32 at 32.4
against 22.3 samples/s (1.45x, unchanged).

Packed forwards on the CPU (`lab.packing`; issue #19), with fused AdamW and foreach clipping,
this script with `--repeats 3`, 1 thread, on 2 cores (load ~1), `--baseline` the commit before:
batch 32, four minibatches: 19.7 samples/s against TRL's 11.0 (1.80x; the commit before: 14.7,
1.34x); batch 8, one minibatch: 16.7 against 7.1 (2.35x; before: 14.0, 1.97x). The same first
and last RM scores and gold as the commit before: the same computation, less of it. On a GPU
packing lost (batch 32 on an H100: 25.1 against 28.4 samples/s without it), so CUDA keeps
`align_left`; on an H200 (2 repeats): batch 8 at 18.7 against 9.2 (2.04x), batch 32 at 33.3
against 24.5 (1.36x).

One log-softmax per distinct position (`responses.logprobs_at_rows`; the (B, R, V) layout
is never made), on a slower day of the same 2-core VM (`--repeats 3`, 1 thread, `--baseline`
the commit before): batch 32 at 15.4 against TRL's 8.6 samples/s (1.80x; the commit before
14.5, 1.70x); batch 8 at 11.7 against 6.4 (1.84x; the commit before 12.5, 1.95x: single runs
spread from 10.3 to 13.3, and interleaved update-only timings showed no difference). With
`OMP_NUM_THREADS=2` (2 repeats), batch 32: 20.5 against 12.4 (1.65x). The same RM scores and
gold as the commit before; over six batch-32 updates, the same update losses to 10 decimals.

Policy and value function side by side on two cores (`lab.threads.side_by_side`; full
fine-tuning on a CPU with 2 or more threads): a tiny model's ops are too small to spread over
two cores (the update took as long on 2 threads as on 1), but the two networks' forwards and
backwards are independent. `OMP_NUM_THREADS=2`, `--repeats 2`, `--baseline` the commit before,
batch 32, four minibatches: 21.1 against TRL's 14.1 samples/s (1.49x; the commit before 18.9,
1.34x), peak 161 MB against 120 (two graphs alive at once), the same RM scores and gold. On 1
thread nothing changes: the roles run in turn, as before.

The same code on another 2-core VM (a fresh `make pipeline` run, `OMP_NUM_THREADS=2`,
`--repeats 2`): batch 32, four minibatches: 29.9 against TRL's 15.8 samples/s (1.89x; the
two repeats 2.04x and 1.77x, TRL's own speed moving 14.4 to 17.1), peak 165 against 179 MB;
`--repeats 3`: 31.5 against 16.0 (1.96x; the repeats 1.79x, 2.21x, 1.93x);
batch 8, one minibatch: 27.7 against 8.6 (3.23x), 133 against 166 MB. The update is ~70% of
the time; inside it, the policy's and the value function's minibatch steps take 29 and 27 ms
on one thread each, 32 ms side by side, and clipping plus AdamW about 3 ms a minibatch.

The rollout's forwards queued together (`lab.ppo.token_stats`): each chunk's policy, reference
and value forwards had run as three tasks on two workers, so every chunk's third forward ran
alone on one core (one chunk's three took 77-84 ms for a batch of 32 on that VM; all twelve
queued at once, 62-71 ms). `OMP_NUM_THREADS=2`, `--repeats 3`, `--baseline` the commit
before, batch 32, four minibatches, two runs, each 37.7 against TRL's 18.3 samples/s (2.06x;
the six repeats 1.90-2.21x); the commit before 36.7 (2.01x) and 34.4 (1.88x). A third run
without the baseline: 37.1 against 18.9 (1.96x); the nine repeats average 2.03x, at the
target rather than clear of it. The same RM scores and gold as the commit before, peak 162 against 178 MB.

The same code on one H200 (torch 2.11+cu130, transformers 5.24, `OMP_NUM_THREADS=8`, this
script with the tiny run's models; 2026-11-30): batch 32, four minibatches (2 repeats): 34.4
against TRL's 21.6 samples/s (1.59x; the H200 at stops 23-27: 1.36x), 121 against 175 MB;
batch 8, one minibatch: 21.6 against 7.9 (2.75x); SmolLM2-135M shape, LoRA r=16 with gradient
checkpointing, batch 8: 1,679 MB against TRL's four full models at 6,748 MB (0.25x) and its
LoRA policy at 5,161 MB (0.33x). `ppo_throughput.py --run runs/tiny --batch-size 32
--mini-batch-size 8 --ppo-epochs 4 --device cuda`: update 68% (0.66 s for 16 minibatch steps,
about 41 ms each for two networks' forward and backward, clipping and fused AdamW: likely
kernel launches rather than arithmetic on a model this small; not profiled), generate 22% (2,585 tokens/s, plain
`generate` 2,584), log-probs and values 8%, score 2%. What would close the gap on a GPU is
fewer launches per step (CUDA graphs over fixed minibatch shapes), which torch.compile gives
only after a compile longer than the tiny PPO stage (71 s on the CPU); not done.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import psutil
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    TrainerCallback,
)

import lab.ppo
import lab.recipes
from lab.config import LabConfig, PPOStageConfig
from lab.data import load_prompts
from lab.evaluation import evaluate_model
from lab.models import load_tokenizer
from lab.overrides import apply_overrides, parse_set_args
from lab.ppo_models import LORA_TARGETS
from lab.stages import load_run_config
from lab.twins import twin_config
from lab.world import World
from lab.world.build import FILES

RUNS = Path(__file__).resolve().parents[1] / "runs"
# The tiny pipeline's models: the base sweep's first seed where it exists (newer), else runs/tiny.
TINY_RUN = next(
    (d for d in (RUNS / "sweep-base" / "sweep" / "seed-0", RUNS / "tiny") if d.exists()),
    RUNS / "tiny",
)


@dataclass
class Settings:
    """One side of the comparison: the shape and the PPO settings both sides share."""

    shape: str
    updates: int
    batch_size: int
    response_length: int
    ppo_epochs: int
    mini_batches: int
    lora_r: int = 0  # 0 = full fine-tuning
    lab_set: list[str] = field(default_factory=list)  # the lab's own `--set key=value`s


def rss_mb() -> float:
    """Current resident memory of this process."""
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """Highest resident memory this process has reached (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_mark() -> float:
    """Where training's peak memory counts from: on a GPU, an empty allocator; else RSS now."""
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    return rss_mb()


def peak_mb(mark: float) -> float:
    """Peak memory since `mark`: GPU memory allocated on a GPU, else resident memory."""
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20 - mark
    return peak_rss_mb() - mark


def prepare(shape: str, folder: Path) -> Path:
    """A run folder (world, sft, reward, config.json): the tiny run's, or random 135M weights."""
    shutil.copytree(TINY_RUN / "world", folder / "world")
    shutil.copy(TINY_RUN / "config.json", folder / "config.json")
    if shape == "tiny":
        for name in ("sft", "reward"):
            shutil.copytree(TINY_RUN / name / "model", folder / name / "model")
        return folder
    torch.manual_seed(0)  # every side gets the same random weights
    tokenizer = AutoTokenizer.from_pretrained(TINY_RUN / "sft" / "model")
    ids = {f"{t}_token_id": getattr(tokenizer, f"{t}_token_id") for t in ("bos", "eos", "pad")}
    config = twin_config("HuggingFaceTB/SmolLM2-135M", **ids, num_labels=1)
    for name, cls in (("sft", LlamaForCausalLM), ("reward", LlamaForSequenceClassification)):
        cls(config).save_pretrained(folder / name / "model")
        tokenizer.save_pretrained(folder / name / "model")
    return folder


def gold_mean(policy, tokenizer, run_dir: Path) -> float:
    """Mean gold score of `policy` on the held-out prompts, decoded as the lab evaluates."""
    cfg = load_run_config(run_dir)
    prompts = list(load_prompts(run_dir / "world" / FILES["eval_prompts"])["prompt"])
    world = World.from_seed(cfg.world.seed, cfg.world.n_countries)
    return float(evaluate_model(policy, tokenizer, world, prompts)["gold"].mean())


def run_lab(s: Settings, run_dir: Path) -> dict:
    """The lab's `run_ppo`; its final evaluation (200 held-out rollouts) is replaced by ours."""
    base, result = memory_mark(), {}
    cfg = load_run_config(run_dir)
    overrides = {
        "ppo.updates": s.updates,
        "ppo.batch_size": s.batch_size,
        "ppo.mini_batch_size": s.batch_size // s.mini_batches,
        "ppo.ppo_epochs": s.ppo_epochs,
        "ppo.max_new_tokens": s.response_length,
        "ppo.lora_r": s.lora_r,
        "ppo.checkpoint_every": s.updates,  # one checkpoint, after the last timed update
    }
    if s.shape != "tiny":  # a "hub" model: no gold judge during training
        overrides["model.name_or_path"] = str(run_dir / "sft" / "model")
    apply_overrides(cfg, overrides | parse_set_args(s.lab_set))

    def finish(cfg, ac, tokenizer, log, out_dir, run_dir, *rest):  # lab.ppo.finish's arguments
        result["peak_mb"] = peak_mb(base)
        if lab.recipes.gold_judge(cfg) is not None:
            result["gold"] = gold_mean(ac.merged_policy(), tokenizer, run_dir)
        return {}

    lab.ppo.finish = finish
    lab.ppo.run_ppo(cfg, run_dir, run_dir / "ppo")
    rows = [json.loads(line) for line in (run_dir / "ppo" / "log.jsonl").open()]
    return {**result, "times": [r["time"] for r in rows], "scores": [r["ppo/reward"] for r in rows]}


class Clock(TrainerCallback):
    """Seconds since TRL's training loop began, and the mean RM score, at every update."""

    def __init__(self) -> None:
        self.start, self.times, self.scores = 0.0, [], []

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.scores.append(logs["objective/scores"])

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self.start)


def trl_config(s: Settings, p: PPOStageConfig, output_dir: Path):
    """TRL 1.12's PPOConfig with the lab's PPO settings."""
    from trl.experimental.ppo import PPOConfig

    return PPOConfig(
        output_dir=str(output_dir),
        # One update = batch_size rollouts. gradient_accumulation_steps must stay 1: TRL steps the
        # optimizer every gradient_accumulation_steps micro-batches, *across* mini-batches.
        per_device_train_batch_size=s.batch_size,
        gradient_accumulation_steps=1,
        local_rollout_forward_batch_size=s.batch_size,
        num_mini_batches=s.mini_batches,
        num_ppo_epochs=s.ppo_epochs,
        total_episodes=s.updates * s.batch_size,
        response_length=s.response_length,
        stop_token="eos",
        temperature=p.temperature,
        kl_coef=p.kl_coef,
        kl_estimator=p.kl_estimator,
        lam=p.lam,
        gamma=p.gamma,
        cliprange=p.clip,
        cliprange_value=p.value_clip,
        vf_coef=p.vf_coef,
        missing_eos_penalty=p.missing_eos_penalty,
        learning_rate=p.lr,
        lr_scheduler_type="constant",  # the lab: constant lr, AdamW(eps=1e-5), torch's decay
        adam_epsilon=1e-5,
        weight_decay=0.01,
        use_cpu=not torch.cuda.is_available(),
        bf16=False,
        gradient_checkpointing=False,
        num_sample_generations=0,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
    )


def run_trl(s: Settings, run_dir: Path) -> dict:
    """TRL 1.12's PPOTrainer; the value model is a copy of the reward model, as in the lab."""
    import datasets
    import trl
    from peft import LoraConfig
    from trl.experimental.ppo import PPOTrainer

    assert trl.__version__ == "1.12.0", f"need TRL 1.12.0 on PYTHONPATH, got {trl.__version__}"
    base, p = memory_mark(), load_run_config(run_dir).ppo
    sft, reward = str(run_dir / "sft" / "model"), str(run_dir / "reward" / "model")
    tokenizer = load_tokenizer(sft)  # left padding: TRL generates from the collated queries
    prompts = load_prompts(run_dir / "world" / FILES["ppo_prompts"])["prompt"]
    template = {"add_generation_prompt": True, "return_dict": True}
    ids = [tokenizer.apply_chat_template(q, **template)["input_ids"] for q in prompts]
    lora = LoraConfig(r=s.lora_r, lora_alpha=p.lora_alpha, target_modules=LORA_TARGETS)
    clock = Clock()
    trainer = PPOTrainer(
        args=trl_config(s, p, run_dir / "trl"),
        processing_class=tokenizer,
        model=AutoModelForCausalLM.from_pretrained(sft),
        ref_model=None if s.lora_r else AutoModelForCausalLM.from_pretrained(sft),
        reward_model=AutoModelForSequenceClassification.from_pretrained(reward),
        value_model=AutoModelForSequenceClassification.from_pretrained(reward),
        train_dataset=datasets.Dataset.from_dict({"input_ids": ids}),
        callbacks=[clock],
        peft_config=lora if s.lora_r else None,
    )
    trainer.train()
    peak = peak_mb(base)
    policy = trainer.accelerator.unwrap_model(trainer.model).policy
    gold = gold_mean(policy, tokenizer, run_dir) if s.shape == "tiny" else None
    return {"peak_mb": peak, "gold": gold, "times": clock.times, "scores": clock.scores}


def spawn(impl: str, s: Settings, folder: Path, python_path: str | None) -> dict:
    """Run one side in a fresh subprocess on its own copy of the inputs (and `python_path`
    first on its import path: TRL 1.12, or another copy of the lab); its result."""
    run_dir = prepare(s.shape, folder / f"{impl}-{s.lora_r}-{len(list(folder.glob('*')))}")
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if python_path:  # first on the path, before whatever the caller's PYTHONPATH holds
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [python_path, env.get("PYTHONPATH")]))
    cmd = [sys.executable, __file__, "--worker", impl, "--run-dir", str(run_dir)]
    log = run_dir / "worker.log"
    with log.open("w") as out:
        done = subprocess.run(
            [*cmd, "--settings", json.dumps(asdict(s))], env=env, stdout=out, stderr=out
        )
    if done.returncode:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise RuntimeError(f"{impl} worker failed ({done.returncode}):\n{tail}")
    return json.loads((run_dir / "result.json").read_text())


def summarize(r: dict, s: Settings) -> dict[str, float | None]:
    """The table's row; RM gain/update = (mean of the last k updates - mean of the first k) / (N - k)."""
    n, k = len(r["scores"]), max(1, len(r["scores"]) // 4)
    first, last = sum(r["scores"][:k]) / k, sum(r["scores"][-k:]) / k
    seconds = r["times"][-1] / len(r["times"])
    return {
        "s/update": seconds,
        "samples/s": s.batch_size / seconds,
        "peak MB": r["peak_mb"],
        "first RM": first,
        "last RM": last,
        "gain/update": (last - first) / max(1, n - k),
        "gold": r.get("gold"),
    }


def print_table(rows: dict[str, dict], title: str) -> None:
    """implementation x metric, one row per run."""
    cols = list(next(iter(rows.values())))
    print(f"\n{title}\n{'implementation':<30}" + "".join(f"{c:>12}" for c in cols))
    for name, row in rows.items():
        cells = [
            "-" if v is None else f"{v:.0f}" if abs(v) >= 100 else f"{v:.3f}" for v in row.values()
        ]
        print(f"{name:<30}" + "".join(f"{c:>12}" for c in cells))


def one_line(err: Exception) -> str:
    """An error's message as one line (a KeyError's without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text.splitlines()[0] if text.strip() else type(err).__name__


def trl_version(folder: str) -> str | None:
    """The version of TRL installed in `folder` (`pip install --target`), None if none is."""
    if not (Path(folder) / "trl" / "__init__.py").is_file():
        return None
    found = importlib.metadata.distributions(name="trl", path=[folder])
    return next((d.version for d in found), None)


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse settings neither side can run, with one line naming the flag, before any work."""
    counts = ("updates", "batch_size", "response_length", "ppo_epochs", "mini_batches", "repeats")
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more, got {getattr(args, name)}")
    if args.batch_size % args.mini_batches:
        parser.error(
            f"--batch-size {args.batch_size} must be divisible by --mini-batches {args.mini_batches}"
        )
    if args.lora_r < 0:
        parser.error(f"--lora-r must be 0 (full fine-tuning) or more, got {args.lora_r}")
    for item in args.lab_set:
        if not item.partition("=")[1] or not item.partition("=")[0].strip():
            parser.error(f"--lab-set: expected key=value, got {item!r}")
    try:
        apply_overrides(LabConfig(), parse_set_args(args.lab_set))  # as the lab's side will
    except (KeyError, TypeError, ValueError) as err:
        parser.error(f"--lab-set: {one_line(err)}")
    if args.baseline and not (args.baseline / "lab" / "ppo.py").is_file():
        parser.error(f"--baseline {args.baseline}: not a copy of the lab (no lab/ppo.py)")
    if (version := trl_version(args.trl_path)) != "1.12.0":
        found = f"found TRL {version}" if version else "no TRL there"
        parser.error(
            f"--trl-path {args.trl_path}: the folder does not hold TRL 1.12 ({found}); install "
            f"it with: .venv/bin/pip install --no-deps --target {args.trl_path} trl==1.12.0"
        )
    if args.keep and args.keep.exists() and not args.keep.is_dir():
        parser.error(f"--keep {args.keep}: a file, not a folder")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["tiny", "smollm2-135m"], default="tiny")
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="rollouts per update")
    parser.add_argument("--response-length", type=int, default=48)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--mini-batches", type=int, default=4)
    parser.add_argument("--lora-r", type=int, default=16, help="LoRA rank on the 135M shape")
    parser.add_argument("--repeats", type=int, default=1, help="alternate the sides this often")
    parser.add_argument(
        "--lab-set", action="append", default=[], help="key=value for the lab's side (e.g. "
        "model.gradient_checkpointing=true, as `python -m lab plan` proposes)",
    )  # fmt: skip
    parser.add_argument("--baseline", type=Path, help="another copy of the lab to time beside")
    parser.add_argument("--trl-path", default="/tmp/trl112", help="folder holding TRL 1.12")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (worker logs)")
    parser.add_argument("--worker", choices=["lab", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--settings", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:  # inside the subprocess: run one side, write its result
        s = Settings(**json.loads(args.settings))
        result = (run_lab if args.worker == "lab" else run_trl)(s, args.run_dir)
        (args.run_dir / "result.json").write_text(json.dumps(result))
        return
    check_args(parser, args)

    shared = {f.name: getattr(args, f.name) for f in fields(Settings) if f.name != "lora_r"}
    r = args.lora_r if args.shape != "tiny" else 0
    lab_name = f"lab (LoRA r={r})" if r else "lab (full)"
    runs = [("lab", lab_name, r, None), ("trl", "TRL 1.12 (full)", 0, args.trl_path)]
    if args.baseline:  # the same harness on another copy of the lab (an earlier commit)
        runs.insert(1, ("lab", f"{lab_name} at {args.baseline.name}", r, str(args.baseline)))
    if r:  # TRL's LoRA: the policy only; its value model stays a full trainable copy
        runs.append(("trl", f"TRL 1.12 (LoRA r={r} policy)", r, args.trl_path))
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):  # interleaved: a busy machine slows every side alike
            folder = (args.keep or Path(tmp)) / f"repeat-{i}"
            for impl, name, lora_r, python_path in runs:
                s = Settings(**shared, lora_r=lora_r)
                row = summarize(spawn(impl, s, folder, python_path), s)
                rows.setdefault(name, []).append(row)
                print(f"{name}: {json.dumps(row)} (load {os.getloadavg()[0]:.1f})", flush=True)
    means = {name: mean_row(rs) for name, rs in rows.items()}
    print_table(
        means,
        f"{args.shape}: {args.updates} updates x {args.batch_size} rollouts, {args.mini_batches} "
        f"mini-batches, {args.ppo_epochs} epochs, response {args.response_length}, "
        f"threads {os.environ.get('OMP_NUM_THREADS', '1')}, mean of {args.repeats}",
    )
    lab_row = means[runs[0][1]]
    for name in list(means)[1:]:
        speed = lab_row["samples/s"] / means[name]["samples/s"]
        memory = lab_row["peak MB"] / means[name]["peak MB"]
        print(f"lab / {name}: samples/s x{speed:.2f}, peak memory x{memory:.2f}")


def mean_row(rows: list[dict]) -> dict:
    """Each metric's mean over repeated runs (None where a run had none)."""
    return {k: None if rows[0][k] is None else sum(r[k] for r in rows) / len(rows) for k in rows[0]}


if __name__ == "__main__":
    main()
