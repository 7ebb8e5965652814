"""Feedback from the arena: a reward model adapted to a class's votes must learn the class's taste
(held-out agreement rises, by k-fold cross-validation) while still ranking the world's pairs; a
round writes the models the next round starts from; bad input is refused in one line, with
nothing written."""

import dataclasses
import json
import random
import shutil
import sqlite3

import pandas as pd
import pytest
import torch

from lab import feedback, feedback_round
from lab import metrics as M
from lab.cli import main as cli
from lab.data import load_preferences
from lab.evaluation import GOLD_TABLE
from lab.feedback import (
    VOTES_SEEN,
    FeedbackConfig,
    assign_folds,
    held_out_folds,
    pair_key,
    read_votes_seen,
    retrain_reward,
    select_group,
    validate_votes,
)
from lab.feedback_round import current_models, next_round, ppo_round
from lab.group_compare import MEASURED_START_TABLE, MEASURED_TABLE, STYLE_COLUMNS
from lab.intervals import wilson_interval
from lab.ppo_models import load_ppo_models
from lab.recipes import gold_judge
from lab.runlog import METRICS_FILE, read_log, write_json
from lab.votes_db import GROUP_RULE, read_votes, to_preferences
from lab.world.build import FILES
from lab.world.judge import score
from lab.world.tastes import make_class, taste_weights

GOOD = {"prompt": "What is 2 plus 3?", "chosen": "2 plus 3 is 5.", "rejected": "It is 6."}
N_VOTES = 120
# 4 short fine-tunings, 1 PPO update, 2 answers per prompt measuring the policy
# Every vote here contradicts gold (`taste_votes`), so these tests adapt at the gentler rate of
# 0.2: the default 0.5, chosen on benchmarks/feedback_loop.py's class (battles between the run's
# models, where the taste and gold often agree; 0.007-0.023 of gold accuracy lost), loses 0.10.
FAST = FeedbackConfig(folds=3, epochs=3.0, lr_scale=0.2, ppo_updates=1, samples=2)


def taste_votes(cfg, run_dir, taste: str, n: int, seed: int = 0) -> list[dict]:
    """A simulated class's votes on world answer pairs where its taste and gold disagree."""
    world, people, rng = gold_judge(cfg), make_class(taste, 20, seed), random.Random(seed)
    weights, votes = taste_weights(taste), []
    for row in load_preferences(run_dir / "world" / FILES["pairs_train"]):
        a, b = (world.features(row["prompt"], row[f]) for f in ("chosen", "rejected"))
        if (score(a) - score(b)) * (score(a, weights) - score(b, weights)) >= 0:
            continue  # the class would vote as the world did: nothing new to learn
        first = rng.choice(people).prefers_first(a, b, rng)
        answers = [row["chosen"][0]["content"], row["rejected"][0]["content"]]
        votes.append(
            {
                "prompt": row["prompt"][0]["content"],
                "chosen": answers[0 if first else 1],
                "rejected": answers[1 if first else 0],
                "group": taste,
            }
        )
        if len(votes) == n:
            return votes
    raise AssertionError(f"only {len(votes)} votes could be built")


