"""Stage 3 on the small world: the reward model must agree with the gold judge, and `score`
must read text exactly as the trainer did."""

import math

import pandas as pd
import pytest
import torch
import trl
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from lab import metrics as M
from lab.data import load_preferences
from lab.evaluation import compute_fact_checks
from lab.pairs import as_conversation
from lab.reward import PAIRS_FILE, run_reward
from lab.reward_model import encode, gold_accuracy, load_reward_model, pair_accuracy, score
from lab.runlog import read_log, read_metrics
from lab.world import World, last_content
from lab.world.build import FILES, build_world
from tests.conftest import SHARED_DATA, SMALL

HH = SHARED_DATA / "hh-rlhf-harmless-base-test.jsonl.gz"


@pytest.fixture(scope="module")
def reward_model(small_reward_run):
    folder = small_reward_run / "reward" / "model"
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    return model, AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def test_pairs(small_reward_run):
    pairs = load_preferences(small_reward_run / "world" / FILES["pairs_test"])
    return pairs.select(range(40))


# --- pure functions ------------------------------------------------------------------------


def test_pair_and_gold_accuracy_by_hand():
    chosen, rejected = [2.0, 0.5, 1.0, 3.0], [1.0, 1.5, 1.0, -1.0]
    assert pair_accuracy(chosen, rejected) == 0.5  # a tie counts as wrong
    # gold says pairs 1 and 2 were mislabelled: the model sides with gold on pair 1; a tie is wrong
    gold_c, gold_r = [2.5, 0.0, 0.0, 2.5], [0.0, 2.5, 2.5, 0.0]
    assert gold_accuracy(chosen, rejected, gold_c, gold_r) == 0.75


def test_conversation_accepts_strings_and_messages():
    user = [{"role": "user", "content": "hi"}]
    reply = [{"role": "assistant", "content": "hello"}]
    assert as_conversation("hi", "hello") == user + reply
    assert as_conversation(user, reply) == as_conversation("hi", "hello")
    with pytest.raises(ValueError, match="one assistant message"):
        as_conversation("hi", [{"role": "user", "content": "hello"}])


def test_encode_ends_at_eos_and_keeps_the_end_when_cut(reward_model):
    _, tokenizer = reward_model
    ids = encode(tokenizer, "What is 2 plus 2?", "2 plus 2 is 4.")
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert encode(tokenizer, "What is 2 plus 2?", "2 plus 2 is 4.", max_length=5) == ids[-5:]


# --- the trained reward model --------------------------------------------------------------


def test_reward_model_agrees_with_gold(small_reward_run):
    metrics = read_metrics(small_reward_run / "reward")
    assert metrics[M.REWARD_GOLD_ACCURACY] > 0.65, metrics
    # The annotators' labels are noisier than gold, so agreeing with them is harder.
    assert metrics[M.REWARD_ACCURACY] > 0.58, metrics
    assert metrics[M.REWARD_MARGIN] > 0
    assert metrics["reward/skipped_pairs"] == 0  # the world's own files are all valid
    rows = read_log(small_reward_run / "reward")
    evals = [r[M.REWARD_ACCURACY] for r in rows if M.REWARD_ACCURACY in r]
    assert rows[0]["step"] == 0 and abs(evals[0] - 0.5) < 0.12  # an untrained head: chance
    losses = [r[M.REWARD_LOSS] for r in rows if M.REWARD_LOSS in r]
    assert losses[-1] < losses[0]


def test_fact_check_pairs_teach_the_reward_model_to_check_facts(
    reward_model, small_cfg, small_reward_run, tmp_path
):
    """On held-out prompts, a right answer against the same words with a wrong value: the
    reward model trained without fact-check pairs is near chance, one trained with them is not."""
    from lab.profiles import load_config

    cfg = load_config("tiny", {**SMALL, "world.n_fact_check_pairs": 2000})
    build_world(cfg.world, tmp_path / "world")  # the same files, plus 2,000 fact-check pairs
    run_reward(cfg, str(small_reward_run / "sft" / "model"), tmp_path / "world", tmp_path / "rm")
    checked = load_reward_model(tmp_path / "rm" / "model", "cpu")
    world = World.from_seed(small_cfg.world.seed, small_cfg.world.n_countries)
    held_out = load_preferences(small_reward_run / "world" / FILES["pairs_test"])["prompt"]
    prompts = sorted({last_content(p, "user") for p in held_out})  # never trained on

    def share_right(model) -> float:
        checks = compute_fact_checks(*model, world, prompts)
        facts = checks[checks["kind"] != "math"]  # sums need arithmetic the small model lacks
        assert len(facts) >= 50
        return (facts["right"] > facts["wrong"]).mean()

    # Measured: 0.46 without, 0.73 with.
    plain, taught = share_right(reward_model), share_right(checked)
    assert taught >= 0.65 and taught - plain >= 0.15, (plain, taught)


def test_per_pair_scores_back_the_metrics(small_reward_run):
    metrics = read_metrics(small_reward_run / "reward")
    pairs = pd.read_json(small_reward_run / "reward" / PAIRS_FILE, lines=True)
    assert len(pairs) == metrics["reward/eval_pairs"]
    right = pairs["chosen_score"] > pairs["rejected_score"]
    gold_right = right == (pairs["gold_chosen"] > pairs["gold_rejected"])
    assert right.mean() == pytest.approx(metrics[M.REWARD_ACCURACY])
    assert gold_right.mean() == pytest.approx(metrics[M.REWARD_GOLD_ACCURACY])


