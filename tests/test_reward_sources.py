"""Reward sources: spec parsing, function and classifier scorers, one-line errors, and a recipe's
PPO moving its classifier's score."""

from __future__ import annotations

import shutil

import pytest
import torch

from lab import metrics as M
from lab.reward_sources import (
    RewardSpec,
    classifier_scorer,
    difference_scorer,
    function_scorer,
    label_index,
    load_classifier,
    load_scorer,
    parse_spec,
)


def shouting(prompts, completions):
    """A reward function for the tests: the share of capital letters."""
    return [sum(c.isupper() for c in t) / max(len(t), 1) for t in completions]


def test_difference_scorer_is_one_score_minus_the_other():
    length = function_scorer(lambda prompts, completions: [len(t) for t in completions])
    difference = difference_scorer(function_scorer(shouting), length)
    assert difference(["q", "q"], ["AB", "abc"]) == pytest.approx([1.0 - 2, 0.0 - 3])
    short = difference_scorer(function_scorer(shouting), lambda prompts, completions: [1.0])
    with pytest.raises(ValueError, match="gave 2 and 1 scores for 2 answers"):
        short(["q", "q"], ["AB", "abc"])


def test_parse_spec_reads_every_kind():
    assert parse_spec("model") == RewardSpec("model")
    assert parse_spec("function:pkg.mod.fn") == RewardSpec("function", "pkg.mod.fn")
    assert parse_spec("classifier:org/name") == RewardSpec("classifier", "org/name", "", "prob")
    assert parse_spec("classifier:org/name:POSITIVE") == RewardSpec(
        "classifier", "org/name", "POSITIVE", "prob"
    )
    assert parse_spec("classifier:org/name:1:logit").output == "logit"
    assert parse_spec("classifier:{run}/classifier/model:clean", "/r").target == (
        "/r/classifier/model"
    )


@pytest.mark.parametrize(
    "spec, words",
    [
        ("rm", "unknown kind 'rm'"),
        ("model:x", "takes no argument"),
        ("function:", "needs a target"),
        ("function:nodots", "expected function:module.name"),
        ("classifier:x:y:z:w", "expected classifier:PATH"),
        ("classifier:x:POSITIVE:softmax", "is not prob or logit"),
    ],
)
def test_bad_specs_fail_in_one_line(spec, words):
    with pytest.raises(ValueError, match=words) as e:
        parse_spec(spec)
    assert "\n" not in str(e.value)


def test_function_scorer_imports_and_checks():
    scorer = load_scorer("function:tests.test_reward_sources.shouting", run_dir=".")
    assert scorer(["q", "q"], ["AB", "ab"]) == [1.0, 0.0]
    with pytest.raises(ValueError, match="cannot import 'no_such_module'"):
        load_scorer("function:no_such_module.fn", run_dir=".")
    with pytest.raises(ValueError, match="has no function 'nope'"):
        load_scorer("function:tests.test_reward_sources.nope", run_dir=".")


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A random-weight DistilBERT classifier with NEGATIVE / POSITIVE labels, as
    lvwerra/distilbert-imdb is shaped, saved locally (tests never touch the network)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        DistilBertConfig,
        DistilBertForSequenceClassification,
        PreTrainedTokenizerFast,
    )

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "bad"])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", model_max_length=64
    )
    config = DistilBertConfig(
        vocab_size=len(vocab), dim=16, hidden_dim=32, n_layers=1, n_heads=2,
        id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("distilbert-imdb")
    DistilBertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_classifier_scorer_reads_one_label(tiny_classifier):
    model, tokenizer = load_classifier(str(tiny_classifier))
    texts = ["good good", "bad", "good bad good bad"]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    logits = model(**batch).logits  # (3, 2)
    prob = load_scorer(f"classifier:{tiny_classifier}:POSITIVE", run_dir=".")
    logit = load_scorer(f"classifier:{tiny_classifier}:0:logit", run_dir=".")
    assert prob(["q"] * 3, texts) == pytest.approx(logits.softmax(-1)[:, 1].tolist(), abs=1e-5)
    assert logit(["q"] * 3, texts) == pytest.approx(logits[:, 0].tolist(), abs=1e-5)
    # One at a time or batched: padding must not change a score.
    one = classifier_scorer(model, tokenizer, 1, "prob", batch_size=1)
    assert one(["q"] * 3, texts) == pytest.approx(prob(["q"] * 3, texts), abs=1e-5)


def test_unknown_label_names_the_labels(tiny_classifier):
    model, _ = load_classifier(str(tiny_classifier))
    assert label_index(model.config, "") == 1
    with pytest.raises(ValueError, match="no label 'happy'; its labels: 0=NEGATIVE, 1=POSITIVE"):
        label_index(model.config, "happy")


def test_the_hub_recipes_point_at_classifiers_of_the_right_shape(tiny_classifier):
    """`+imdb` and the GPU `+detox` name hub classifiers; the same spec shape with a local
    stand-in must load and score."""
    from lab.profiles import load_config

    hub = load_config("smollm2-135m+detox").ppo.reward
    assert hub.startswith("classifier:facebook/roberta-hate-speech-dynabench-r4-target:")
    assert load_config("tiny+detox").ppo.reward.startswith("classifier:{run}/")
    local = parse_spec(hub.replace(parse_spec(hub).target, str(tiny_classifier)))
    spec = f"classifier:{local.target}:1:{local.output}"
    assert len(load_scorer(spec, run_dir=".")(["q"], ["good"])) == 1


def test_detox_recipe_skips_sft_and_lowers_toxicity(small_run, small_cfg, tmp_path):
    """world -> pretrain -> classifier -> PPO from the base: PPO must raise P(clean) and lower
    the rude + unsafe sentences per answer; SFT and the reward model never run."""
    from lab.profiles import load_config
    from lab.stages import last_stage, run_stages
    from tests.conftest import SMALL

    for stage in ("world", "pretrain"):
        shutil.copytree(small_run / stage, tmp_path / stage)
    fast = {"classifier.steps": 60, "ppo.updates": 6, "ppo.batch_size": 32}
    cfg = load_config("tiny+detox", {**SMALL, **fast})
    assert last_stage(cfg) == "ppo"
    results = run_stages(cfg, tmp_path, until="ppo")
    assert set(results) == {"world", "pretrain", "classifier", "ppo"}
    assert not (tmp_path / "sft").exists() and not (tmp_path / "reward").exists()
    assert results["classifier"][M.CLASSIFIER_ACCURACY] > 0.9
    m = results["ppo"]
    assert m[M.PPO_EVAL_REWARD] > m[M.EVAL_REWARD_START] + 0.1, m
    assert m[M.EVAL_RUDE_UNSAFE] < m[M.EVAL_START_RUDE_UNSAFE], m
    assert (tmp_path / "ppo" / "model" / "config.json").exists()
