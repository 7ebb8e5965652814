"""The pipeline: stages in order, each writing `<run_dir>/<stage>/`, reused once done.

A stage is reused when its `metrics.json` exists and was made with the same settings;
when a stage runs again, every stage after it runs again too.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab import metrics as M
from lab.config import LabConfig
from lab.distributed import barrier, is_main
from lab.overrides import apply_overrides, from_dict, to_dict
from lab.recipes import base_model_path
from lab.runlog import LOG_FILE, METRICS_FILE, RunLog, is_done, read_metrics, write_json
from lab.world.build import build_world

CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Stage:
    """A named step of the pipeline and the config sections its output depends on.

    Under `accelerate launch` a `parallel` stage runs in every process (data parallel); the
    others run in the main process while the rest wait.
    """

    name: str
    run: Callable[..., dict]
    depends_on: tuple[str, ...]
    resumable: bool = False
    parallel: bool = True
    optional: bool = False  # runs only when `cfg.stages` names it (or it is asked for itself)


def run_world(cfg: LabConfig, run_dir: Path) -> dict:
    """Generate the tiny world's datasets."""
    log = RunLog(run_dir / "world")
    stats = build_world(cfg.world, run_dir / "world")
    return log.finish({**stats, M.STAGE_SECONDS: log.elapsed})


def run_pretrain_stage(cfg: LabConfig, run_dir: Path) -> dict:
    """Pretrain the tiny base model, or note that the base comes from the hub."""
    if cfg.model.name_or_path:
        out = run_dir / "pretrain"
        out.mkdir(parents=True, exist_ok=True)
        metrics = {M.PRETRAIN_BASE_MODEL: cfg.model.name_or_path, M.STAGE_SECONDS: 0.0}
        write_json(out / "metrics.json", metrics)
        return metrics
    from lab.pretrain import run_pretrain  # torch import only when needed

    return run_pretrain(cfg, run_dir / "world", run_dir / "pretrain")


def run_classifier_stage(cfg: LabConfig, run_dir: Path) -> dict:
    """Train a sentence classifier on the world's text (a reward for `+sentiment` / `+detox`)."""
    from lab.classifier import run_classifier

    return run_classifier(cfg, base_model_path(cfg, run_dir), run_dir / "classifier")


def run_sft_stage(cfg: LabConfig, run_dir: Path) -> dict:
    """Fine-tune the base model on the world's demonstrations."""
    from lab.sft import run_sft

    return run_sft(cfg, base_model_path(cfg, run_dir), run_dir / "world", run_dir / "sft")


def run_reward_stage(cfg: LabConfig, run_dir: Path) -> dict:
    """Train a reward model on preference pairs, starting from the SFT model."""
    from lab.reward import run_reward

    return run_reward(cfg, str(run_dir / "sft" / "model"), run_dir / "world", run_dir / "reward")


def run_ppo_stage(cfg: LabConfig, run_dir: Path, resume: bool = False) -> dict:
    """Optimise the SFT policy against the reward model with the lab's PPO."""
    from lab.ppo import run_ppo

    return run_ppo(cfg, run_dir, run_dir / "ppo", resume=resume)


def run_dpo_stage(cfg: LabConfig, run_dir: Path) -> dict:
    """Train the SFT model on the preference pairs with DPO (no reward model in the loop)."""
    from lab.dpo import run_dpo

    return run_dpo(cfg, run_dir, run_dir / "dpo")


def run_grpo_stage(cfg: LabConfig, run_dir: Path) -> dict:
    """Optimise the SFT policy against the reward model with TRL's GRPO."""
    from lab.grpo import run_grpo

    return run_grpo(cfg, run_dir, run_dir / "grpo")


def run_orpo_stage(cfg: LabConfig, run_dir: Path) -> dict:
    """Train the SFT model on DPO's preference pairs with ORPO (no reference model, no reward model)."""
    from lab.orpo import run_orpo

    return run_orpo(cfg, run_dir, run_dir / "orpo")


# A stage depends on its own section and on everything the stages before it depend on.
BASE = ("world", "tokenizer", "model", "pretrain", "seed")
TRAIN = (*BASE, "data")  # from SFT on, a recipe's datasets may replace the world's
STAGES = [
    Stage("world", run_world, ("world",), parallel=False),
    Stage("pretrain", run_pretrain_stage, BASE),
    Stage("classifier", run_classifier_stage, (*BASE, "classifier"), optional=True),
    Stage("sft", run_sft_stage, (*TRAIN, "sft")),
    Stage("reward", run_reward_stage, (*TRAIN, "sft", "reward")),
    Stage("ppo", run_ppo_stage, (*TRAIN, "sft", "reward", "ppo"), resumable=True),
    Stage("dpo", run_dpo_stage, (*TRAIN, "sft", "reward", "dpo")),  # the pairs and RM are reward's
    Stage("grpo", run_grpo_stage, (*TRAIN, "sft", "reward", "grpo")),
    Stage("orpo", run_orpo_stage, (*TRAIN, "sft", "reward", "orpo")),  # last: a comparison
]
STAGE_NAMES = [s.name for s in STAGES]


