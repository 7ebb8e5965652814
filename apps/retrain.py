"""Instructor handlers that close the loop: a feedback round on the class's votes (the reward
model adapted to them, then a short PPO round from the current policy), the new models added to
the arena; simulated voters with a taste."""

from __future__ import annotations

import dataclasses

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from apps.guard import check_group, whole_number
from apps.handlers import Arena
from apps.jobs import Progress, start_job
from apps.simulate import simulate_votes
from apps.students import instructor_check
from apps.votes import to_preferences
from lab import metrics as M
from lab.feedback import FeedbackConfig, select_group
from lab.feedback_round import feedback_round, next_round, rounds
from lab.group_compare import (
    STYLE_COLUMNS,
    STYLE_LABELS,
    compute_group_styles,
    compute_side_by_side,
    format_change,
    read_answers,
    read_measured,
    round_policies,
)
from lab.leaderboard import compute_model_counts
from lab.plots import plot_before_after, plot_group_styles
from lab.votes_db import GROUP_NAME, GROUP_RULE, left_out_note, pairs_to_battles
from lab.world.tastes import TASTES, compute_style_only_pairs

MAX_SIMULATED = 500
MAX_PPO_UPDATES = 200
CLEAR_WINS = 0.15  # a model that wins (or loses) all but this share of its pairs: little to learn
RETRAIN_HELP = "\n".join(
    [
        "**A feedback round**: the reward model the arena uses now is fine-tuned on the class's "
        "votes (with a replay of the original pairs, so it keeps what it knew), then a short PPO "
        "round trains the current policy on what the votes changed (the new reward model's score "
        "minus the old one's, so the old model's mistakes cancel out). The new policy joins "
        "Compare, Battle and the leaderboard: battle it against the old one. Agreement with the "
        "class is measured on held-out votes, before and after: 5-fold cross-validation by "
        "prompt over the votes new since the reward model it starts from (votes an earlier round "
        "trained on are never held out). In the tiny world the round then measures the new "
        f"policy against the one it started from on {FeedbackConfig().samples} answers per "
        "held-out prompt: length, polite phrases, correctness and gold, each before and after "
        "with a 95% interval on the change. With votes in groups (`--groups` join codes, or "
        "simulated groups), tick *one round per group*: each group gets its own reward model "
        "and policy, and the button below the results shows the groups' policies answering the "
        "same held-out prompts side by side.",
        "",
        "Simulated classes (Data tab) vote with a taste of their own:",
        *(f"- `{name}`: {description}" for name, (_, description) in TASTES.items()),
    ]
)


def start(
    arena: Arena, password: str, ppo_updates: float, group: str = "", per_group: bool = False,
    request: gr.Request | None = None,
) -> str:  # fmt: skip
    """Start a feedback round in the background (instructor only; one job at a time).

    `group` ('' = every vote) keeps one group's votes; `per_group` gives every group of votes
    its own reward model and policy. The round's policies join the arena.
    """
    problem = instructor_check(arena, password, request)
    if problem:
        return problem
    updates = whole_number(ppo_updates, 0, MAX_PPO_UPDATES)
    if updates is None:
        return f"PPO updates: choose a whole number from 0 to {MAX_PPO_UPDATES}."
    problem = check_group(group)
    if problem:
        return problem
    group = group.strip()
    if per_group not in (True, False):
        return "One round per group: tick the box or leave it empty."
    if per_group and group:
        return "Either one group's votes or one round per group: empty the group box or untick."
    if arena.cfg is None or arena.run_dir is None:
        return "Retraining needs the pipeline's run folder (start the arena with --run)."
    with arena.job_lock:  # the check and the start as one step: two clicks start one round
        return start_round(arena, group, per_group, updates)


def start_round(arena: Arena, group: str, per_group: bool, updates: int) -> str:
    """`start` once its input is checked, under `arena.job_lock`: the votes now, then the job."""
    if arena.job is not None and arena.job.running:
        return "A retraining job is already running: wait for it to finish."
    votes = arena.store.votes()
    pairs = to_preferences(votes)
    if not pairs:
        return "No preference pairs yet: votes with a winner make pairs." + left_out_note(votes)
    pairs, problem = group_pairs(pairs, group)
    if problem:
        return problem
    groups = sorted({row.get("group", "") for row in pairs} - {""})
    if per_group and not groups:
        return "No vote carries a group: one round per group needs grouped votes."
    if per_group and not all(GROUP_NAME.fullmatch(g) for g in groups):
        return f"Some votes carry a group that cannot name a round's folders ({GROUP_RULE})."
    fb = dataclasses.replace(FeedbackConfig(), ppo_updates=updates)
    folder = next_round(arena.run_dir)
    job = lambda report: work(arena, pairs, fb, group or None, report, per_group)  # noqa: E731
    arena.job = start_job(folder.name, job)
    each = f" (one round per group: {', '.join(groups)})" if per_group else ""
    left_out = left_out_note(votes, group or None)  # of the votes this round reads
    return f"Retraining on {len(pairs)} vote pairs in {folder.name}{each}{left_out} …"