@pytest.fixture(scope="module")
def adapted(small_cfg, small_reward_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("feedback") / "reward"
    calls = []
    votes = taste_votes(small_cfg, small_reward_run, "terse", N_VOTES)
    metrics = retrain_reward(
        small_cfg, small_reward_run, votes, out, lambda f, m: calls.append((f, m)), fb=FAST
    )
    return out, metrics, calls


# --- the adapted reward model -----------------------------------------------------------------


def test_adapted_reward_model_learns_the_class_taste_on_held_out_votes(adapted):
    _, m, _ = adapted
    before, after = m[M.FEEDBACK_VOTES_ACCURACY_BEFORE], m[M.FEEDBACK_VOTES_ACCURACY_AFTER]
    print(
        f"held-out votes {before:.3f} -> {after:.3f} {m[M.FEEDBACK_VOTES_ACCURACY_AFTER_CI]}; "
        f"gold {m[M.FEEDBACK_GOLD_ACCURACY_BEFORE]:.3f} -> {m[M.FEEDBACK_GOLD_ACCURACY_AFTER]:.3f}; "
        f"{m[M.FEEDBACK_REWARD_SECONDS]:.0f} s"
    )
    assert before < 0.5, m  # the current model has the world's taste, not the class's
    # after beats before beyond the noise: the intervals do not overlap
    assert m[M.FEEDBACK_VOTES_ACCURACY_AFTER_CI][0] > m[M.FEEDBACK_VOTES_ACCURACY_BEFORE_CI][1], m
    low, high = m[M.FEEDBACK_VOTES_ACCURACY_CHANGE_CI]  # the same votes, paired, by prompt
    assert 0 < low <= after - before <= high, m
    # Every vote here contradicts gold, so some gold accuracy goes; replay keeps it small. The
    # drop moves with the CPU's kernels: under 0.05 on earlier CI machines, 0.050 and 0.0525
    # (2 and 1 threads) on a Xeon with AMX. Adapting harder (`lr_scale` 0.35) lost 0.085 and
    # 0.5 lost 0.10, which this refuses.
    assert m[M.FEEDBACK_GOLD_ACCURACY_AFTER] > m[M.FEEDBACK_GOLD_ACCURACY_BEFORE] - 0.075, m
    low, high = m[M.FEEDBACK_VOTES_ACCURACY_AFTER_CI]
    assert low < after < high and m[M.FEEDBACK_FOLDS] == 3
    assert m[M.FEEDBACK_VOTE_PAIRS_TRAIN] == m[M.FEEDBACK_VOTE_PAIRS_HELDOUT] == N_VOTES
    assert m[M.FEEDBACK_VOTE_PAIRS_SEEN] == 0  # the run's own reward model saw no votes
    assert m[M.FEEDBACK_REPLAY_PAIRS] == N_VOTES  # replay 1.0: one original pair per vote pair


def test_the_policy_round_is_rewarded_for_what_the_votes_changed(
    adapted, small_cfg, small_reward_run
):
    """The round's reward, the adapted model's score minus the old one's, is zero for the old
    model itself and prefers the class's choice on votes it never trained on."""
    old, new = small_reward_run / "reward" / "model", adapted[0] / "model"
    sft = str(small_reward_run / "sft" / "model")
    rows = taste_votes(small_cfg, small_reward_run, "terse", N_VOTES + 40)[N_VOTES:]  # held out
    prompts, n = [r["prompt"] for r in rows] * 2, len(rows)
    answers = [r["chosen"] for r in rows] + [r["rejected"] for r in rows]
    same = load_ppo_models(small_cfg, sft, small_reward_run, "cpu", old, reward_baseline=old)[2]
    assert same(prompts, answers) == pytest.approx([0.0] * 2 * n, abs=1e-5)
    ac, _, delta = load_ppo_models(
        small_cfg, sft, small_reward_run, "cpu", new, reward_baseline=old
    )
    scores = delta(prompts, answers)
    leans = sum(c > r for c, r in zip(scores[:n], scores[n:], strict=True)) / n
    assert leans >= 0.6  # 75% measured (2 CPU cores)
    # Its critic predicts a difference: the adapted model's trunk with the head at zero (with the
    # adapted model's own score as the reward, the critic starts as that model, head and all).
    own = load_ppo_models(small_cfg, sft, small_reward_run, "cpu", new)[0]
    assert not ac.value_head.weight.any() and own.value_head.weight.any()
    trunks = zip(ac.value_trunk.parameters(), own.value_trunk.parameters(), strict=True)
    assert all(torch.equal(a, b) for a, b in trunks)
    function = dataclasses.replace(
        small_cfg,
        ppo=dataclasses.replace(small_cfg.ppo, reward="function:lab.world.tastes.terse_reward"),
    )
    with pytest.raises(ValueError, match="a reward baseline needs a learned reward model"):
        load_ppo_models(function, sft, small_reward_run, "cpu", reward_baseline=old)


def test_adapted_folder_is_a_reward_stage_folder(adapted, small_cfg, small_reward_run):
    from lab.reward_model import load_reward_model
    from lab.runlog import read_log, read_metrics

    out, m, _ = adapted
    assert read_metrics(out) == json.loads(json.dumps(m))
    assert m[M.FEEDBACK_REWARD_FROM] == str(small_reward_run / "reward" / "model")
    assert any(M.REWARD_LOSS in row for row in read_log(out))
    load_reward_model(out / "model")
    files = ["log.jsonl", "metrics.json", "model", VOTES_SEEN]
    assert sorted(p.name for p in out.iterdir()) == files
    votes = validate_votes(taste_votes(small_cfg, small_reward_run, "terse", N_VOTES))
    # what the model trained on, for the next round; these votes came without vote ids
    assert read_votes_seen(out / "model") == {
        "vote_ids": [],
        "pairs": sorted({pair_key(row) for row in votes}),
    }


def test_adapting_reports_progress_in_order(adapted):
    _, _, calls = adapted
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] >= 0.0 and fractions[-1] == 1.0
    assert any("training step" in message for _, message in calls)


