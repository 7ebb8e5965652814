"""Groups side by side: a per-group round's policies measured on the same held-out prompts."""

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from apps import retrain
from apps.guard import Classroom
from lab import feedback_round
from lab import metrics as M
from lab.evaluation import GOLD_TABLE
from lab.feedback import FeedbackConfig
from lab.group_compare import (
    MEASURED_START_TABLE,
    MEASURED_TABLE,
    STYLE_COLUMNS,
    compute_group_styles,
    compute_policy_change,
    compute_side_by_side,
    compute_style_change,
    format_change,
    read_answers,
    read_measured,
    round_policies,
)
from lab.world import default_world

PROMPTS = ["What is 2 plus 3?", "What is 4 plus 4?", "What is 7 minus 2?"]
ANSWERS = {
    "before": ["Sure! 2 plus 3 is 5.", "4 plus 4 is 8.", "Sure! 7 minus 2 is 5."],
    "terse": ["2 plus 3 is 5.", "4 plus 4 is 8.", "7 minus 2 is 5."],
    "warm": [
        "Happy to help. 2 plus 3 is 5. Have a nice day!",
        "Happy to help. 4 plus 4 is 8. Have a nice day!",
        "7 minus 2 is 5. Have a nice day!",
    ],
}


def gold_table(answers: list[str]) -> pd.DataFrame:
    world = default_world()
    return pd.DataFrame(
        {
            "prompt": PROMPTS,
            "kind": "math",
            "answer": answers,
            "gold": [world.gold_score(p, a) for p, a in zip(PROMPTS, answers, strict=True)],
            "length": [len(a.split()) for a in answers],
        }
    )


def write_round(run, with_policies: bool = True):
    """A finished per-group round as `feedback_round` leaves it (answers written by hand)."""
    before = run / "ppo" / "model"
    before.mkdir(parents=True)
    gold_table(ANSWERS["before"]).to_json(run / "ppo" / GOLD_TABLE, orient="records", lines=True)
    folder = run / "feedback" / "round-001"
    groups = {}
    for group in ("terse", "warm"):
        m = {M.FEEDBACK_REWARD_DIR: f"reward-{group}"}
        if with_policies:
            (folder / f"policy-{group}").mkdir(parents=True)
            (folder / f"ppo-{group}").mkdir()
            table = gold_table(ANSWERS[group])
            table.to_json(folder / f"ppo-{group}" / GOLD_TABLE, orient="records", lines=True)
            m |= {M.FEEDBACK_POLICY_DIR: f"policy-{group}", M.FEEDBACK_POLICY_FROM: str(before)}
        groups[group] = m
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps({"round": folder.name, "groups": groups}))
    return folder


def test_the_groups_policies_differ_where_their_tastes_do(tmp_path):
    policies = round_policies(write_round(tmp_path))
    assert list(policies) == ["before", "terse", "warm"]
    styles = compute_group_styles(default_world(), read_answers(policies)).set_index("policy")
    assert (
        styles.loc["warm", "length"]
        > styles.loc["before", "length"]
        > styles.loc["terse", "length"]
    )
    assert styles.loc["warm", "polite"] == pytest.approx(5 / 3)  # two, two and one polite phrase
    assert styles.loc["terse", "polite"] == 0 and styles.loc["terse", "padding"] == 0
    assert (styles["credit"] == 1.0).all()  # every answer is right: style is all that moved
    assert styles.loc["terse", "gold"] != styles.loc["warm", "gold"]


def test_side_by_side_shows_the_prompts_whose_answers_differ_most(tmp_path):
    tables = read_answers(round_policies(write_round(tmp_path)))
    shown = compute_side_by_side(tables, n=2)
    assert list(shown.columns) == ["prompt", "before", "terse", "warm"]
    assert len(shown) == 2 and "What is 7 minus 2?" not in set(shown["prompt"])  # smallest spread
    row = shown.set_index("prompt").loc["What is 2 plus 3?"]
    assert row["terse"] == ANSWERS["terse"][0] and row["warm"] == ANSWERS["warm"][0]


