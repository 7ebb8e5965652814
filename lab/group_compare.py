"""Policies side by side: how each group's policy answers the same held-out prompts, and how
far one policy moved from the one it started from (`compute_policy_change`).

A per-group feedback round (`lab.feedback_round.feedback_round(per_group=True)`) gives every group of
voters its own reward model and policy. Each policy's answers to the run's held-out prompts are
saved with it (a gold table: prompt, kind, answer, gold, length), so comparing the groups needs
no generation: the same prompts, answered by each group's policy, measured by the gold judge.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from lab import metrics as M
from lab.evaluation import GOLD_TABLE, WinRate, compute_win_rate
from lab.intervals import bootstrap_ci
from lab.runlog import METRICS_FILE
from lab.world import World
from lab.world.tastes import compute_answer_style

MEASURED_TABLE = "measured.jsonl"  # in a round's ppo-G/: its policy, K answers per prompt
MEASURED_START_TABLE = "measured_start.jsonl"  # beside it: the policy the round started from
STYLE_COLUMNS = ["length", "polite", "padding", "credit", "gold"]
"""What the comparison shows per group: tokens, polite phrases, polite + filler phrases,
share of the ideal answer (the judge's `credit`), gold score."""
STYLE_LABELS = {
    "length": "answer length (tokens)",
    "polite": "polite phrases per answer",
    "padding": "polite + filler phrases per answer",
    "credit": "correctness (the judge's credit)",
    "gold": "gold score",
}
"""How the `STYLE_COLUMNS` read in a table for people."""
CHANGE_COLUMNS = ["padding", "length", "credit", "utility"]
"""What `compute_policy_change` compares: polite + filler phrases, tokens, credit, and the
answer's utility under the class's taste."""


def policy_home(policy: Path) -> Path:
    """The folder of the step that trained a saved policy, which keeps its log and answers: a
    stage's `model/` lives in the stage folder; a round's `policy-G/` came from the round's `ppo-G/`."""
    policy = Path(policy)
    if policy.name == "model":
        return policy.parent
    return policy.parent / policy.name.replace("policy", "ppo", 1)


def answers_of(policy: Path) -> Path:
    """The held-out answers (gold table) saved with a policy, in its `policy_home`."""
    return policy_home(policy) / GOLD_TABLE


def round_policies(round_dir: Path) -> dict[str, Path]:
    """A finished round's policies by label: 'before' (where the round started), then each group's."""
    summary = json.loads((Path(round_dir) / METRICS_FILE).read_text())
    found: dict[str, Path] = {}
    for label, m in summary["groups"].items():
        if M.FEEDBACK_POLICY_DIR not in m:
            continue
        found.setdefault("before", Path(m[M.FEEDBACK_POLICY_FROM]))
        found[label] = Path(round_dir) / m[M.FEEDBACK_POLICY_DIR]
    if len(found) < 2:
        raise ValueError(f"{round_dir}: no policy in this round (it ran with 0 PPO updates)")
    return found


def read_answers(policies: dict[str, Path]) -> dict[str, pd.DataFrame]:
    """Each policy's saved held-out answers; a missing table raises, naming the policy."""
    tables = {}
    for label, policy in policies.items():
        path = answers_of(policy)
        if not path.is_file():
            raise FileNotFoundError(f"{label}: no held-out answers at {path}")
        tables[label] = pd.read_json(path, lines=True)
    return tables


def read_measured(round_dir: Path) -> dict[str, pd.DataFrame]:
    """A round's policies measured on several answers per prompt (`lab.feedback_round.measure_policy`),
    labelled as `round_policies` labels them; empty when the round did not measure them."""
    summary = json.loads((Path(round_dir) / METRICS_FILE).read_text())
    found: dict[str, pd.DataFrame] = {}
    for label, m in summary["groups"].items():
        if M.FEEDBACK_POLICY_CHANGE not in m:
            continue
        folder = policy_home(Path(round_dir) / m[M.FEEDBACK_POLICY_DIR])
        if "before" not in found:
            found["before"] = pd.read_json(folder / MEASURED_START_TABLE, lines=True)
        found[label] = pd.read_json(folder / MEASURED_TABLE, lines=True)
    return found


def compute_answer_features(world: World, table: pd.DataFrame) -> pd.DataFrame:
    """Per answer of a gold table: the `STYLE_COLUMNS`, measured by the world's judge."""
    feats = [world.features(p, a) for p, a in zip(table["prompt"], table["answer"], strict=True)]
    return pd.DataFrame(
        {
            "prompt": table["prompt"],
            "answer": table["answer"],
            "length": table["length"],
            "polite": [f.polite + f.polite_excess for f in feats],
            "padding": [f.polite + f.polite_excess + f.filler for f in feats],
            "credit": [f.credit for f in feats],
            "gold": table["gold"],
        }
    )


def compute_group_styles(world: World, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per policy: answers and the mean of each `STYLE_COLUMNS` over the same prompts."""
    rows = []
    for label, table in tables.items():
        measured = compute_answer_features(world, table)
        rows.append({"policy": label, "answers": len(measured)} | {
            column: float(measured[column].mean()) for column in STYLE_COLUMNS
        })  # fmt: skip
    return pd.DataFrame(rows, columns=["policy", "answers", *STYLE_COLUMNS])


def compute_side_by_side(tables: dict[str, pd.DataFrame], n: int = 6) -> pd.DataFrame:
    """The `n` prompts whose answers differ most in length across policies, one column per policy."""
    merged = None
    for label, table in tables.items():
        part = table[["prompt", "answer", "length"]].rename(
            columns={"answer": label, "length": f"{label} length"}
        )
        part = part.drop_duplicates("prompt")
        merged = part if merged is None else merged.merge(part, on="prompt")
    if merged is None or merged.empty:
        return pd.DataFrame(columns=["prompt", *tables])
    lengths = merged[[f"{label} length" for label in tables]]
    merged["spread"] = lengths.max(axis=1) - lengths.min(axis=1)
    top = merged.sort_values(["spread", "prompt"], ascending=[False, True]).head(n)
    return top[["prompt", *tables]].reset_index(drop=True)


def prompt_means(measured: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """Each prompt's mean of every number in `measured` (one row per answer of `table`, which is
    one gold table, or several stacked with a `prompt_id` column: `lab.evaluation.evaluate_samples`)."""
    ids = table["prompt_id"] if "prompt_id" in table else range(len(table))
    return measured.assign(prompt_id=list(ids)).groupby("prompt_id").mean(numeric_only=True)


def compute_change(old: pd.DataFrame, new: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per column of two policies' prompt means (`prompt_means`) on the same prompts: the mean
    before and after, the relative change, and the paired difference with a 95% bootstrap
    interval over prompts."""
    if not old.index.equals(new.index):
        only = sorted(set(old.index) ^ set(new.index))
        raise ValueError(
            f"the two policies answered different prompts: prompt_id {only[0]} is in one table only"
        )
    rows = []
    for column in columns:
        diff = (new[column] - old[column]).tolist()
        a, b = float(old[column].mean()), float(new[column].mean())
        low, high = bootstrap_ci(diff)
        change = (b - a) / abs(a) if a else float("nan")
        rows.append([column, a, b, change, b - a, low, high])
    return pd.DataFrame(
        rows, columns=["measure", "before", "after", "change", "diff", "low", "high"]
    )


def compute_policy_change(
    world: World, before: pd.DataFrame, after: pd.DataFrame, taste: str
) -> tuple[pd.DataFrame, WinRate]:
    """How a policy's answers moved from `before` to `after` on the same prompts, under `taste`.

    Each table is one gold table, or several stacked with a `prompt_id` column; a prompt's
    measure is the mean over its answers (`prompt_means`). One row per `CHANGE_COLUMNS`
    measure (`compute_change`). The `WinRate` counts the prompts whose mean utility under
    `taste` rose (win), stayed (tie) or fell (loss).
    """
    old, new = (prompt_means(compute_answer_style(world, t, taste), t) for t in (before, after))
    table = compute_change(old, new, CHANGE_COLUMNS)
    return table, compute_win_rate(new["utility"].tolist(), old["utility"].tolist())


def compute_style_change(world: World, before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """`compute_policy_change` without a taste: how the `STYLE_COLUMNS` moved, prompt by prompt.
    What a feedback round reports of its policy, whoever voted (`lab.feedback_round`)."""
    old, new = (prompt_means(compute_answer_features(world, t), t) for t in (before, after))
    return compute_change(old, new, STYLE_COLUMNS)


def format_change(numbers: dict) -> str:
    """'11.32 (-2.56 [-2.80, -2.32])': a measure after, then its change with the 95% interval."""
    n = numbers
    return f"{n['after']:.2f} ({n['diff']:+.2f} [{n['low']:+.2f}, {n['high']:+.2f}])"