def group_pairs(pairs: list[dict], group: str) -> tuple[list[dict], str | None]:
    """One group's vote pairs ('' = every pair), or a message when it has none. The message names
    the groups that have votes only when they are group names: stored text is never echoed."""
    try:
        return select_group(pairs, group or None), None
    except ValueError:  # its message repeats the stored group names as they are
        pass
    known = sorted(
        {row.get("group", "") for row in pairs if GROUP_NAME.fullmatch(row.get("group", ""))}
    )
    return [], "No votes of that group yet. Groups with votes: " + (
        ", ".join(known) or "none"
    ) + "."


def work(
    arena: Arena,
    pairs: list[dict],
    fb: FeedbackConfig,
    group: str | None,
    report: Progress,
    per_group: bool = False,
) -> dict:
    """Run the round (the same `lab.feedback_round.feedback_round` as `python -m lab feedback`), add
    its policies to the pool; a one-group round also swaps its reward model in. The summary."""
    folder, summary = feedback_round(
        arena.cfg, arena.run_dir, pairs, fb, group, per_group=per_group, progress=report
    )
    for label, result in summary["groups"].items():
        suffix = "" if label == "all" else f"-{label}"
        if not per_group:  # one reward model scores the arena's answers: a group's own, or all
            arena.pool.set_reward(str(folder / result[M.FEEDBACK_REWARD_DIR] / "model"))
        if M.FEEDBACK_POLICY_DIR in result:
            arena.pool.add(
                f"ppo-{folder.name}{suffix}", str(folder / result[M.FEEDBACK_POLICY_DIR])
            )
    return summary


BEFORE_AFTER = {  # the readable rows of the Retrain tab: (label, before, after, interval names)
    "agreement with the class (held-out votes)": (
        M.FEEDBACK_VOTES_ACCURACY_BEFORE,
        M.FEEDBACK_VOTES_ACCURACY_AFTER,
        M.FEEDBACK_VOTES_ACCURACY_BEFORE_CI,
        M.FEEDBACK_VOTES_ACCURACY_AFTER_CI,
    ),
    "accuracy vs gold (world's held-out pairs)": (
        M.FEEDBACK_GOLD_ACCURACY_BEFORE,
        M.FEEDBACK_GOLD_ACCURACY_AFTER,
        M.FEEDBACK_GOLD_ACCURACY_BEFORE_CI,
        M.FEEDBACK_GOLD_ACCURACY_AFTER_CI,
    ),
}

AGREEMENT_CHANGE = "agreement change (the same held-out votes; 95% interval over prompts)"
VOTE_COUNTS = {  # the vote pairs a round used: held out are only those its start never trained on
    "vote pairs used": M.FEEDBACK_VOTE_PAIRS_TRAIN,
    "vote pairs held out (new since the reward model it starts from)": (
        M.FEEDBACK_VOTE_PAIRS_HELDOUT
    ),
    "vote pairs it had trained on already (never held out)": M.FEEDBACK_VOTE_PAIRS_SEEN,
}


def with_interval(result: dict, name: str, ci_name: str) -> str:
    """'0.81 (0.76–0.85)', or 'n/a' when missing."""
    value, ci = result.get(name), result.get(ci_name)
    if value is None:
        return "n/a"
    return f"{value:.2f}" + (f" ({ci[0]:.2f}–{ci[1]:.2f})" if ci else "")


