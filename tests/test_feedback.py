"""Feedback from the arena: a reward model retrained on a class's votes must learn the class's
taste (held-out vote accuracy rises) while still ranking the world's pairs; a PPO round against
it must save a policy the arena can load."""

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lab import feedback
from lab import metrics as M
from lab.config import apply_overrides
from lab.data import load_preferences
from lab.feedback import (
    MIN_VOTES_TO_HOLD_OUT,
    ppo_round,
    retrain_reward,
    split_votes,
    validate_votes,
)
from lab.reward import load_reward_model, score
from lab.runlog import read_log, read_metrics
from lab.world.build import FILES
from lab.world.judge import split_sentences
from lab.world.phrases import POLITE, RUDE
from tests.conftest import SMALL

N_VOTES = 200
GOOD = {"prompt": "What is 2 plus 3?", "chosen": "2 plus 3 is 5.", "rejected": "It is 6."}
FAST = {"reward.epochs": 1.0, "ppo.batch_size": 8, "ppo.mini_batch_size": 4}


# A class with its own taste in polite phrases, which the world's annotators and gold do not
# share: the same answer, with one phrase or another of the same length. (liked, disliked)
TASTE = [("{} Have a nice day!", "{} Hope this helps!"), ("Good question! {}", "Happy to help. {}")]


def class_votes(run_dir, n: int) -> list[dict]:
    """That class's votes on answers to the world's training prompts, as the arena exports them."""
    votes = []
    for i, row in enumerate(load_preferences(run_dir / "world" / FILES["pairs_train"])):
        sentences = split_sentences(row["chosen"][0]["content"])
        answer = " ".join(s for s in sentences if s not in POLITE + RUDE)
        if answer:
            liked, disliked = TASTE[i % len(TASTE)]
            prompt = row["prompt"][0]["content"]
            votes.append(
                {
                    "prompt": prompt,
                    "chosen": liked.format(answer),
                    "rejected": disliked.format(answer),
                }
            )
        if len(votes) == n:
            return votes
    raise AssertionError(f"only {len(votes)} votes could be built")


@pytest.fixture(scope="module")
def fast_cfg(small_cfg):
    cfg = copy.deepcopy(small_cfg)  # the session's config is shared: never change it in place
    apply_overrides(cfg, FAST)
    return cfg


@pytest.fixture(scope="module")
def retrained(fast_cfg, small_reward_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("feedback") / "reward"
    calls = []
    votes = class_votes(small_reward_run, N_VOTES)
    metrics = retrain_reward(
        fast_cfg, small_reward_run, votes, out, progress=lambda f, m: calls.append((f, m))
    )
    return out, metrics, calls


# --- the retrained reward model ------------------------------------------------------------


def test_retrained_reward_model_learns_the_class_taste(retrained):
    _, m, _ = retrained
    before, after = m[M.FEEDBACK_VOTES_ACCURACY_BEFORE], m[M.FEEDBACK_VOTES_ACCURACY_AFTER]
    print(
        f"held-out votes {before:.3f} -> {after:.3f}; world pairs "
        f"{m[M.FEEDBACK_ACCURACY_BEFORE]:.3f} -> {m[M.FEEDBACK_ACCURACY_AFTER]:.3f}; gold "
        f"{m[M.FEEDBACK_GOLD_ACCURACY_BEFORE]:.3f} -> {m[M.FEEDBACK_GOLD_ACCURACY_AFTER]:.3f}"
    )
    assert before < 0.4, m  # the current model has the opposite taste
    assert after > 0.9, m  # the new one learnt the class's, on prompts it never trained on
    # ... and still ranks the world's pairs, after half the stage's epochs
    assert m[M.FEEDBACK_ACCURACY_AFTER] > 0.6 and m[M.FEEDBACK_GOLD_ACCURACY_AFTER] > 0.65, m


def test_retrain_writes_a_reward_stage_folder(retrained, small_reward_run):
    out, m, _ = retrained
    assert read_metrics(out) == json.loads(json.dumps(m))
    n_train, n_held = m[M.FEEDBACK_VOTE_PAIRS_TRAIN], m[M.FEEDBACK_VOTE_PAIRS_HELDOUT]
    assert n_train + n_held == N_VOTES and 30 <= n_held <= 50
    assert m["reward/train_pairs"] == SMALL["world.n_pairs_train"] + n_train
    assert M.FEEDBACK_NOTE not in m
    # "before" is the run's reward model, as its own stage measured it on the same pairs
    stage = read_metrics(small_reward_run / "reward")
    assert m[M.FEEDBACK_ACCURACY_BEFORE] == pytest.approx(stage[M.REWARD_ACCURACY])
    assert m[M.FEEDBACK_ACCURACY_AFTER] == pytest.approx(m[M.REWARD_ACCURACY])
    assert any(M.REWARD_LOSS in row for row in read_log(out))
    model, tokenizer = load_reward_model(out / "model")
    answers = [taste.format("2 plus 3 is 5.") for taste in TASTE[0]]
    liked, disliked = score(model, tokenizer, ["What is 2 plus 3?"] * 2, answers)
    assert liked > disliked


def test_retrain_reports_progress_in_order(retrained):
    _, _, calls = retrained
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] >= 0.0 and fractions[-1] == 1.0
    assert any("training step" in message for _, message in calls)


