"""Where each stage reads its data: the tiny world's files, or a task recipe's datasets.

A recipe is a small diff, like a profile, and is added to one with `+`:
`--profile smollm2-360m+tldr` is SmolLM2-360M trained on Reddit TL;DR summaries.
Only the tiny world has a gold judge; with a recipe's data, models are compared by the reward.
`+sentiment` and `+detox` keep the world's data but train the base model against a classifier
(TRL's gpt2-sentiment and detoxification examples); `HUB_RECIPES` is what a recipe changes on a
real (hub) model, where a hub classifier replaces the one trained here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets

from lab.config import LabConfig
from lab.data import load_prompts, load_sft
from lab.world import World
from lab.world.build import FILES

# RL from the base model against a classifier, as TRL's examples: no demonstrations and no
# preferences, so the pipeline runs world -> pretrain -> classifier -> PPO and nothing else.
CLASSIFIER_RL: dict[str, Any] = {
    "stages": "world,pretrain,classifier,ppo",
    "ppo.policy": "base",
    "ppo.updates": 12,  # the classifier is satisfied after about ten; more only drifts
    "ppo.lr": 1e-4,  # the base is far from the classifier's optimum; 3e-5 moves it too slowly
}

RECIPES: dict[str, dict[str, Any]] = {
    # Make the base model's answers positive: reward = P(positive) from a polite-vs-rude classifier.
    "sentiment": {
        **CLASSIFIER_RL,
        "classifier.task": "sentiment",
        "ppo.reward": "classifier:{run}/classifier/model:positive",
    },
    # Make them less toxic: reward = P(clean) from a classifier of rude and unsafe text.
    "detox": {
        **CLASSIFIER_RL,
        "classifier.task": "toxicity",
        "ppo.reward": "classifier:{run}/classifier/model:clean",
    },
    # Summarisation, as in Stiennon et al. (2020): Reddit posts, human-written TL;DRs, human votes.
    "tldr": {
        "data.sft": "trl-lib/tldr",
        "data.prompts": "trl-lib/tldr",
        "data.eval_prompts": "trl-lib/tldr:validation",
        "reward.train_data": "trl-lib/tldr-preference",
        "data.max_examples": 20_000,  # a workshop's share of 117k posts
        "reward.max_train_pairs": 20_000,  # and of 93k votes
        "model.max_length": 640,
        "ppo.max_new_tokens": 53,  # TL;DRs are short; longer answers are cut and penalised
    },
    # General chat: UltraChat demonstrations, UltraFeedback's binarised preferences and prompts.
    "ultrafeedback": {
        "data.sft": "HuggingFaceH4/ultrachat_200k:train_sft",
        "data.prompts": "trl-lib/ultrafeedback-prompt",
        "reward.train_data": "trl-lib/ultrafeedback_binarized",
        "data.max_examples": 20_000,
        "reward.max_train_pairs": 20_000,
        "model.max_length": 1024,
        "ppo.max_new_tokens": 128,
    },
}


# TRL's gpt2-sentiment example on a hub model (GPU): continue the first words of IMDB reviews,
# reward = the positive logit of a sentiment classifier trained on IMDB.
RECIPES["imdb"] = {
    "stages": "world,pretrain,ppo",
    "data.prompts": "stanfordnlp/imdb",
    "data.eval_prompts": "stanfordnlp/imdb:test",
    "data.max_examples": 20_000,
    "ppo.policy": "base",
    "ppo.reward": "classifier:lvwerra/distilbert-imdb:POSITIVE:logit",
    "ppo.max_new_tokens": 24,
}

# On a hub model (any profile but tiny) these replace the world's classifier with a hub one.
HUB_RECIPES: dict[str, dict[str, Any]] = {
    "detox": {  # TRL's detoxification example: reward = the logit of "not hate"
        "stages": "world,pretrain,ppo",
        "ppo.reward": "classifier:facebook/roberta-hate-speech-dynabench-r4-target:nothate:logit",
    },
}


def base_model_path(cfg: LabConfig, run_dir: Path) -> str:
    """Where the base model lives: the hub id of a real profile, or the pretrained folder."""
    return cfg.model.name_or_path or str(run_dir / "pretrain" / "model")


def policy_start(cfg: LabConfig, run_dir: Path) -> str:
    """The model RL starts from and stays near (`ppo.policy`): the run's SFT model or its base."""
    if cfg.ppo.policy == "sft":
        return str(run_dir / "sft" / "model")
    if cfg.ppo.policy == "base":
        return base_model_path(cfg, run_dir)
    raise ValueError(f"ppo.policy: {cfg.ppo.policy!r} is not sft or base")


def uses_world(cfg: LabConfig) -> bool:
    """True when every stage reads the tiny world's files (and the gold judge applies)."""
    return not (cfg.data.sft or cfg.data.prompts or cfg.data.eval_prompts or cfg.reward.train_data)


def gold_judge(cfg: LabConfig) -> World | None:
    """The tiny world's gold judge, or None when a recipe's data has no known truth."""
    return World.from_seed(cfg.world.seed, cfg.world.n_countries) if uses_world(cfg) else None


def sft_examples(cfg: LabConfig, world_dir: Path) -> datasets.Dataset:
    """Demonstrations as conversational prompt/completion."""
    source = cfg.data.sft or world_dir / FILES["sft"]
    return load_sft(source, max_rows=cfg.data.max_examples)


def rl_prompts(cfg: LabConfig, world_dir: Path) -> list:
    """Prompts for PPO and GRPO (never the evaluation prompts)."""
    if not cfg.data.prompts:
        return list(load_prompts(world_dir / FILES["ppo_prompts"])["prompt"])
    return _split_recipe_prompts(cfg)[0]


EVAL_SAMPLE_SEED = 0  # every run of a recipe answers the same held-out sample


def eval_prompts(cfg: LabConfig, world_dir: Path) -> list:
    """Held-out prompts every model answers: the world's, a recipe's, or the prompts' tail."""
    n = cfg.data.n_eval_prompts
    if cfg.data.eval_prompts:  # a seeded sample, not the head: IMDB's test split is by label
        prompts = load_prompts(cfg.data.eval_prompts)
        if 0 < n < len(prompts):  # n = 0: all of them, as `load_prompts(max_rows=0)`
            prompts = prompts.shuffle(seed=EVAL_SAMPLE_SEED).select(range(n))
        return list(prompts["prompt"])
    if cfg.data.prompts:
        return _split_recipe_prompts(cfg)[1]
    return list(load_prompts(world_dir / FILES["eval_prompts"])["prompt"])[:n]


def _split_recipe_prompts(cfg: LabConfig) -> tuple[list, list]:
    """A recipe's prompts for RL, and the last `n_eval_prompts` held out (none if eval prompts
    have a source of their own)."""
    prompts = list(load_prompts(cfg.data.prompts, max_rows=cfg.data.max_examples)["prompt"])
    if cfg.data.eval_prompts:
        return prompts, []
    n = cfg.data.n_eval_prompts
    if not 0 < n < len(prompts):
        raise ValueError(
            f"{cfg.data.prompts}: {len(prompts)} prompts; holding out n_eval_prompts={n} needs "
            "0 < n < that (or set data.eval_prompts)"
        )
    return prompts[:-n], prompts[-n:]