def test_retrain_refuses_a_folder_in_use(adapted, small_cfg, small_reward_run):
    out, _, _ = adapted
    with pytest.raises(FileExistsError, match="not empty"):
        retrain_reward(small_cfg, small_reward_run, [GOOD], out)


def test_few_votes_are_all_trained_on_and_the_result_says_so(
    small_cfg, small_reward_run, tmp_path, monkeypatch
):
    trained = []

    def fake_fine_tune(cfg, fb, start, pairs, out_dir, log=None, progress=None):
        trained.append(len(pairs))
        return feedback.load_reward_model(start)

    monkeypatch.setattr(feedback, "fine_tune", fake_fine_tune)
    result = retrain_reward(small_cfg, small_reward_run, [GOOD] * 3, tmp_path / "out")
    assert trained == [6]  # one training, on the 3 votes and 3 replayed pairs: no folds
    assert result[M.FEEDBACK_VOTE_PAIRS_TRAIN] == 3 and result[M.FEEDBACK_VOTE_PAIRS_HELDOUT] == 0
    assert M.FEEDBACK_VOTES_ACCURACY_AFTER not in result and result[M.FEEDBACK_FOLDS] == 0
    assert "none held out" in result[M.FEEDBACK_NOTE] and result[M.FEEDBACK_VOTE_PAIRS_SEEN] == 0
    assert result[M.FEEDBACK_NOTE].startswith("only 3 vote pairs are new since the reward model")
    assert result[M.FEEDBACK_VOTES_ACCURACY_TRAINED] in (0.0, 1.0)


@pytest.fixture
def recorder(monkeypatch) -> tuple[list, list]:
    """`fine_tune` and `agreement` replaced by recorders, no training: the prompts each training
    saw (`trained`, in order) and what each scoring read (`scored`: (training number, prompts))."""
    trained, scored = [], []

    def fake_fine_tune(cfg, fb, start, pairs, out_dir, log=None, progress=None):
        model, tokenizer = feedback.load_reward_model(start)
        model.call = len(trained)  # which training made this model
        trained.append({p[0]["content"] for p in pairs["prompt"]})
        return model, tokenizer

    def recording_agreement(model, tokenizer, pairs):
        scored.append((getattr(model, "call", None), {p[0]["content"] for p in pairs["prompt"]}))
        return [True] * len(pairs)

    monkeypatch.setattr(feedback, "fine_tune", fake_fine_tune)
    monkeypatch.setattr(feedback, "agreement", recording_agreement)
    return trained, scored


