"""Stage 6, ORPO: the odds-ratio term against a hand-computed value and TRL's own, then the stage
on the small world: it must raise the held-out pairs' log odds ratio without losing gold."""

import json
import math
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from transformers import AutoModelForCausalLM

from apps.pool import find_run_models
from lab import metrics as M
from lab.evaluation import GOLD_TABLE
from lab.models import load_tokenizer
from lab.orpo import ORPOTrainer, chat_text_pairs, ending_at, run_orpo, without_unwritten_bos
from lab.preference_math import log_odds, odds_ratio_loss, orpo_loss
from lab.profiles import load_config
from lab.runlog import read_log
from lab.stages import STAGE_NAMES
from lab.summary import compute_model_table, stage_headline
from tests.conftest import SMALL, chatml
from tests.test_dpo import copy_run

# --- the odds-ratio term ---------------------------------------------------------------------


def test_log_odds_by_hand():
    p = torch.tensor([0.5, 0.75, 0.1])
    assert log_odds(p.log()).tolist() == pytest.approx([0.0, math.log(3), math.log(1 / 9)])


def test_odds_ratio_loss_by_hand():
    # p(chosen) = 1/2: odds 1; p(rejected) = 1/4: odds 1/3. Log odds ratio log 3, and
    # -log sigmoid(log 3) = -log(3/4).
    chosen, rejected = torch.tensor([0.5]).log(), torch.tensor([0.25]).log()
    assert odds_ratio_loss(chosen, rejected).item() == pytest.approx(math.log(4 / 3))
    # Equal odds: log 2, as DPO's loss at its start; swapped: the loss grows.
    assert odds_ratio_loss(chosen, chosen).item() == pytest.approx(math.log(2))
    assert odds_ratio_loss(rejected, chosen).item() == pytest.approx(math.log(4))


def test_odds_ratio_loss_matches_trl():
    """TRL's `odds_ratio_loss` returns beta * log sigmoid(...): ours is minus it over beta."""
    torch.manual_seed(0)
    chosen = torch.cat([-torch.rand(62) * 5, torch.tensor([-1e-6, -60.0])])  # near 0 and far below
    rejected = torch.cat([-torch.rand(62) * 5, torch.tensor([-30.0, -1e-7])])
    trainer = SimpleNamespace(beta=0.25, accelerator=SimpleNamespace(device="cpu"))
    losses, *_, log_odds_ratio = ORPOTrainer.odds_ratio_loss(trainer, chosen, rejected)
    ours = odds_ratio_loss(chosen, rejected)
    assert torch.isfinite(ours).all()
    torch.testing.assert_close(ours, -losses / 0.25)
    torch.testing.assert_close((log_odds(chosen) - log_odds(rejected)).mean(), log_odds_ratio)


def test_orpo_loss_is_the_sft_loss_plus_lambda_times_the_term():
    chosen, rejected = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.25, 0.5]).log()
    expected = 1.5 + 0.1 * (math.log(4 / 3) + math.log(2)) / 2
    assert orpo_loss(torch.tensor(1.5), chosen, rejected, lam=0.1).item() == pytest.approx(expected)


# --- the stage -------------------------------------------------------------------------------

ORPO = {"orpo.max_train_pairs": 640, "orpo.logging_steps": 2}  # 20 steps


@pytest.fixture(scope="module")
def orpo_run(small_reward_run, tmp_path_factory):
    run = copy_run(small_reward_run, tmp_path_factory.mktemp("orpo_run"))
    cfg = load_config("tiny", {**SMALL, **ORPO})
    return run, run_orpo(cfg, run, run / "orpo")


