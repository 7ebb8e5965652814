"""Stage 6 on the small world: DPO must learn the held-out preferences without losing gold,
and the KL-to-SFT yardstick it shares with GRPO (and PPO) must read log-probs correctly."""

import json
import math
import shutil

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from lab import metrics as M
from lab.data import load_prompts
from lab.dpo import run_dpo
from lab.evaluation import GOLD_TABLE, KL_DECODING, compute_kl_and_reward, sample_responses
from lab.models import load_causal_lm, load_tokenizer
from lab.profiles import load_config
from lab.reward_model import load_reward_model, score
from lab.runlog import read_log
from lab.world import World
from lab.world.build import FILES
from tests.conftest import SMALL, measured_again

DPO = {"dpo.max_train_pairs": 640, "dpo.logging_steps": 2}  # 20 steps


def copy_run(source, target):
    """The stages DPO and GRPO read, copied: the session's run folders are read-only."""
    for stage in ("world", "sft", "reward"):
        shutil.copytree(source / stage, target / stage)
    return target


@pytest.fixture(scope="module")
def dpo_run(small_reward_run, tmp_path_factory):
    run = copy_run(small_reward_run, tmp_path_factory.mktemp("dpo_run"))
    cfg = load_config("tiny", {**SMALL, **DPO})
    return run, run_dpo(cfg, run, run / "dpo")


# --- KL and reward-model score on fresh samples (shared by DPO, GRPO and PPO) --------------


@pytest.fixture(scope="module")
def models(small_reward_run):
    sft = small_reward_run / "sft" / "model"
    rm, rm_tokenizer = load_reward_model(small_reward_run / "reward" / "model")
    prompts = list(load_prompts(small_reward_run / "world" / FILES["eval_prompts"])["prompt"])
    return (
        load_causal_lm(str(sft), device="cpu"),
        load_tokenizer(str(sft)),
        rm,
        rm_tokenizer,
        prompts,
    )


def test_kl_of_a_model_to_itself_is_zero(models):
    sft, tokenizer, rm, rm_tokenizer, prompts = models
    out = compute_kl_and_reward(sft, sft, tokenizer, rm, rm_tokenizer, prompts[:8])
    assert out["kl"] == 0.0
    torch.manual_seed(KL_DECODING.seed)  # the same seed: the same draws
    samples = sample_responses(sft, tokenizer, prompts[:8], KL_DECODING)
    expected = score(rm, rm_tokenizer, prompts[:8], samples.texts)
    assert out["reward"] == pytest.approx(sum(expected) / 8)
    assert 0.0 <= out["eos_rate"] <= 1.0


def test_kl_matches_unpadded_log_probs(models, dpo_run):
    """Left padding, positions and the EOS mask: the batched KL equals one sequence at a time."""
    sft, tokenizer, rm, rm_tokenizer, prompts = models
    run, _ = dpo_run
    policy = AutoModelForCausalLM.from_pretrained(run / "dpo" / "model")
    batch = prompts[:6]  # prompts of different lengths: the batch is left-padded
    out = compute_kl_and_reward(policy, sft, tokenizer, rm, rm_tokenizer, batch)
    torch.manual_seed(KL_DECODING.seed)
    s = sample_responses(policy, tokenizer, batch, KL_DECODING)
    kls = []
    for ids, mask, resp_mask in zip(s.ids, s.mask, s.response_mask, strict=True):
        n = int(resp_mask.sum())  # response tokens up to and including EOS
        seq = ids[mask.bool()][None]  # (1, P + n): no left padding, nothing after EOS
        with torch.no_grad():  # exact KL over the vocabulary at each response position
            p, q = (
                torch.distributions.Categorical(
                    logits=m(seq).logits[0, -n - 1 : -1] / KL_DECODING.temperature
                )
                for m in (policy, sft)
            )
        kls.append(float(torch.distributions.kl_divergence(p, q).sum()))
    assert out["kl"] == pytest.approx(sum(kls) / len(kls), abs=1e-4)
    assert out["kl"] > 0.0


# --- the stage -------------------------------------------------------------------------------


def test_dpo_learns_the_held_out_preferences(dpo_run):
    run, metrics = dpo_run
    rows = read_log(run / "dpo")
    losses = [r[M.DPO_LOSS] for r in rows if M.DPO_LOSS in r]
    assert len(losses) == 10
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 < math.log(2) + 0.01, losses
    # Held-out pairs: the implicit reward beta * log(pi / pi_sft) orders them better than chance.
    assert metrics[M.DPO_EVAL_LOSS] < math.log(2) - 0.02
    assert (
        metrics[M.DPO_EVAL_ACCURACY] > 0.55
    )  # ~400 pairs: 0.55 is two standard errors over chance
    assert metrics[M.DPO_EVAL_MARGIN] > 0.0