def test_a_round_without_policies_or_answers_is_said_in_one_line(tmp_path):
    folder = write_round(tmp_path, with_policies=False)
    with pytest.raises(ValueError, match="0 PPO updates"):
        round_policies(folder)
    with pytest.raises(FileNotFoundError, match="terse: no held-out answers at"):
        read_answers({"terse": tmp_path / "nowhere" / "policy-terse"})


def test_the_retrain_tab_shows_the_latest_round_side_by_side(tmp_path):
    arena = SimpleNamespace(run_dir=tmp_path, world=default_world(), classroom=Classroom())
    message, figure, styles, answers = retrain.group_view(arena)
    assert "No feedback round yet" in message and figure is None and styles.empty
    write_round(tmp_path)
    message, figure, styles, answers = retrain.group_view(arena)
    assert message.startswith("round-001: 2 new policies")
    assert list(styles["policy"]) == ["before", "terse", "warm"] and len(figure.data) == 3
    assert set(answers.columns) == {"prompt", "before", "terse", "warm"}
    no_world = SimpleNamespace(run_dir=tmp_path, world=None, classroom=Classroom())
    assert "tiny world" in retrain.group_view(no_world)[0]
    locked = SimpleNamespace(
        run_dir=tmp_path, world=default_world(), classroom=Classroom(password="pw")
    )
    assert "password" in retrain.group_view(locked, "nope")[0]
    assert retrain.group_view(locked, "pw")[0].startswith("round-001")


def test_round_panels_name_each_group(tmp_path):
    m = {M.FEEDBACK_VOTES_ACCURACY_BEFORE: 0.5, M.FEEDBACK_VOTES_ACCURACY_AFTER: 0.8,
         M.FEEDBACK_VOTE_PAIRS_TRAIN: 40}  # fmt: skip
    one = retrain.compute_round_panel({"groups": {"all": m}})
    assert "group" not in one.columns and "0.80" in set(one["after"])
    two = retrain.compute_round_panel({"groups": {"terse": m, "warm": m}})
    assert list(two.columns) == ["group", "measure", "before", "after"]
    assert set(two["group"]) == {"terse", "warm"}
    numbers = retrain.compute_round_numbers({"groups": {"terse": m, "warm": m}})
    assert {"terse: agreement with the class (held-out votes)"} <= set(numbers["measure"])
    assert set(retrain.every_number({"groups": {"all": m}})["metric"]) == set(m)


def test_policy_change_pairs_prompts_and_averages_each_prompts_samples():
    world = default_world()
    before = gold_table(ANSWERS["before"])  # a polite "Sure!" on prompts 0 and 2
    table, wins = compute_policy_change(world, before, gold_table(ANSWERS["terse"]), "terse")
    padding = table.set_index("measure").loc["padding"]
    assert (padding["before"], padding["after"], padding["change"]) == pytest.approx((2 / 3, 0, -1))
    assert (wins.win, wins.tie, wins.loss, wins.n) == pytest.approx((2 / 3, 1 / 3, 0, 3))

    # Two samples per prompt: the terse answers and the old ones again; each prompt's mean counts.
    samples = pd.concat(
        [gold_table(ANSWERS["terse"]).assign(prompt_id=range(3)), before.assign(prompt_id=range(3))]
    )
    table, wins = compute_policy_change(world, before.assign(prompt_id=range(3)), samples, "terse")
    padding, credit = (table.set_index("measure").loc[m] for m in ("padding", "credit"))
    assert padding["after"] == pytest.approx(1 / 3) and padding["diff"] == pytest.approx(-1 / 3)
    assert padding["low"] <= padding["diff"] <= padding["high"] <= 0  # no prompt got more padding
    assert credit["diff"] == 0 and credit["low"] == credit["high"] == 0  # same facts throughout
    assert (wins.win, wins.tie) == pytest.approx((2 / 3, 1 / 3))

    shuffled = samples.sample(frac=1.0, random_state=0)  # pairs by prompt_id, not by row
    again, _ = compute_policy_change(world, before.assign(prompt_id=range(3)), shuffled, "terse")
    pd.testing.assert_frame_equal(again, table)
    with pytest.raises(ValueError, match="prompt_id 2 is in one table only"):
        compute_policy_change(world, before, samples.assign(prompt_id=[0, 1, 5] * 2), "terse")