def test_score_matches_the_reward_trainers_own_scoring(reward_model, test_pairs, tmp_path):
    model, tokenizer = reward_model
    # Let TRL tokenize the raw conversational pairs and batch them with its own collator.
    args = trl.RewardConfig(
        output_dir=str(tmp_path),
        per_device_eval_batch_size=8,
        use_cpu=True,
        bf16=False,
        report_to="none",
        activation_checkpointing=False,
    )
    trainer = trl.RewardTrainer(
        model=model,
        args=args,
        train_dataset=test_pairs,
        eval_dataset=test_pairs,
        processing_class=tokenizer,
    )
    trainer_chosen, trainer_rejected = [], []
    with torch.no_grad():
        for batch in trainer.get_eval_dataloader():
            rewards = model(**batch).logits.squeeze(-1)  # (2B,): chosen first, then rejected
            chosen, rejected = rewards.chunk(2)
            trainer_chosen += chosen.tolist()
            trainer_rejected += rejected.tolist()
    ours = score(model, tokenizer, test_pairs["prompt"], test_pairs["chosen"])
    assert ours == pytest.approx(trainer_chosen, abs=1e-4)
    ours = score(model, tokenizer, test_pairs["prompt"], test_pairs["rejected"])
    assert ours == pytest.approx(trainer_rejected, abs=1e-4)


def test_padding_side_and_batching_do_not_change_scores(reward_model, test_pairs):
    model, tokenizer = reward_model
    prompts = [p[-1]["content"] for p in test_pairs["prompt"]]  # strings this time
    answers = [c[0]["content"] for c in test_pairs["chosen"]]
    tokenizer.padding_side = "left"
    left = score(model, tokenizer, prompts, answers, batch_size=16)
    tokenizer.padding_side = "right"
    right = score(model, tokenizer, prompts, answers, batch_size=16)
    one_by_one = score(model, tokenizer, prompts, answers, batch_size=1)
    tokenizer.padding_side = "left"
    assert left == pytest.approx(right, abs=1e-5)
    assert left == pytest.approx(one_by_one, abs=1e-4)
    as_messages = score(model, tokenizer, test_pairs["prompt"], test_pairs["chosen"])
    assert left == pytest.approx(as_messages, abs=1e-5)
    # The model itself, fed a batch the tokenizer left-pads, reads the same last token.
    conversations = [p + c for p, c in zip(test_pairs["prompt"], test_pairs["chosen"], strict=True)]
    batch = tokenizer.apply_chat_template(
        conversations, padding=True, return_tensors="pt", return_dict=True
    )
    assert (batch["attention_mask"][:, 0] == 0).any()  # some rows really are left-padded
    with torch.no_grad():
        direct = model(**batch).logits[:, 0].tolist()
    assert direct == pytest.approx(left, abs=1e-4)


def test_score_refuses_a_tokenizer_that_is_not_the_models(reward_model):
    model, tokenizer = reward_model
    other = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    other.chat_template = other.chat_template.replace("<|", "[").replace("|>", "]")
    with pytest.raises(ValueError, match="chat template differs"):
        score(model, other, ["What is 1 plus 1?"], ["1 plus 1 is 2."])
    other = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    other.pad_token = other.eos_token
    with pytest.raises(ValueError, match="pad token mismatch"):
        score(model, other, ["What is 1 plus 1?"], ["1 plus 1 is 2."])
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        score(model, tokenizer, ["a?", "b?"], ["c."])


# --- other sources ---------------------------------------------------------------------------


@pytest.mark.skipif(not HH.exists(), reason=f"real preference data not found at {HH}")
def test_reward_trains_on_real_hh_pairs(small_sft_run, tmp_path):
    from lab.profiles import load_config

    overrides = {
        "reward.train_data": str(HH),
        "reward.max_train_pairs": 300,
        "reward.holdout": 100,
        "reward.epochs": 1.0,
        "model.max_length": 192,  # HH conversations are long: keep their last tokens
    }
    cfg = load_config("tiny", {**SMALL, **overrides})
    with pytest.warns(UserWarning, match="skipped 4 invalid rows"):
        metrics = run_reward(cfg, str(small_sft_run / "sft" / "model"), small_sft_run, tmp_path)
    assert metrics["reward/train_pairs"] == 300 and metrics["reward/eval_pairs"] == 100
    assert metrics["reward/skipped_pairs"] == 4
    assert M.REWARD_GOLD_ACCURACY not in metrics  # human labels only, no gold judge
    pairs = pd.read_json(tmp_path / PAIRS_FILE, lines=True)
    scores = pairs["chosen_score"].tolist() + pairs["rejected_score"].tolist()
    assert all(math.isfinite(s) for s in scores) and len(set(scores)) > 100
    print(f"held-out accuracy on real HH pairs: {metrics[M.REWARD_ACCURACY]:.3f}")


def test_lora_reward_model_saves_a_plain_merged_model(small_sft_run, tmp_path):
    from lab.profiles import load_config

    cfg = load_config(
        "tiny", {**SMALL, "reward.lora_r": 4, "reward.max_train_pairs": 256, "reward.lr": 3e-3}
    )
    metrics = run_reward(
        cfg, str(small_sft_run / "sft" / "model"), small_sft_run / "world", tmp_path
    )
    folder = tmp_path / "model"
    assert not (folder / "adapter_config.json").exists()
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.score.weight.shape == (1, model.config.hidden_size)
    # The saved folder is the model that scored the held-out pairs, trained head and all:
    # it scores them again the same, and better than chance.
    pairs = pd.read_json(tmp_path / PAIRS_FILE, lines=True).head(4)
    again = score(model, tokenizer, list(pairs["prompt"]), list(pairs["chosen"]))
    assert again == pytest.approx(list(pairs["chosen_score"]), abs=1e-4)
    assert metrics[M.REWARD_ACCURACY] > 0.55