def test_dpo_keeps_gold_and_reports_it_against_sft(dpo_run, small_cfg):
    run, metrics = dpo_run
    table = pd.read_json(run / "dpo" / GOLD_TABLE, lines=True)
    sft = pd.read_json(run / "sft" / GOLD_TABLE, lines=True)
    assert list(table["prompt"]) == list(sft["prompt"])  # the same held-out prompts
    world = World.from_seed(small_cfg.world.seed, small_cfg.world.n_countries)
    regraded = [
        world.gold_score(p, a) for p, a in zip(table["prompt"], table["answer"], strict=True)
    ]
    assert table["gold"].tolist() == pytest.approx(regraded)
    assert metrics[M.EVAL_GOLD_MEAN] == pytest.approx(table["gold"].mean())
    assert metrics[M.EVAL_GOLD_MEAN] > sft["gold"].mean() - 0.3, metrics
    assert metrics[M.EVAL_WIN_RATE] > 0.4
    assert sum(metrics[M.DPO_WIN_TIE_LOSS]) == pytest.approx(1.0)
    assert 0.0 < metrics[M.DPO_EVAL_KL] < 5.0
    again = measured_again(load_config("tiny", {**SMALL, **DPO}), run, "dpo")
    assert metrics[M.DPO_EVAL_KL] == pytest.approx(again["kl"], rel=1e-4)  # each under its name
    assert metrics[M.DPO_EVAL_REWARD] == pytest.approx(again["reward"], rel=1e-4, abs=1e-5)
    assert metrics[M.DPO_EVAL_EOS_RATE] == pytest.approx(again["eos_rate"])


def test_dpo_saves_a_plain_model(dpo_run):
    run, metrics = dpo_run
    for name in ("log.jsonl", "metrics.json", GOLD_TABLE):
        assert (run / "dpo" / name).exists()
    assert not (run / "dpo" / "model" / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(run / "dpo" / "model")
    load_tokenizer(str(run / "dpo" / "model"))
    assert metrics["dpo/steps"] == 20
    json.dumps(metrics)


def test_lora_dpo_saves_merged_weights(small_reward_run, tmp_path):
    run = copy_run(small_reward_run, tmp_path)
    cfg = load_config("tiny", {**SMALL, "dpo.max_train_pairs": 64, "dpo.lora_r": 4})
    run_dpo(cfg, run, run / "dpo")  # the reference is the same weights with the adapters off
    folder = run / "dpo" / "model"
    assert not (folder / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(folder)
    sft = AutoModelForCausalLM.from_pretrained(run / "sft" / "model")
    changed = [
        name
        for (name, p), (_, q) in zip(merged.named_parameters(), sft.named_parameters(), strict=True)
        if not p.equal(q)
    ]
    assert changed and all("proj" in name for name in changed)  # only where LoRA adapted


def test_dpo_in_bf16_moves_nearly_every_weight(small_reward_run, tmp_path):
    """A bf16 profile at a real profile's DPO learning rate: the policy trains fp32 weights under
    bf16 autocast and is saved in fp32, so nearly every weight moves. Trained in bf16 weights,
    a step of 5e-7 is below half a bf16 ulp: 0.5% of them moved."""
    run = copy_run(small_reward_run, tmp_path)
    settings = {"model.dtype": "bfloat16", "dpo.lr": 5e-7, "dpo.warmup_ratio": 0.0}
    settings |= {"dpo.max_train_pairs": 64, "dpo.batch_size": 16}
    cfg = load_config("tiny", {**SMALL, **settings})
    metrics = run_dpo(cfg, run, run / "dpo")
    assert metrics["dpo/steps"] == 4
    policy = AutoModelForCausalLM.from_pretrained(run / "dpo" / "model")
    sft = AutoModelForCausalLM.from_pretrained(run / "sft" / "model")
    assert policy.dtype == torch.float32  # saved as trained: bf16 would round the steps away
    moved = total = 0
    for p, q in zip(policy.parameters(), sft.parameters(), strict=True):
        moved, total = moved + int((p != q).sum()), total + p.numel()
    assert moved / total > 0.9