def wanted(cfg: LabConfig, stage: Stage, until: str) -> bool:
    """Whether `run_stages(..., until)` runs `stage`: the stages `cfg.stages` names (empty: all
    but the optional ones), and `until` itself."""
    if stage.name == until:
        return True
    named = [n.strip() for n in cfg.stages.split(",") if n.strip()]
    return stage.name in named if named else not stage.optional


def check_stages(cfg: LabConfig) -> None:
    """Refuse a `stages` setting that names a stage the lab does not have."""
    named = [n.strip() for n in cfg.stages.split(",") if n.strip()]
    if unknown := [n for n in named if n not in STAGE_NAMES]:
        raise ValueError(f"stages: unknown stage {unknown[0]!r}; stages: {', '.join(STAGE_NAMES)}")


def last_stage(cfg: LabConfig) -> str:
    """Where `python -m lab pipeline` stops: the last stage this config runs."""
    return [s.name for s in STAGES if wanted(cfg, s, until="")][-1]


NOT_OUTPUTS = {LOG_FILE, METRICS_FILE, "tensorboard", "checkpoints"}  # no later stage reads them


def stage_outputs(out: Path) -> str:
    """What a finished stage left in its folder for later stages, comma-separated."""
    names = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    return ",".join(name for name in names if name not in NOT_OUTPUTS)


def missing_outputs(out: Path, metrics: dict) -> list[str]:
    """What a finished stage left (its `M.STAGE_OUTPUTS`) and is gone now, e.g. a deleted
    model: reusing the stage would fail later, in a stage that reads it."""
    return [n for n in metrics.get(M.STAGE_OUTPUTS, "").split(",") if n and not (out / n).exists()]


def rerun_reason(stale: bool, missing: list[str], changed: list[str]) -> str:
    """Why a finished stage must run again ('' if it need not): its settings, what it left for
    later stages, or a file it read."""
    if stale:
        return "settings changed"
    if missing:
        return f"{', '.join(missing)} missing"
    return f"{', '.join(changed)} changed" if changed else ""


