"""Stage 2 end to end on the small world: SFT must fit the demonstrations and beat the base model."""

import json
import math

import pandas as pd
import pytest
from transformers import AutoModelForCausalLM

from lab import metrics as M
from lab.evaluation import BASE_GOLD_TABLE, GOLD_TABLE
from lab.runlog import RunLog, read_log, read_metrics
from lab.sft import run_sft
from lab.trainers import ForwardLogs, lora_config
from lab.world import World


def test_forward_logs_renames_and_drops(tmp_path):
    log = RunLog(tmp_path)
    forward = ForwardLogs(log, {"loss": M.SFT_LOSS, "eval_loss": M.SFT_EVAL_LOSS})

    class State:
        global_step = 7

    forward.on_log(None, State(), None, logs={"loss": 1.5, "grad_norm": 3.0, "epoch": 0.1})
    forward.on_log(None, State(), None, logs={"epoch": 0.2})  # nothing the lab names: no row
    log.finish({})
    assert read_log(tmp_path) == [{"step": 7, "time": pytest.approx(0, abs=1), M.SFT_LOSS: 1.5}]


def test_lora_config_zero_rank_means_full_fine_tuning():
    assert lora_config(0, 16, "CAUSAL_LM") is None
    lora = lora_config(8, 16, "CAUSAL_LM")
    assert lora.r == 8 and lora.lora_alpha == 16 and lora.target_modules == "all-linear"


def test_sft_held_out_loss_falls(small_sft_run):
    metrics = read_metrics(small_sft_run / "sft")
    rows = read_log(small_sft_run / "sft")
    evals = [r[M.SFT_EVAL_LOSS] for r in rows if M.SFT_EVAL_LOSS in r]
    assert rows[0]["step"] == 0 and evals[0] == metrics[M.SFT_BASE_EVAL_LOSS]
    assert evals[-1] == metrics[M.SFT_EVAL_LOSS] < 0.85 * metrics[M.SFT_BASE_EVAL_LOSS], evals
    assert math.isclose(metrics[M.SFT_EVAL_PPL], math.exp(metrics[M.SFT_EVAL_LOSS]))
    train = [r[M.SFT_LOSS] for r in rows if M.SFT_LOSS in r]
    assert len(train) >= 3 and train[-1] < train[0]


def test_sft_beats_base_on_gold(small_sft_run, small_cfg):
    metrics = read_metrics(small_sft_run / "sft")
    sft = pd.read_json(small_sft_run / "sft" / GOLD_TABLE, lines=True)
    base = pd.read_json(small_sft_run / "sft" / BASE_GOLD_TABLE, lines=True)
    assert len(sft) == len(base) == small_cfg.world.n_eval_prompts
    assert list(sft["prompt"]) == list(base["prompt"])  # the same held-out prompts
    # The tables hold what the metrics claim: rescore the answers with the gold judge.
    world = World.from_seed(small_cfg.world.seed, small_cfg.world.n_countries)
    regraded = [world.gold_score(p, a) for p, a in zip(sft["prompt"], sft["answer"], strict=True)]
    assert sft["gold"].tolist() == pytest.approx(regraded)
    assert metrics[M.EVAL_GOLD_MEAN] == pytest.approx(sft["gold"].mean())
    assert metrics[M.EVAL_BASE_GOLD_MEAN] == pytest.approx(base["gold"].mean())
    assert metrics[M.EVAL_GOLD_MEAN] > metrics[M.EVAL_BASE_GOLD_MEAN] + 1.0, metrics
    assert metrics[M.EVAL_WIN_RATE] > 0.65
    assert len(metrics["sft/samples"]) == small_cfg.sft.n_samples


def test_lora_sft_saves_a_plain_merged_model(small_run, small_cfg, tmp_path):
    from lab.profiles import load_config
    from tests.conftest import SMALL

    cfg = load_config("tiny", {**SMALL, "sft.lora_r": 4, "sft.epochs": 0.2, "sft.lr": 3e-3})
    world_dir = small_run / "world"
    base = str(small_run / "pretrain" / "model")
    metrics = run_sft(cfg, base, world_dir, tmp_path / "sft")
    folder = tmp_path / "sft" / "model"
    assert not (folder / "adapter_config.json").exists()
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    merged = AutoModelForCausalLM.from_pretrained(folder)
    original = AutoModelForCausalLM.from_pretrained(base)
    changed = [
        name
        for (name, p), (_, q) in zip(
            merged.named_parameters(), original.named_parameters(), strict=True
        )
        if not p.equal(q)
    ]
    # The merged weights differ from the base in the linear layers LoRA adapted, and only there.
    assert changed and all("proj" in name for name in changed)
    assert metrics[M.SFT_EVAL_LOSS] < metrics[M.SFT_BASE_EVAL_LOSS]


def test_a_crashed_runs_leftover_adapter_is_not_read_back(small_run, tmp_path):
    """`trained_model` reads the trainer's save back; an old adapter there must not be merged in."""
    from lab.profiles import load_config
    from lab.trainers import TRAINED_DIR
    from tests.conftest import SMALL

    cfg = load_config("tiny", {**SMALL, "sft.epochs": 0.2})  # full fine-tuning
    stale = tmp_path / "sft" / TRAINED_DIR
    stale.mkdir(parents=True)
    (stale / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 4}')
    base = str(small_run / "pretrain" / "model")
    run_sft(cfg, base, small_run / "world", tmp_path / "sft")
    assert not stale.exists()
    # The saved model is the full fine-tune: weights LoRA never touches moved too.
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "sft" / "model").state_dict()
    original = AutoModelForCausalLM.from_pretrained(base).state_dict()
    assert not saved["model.norm.weight"].equal(original["model.norm.weight"])