def compute_before_after(result: dict) -> pd.DataFrame:
    """A round's readable before/after table: the reward model's agreement (Wilson 95%
    intervals), the votes used, and how the policy's answers moved (the change, with a 95%
    bootstrap interval over the held-out prompts: `lab.feedback_round.measure_policy`)."""
    rows = [
        {"measure": label, "before": with_interval(result, b, b_ci),
         "after": with_interval(result, a, a_ci)}
        for label, (b, a, b_ci, a_ci) in BEFORE_AFTER.items()
    ]  # fmt: skip
    if change := result.get(M.FEEDBACK_VOTES_ACCURACY_CHANGE_CI):
        moved = result[M.FEEDBACK_VOTES_ACCURACY_AFTER] - result[M.FEEDBACK_VOTES_ACCURACY_BEFORE]
        rows.append(
            {
                "measure": AGREEMENT_CHANGE,
                "before": "",
                "after": f"{moved:+.2f} ({change[0]:+.2f}–{change[1]:+.2f})",
            }
        )
    for label, name in VOTE_COUNTS.items():
        rows.append({"measure": label, "before": "", "after": str(result.get(name, ""))})
    for measure, numbers in result.get(M.FEEDBACK_POLICY_CHANGE, {}).items():
        rows.append({"measure": f"policy: {STYLE_LABELS[measure]}",
                     "before": f"{numbers['before']:.2f}", "after": format_change(numbers)})  # fmt: skip
    if M.FEEDBACK_NOTE in result:
        rows.append({"measure": "note", "before": "", "after": result[M.FEEDBACK_NOTE]})
    return pd.DataFrame(rows)


def compute_before_after_numbers(result: dict) -> pd.DataFrame:
    """The panel's numbers for a plot: measure, when (before/after), value, low, high."""
    rows = []
    for label, (b, a, b_ci, a_ci) in BEFORE_AFTER.items():
        for when, name, ci in (("before", b, b_ci), ("after", a, a_ci)):
            if result.get(name) is not None:
                low, high = result.get(ci) or (result[name], result[name])
                rows.append(
                    {
                        "measure": label,
                        "when": when,
                        "value": result[name],
                        "low": low,
                        "high": high,
                    }
                )
    return pd.DataFrame(rows, columns=["measure", "when", "value", "low", "high"])


def compute_round_panel(summary: dict) -> pd.DataFrame:
    """`compute_before_after` for each group of a round (a `group` column when there are several)."""
    groups = summary.get("groups", {})
    if len(groups) == 1:
        return compute_before_after(next(iter(groups.values())))
    return pd.concat(
        [compute_before_after(m).assign(group=label) for label, m in groups.items()],
        ignore_index=True,
    )[["group", "measure", "before", "after"]]


def compute_round_numbers(summary: dict) -> pd.DataFrame:
    """`compute_before_after_numbers` for each group of a round, group names in the measures."""
    groups = summary.get("groups", {})
    parts = [
        compute_before_after_numbers(m).assign(
            measure=lambda t, g=label: t["measure"] if len(groups) == 1 else g + ": " + t["measure"]
        )
        for label, m in groups.items()
    ]
    return pd.concat(parts, ignore_index=True) if parts else compute_before_after_numbers({})