def test_retrain_refuses_a_folder_in_use(retrained, fast_cfg, small_reward_run):
    out, _, _ = retrained
    with pytest.raises(FileExistsError, match="not empty"):
        retrain_reward(fast_cfg, small_reward_run, class_votes(small_reward_run, 5), out)


# --- the PPO round ---------------------------------------------------------------------------


def test_ppo_round_saves_a_loadable_policy(retrained, fast_cfg, small_reward_run, tmp_path):
    reward_dir, _, _ = retrained
    calls = []
    metrics = ppo_round(
        fast_cfg, small_reward_run, reward_dir, tmp_path, 2, lambda f, m: calls.append((f, m))
    )
    assert metrics["ppo/updates"] == 2 and len(read_log(tmp_path)) == 2
    assert [round(f, 3) for f, _ in calls] == [0.333, 0.667, 1.0]
    policy = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    batch = tokenizer.apply_chat_template(
        [[{"role": "user", "content": "What is 2 plus 3?"}]],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        out = policy.generate(**batch, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > batch["input_ids"].shape[1]


def test_missing_models_are_named(fast_cfg, small_reward_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="no sft model"):
        retrain_reward(fast_cfg, tmp_path, [GOOD], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no reward model"):
        ppo_round(fast_cfg, small_reward_run, tmp_path / "missing", tmp_path / "out", 2)
    with pytest.raises(ValueError, match="at least 1 update"):
        ppo_round(fast_cfg, small_reward_run, tmp_path, tmp_path / "out", 0)


# --- votes: validation and the split (no training) -------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"prompt": ""}, "field 'prompt': empty prompt"),
        ({"chosen": "  "}, "field 'chosen': empty response"),
        ({"rejected": ""}, "field 'rejected': empty response"),
        ({"rejected": GOOD["chosen"]}, "field 'chosen/rejected': chosen is identical to rejected"),
        ({"chosen": None}, "field 'chosen': missing"),
    ],
)
def test_a_bad_vote_is_refused_by_row_and_field(bad, message, small_cfg, tmp_path):
    votes = [GOOD, {**GOOD, **bad}, GOOD]
    with pytest.raises(ValueError, match=r"votes, row 1 \(0-based\), " + message):
        retrain_reward(small_cfg, tmp_path, votes, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before any work


def test_votes_must_be_rows_and_at_least_one():
    with pytest.raises(ValueError, match=r"row 0 \(0-based\): expected a prompt/chosen/rejected"):
        validate_votes(["2 plus 3 is 5."])
    with pytest.raises(ValueError, match="no votes"):
        validate_votes([])


def test_votes_become_conversational_from_lists_and_datasets():
    import datasets

    rows = [GOOD, {**GOOD, "voter": "ana"}]
    from_list = validate_votes(rows)
    assert from_list.column_names == ["prompt", "chosen", "rejected"]  # extra columns dropped
    assert from_list[0]["chosen"] == [{"role": "assistant", "content": GOOD["chosen"]}]
    assert validate_votes(datasets.Dataset.from_list(rows)).to_list() == from_list.to_list()


def numbered_votes(n: int, per_prompt: int = 1):
    return validate_votes(
        [
            {"prompt": f"What is {i // per_prompt} plus 1?", "chosen": f"a{i}.", "rejected": "b."}
            for i in range(n)
        ]
    )


def test_split_holds_out_a_fifth_by_whole_prompts_reproducibly():
    votes = numbered_votes(100, per_prompt=3)
    train, held = split_votes(votes, seed=0)
    assert len(train) + len(held) == 100 and 20 <= len(held) <= 22
    train_prompts = {m[0]["content"] for m in train["prompt"]}
    assert not train_prompts & {m[0]["content"] for m in held["prompt"]}
    assert split_votes(votes, seed=0)[1].to_list() == held.to_list()
    shuffled = votes.shuffle(seed=1)
    assert sorted(map(str, split_votes(shuffled, seed=0)[1]["chosen"])) == sorted(
        map(str, held["chosen"])
    )
    assert split_votes(votes, seed=1)[1].to_list() != held.to_list()


def test_split_holds_nothing_out_with_few_votes_or_one_prompt():
    train, held = split_votes(numbered_votes(MIN_VOTES_TO_HOLD_OUT - 1), seed=0)
    assert len(train) == MIN_VOTES_TO_HOLD_OUT - 1 and len(held) == 0
    train, held = split_votes(numbered_votes(50, per_prompt=50), seed=0)
    assert len(train) == 50 and len(held) == 0


def test_few_votes_are_all_trained_on_and_the_result_says_so(
    small_cfg, small_reward_run, tmp_path, monkeypatch
):
    def fake_run_reward(cfg, sft, world, out_dir, extra_pairs, progress):
        out_dir.mkdir(parents=True)
        return {"reward/train_pairs": len(extra_pairs)}

    monkeypatch.setattr(feedback, "run_reward", fake_run_reward)
    monkeypatch.setattr(feedback, "measure", lambda *a: {"world": 0.6, "gold": 0.7, "votes": None})
    result = retrain_reward(small_cfg, small_reward_run, [GOOD] * 3, tmp_path / "out")
    assert result[M.FEEDBACK_VOTE_PAIRS_TRAIN] == 3 and result[M.FEEDBACK_VOTE_PAIRS_HELDOUT] == 0
    assert result[M.FEEDBACK_VOTES_ACCURACY_AFTER] is None
    assert "none held out" in result[M.FEEDBACK_NOTE]
    assert read_metrics(tmp_path / "out") == result