def test_pairs_end_at_eos_so_trl_adds_no_second_one(small_sft_run, tmp_path):
    from datasets import Dataset
    from trl.data_utils import maybe_apply_chat_template

    assert ending_at("It is 5.<|im_end|>\n", "<|im_end|>") == "It is 5.<|im_end|>"
    assert ending_at("no end", "<|im_end|>") == "no end"
    pairs = Dataset.from_list([{
        "prompt": [{"role": "user", "content": "What is 2 plus 3?"}],
        "chosen": [{"role": "assistant", "content": "It is 5."}],
        "rejected": [{"role": "assistant", "content": "It is 6, friend."}],
    }])  # fmt: skip
    tiny = load_tokenizer(str(small_sft_run / "sft" / "model"))
    rendered = chat_text_pairs(pairs, tiny)[0]  # the tiny template: exactly TRL's own text
    assert rendered == maybe_apply_chat_template(pairs[0], tiny)
    assert without_unwritten_bos(tiny) is tiny  # the tiny template starts with its BOS
    chatml(tiny).save_pretrained(tmp_path / "chatml")
    ends_in_newline = load_tokenizer(str(tmp_path / "chatml"))  # EOS becomes <|im_end|>
    rendered = chat_text_pairs(pairs, ends_in_newline)[0]
    assert maybe_apply_chat_template(pairs[0], ends_in_newline)["chosen"].endswith("<|im_end|>\n")
    for side in ("chosen", "rejected"):
        ids = ends_in_newline(rendered[side], add_special_tokens=False)["input_ids"]
        assert ids[-1] == ends_in_newline.eos_token_id and ids.count(ids[-1]) == 1
    # TRL prepends BOS to a prompt without one: ChatML writes none, so ORPO's tokenizer has none.
    plain = without_unwritten_bos(ends_in_newline)
    assert ends_in_newline.bos_token and plain.bos_token is None and plain is not ends_in_newline
    assert ends_in_newline.bos_token == "<|bos|>"  # the caller's tokenizer keeps its own


def test_orpo_raises_the_held_out_log_odds_ratio(orpo_run):
    run, metrics = orpo_run
    rows = read_log(run / "orpo")
    evals = [r for r in rows if M.ORPO_EVAL_LOG_ODDS_RATIO in r]
    assert [r["step"] for r in evals] == [0, 20]  # before training (the SFT model) and after
    before, after = evals[0], evals[-1]
    # No reference model: the SFT model already has its own odds; ORPO must widen them.
    assert after[M.ORPO_EVAL_LOG_ODDS_RATIO] > before[M.ORPO_EVAL_LOG_ODDS_RATIO], evals
    assert after[M.ORPO_EVAL_LOSS] < before[M.ORPO_EVAL_LOSS], evals
    assert after[M.ORPO_EVAL_NLL] < before[M.ORPO_EVAL_NLL], evals  # the SFT term on chosen
    assert metrics[M.ORPO_EVAL_ACCURACY] > 0.55  # ~400 pairs: two standard errors over chance
    # Training batches are fresh pairs each step (one epoch): their losses move with the batch,
    # so the held-out pairs, scored before and after, are the measurement.
    losses = [r[M.ORPO_LOSS] for r in rows if M.ORPO_LOSS in r]
    assert len(losses) == 10 and all(map(math.isfinite, losses)), losses


def test_orpo_keeps_gold_and_reports_it_against_sft(orpo_run):
    run, metrics = orpo_run
    table = pd.read_json(run / "orpo" / GOLD_TABLE, lines=True)
    sft = pd.read_json(run / "sft" / GOLD_TABLE, lines=True)
    assert list(table["prompt"]) == list(sft["prompt"])  # the same yardstick as DPO and GRPO
    assert metrics[M.EVAL_GOLD_MEAN] == pytest.approx(table["gold"].mean())
    assert metrics[M.EVAL_GOLD_MEAN] > sft["gold"].mean() - 0.3, metrics
    assert sum(metrics[M.ORPO_WIN_TIE_LOSS]) == pytest.approx(1.0)
    assert 0.0 < metrics[M.ORPO_EVAL_KL] < 5.0
    assert math.isfinite(metrics[M.ORPO_EVAL_REWARD])
    assert metrics[M.ORPO_STEPS] == 20 and metrics[M.ORPO_TRAIN_PAIRS] == 640
    json.dumps(metrics)


def test_orpo_is_a_stage_the_summary_and_the_arena_know(orpo_run):
    run, metrics = orpo_run
    assert STAGE_NAMES[-1] == "orpo"  # after DPO and GRPO: the comparison runs last
    assert not (run / "orpo" / "model" / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(run / "orpo" / "model")
    assert find_run_models(run)["orpo"] == str(run / "orpo" / "model")
    models = compute_model_table(run).set_index("model")
    assert models.loc["orpo", "kl_to_sft"] == pytest.approx(metrics[M.ORPO_EVAL_KL])
    assert stage_headline("orpo", metrics).startswith("ORPO, with no reference model")