def every_number(summary: dict) -> pd.DataFrame:
    """Every number of a round (metric names prefixed with the group when there are several)."""
    groups = summary.get("groups", {})
    rows = [
        {"metric": name if len(groups) == 1 else f"{label}: {name}", "value": value}
        for label, m in groups.items()
        for name, value in m.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    return pd.DataFrame(rows, columns=["metric", "value"])


def status(arena: Arena) -> tuple[str, pd.DataFrame, go.Figure | None, pd.DataFrame]:
    """The job's progress line, the readable before/after panel and its plot, every number."""
    if arena.job is None:
        return "No retraining yet.", pd.DataFrame(), None, pd.DataFrame()
    if arena.job.running:
        return arena.job.status(), pd.DataFrame(), None, every_number({})
    if arena.job.views is None:  # built once: every open page asks for them every 2 s
        summary = arena.job.result or {}
        numbers = compute_round_numbers(summary)
        figure = plot_before_after(numbers) if not numbers.empty else None
        panel = compute_round_panel(summary) if summary else pd.DataFrame()
        arena.job.views = (panel, figure, every_number(summary))
    return arena.job.status(), *arena.job.views


def group_view(
    arena: Arena, password: str = "", request: gr.Request | None = None
) -> tuple[str, go.Figure | None, pd.DataFrame, pd.DataFrame]:
    """The latest round's policies side by side on the same held-out prompts (instructor only):
    a message, the plot, each policy's means (length, polite phrases, gold: over the several
    answers per prompt the round measured, else the one saved), the answers that differ most.
    It reads the answers saved with each policy: nothing is generated."""
    empty = (None, pd.DataFrame(), pd.DataFrame())
    problem = instructor_check(arena, password, request)
    if problem:
        return problem, *empty
    if arena.run_dir is None or arena.world is None:
        return "The groups' view needs the tiny world's run folder (--run).", *empty
    done = rounds(arena.run_dir)
    if not done:
        return "No feedback round yet: retrain first (tick one round per group).", *empty
    try:
        tables = read_answers(round_policies(done[-1]))
        measured = read_measured(done[-1])  # several answers per prompt, if the round measured them
    except (OSError, ValueError, KeyError) as error:
        return f"{done[-1].name}: {error}", *empty
    styles = compute_group_styles(arena.world, measured or tables)
    shown = styles.round({c: 2 for c in STYLE_COLUMNS})
    message = f"{done[-1].name}: {len(tables) - 1} new policies beside the one they started from."
    return message, plot_group_styles(styles), shown, compute_side_by_side(tables)


def compute_vote_content(pairs: list[dict]) -> pd.DataFrame:
    """Who the vote pairs are about: per model, the pairs it is in, their share of all pairs, and
    the share of its pairs it won; most pairs first. An empty list raises."""
    counts = compute_model_counts(pairs_to_battles(pairs))
    return pd.DataFrame(
        {
            "model": counts["model"],
            "pairs": counts["battles"],
            "share of pairs": (counts["battles"] / len(pairs)).round(2),
            "won": (counts["wins"] / counts["battles"]).round(2),
        }
    )


def vote_content(
    arena: Arena, password: str = "", group: str = "", request: gr.Request | None = None
) -> tuple[str, pd.DataFrame]:
    """What the votes so far can teach a round (instructor only): who the pairs are about and,
    in the tiny world, how many pairs show the class's taste for polite phrases alone."""
    problem = instructor_check(arena, password, request)
    if problem:
        return problem, pd.DataFrame()
    problem = check_group(group)
    if problem:
        return problem, pd.DataFrame()
    votes = arena.store.votes()
    pairs = to_preferences(votes)
    if not pairs:
        return "No preference pairs yet: votes with a winner make pairs." + left_out_note(
            votes
        ), pd.DataFrame()
    pairs, problem = group_pairs(pairs, group.strip())
    if problem:
        return problem, pd.DataFrame()
    table = compute_vote_content(pairs)
    top = table.iloc[0]
    lines = [
        f"Vote pairs: {len(pairs)}. `{top['model']}` is in {top['share of pairs']:.0%} of them "
        f"and won {top['won']:.0%} of those."
        + (
            " A pair whose winner nobody doubts teaches a round little the reward model did not know."
            if min(top["won"], 1 - top["won"]) <= CLEAR_WINS
            else ""
        )
    ]
    if arena.world is not None:
        alone = compute_style_only_pairs(arena.world, pairs)
        lines.append(
            f"Pairs that differ only in polite phrases: {len(alone)} (the less polite answer "
            f"chosen in {int(alone['chosen_has_less'].sum()) if len(alone) else 0}). What a round can "
            "learn about this class's taste for pleasantries rests on those."
        )
    return "\n\n".join(lines), table


def simulate(
    arena: Arena, password: str, n: float, taste: str = "", group: str = "",
    request: gr.Request | None = None,
) -> str:  # fmt: skip
    """Cast `n` votes by simulated annotators, or by a class with `taste` (instructor only)."""
    problem = instructor_check(arena, password, request)
    if problem:
        return problem
    count = whole_number(n, 1, MAX_SIMULATED)
    if count is None:
        return f"Choose between 1 and {MAX_SIMULATED} simulated votes."
    if not isinstance(taste, str) or (taste and taste not in TASTES):
        return f"Unknown taste: choose one of {', '.join(TASTES)} (or none)."
    problem = check_group(group)
    if problem:
        return problem
    if arena.world is None:
        return "Simulated annotators need the tiny world (start the arena with --run runs/tiny)."
    seed = arena.rng.randrange(10**6)
    ids = simulate_votes(arena, count, seed=seed, taste=taste or None, group=group.strip())
    who = f" by a {taste} class" if taste else ""
    return f"Cast {len(ids)} simulated votes{who}" + (" (with a group)." if group.strip() else ".")


def tastes() -> list[tuple[str, str]]:
    """(label, value) choices for a taste picker: each taste with its one-line description."""
    return [("world's annotators", "")] + [
        (f"{name}: {description}", name) for name, (_, description) in TASTES.items()
    ]
