"""Task recipes: a profile plus a recipe's datasets, run through the same stages offline.

The hub recipes (`tldr`, `ultrafeedback`) need the network; here local files of the same
shape (TL;DR-style prompt/completion and prompt/chosen/rejected) stand in for them.
"""

from __future__ import annotations

import json
import random
import shutil

import pandas as pd
import pytest

import lab.notebook
from lab import metrics as M
from lab import recipes
from lab.evaluation import GOLD_TABLE
from lab.notebook import notebook_setup
from lab.profiles import load_config
from lab.stages import run_stages
from lab.summary import compute_model_table
from tests.conftest import SMALL

PETS = ["cat", "dog", "parrot", "rabbit"]
WORRIES = ["sleeps all day", "eats my socks", "hates the vet", "barks at night"]


def tldr_rows(n: int, rng: random.Random) -> list[dict]:
    """Reddit-TL;DR-shaped posts whose right summary is known."""
    rows = []
    for i in range(n):
        pet, worry = rng.choice(PETS), rng.choice(WORRIES)
        post = f"My {pet} {worry}. It started last week and I do not know what to do. Post {i}."
        prompt = f"SUBREDDIT: r/pets\n\nTITLE: help with my {pet}\n\nPOST: {post}\n\nTL;DR:"
        rows.append({"prompt": prompt, "completion": f" my {pet} {worry}, what do I do?"})
    return rows


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture(scope="module")
def recipe_files(tmp_path_factory):
    rng, folder = random.Random(0), tmp_path_factory.mktemp("recipe")
    demos = tldr_rows(64, rng)
    pairs = [
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": " lol idk, ask google"}
        for r in tldr_rows(96, rng)
    ]
    return {
        "data.sft": write_jsonl(folder / "sft.jsonl", demos),
        "data.prompts": write_jsonl(folder / "prompts.jsonl", tldr_rows(40, rng)),
        "reward.train_data": write_jsonl(folder / "pairs.jsonl", pairs),
    }


def test_a_recipe_is_a_diff_added_to_a_profile():
    cfg = load_config("smollm2-360m+tldr")
    assert cfg.model.name_or_path == "HuggingFaceTB/SmolLM2-360M"
    assert cfg.data.sft == "trl-lib/tldr" and cfg.reward.train_data == "trl-lib/tldr-preference"
    assert load_config("smollm2-360m").data.sft == ""  # the profile alone keeps the world
    with pytest.raises(KeyError, match="unknown recipe 'tldrr'"):
        load_config("tiny+tldrr")


def test_only_the_world_has_a_gold_judge():
    assert recipes.gold_judge(load_config("tiny")) is not None
    assert recipes.gold_judge(load_config("tiny+ultrafeedback")) is None


def test_a_recipe_holds_out_the_tail_of_its_prompts(recipe_files, tmp_path):
    cfg = load_config(
        "tiny", {"data.prompts": recipe_files["data.prompts"], "data.n_eval_prompts": 8}
    )
    rl, held_out = recipes.rl_prompts(cfg, tmp_path), recipes.eval_prompts(cfg, tmp_path)
    assert len(rl) == 32 and len(held_out) == 8 and rl[-1] != held_out[0]
    for n in (0, 40):  # nothing held out, or nothing left to train on: a clear error
        cfg.data.n_eval_prompts = n
        with pytest.raises(ValueError, match="n_eval_prompts"):
            recipes.rl_prompts(cfg, tmp_path)


def test_separate_eval_prompts_are_a_fixed_sample_not_the_head(tmp_path):
    # A split sorted by label (IMDB's test split) must not give held-out prompts of one label.
    rows = [{"prompt": f"{'bad' if i < 20 else 'good'} review {i}"} for i in range(40)]
    settings = {"data.eval_prompts": write_jsonl(tmp_path / "test.jsonl", rows)}
    cfg = load_config("tiny", {**settings, "data.n_eval_prompts": 8})
    held_out = [recipes.eval_prompts(cfg, tmp_path) for _ in range(2)]
    texts = [p[-1]["content"] if isinstance(p, list) else p for p in held_out[0]]
    assert held_out[0] == held_out[1] and len(texts) == 8, "the same 8 prompts every time"
    assert {t.split()[0] for t in texts} == {"bad", "good"}, texts
    cfg.data.n_eval_prompts = 0  # 0 = every prompt of the source, as for other sources
    assert len(recipes.eval_prompts(cfg, tmp_path)) == 40


def test_tiny_model_trains_on_a_tldr_shaped_recipe(small_run, recipe_files, tmp_path):
    run = tmp_path / "run"
    for stage in ("world", "pretrain"):
        shutil.copytree(small_run / stage, run / stage)
    settings = {"data.n_eval_prompts": 8, "ppo.updates": 2, "ppo.batch_size": 8}
    cfg = load_config("tiny", {**SMALL, **recipe_files, **settings, "ppo.mini_batch_size": 4})
    results = run_stages(cfg, run, until="ppo")

    # The held-out prompts are the prompt file's last 8, and RL never sees them.
    held_out, rl = recipes.eval_prompts(cfg, run / "world"), recipes.rl_prompts(cfg, run / "world")
    assert (
        len(held_out) == 8
        and len(rl) == 32
        and not {str(p) for p in held_out} & {str(p) for p in rl}
    )
    # SFT learned the recipe's format; there is no gold judge, so no gold numbers at all.
    sft = results["sft"]
    assert sft[M.SFT_EVAL_LOSS] < sft[M.SFT_BASE_EVAL_LOSS]
    assert M.EVAL_GOLD_MEAN not in sft and M.EVAL_WIN_RATE not in sft
    assert pd.read_json(run / "sft" / GOLD_TABLE, lines=True)["gold"].isna().all()
    # The reward model learned the recipe's preferences (a right summary over a shrug).
    assert results["reward"][M.REWARD_ACCURACY] > 0.8
    # The summary compares models by the reward model instead.
    table = compute_model_table(run).set_index("model")
    assert table["gold_mean"].isna().all() and "win_rate_vs_sft" not in table
    assert table.loc["ppo", "rm_score"] == results["ppo"][M.PPO_EVAL_REWARD]


def test_notebooks_take_any_profile_on_the_world_and_explain_a_recipe(monkeypatch, tmp_path):
    monkeypatch.delenv("LAB_SET", raising=False)
    monkeypatch.setenv("LAB_RUN_DIR", str(tmp_path))
    monkeypatch.setattr(lab.notebook, "use_offline_figures", lambda: None)  # no Chromium here
    cfg, run = notebook_setup("smollm2-135m")  # the one line a student changes
    assert cfg.model.name_or_path == "HuggingFaceTB/SmolLM2-135M" and run == tmp_path
    with pytest.raises(
        ValueError, match="no gold judge.*python -m lab pipeline --profile tiny\\+tldr"
    ):
        notebook_setup("tiny+tldr")