def test_each_fold_is_scored_by_a_model_that_never_saw_its_prompts(
    small_cfg, small_reward_run, tmp_path, recorder
):
    votes = [
        {"prompt": f"Vote prompt {k}: which?", "chosen": f"Answer {k}.", "rejected": f"No {k}."}
        for k in range(8)
        for _ in range(3)
    ]  # 24 pairs on 8 prompts: enough for 3 folds
    trained, scored = recorder
    fb = FeedbackConfig(folds=3)
    result = retrain_reward(small_cfg, small_reward_run, votes, tmp_path / "out", fb=fb)
    vote_prompts = {v["prompt"] for v in votes}
    assert len(trained) == fb.folds + 1  # one model per fold, then one on every vote
    assert trained[-1] >= vote_prompts and result[M.FEEDBACK_FOLDS] == 3
    held_out = [(call, prompts) for call, prompts in scored if call is not None and call < fb.folds]
    assert len(held_out) == fb.folds  # (the final model is scored on what it trained on, apart)
    for call, prompts in held_out:
        assert prompts and not prompts & trained[call]  # no leak from the fold into its model
        assert trained[call] & vote_prompts  # the other folds' votes were trained on
    assert set().union(*(prompts for _, prompts in held_out)) == vote_prompts


def test_votes_the_start_model_trained_on_are_never_held_out(
    small_cfg, small_reward_run, tmp_path, recorder
):
    """A start model adapted by an earlier round already trained on its votes: they are in every
    fold's training part and never scored (before or after); the new model's record is its
    start's plus the new votes."""
    votes = [
        {"prompt": f"Vote prompt {k}: which?", "chosen": f"Answer {k}.", "rejected": f"No {k}.",
         "vote_id": 100 + k}
        for k in range(12)
    ]  # fmt: skip
    old, new = votes[:5], votes[5:]  # the start model trained on the first 5
    start = tmp_path / "round-001" / "reward-terse"  # a group's chain: the record beside model/
    start.mkdir(parents=True)
    (start / "model").symlink_to(small_reward_run / "reward" / "model")
    record = {"vote_ids": [1, 2], "pairs": sorted(pair_key(r) for r in validate_votes(old))}
    (start / VOTES_SEEN).write_text(json.dumps(record))
    trained, scored = recorder
    fb = FeedbackConfig(folds=3, min_pairs=7)
    out = tmp_path / "round-002" / "reward-terse"
    result = retrain_reward(small_cfg, small_reward_run, votes, out, reward_model=start / "model",
                            fb=fb)  # fmt: skip
    old_prompts, new_prompts = ({v["prompt"] for v in part} for part in (old, new))
    assert result[M.FEEDBACK_VOTE_PAIRS_HELDOUT] == 7 and result[M.FEEDBACK_VOTE_PAIRS_SEEN] == 5
    assert result[M.FEEDBACK_VOTE_PAIRS_TRAIN] == 12 and result[M.FEEDBACK_FOLDS] == 3
    assert scored[0] == (None, new_prompts)  # before: the start model, on the new votes only
    folds = [(call, prompts) for call, prompts in scored if call is not None and call < fb.folds]
    assert len(folds) == fb.folds
    for call, prompts in folds:
        assert prompts <= new_prompts and not prompts & trained[call]
        assert old_prompts <= trained[call]  # what the start model saw is trained on in every fold
    assert set().union(*(prompts for _, prompts in folds)) == new_prompts  # each new vote once
    assert sum(len(prompts) for _, prompts in folds) == len(new)
    assert read_votes_seen(out / "model") == {
        "vote_ids": [1, 2, *range(100, 112)],  # the chain: its start's votes, then its own
        "pairs": sorted(pair_key(r) for r in validate_votes(votes)),
    }
    # With fewer new votes than `min_pairs` nothing is measured, however many votes there are
    fb = FeedbackConfig(folds=3, min_pairs=8)
    few = retrain_reward(small_cfg, small_reward_run, votes, tmp_path / "few",
                         reward_model=start / "model", fb=fb)  # fmt: skip
    assert few[M.FEEDBACK_VOTE_PAIRS_HELDOUT] == 0 and M.FEEDBACK_VOTES_ACCURACY_BEFORE not in few
    assert few[M.FEEDBACK_NOTE].startswith(
        "only 7 vote pairs are new since the reward model this round starts from (5 more it "
        "had trained on already)"
    )
    # A round's model from before rounds kept records: any vote may be its own, none is held out
    legacy = tmp_path / "round-000" / "reward"
    legacy.mkdir(parents=True)
    (legacy / "model").symlink_to(small_reward_run / "reward" / "model")
    write_json(legacy / METRICS_FILE, {M.FEEDBACK_REWARD_FROM: "reward/model"})
    old_round = retrain_reward(small_cfg, small_reward_run, votes, tmp_path / "after-legacy",
                               reward_model=legacy / "model", fb=fb)  # fmt: skip
    assert old_round[M.FEEDBACK_VOTE_PAIRS_HELDOUT] == 0
    assert old_round[M.FEEDBACK_NOTE].startswith("only 0 vote pairs are new")