def test_policy_change_is_relative_to_the_size_of_a_negative_before():
    world = default_world()
    wrong = ["Sure! 2 plus 3 is 6.", "Sure! 4 plus 4 is 9.", "Sure! 7 minus 2 is 4."]
    before, after = gold_table(wrong), gold_table([a.removeprefix("Sure! ") for a in wrong])
    utility = compute_policy_change(world, before, after, "terse")[0].set_index("measure")
    row = utility.loc["utility"]
    assert row["before"] < row["after"] < 0  # wrong answers: less bad without the pleasantry
    assert row["change"] > 0
    assert row["change"] == pytest.approx((row["after"] - row["before"]) / -row["before"])
    padding = utility.loc["padding"]
    assert padding["before"] == 1 and padding["after"] == 0 and padding["change"] == -1
    empty = compute_policy_change(world, after, after, "terse")[0].set_index("measure")
    assert pd.isna(empty.loc["padding", "change"]) and empty.loc["padding", "diff"] == 0


def test_style_change_needs_no_taste_and_the_panel_shows_it(tmp_path):
    world = default_world()
    before = gold_table(ANSWERS["before"]).assign(prompt_id=range(3))
    after = gold_table(ANSWERS["warm"]).assign(prompt_id=range(3))
    change = compute_style_change(world, before, after).set_index("measure")
    assert list(change.index) == STYLE_COLUMNS
    assert change.loc["polite", "before"] == pytest.approx(2 / 3)  # "Sure!" twice
    assert change.loc["polite", "after"] == pytest.approx(5 / 3)
    assert change.loc["length", "diff"] == pytest.approx(
        after["length"].mean() - 17 / 3
    )  # 6, 5 and 6 words before
    assert change.loc["credit", "diff"] == 0  # the same facts, said more warmly

    numbers = change[["before", "after", "diff", "low", "high"]].to_dict("index")
    m = {M.FEEDBACK_VOTE_PAIRS_TRAIN: 40, M.FEEDBACK_POLICY_CHANGE: numbers}
    panel = retrain.compute_round_panel({"groups": {"all": m}}).set_index("measure")
    row = panel.loc["policy: polite phrases per answer"]
    assert row["before"] == "0.67" and row["after"] == format_change(numbers["polite"])
    assert row["after"].startswith("1.67 (+1.00 [")
    assert retrain.compute_round_numbers({"groups": {"all": m}}).empty  # the plot: shares only


def test_the_groups_view_prefers_the_rounds_several_answers_per_prompt(tmp_path):
    folder = write_round(tmp_path)
    arena = SimpleNamespace(run_dir=tmp_path, world=default_world(), classroom=Classroom())
    one = retrain.group_view(arena)[2].set_index("policy")
    assert (one["answers"] == 3).all()
    summary = json.loads((folder / "metrics.json").read_text())
    for group, m in summary["groups"].items():  # as `measure_policy` leaves them: 2 samples
        twice = pd.concat([gold_table(ANSWERS[group]), gold_table(ANSWERS["before"])])
        twice = twice.assign(prompt_id=list(range(3)) * 2)
        start = pd.concat([gold_table(ANSWERS["before"])] * 2).assign(prompt_id=list(range(3)) * 2)
        twice.to_json(folder / f"ppo-{group}" / MEASURED_TABLE, orient="records", lines=True)
        start.to_json(folder / f"ppo-{group}" / MEASURED_START_TABLE, orient="records", lines=True)
        m[M.FEEDBACK_POLICY_CHANGE] = {}
    (folder / "metrics.json").write_text(json.dumps(summary))
    assert list(read_measured(folder)) == ["before", "terse", "warm"]
    several = retrain.group_view(arena)[2].set_index("policy")
    assert (several["answers"] == 6).all()
    assert several.loc["terse", "padding"] == pytest.approx(1 / 3, abs=0.005)  # half the old
    assert several.loc["before", "padding"] == pytest.approx(one.loc["before", "padding"])