def fingerprint(cfg: LabConfig, sections: tuple[str, ...]) -> str:
    """A short hash of the config sections a stage depends on."""
    data = to_dict(cfg)
    blob = json.dumps({s: data[s] for s in sections}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def input_digests(cfg: LabConfig, sections: tuple[str, ...]) -> str:
    """The local files the stage's settings name (`reward.train_data=my_pairs.jsonl`) and a
    digest of each, as JSON text for metrics.json ('' when none)."""
    data = to_dict(cfg)
    files = sorted(local_files({s: data[s] for s in sections}))
    return json.dumps([[path, file_digest(path)] for path in files]) if files else ""


def changed_inputs(metrics: dict) -> list[str]:
    """The files a finished stage read (its `M.STAGE_INPUTS`) that are different now: fixed in
    place, the stage must run again. A file that is gone (moved, another machine) is no change."""
    recorded = json.loads(metrics.get(M.STAGE_INPUTS) or "[]")
    return [p for p, digest in recorded if Path(p).is_file() and file_digest(p) != digest]


def local_files(settings: object) -> set[str]:
    """The text settings in `settings` (nested dicts) that name a file on this machine."""
    if isinstance(settings, dict):
        return set().union(*(local_files(value) for value in settings.values()))
    return (
        {settings} if isinstance(settings, str) and settings and Path(settings).is_file() else set()
    )


def file_digest(path: str) -> str:
    """The sha256 of a file's contents, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_stages(
    cfg: LabConfig, run_dir: Path, until: str, force: bool = False, resume: bool = False
) -> dict[str, dict]:
    """Run every stage up to `until`, reusing finished ones; `force` reruns `until` itself.

    `resume` continues an interrupted resumable stage (`until`) from its last checkpoint.
    """
    check_stages(cfg)
    results, rerun = {}, False
    run_dir.mkdir(parents=True, exist_ok=True)
    config, previous = run_dir / CONFIG_FILE, None
    if is_main():  # under `accelerate launch` only one process writes files
        previous = config.read_bytes() if config.is_file() else None
        write_json(config, to_dict(cfg))  # the settings of the latest stages run
    try:
        for stage in STAGES[: STAGE_NAMES.index(until) + 1]:
            rerun = run_stage(cfg, run_dir, stage, until, force, resume, rerun, results)
    except BaseException:
        if is_main() and previous is not None:  # a failed run leaves the settings it found
            config.write_bytes(previous)
        raise
    return results


def run_stage(
    cfg: LabConfig, run_dir: Path, stage: Stage, until: str, force: bool, resume: bool,
    rerun: bool, results: dict[str, dict],
) -> bool:  # fmt: skip
    """One stage of `run_stages`: reused, or run into its folder. A stage that fails leaves its
    previous finished folder as it was: the old one is moved aside until the new one is done.
    Returns whether the stages after it must rerun."""
    if not wanted(cfg, stage, until):
        return rerun
    out, fp = run_dir / stage.name, fingerprint(cfg, stage.depends_on)
    aside = out.with_name(out.name + ".previous")
    if is_main() and aside.is_dir() and not is_done(out) and not resume:
        shutil.rmtree(out, ignore_errors=True)  # a run killed mid-stage: the finished one is back
        aside.rename(out)
    barrier()
    done = read_metrics(out) if is_done(out) else None
    stale = done is not None and done.get(M.STAGE_FINGERPRINT) != fp
    why = rerun_reason(stale, missing_outputs(out, done or {}), changed_inputs(done or {}))
    if done is not None and not (rerun or why or (force and stage.name == until)):
        print(f"[{stage.name}] reusing {out}")
        results[stage.name] = read_metrics(out)
        return rerun
    resuming = resume and stage.resumable and stage.name == until and not stale
    if is_main() and out.exists() and not resuming:
        shutil.rmtree(aside, ignore_errors=True)
        if is_done(out):
            out.rename(aside)
        else:  # an interrupted run's leftovers
            shutil.rmtree(out)
    barrier()
    print(f"[{stage.name}] running -> {out}" + (f" ({why})" if why else ""))
    extra = {"resume": resuming} if stage.resumable else {}
    try:
        ran = stage.run(cfg, run_dir, **extra) if stage.parallel or is_main() else {}
    except BaseException:
        if is_main() and aside.exists():  # put the finished folder back
            shutil.rmtree(out, ignore_errors=True)
            aside.rename(out)
        raise
    metrics = {**ran, M.STAGE_FINGERPRINT: fp}
    if is_main():
        metrics[M.STAGE_OUTPUTS] = stage_outputs(out)
        if inputs := input_digests(cfg, stage.depends_on):
            metrics[M.STAGE_INPUTS] = inputs
        write_json(out / METRICS_FILE, metrics)
        shutil.rmtree(aside, ignore_errors=True)
    barrier()
    results[stage.name] = metrics
    return True


def settings_of(run_dir: Path, default: LabConfig | None) -> LabConfig | None:
    """The settings a run was made with, or `default` for a folder the pipeline did not write:
    a script that reuses a run's stages must not rewrite its config.json with other settings."""
    return load_run_config(run_dir) if (run_dir / CONFIG_FILE).is_file() else default


def load_run_config(run_dir: Path) -> LabConfig:
    """The settings a run folder was last made with (written by `run_stages`)."""
    path = run_dir / CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `python -m lab pipeline` first")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a run's settings ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a run's settings (a {type(data).__name__}, not a mapping)")
    try:
        return from_dict(data)
    except (KeyError, TypeError, ValueError) as err:
        reason = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        raise ValueError(f"{path}: {reason}") from None


def run_variant(
    cfg: LabConfig, run_dir: Path, name: str, overrides: dict, until: str
) -> tuple[LabConfig, Path, dict[str, dict]]:
    """The same run with `overrides` applied, in `<run_dir>-<name>/`, up to `until`.

    Finished stages that the change does not touch are copied over, so only the rest runs:
    `run_variant(cfg, RUN, "kl0", {"ppo.kl_coef": 0.0}, until="ppo")` trains PPO alone.
    """
    variant = copy.deepcopy(cfg)
    apply_overrides(variant, overrides)
    out = run_dir.parent / f"{run_dir.name}-{name}"
    for stage in STAGES[: STAGE_NAMES.index(until)]:
        src, fp = run_dir / stage.name, fingerprint(variant, stage.depends_on)
        if (
            is_done(src)
            and read_metrics(src).get(M.STAGE_FINGERPRINT) == fp
            and not is_done(out / stage.name)
        ):
            shutil.copytree(src, out / stage.name, dirs_exist_ok=True)
    return variant, out, run_stages(variant, out, until)