# --- rounds: the CLI, the chain of models, errors ----------------------------------------------


def write_votes(path, votes: list[dict]) -> None:
    """Votes as the arena stores them (battles between two named models)."""
    from apps.votes import Vote, VoteStore

    store = VoteStore(path)
    for v in votes:
        store.add(Vote("u", "battle", v["prompt"], ("sft", "ppo"), (v["chosen"], v["rejected"]),
                       "win", 0, {}, v.get("group", "")))  # fmt: skip


@pytest.fixture
def run_copy(small_ppo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(small_ppo_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    return run


def test_two_cli_rounds_chain_reward_models_and_policies(
    small_cfg, run_copy, tmp_path, capsys, monkeypatch
):
    votes = taste_votes(small_cfg, run_copy, "terse", 8) + taste_votes(
        small_cfg, run_copy, "warm", 8
    )
    write_votes(tmp_path / "votes.sqlite", votes)
    monkeypatch.setattr(feedback, "FeedbackConfig", lambda: FAST)
    baselines = []  # what each policy round subtracts: the reward model the round adapted from
    real_run_ppo = feedback_round.run_ppo
    monkeypatch.setattr(
        feedback_round,
        "run_ppo",
        lambda *a, **kw: baselines.append(kw["reward_baseline"]) or real_run_ppo(*a, **kw),
    )
    args = ["feedback", "--run", str(run_copy), "--db", str(tmp_path / "votes.sqlite")]
    assert cli([*args, "--ppo-updates", "1"]) == 0
    first = run_copy / "feedback" / "round-001"
    printed = capsys.readouterr().out
    assert "agreement with the class" in printed and "note:" in printed and str(first) in printed
    assert "the policies on the held-out prompts" in printed  # before and after, side by side
    assert printed.split("held-out prompts")[-1].count("\n") >= 3  # header, before, the new one
    summary = json.loads((first / "metrics.json").read_text())
    m = summary["groups"]["all"]
    assert m[M.FEEDBACK_POLICY_FROM] == str(run_copy / "ppo" / "model")
    assert m[M.FEEDBACK_PPO_REWARD] == "delta"  # rewarded for what the votes changed
    assert baselines == [run_copy / "reward" / "model"]
    assert (first / "policy" / "config.json").is_file() and (first / "reward" / "model").is_dir()
    beta = [row[M.PPO_KL_COEF] for row in read_log(first / "ppo") if M.PPO_KL_COEF in row]
    assert beta and set(beta) == {FAST.ppo_kl_coef} != {small_cfg.ppo.kl_coef}  # the round's own
    assert current_models(run_copy) == (first / "reward" / "model", first / "policy")
    # the new policy and its start, measured on 2 answers per held-out prompt (sample 0: each
    # policy's saved table), and what the panel and the CLI say of them
    start = pd.read_json(first / "ppo" / MEASURED_START_TABLE, lines=True)
    new = pd.read_json(first / "ppo" / MEASURED_TABLE, lines=True)
    for table, saved in ((start, run_copy / "ppo" / GOLD_TABLE), (new, first / "ppo" / GOLD_TABLE)):
        assert sorted(set(table["sample"])) == [0, 1]
        assert (
            table[table["sample"] == 0]["answer"].tolist()
            == pd.read_json(saved, lines=True)["answer"].tolist()
        )
    change = m[M.FEEDBACK_POLICY_CHANGE]
    assert m[M.FEEDBACK_POLICY_SAMPLES] == 2 and list(change) == STYLE_COLUMNS
    assert change["length"]["before"] == pytest.approx(start["length"].mean())
    assert change["length"]["after"] == pytest.approx(new["length"].mean())
    assert "2 answers per held-out prompt" in printed and "gold score: " in printed
    block = printed.split("(means per answer):")[-1].splitlines()
    means = next(line for line in block if line.startswith("all"))  # the round's new policy
    assert means.split()[:2] == ["all", str(len(new))]  # over both answers to every prompt

    assert cli([*args, "--per-group", "--ppo-updates", "0"]) == 0
    second = run_copy / "feedback" / "round-002"
    groups = json.loads((second / "metrics.json").read_text())["groups"]
    assert set(groups) == {"terse", "warm"}
    assert groups["warm"][M.FEEDBACK_VOTE_PAIRS_TRAIN] == 8
    # round 1's model trained on all of them: none is new, none held out, and the note says so
    assert groups["warm"][M.FEEDBACK_VOTE_PAIRS_SEEN] == 8
    assert groups["warm"][M.FEEDBACK_VOTE_PAIRS_HELDOUT] == 0
    assert groups["terse"][M.FEEDBACK_REWARD_FROM] == str(first / "reward" / "model")
    assert sorted(p.name for p in second.iterdir()) == [
        "metrics.json",
        "reward-terse",
        "reward-warm",
    ]
    # a group's chain now starts from its own reward model, the policy from the shared one
    assert current_models(run_copy, "warm") == (second / "reward-warm" / "model", first / "policy")


def test_chained_rounds_hold_out_only_the_votes_cast_since_the_last(
    small_cfg, small_reward_run, tmp_path, capsys, monkeypatch
):
    """Round 2 starts from round 1's reward model, which trained on the votes cast before it: only
    the votes cast since are held out, and each model's record holds every vote of its chain,
    a group's own chain (reward-G/) included."""
    run = tmp_path / "run"
    shutil.copytree(small_reward_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    votes = taste_votes(small_cfg, run, "terse", 22)
    assert len({pair_key(row) for row in validate_votes(votes)}) == 22  # 22 different pairs
    cheap = FeedbackConfig(folds=2, epochs=1.0, min_pairs=6, ppo_updates=0, samples=0)
    monkeypatch.setattr(feedback, "FeedbackConfig", lambda: cheap)  # 3 fine-tunings, no policy
    db = tmp_path / "votes.sqlite"
    args = ["feedback", "--run", str(run), "--db", str(db)]
    results, cast = [], 0
    for n, flags in ((8, []), (8, ["--per-group"]), (6, ["--per-group"])):  # new votes, round
        write_votes(db, votes[cast : cast + n])
        cast += n
        assert cli([*args, *flags]) == 0
        folder = run / "feedback" / f"round-{len(results) + 1:03d}"
        m = next(iter(json.loads((folder / "metrics.json").read_text())["groups"].values()))
        results.append((folder, m, capsys.readouterr().out))
    ids = [row["vote_id"] for row in to_preferences(read_votes(db))]
    (first, m1, _), (second, m2, printed), (third, m3, _) = results
    assert (m1[M.FEEDBACK_VOTE_PAIRS_HELDOUT], m1[M.FEEDBACK_VOTE_PAIRS_SEEN]) == (8, 0)
    assert read_votes_seen(first / "reward" / "model")["vote_ids"] == ids[:8]
    # round 2, the terse group's first own model, from round 1's shared one: 8 new, 8 seen
    assert m2[M.FEEDBACK_REWARD_FROM] == str(first / "reward" / "model")
    assert (m2[M.FEEDBACK_VOTE_PAIRS_HELDOUT], m2[M.FEEDBACK_VOTE_PAIRS_SEEN]) == (8, 8)
    assert M.FEEDBACK_VOTES_ACCURACY_BEFORE in m2 and m2[M.FEEDBACK_FOLDS] == 2
    assert read_votes_seen(second / "reward-terse" / "model")["vote_ids"] == ids[:16]
    assert "held out: 8 vote pairs" in printed and "never the 8 it had trained on" in printed
    from apps.retrain import compute_before_after  # the Retrain tab says the same

    panel = compute_before_after(m2).set_index("measure")["after"]
    assert panel["vote pairs held out (new since the reward model it starts from)"] == "8"
    assert panel["vote pairs it had trained on already (never held out)"] == "8"
    # round 3, from the group's own model of round 2
    assert m3[M.FEEDBACK_REWARD_FROM] == str(second / "reward-terse" / "model")
    assert (m3[M.FEEDBACK_VOTE_PAIRS_HELDOUT], m3[M.FEEDBACK_VOTE_PAIRS_SEEN]) == (6, 16)
    assert read_votes_seen(third / "reward-terse" / "model")["vote_ids"] == ids


def test_cli_errors_are_one_line_exit_2_and_write_nothing(small_ppo_run, tmp_path, capsys):
    db = tmp_path / "votes.sqlite"
    args = ["feedback", "--run", str(small_ppo_run), "--db", str(db)]
    write_votes(db, [])
    assert cli(args) == 2 and "no vote pairs in" in capsys.readouterr().err
    write_votes(db, [{**GOOD, "group": "terse"}])
    assert cli([*args, "--group", "warm"]) == 2
    assert capsys.readouterr().err == "error: no votes of group 'warm'; groups with votes: terse\n"
    with sqlite3.connect(db) as conn:  # an older arena stored any text as a group
        conn.execute(
            "INSERT INTO votes (time, annotator, mode, prompt, models, responses, outcome, "
            'winner, decoding, "group") SELECT time, annotator, mode, prompt, models, '
            "responses, outcome, winner, decoding, '../../outside' FROM votes"
        )
    assert cli([*args, "--per-group"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: vote group '../../outside' cannot name a round's folders: {GROUP_RULE}\n"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = 9")
    assert cli(args) == 2
    err = capsys.readouterr().err
    assert str(db) in err and "[9]" in err and "version 2" in err and err.count("\n") == 1
    assert cli(["feedback", "--run", str(tmp_path), "--db", str(db)]) == 2
    assert "run `python -m lab pipeline` first" in capsys.readouterr().err
    assert not (small_ppo_run / "feedback").exists()


def test_a_round_against_its_own_baseline_is_rewarded_nothing(
    small_cfg, small_reward_run, tmp_path
):
    """The baseline reaches PPO's reward: a model minus itself scores 0, so the logged reward is
    only the missing-EOS penalty. The held-out rewards stay the reward model's own scores. A run
    whose PPO stage used a function reward still gets a round against the retrained model."""
    reward = small_reward_run / "reward"
    function = dataclasses.replace(
        small_cfg,
        ppo=dataclasses.replace(small_cfg.ppo, reward="function:lab.world.tastes.terse_reward"),
    )
    m = ppo_round(function, small_reward_run, reward, tmp_path / "out", 1,
                  reward_baseline=reward / "model")  # fmt: skip
    row = next(r for r in read_log(tmp_path / "out") if M.PPO_REWARD in r)
    missing = 1 - row[M.PPO_EOS_RATE]
    assert row[M.PPO_REWARD] == pytest.approx(
        -small_cfg.ppo.missing_eos_penalty * missing, abs=1e-5
    )
    assert abs(m[M.PPO_EVAL_REWARD]) > 1e-3  # a model minus itself would be exactly 0


def test_a_policy_round_needs_a_retrained_reward_model(small_cfg, small_reward_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="retrain the reward model before a policy round"):
        ppo_round(small_cfg, small_reward_run, tmp_path / "missing", tmp_path / "out", 2)
    with pytest.raises(ValueError, match="at least 1 update"):
        ppo_round(small_cfg, small_reward_run, tmp_path, tmp_path / "out", 0)


def test_rounds_are_numbered_and_partial_ones_ignored(tmp_path):
    (tmp_path / "feedback" / "round-001").mkdir(parents=True)
    (tmp_path / "feedback" / "round-002.partial").mkdir()
    assert next_round(tmp_path) == tmp_path / "feedback" / "round-002"
    assert current_models(tmp_path) == (tmp_path / "reward" / "model", tmp_path / "sft" / "model")


# --- pure helpers ------------------------------------------------------------------------------


def test_wilson_interval_matches_the_textbook_values():
    low, high = wilson_interval(8, 10)  # Wilson (1927); e.g. statsmodels proportion_confint
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    narrow, wide = wilson_interval(80, 100), wilson_interval(8, 10)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]


def test_folds_hold_whole_prompts_are_balanced_and_reproducible():
    prompts = [f"p{i // 3}" for i in range(60)]  # 20 prompts, 3 votes each
    folds = assign_folds(prompts, 5, seed=0)
    assert sorted(set(folds)) == [0, 1, 2, 3, 4] and all(folds.count(k) == 12 for k in range(5))
    assert all(len({folds[i] for i in range(j, j + 3)}) == 1 for j in range(0, 60, 3))
    assert assign_folds(prompts, 5, seed=0) == folds and assign_folds(prompts, 5, 1) != folds
    order = list(range(60))
    random.Random(2).shuffle(order)
    moved = assign_folds([prompts[i] for i in order], 5, seed=0)
    assert [moved[order.index(i)] for i in range(60)] == folds  # the same votes, any order


def test_only_new_votes_are_held_out_each_in_one_fold():
    prompts = [f"p{i // 2}" for i in range(40)]  # 20 prompts, 2 vote pairs each
    seen = [i < 14 or i in (21, 30) for i in range(40)]  # the start model trained on these
    folds = held_out_folds(prompts, seen, 3, seed=0)
    new = [i for i in range(40) if not seen[i]]
    assert [f is None for f in folds] == seen  # a seen pair is in every fold's training part
    held = [[i for i in range(40) if folds[i] == k] for k in range(3)]
    assert sorted(sum(held, [])) == new and all(held)  # each new pair held out exactly once
    assert all(len({folds[i] for i in new if prompts[i] == p}) <= 1 for p in prompts)  # by prompt
    assert [folds[i] for i in new] == assign_folds([prompts[i] for i in new], 3, seed=0)
    assert held_out_folds(prompts, [False] * 40, 3, seed=0) == assign_folds(prompts, 3, seed=0)


def test_select_group():
    rows = [{**GOOD, "group": "a"}, {**GOOD, "group": "b"}, GOOD]
    assert select_group(rows, None) == rows and select_group(rows, "b") == [rows[1]]
    with pytest.raises(ValueError, match="no votes of group 'c'; groups with votes: a, b"):
        select_group(rows, "c")


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
    with pytest.raises(ValueError, match=r"^vote 7, pair 1 \(0-based\), field 'prompt'"):
        validate_votes([GOOD, {**GOOD, "prompt": " ", "vote_id": 7}])  # the arena's own id


def test_votes_become_conversational_from_lists_and_datasets():
    import datasets

    rows = [GOOD, {**GOOD, "voter": "ana"}]
    from_list = validate_votes(rows)
    assert from_list.column_names == ["prompt", "chosen", "rejected"]  # extra columns dropped
    assert from_list[0]["chosen"] == [{"role": "assistant", "content": GOOD["chosen"]}]
    assert validate_votes(datasets.Dataset.from_list(rows)).to_list() == from_list.to_list()