def fake_sampler(calls: list):
    """`sample_policy` stood in for: two answers per prompt, the table of the policy's name."""

    def sample(cfg, run_dir, policy, samples):
        calls.append(Path(policy).name if Path(policy).name != "model" else "before")
        answers = ANSWERS[calls[-1].removeprefix("policy-")]
        table = gold_table(answers)
        return pd.concat([table.assign(sample=j, prompt_id=range(3)) for j in range(samples)])

    return sample


def test_a_round_measures_each_groups_policy_and_their_shared_start_once(tmp_path, monkeypatch):
    calls, reports = [], []
    monkeypatch.setattr(feedback_round, "sample_policy", fake_sampler(calls))
    start = tmp_path / "ppo" / "model"
    plan = {group: ([], tmp_path / "reward" / "model", start) for group in ("terse", "warm")}
    results = {group: {M.FEEDBACK_POLICY_DIR: f"policy-{group}"} for group in plan}
    for group in plan:
        (tmp_path / f"ppo-{group}").mkdir()
    feedback_round.measure_policies(
        None, tmp_path, tmp_path, plan, results, 2, default_world(), lambda f, m: reports.append(f)
    )
    assert calls == ["before", "policy-terse", "policy-warm"]  # the shared start: once
    assert reports == sorted(reports) and reports[0] == feedback_round.MEASURING
    for group, m in results.items():
        assert m[M.FEEDBACK_POLICY_SAMPLES] == 2
        measured = pd.read_json(tmp_path / f"ppo-{group}" / MEASURED_TABLE, lines=True)
        assert len(measured) == 6 and set(measured["answer"]) == set(ANSWERS[group])
        assert (tmp_path / f"ppo-{group}" / MEASURED_START_TABLE).is_file()
        for n in m[M.FEEDBACK_POLICY_CHANGE].values():
            assert n["low"] <= n["diff"] <= n["high"]
            assert n["diff"] == pytest.approx(n["after"] - n["before"])
    terse, warm = (results[g][M.FEEDBACK_POLICY_CHANGE] for g in ("terse", "warm"))
    assert terse["padding"]["diff"] < 0 < warm["padding"]["diff"]  # each moved its group's way
    assert terse["credit"]["diff"] == warm["credit"]["diff"] == 0


def test_a_round_that_fails_while_measuring_leaves_nothing(tmp_path, monkeypatch):
    from lab.config import LabConfig

    for model in ("reward/model", "ppo/model"):
        (tmp_path / model).mkdir(parents=True)

    def trained(cfg, fb, run_dir, folder, g, rows, reward, policy, progress):
        (folder / "policy").mkdir(parents=True)
        (folder / "ppo").mkdir()
        return {M.FEEDBACK_POLICY_DIR: "policy"}

    def broken(*args):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(feedback_round, "group_round", trained)
    monkeypatch.setattr(feedback_round, "sample_policy", broken)
    pairs = [{"prompt": "q", "chosen": "a", "rejected": "b", "group": ""}]
    with pytest.raises(RuntimeError, match="out of memory"):
        feedback_round.feedback_round(LabConfig(), tmp_path, pairs, FeedbackConfig())
    assert not (tmp_path / "feedback").exists() or not list((tmp_path / "feedback").iterdir())
    with pytest.raises(ValueError, match="samples: .* 0 or more; got -1"):
        feedback_round.feedback_round(LabConfig(), tmp_path, pairs, FeedbackConfig(samples=-1))
    calls = []  # samples=0: the round measures nothing
    monkeypatch.setattr(feedback_round, "sample_policy", fake_sampler(calls))
    folder, summary = feedback_round.feedback_round(
        LabConfig(), tmp_path, pairs, FeedbackConfig(samples=0)
    )
    assert calls == [] and M.FEEDBACK_POLICY_CHANGE not in summary["groups"]["all"]
