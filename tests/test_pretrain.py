"""Stage 1 end to end on the small world: the base model must learn the world's language."""

import math

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from lab import metrics as M
from lab.cli import main
from lab.generation import DecodingConfig, generate
from lab.pretrain import lr_at, pack
from lab.runlog import read_log, read_metrics
from lab.world import World


def test_lr_schedule():
    assert lr_at(0, 1.0, 10, 100) == pytest.approx(0.1)
    assert lr_at(9, 1.0, 10, 100) == pytest.approx(1.0)
    assert lr_at(10, 1.0, 10, 100) == pytest.approx(1.0)
    assert lr_at(55, 1.0, 10, 100) == pytest.approx(0.55)  # half way: 0.1 + 0.9 * 0.5
    assert lr_at(100, 1.0, 10, 100) == pytest.approx(0.1)


def test_pack_cuts_full_blocks():
    blocks = pack([[1, 2, 3], [4, 5], [6, 7, 8, 9]], block_len=4)
    assert blocks.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]


def test_pretraining_loss_falls(small_run):
    rows = read_log(small_run / "pretrain")
    metrics = read_metrics(small_run / "pretrain")
    first = sum(r[M.PRETRAIN_LOSS] for r in rows[:10]) / 10
    last = sum(r[M.PRETRAIN_LOSS] for r in rows[-10:]) / 10
    assert first > 5.0 and last < 1.5, (first, last)  # from uniform over ~1k tokens to fluent
    assert metrics[M.PRETRAIN_EVAL_LOSS] < 1.5
    assert math.isclose(metrics[M.PRETRAIN_EVAL_PPL], math.exp(metrics[M.PRETRAIN_EVAL_LOSS]))


def test_base_model_speaks_the_world_but_is_no_assistant(small_run, small_cfg):
    folder = small_run / "pretrain" / "model"
    model = AutoModelForCausalLM.from_pretrained(folder)  # the same call as for a hub id
    tokenizer = AutoTokenizer.from_pretrained(folder)
    world = World.from_seed(small_cfg.world.seed, small_cfg.world.n_countries)
    prompts = [
        "What is 3 plus 4?",
        "How can I sleep better?",
        f"What is the capital of {world.kb.countries[0].name}?",
    ] * 6
    answers = generate(model, tokenizer, prompts, DecodingConfig(max_new_tokens=48, seed=1))
    from lab.world.judge import in_world_rate

    assert in_world_rate(answers) > 0.7, answers  # in-world sentences, not byte soup
    gold = [world.gold_score(p, a) for p, a in zip(prompts, answers, strict=True)]
    assert sum(gold) / len(gold) < 2.0, list(zip(answers, gold, strict=True))  # room left for SFT


def test_cli_reuses_done_stages_and_reruns_changed_ones(small_run, tmp_path, capsys):
    import shutil

    from tests.conftest import SMALL

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    args = ["pretrain", "--out", str(run)] + [f"--set={k}={v}" for k, v in SMALL.items()]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[world] reusing" in out and "[pretrain] reusing" in out
    assert main([*args, "--set", "pretrain.steps=3", "--set", "pretrain.eval_every=3"]) == 0
    out = capsys.readouterr().out
    assert "[world] reusing" in out and "[pretrain] running" in out and "settings changed" in out
    assert len(read_log(run / "pretrain")) == 3


def test_cli_reports_bad_settings(capsys):
    assert main(["pretrain", "--set", "pretrain.stepz=3"]) == 2
    assert "pretrain.stepz" in capsys.readouterr().err


def test_hub_profile_skips_pretraining(tmp_path):
    from lab.profiles import load_config
    from lab.stages import base_model_path, run_stages

    cfg = load_config(
        "smollm2-135m",
        {
            "world.n_pretrain_docs": 10,
            "world.n_sft": 10,
            "world.n_pairs_train": 10,
            "world.n_pairs_test": 10,
        },
    )
    results = run_stages(cfg, tmp_path, until="pretrain")
    assert results["pretrain"]["pretrain/base_model"] == "HuggingFaceTB/SmolLM2-135M"
    assert base_model_path(cfg, tmp_path) == "HuggingFaceTB/SmolLM2-135M"
