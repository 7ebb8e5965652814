"""What every TRL stage (SFT, reward, DPO, GRPO) shares: arguments, LoRA, logs, the trained model.

One configuration for all four trainers, and one way back from a trainer to a plain model
folder, whether the stage ran alone, data parallel, or sharded with FSDP under
`accelerate launch --config_file configs/accelerate/fsdp.yaml`.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from peft import LoraConfig, PeftModel
from transformers import PreTrainedModel, Trainer, TrainerCallback

from lab.config import LabConfig, TrainerStageConfig
from lab.distributed import barrier, is_main
from lab.models import load_causal_lm, resolve_device, trainable_dtype
from lab.runlog import RunLog

TRAINED_DIR = "trained"  # the trainer's own save, read back by every process, then removed


class ForwardLogs(TrainerCallback):
    """Copy a trainer's logs into the stage's `RunLog`, renamed to the lab's metric names."""

    def __init__(self, log: RunLog, names: dict[str, str]):
        self.log, self.names = log, names

    def on_log(self, args, state, control, logs=None, **kwargs):
        row = {self.names[k]: float(v) for k, v in (logs or {}).items() if k in self.names}
        if row:
            self.log.log(state.global_step, row)


def trainer_args(cfg: LabConfig, stage: TrainerStageConfig, out_dir: Path) -> dict[str, Any]:
    """Arguments every lab TRL trainer shares: the stage's schedule, CPU-safe precision, no checkpoints."""
    if stage.batch_size % stage.grad_accum:
        raise ValueError(
            f"batch_size {stage.batch_size} is not a multiple of grad_accum {stage.grad_accum}"
        )
    micro = stage.batch_size // stage.grad_accum
    return {
        "output_dir": str(out_dir),  # nothing is written there: no checkpoints, no reports
        "num_train_epochs": stage.epochs,
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": stage.grad_accum,
        "per_device_eval_batch_size": micro,
        "learning_rate": stage.lr,
        "warmup_steps": stage.warmup_ratio,  # a float below 1 is a share of the steps
        "logging_steps": stage.logging_steps,
        "eval_strategy": "epoch",
        "save_strategy": "no",
        "report_to": list(cfg.log.targets()) or "none",
        "use_cpu": resolve_device(cfg.device).type == "cpu",
        # Autocast over the fp32 weights `causal_lm_loader` gives full fine-tuning (TRL turns bf16
        # on by default; not on CPU float32).
        "bf16": cfg.model.dtype == "bfloat16",
        "fp16": cfg.model.dtype == "float16",
        # TRL turns it on by default; the lab only where memory needs it (real models on a GPU)
        "activation_checkpointing": cfg.model.gradient_checkpointing,
        "seed": cfg.seed,
    }


def lora_config(r: int, alpha: int, task_type: str) -> LoraConfig | None:
    """LoRA on every linear layer, or None for full fine-tuning (r = 0)."""
    if r == 0:
        return None
    return LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", task_type=task_type)


def last_logged(trainer: Trainer, key: str) -> float | None:
    """The last value a trainer logged under `key` (e.g. the final training loss)."""
    return next((row[key] for row in reversed(trainer.state.log_history) if key in row), None)


def check_launch(trainer: Trainer) -> None:
    """Refuse, before training, an FSDP launch whose trained model `trained_model` cannot read back."""
    if not trainer.is_fsdp_enabled:
        return
    plugin = trainer.accelerator.state.fsdp_plugin
    if plugin.fsdp_version != 2 or "FULL_STATE_DICT" not in str(plugin.state_dict_type):
        raise ValueError(
            f"FSDP version {plugin.fsdp_version} with {plugin.state_dict_type}: the lab saves whole "
            "models, so it needs fsdp_version: 2 and fsdp_state_dict_type: FULL_STATE_DICT "
            "(as configs/accelerate/fsdp.yaml sets)"
        )


def causal_lm_loader(cfg: LabConfig, lora_r: int) -> Callable[[str], PreTrainedModel]:
    """`load(path)`: the causal LM a stage with `lora_r` trains, on the profile's device, in
    `trainable_dtype` (fp32 master weights for full fine-tuning), as SFT, DPO, GRPO, ORPO load one."""
    dtype = trainable_dtype(cfg.model.dtype, lora_r)
    return partial(load_causal_lm, dtype=dtype, device=cfg.device)


def trained_model(
    trainer: Trainer, load: Callable[[str], PreTrainedModel], base: str, out_dir: Path
) -> PreTrainedModel:
    """The trained model, whole and plain (LoRA merged), in every process: saved, then read back."""
    # Under FSDP a process holds a shard of every weight: the trainer's `save_model` gathers them
    # (every process takes part, the main one writes). Alone or data parallel it is the same round
    # trip. `load(path)` builds the stage's model class; LoRA adapters are loaded onto `load(base)`.
    # Full fine-tuning reads its fp32 weights back in fp32: rounded to bf16, most of a small-lr
    # run's updates would be lost again.
    folder = out_dir / TRAINED_DIR
    if is_main():  # a crashed run's leftovers (an adapter) must not be read as this run's
        shutil.rmtree(folder, ignore_errors=True)
    trainer.save_model(str(folder))
    barrier()  # the main process has written it
    if (folder / "adapter_config.json").exists():  # LoRA: only the adapters (and a LoRA'd head)
        model = PeftModel.from_pretrained(load(base), folder).merge_and_unload()
    else:
        model = load(str(folder))
    barrier()  # every process has read it
    if is_main():
        shutil.rmtree(folder)
    return model
