"""Stage 6 on the small world: GRPO must raise the reward model's score, reading it through `score`."""

import json

import pandas as pd
import pytest
from transformers import AutoModelForCausalLM

from lab import metrics as M
from lab.evaluation import GOLD_TABLE, compute_win_rate
from lab.grpo import REWARD_NAME, reward_function, run_grpo
from lab.profiles import load_config
from lab.reward_model import load_reward_model, score
from lab.reward_sources import model_scorer
from lab.runlog import read_log
from tests.conftest import SMALL, measured_again
from tests.test_dpo import copy_run

# All 200 RL prompts of the small world, 4 per step (8 answers each): 50 steps.
GRPO = {"grpo.max_prompts": 0}


@pytest.fixture(scope="module")
def grpo_run(small_reward_run, tmp_path_factory):
    run = copy_run(small_reward_run, tmp_path_factory.mktemp("grpo_run"))
    cfg = load_config("tiny", {**SMALL, **GRPO})
    return run, run_grpo(cfg, run, run / "grpo"), cfg


def test_reward_function_reads_trl_completions_through_score(small_reward_run):
    rm, rm_tokenizer = load_reward_model(small_reward_run / "reward" / "model")
    eos = rm_tokenizer.eos_token_id
    fn = reward_function(model_scorer(rm, rm_tokenizer), eos, missing_eos_penalty=1.5)
    assert fn.__name__ == REWARD_NAME  # TRL logs rewards/<name>/mean
    prompts = ["What is 2 plus 3?", "Tell me the capital of Shoos."]
    answers = ["2 plus 3 is 5.", "The capital of Shoos is Grilo."]
    expected = score(rm, rm_tokenizer, prompts, answers)
    ended, cut = [[7, eos], [8, eos]], [[7, eos], [8, 9]]  # the second answer never ended
    # Conversational, as TRL passes it: message lists, one assistant message per completion.
    conversational = fn(
        prompts=[[{"role": "user", "content": p}] for p in prompts],
        completions=[[{"role": "assistant", "content": " " + a}] for a in answers],
        completion_ids=ended,
        trainer_state=None,
    )
    assert conversational == pytest.approx(expected)
    standard = fn(prompts=prompts, completions=answers, completion_ids=cut)
    assert standard == pytest.approx([expected[0], expected[1] - 1.5])


def test_grpo_raises_the_reward(grpo_run):
    run, metrics, _ = grpo_run
    rows = read_log(run / "grpo")
    rewards = [r[M.GRPO_REWARD] for r in rows]
    assert len(rewards) == metrics["grpo/steps"] == 50
    first, last = sum(rewards[:8]) / 8, sum(rewards[-8:]) / 8
    assert last > first + 0.3, (first, last)
    assert rows[0][M.GRPO_KL] == pytest.approx(0.0, abs=1e-3)  # policy == SFT at the start
    assert rows[-1][M.GRPO_KL] > 0.0
    assert 0.0 < metrics[M.GRPO_EVAL_KL] < 20.0
    again = measured_again(grpo_run[2], run, "grpo")
    assert metrics[M.GRPO_EVAL_KL] == pytest.approx(again["kl"], rel=1e-4)  # each under its name
    assert metrics[M.GRPO_EVAL_REWARD] == pytest.approx(again["reward"], rel=1e-4, abs=1e-5)


def test_grpo_saves_and_reports_against_sft(grpo_run):
    run, metrics, cfg = grpo_run
    for name in ("log.jsonl", "metrics.json", GOLD_TABLE):
        assert (run / "grpo" / name).exists()
    AutoModelForCausalLM.from_pretrained(run / "grpo" / "model")
    table = pd.read_json(run / "grpo" / GOLD_TABLE, lines=True)
    assert len(table) == cfg.world.n_eval_prompts
    assert metrics[M.EVAL_GOLD_MEAN] == pytest.approx(table["gold"].mean())
    sft = pd.read_json(run / "sft" / GOLD_TABLE, lines=True)
    win = compute_win_rate(table["gold"].tolist(), sft["gold"].tolist())  # prompt by prompt
    assert metrics[M.EVAL_WIN_RATE] == pytest.approx(win.win_or_half_tie)
    assert metrics[M.GRPO_WIN_TIE_LOSS] == pytest.approx([win.win, win.tie, win.loss])
    assert sum(metrics[M.GRPO_WIN_TIE_LOSS]) == pytest.approx(1.0)
    assert metrics[M.GRPO_EVAL_EOS_RATE] > 0.5
    json.dumps(metrics)
