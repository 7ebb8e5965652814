"""Plotly figures for the notebooks and the app; each `plot_*` returns a Figure, never shows it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def plot_curves(rows: Sequence[dict], metrics: Sequence[str], title: str = "") -> go.Figure:
    """Lines of `metrics` against `step` from a stage's log.jsonl rows (missing values skipped)."""
    fig = go.Figure()
    for name in metrics:
        points = [(r["step"], r[name]) for r in rows if name in r]
        if points:
            steps, values = zip(*points, strict=True)
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=values,
                    mode="lines+markers" if len(points) < 30 else "lines",
                    name=name,
                )
            )
    fig.update_layout(title=title, xaxis_title="step", template="plotly_white", height=350)
    return fig


def plot_agreement(table: pd.DataFrame) -> go.Figure:
    """Annotator agreement with gold per gold-gap bin (from `compute_agreement_by_gap`)."""
    fig = px.bar(
        table,
        x="gold_gap",
        y="agreement",
        text="pairs",
        title="Annotators agree with gold more on clear pairs",
    )
    fig.update_layout(
        yaxis_range=[0, 1],
        template="plotly_white",
        height=350,
        xaxis_title="|gold(chosen) - gold(rejected)|",
    )
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    return fig


def plot_gold_by_kind(table: pd.DataFrame) -> go.Figure:
    """Mean gold per task kind for several models, with 95% intervals (`compute_gold_by_kind`)."""
    shown = table.assign(
        kind=[f"{k} ({n} prompts)" for k, n in zip(table["kind"], table["n"], strict=True)],
        plus=table["hi"] - table["gold"],
        minus=table["gold"] - table["lo"],
    )
    fig = px.bar(
        shown,
        x="kind",
        y="gold",
        color="model",
        barmode="group",
        error_y="plus",
        error_y_minus="minus",
        title="Gold score by task kind (95% intervals over each kind's prompts)",
    )
    fig.update_layout(template="plotly_white", height=350)
    return fig


def format_bound(bound: float) -> str:
    """A rating bound in whole Elo points; "∞" / "−∞" for a side the votes leave open, "—" if unknown."""
    if math.isnan(bound):  # a model missing from every resample
        return "—"
    return {math.inf: "∞", -math.inf: "−∞"}.get(bound, f"{bound:.0f}")


def plot_leaderboard(table: pd.DataFrame) -> go.Figure:
    """Arena ratings, best first, with 95% interval error bars (from `compute_bootstrap`).

    A bound the votes leave open (a model that only won, or only lost) runs off the plot and
    reads "∞"; models in groups never compared with each other are labelled by group."""
    finite = table[["rating", "lower", "upper"]].to_numpy(float)
    finite = finite[np.isfinite(finite)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
    pad = max(50.0, 0.1 * (high - low))
    lower, upper = (
        table["lower"].clip(lower=low - 2 * pad),
        table["upper"].clip(upper=high + 2 * pad),
    )
    names = table["model"].astype(str)
    if "group" in table and table["group"].nunique() > 1:
        names = names + " (group " + table["group"].astype(str) + ")"
    hover = np.column_stack(
        [table["lower"].map(format_bound), table["upper"].map(format_bound), table["votes"]]
    )
    fig = go.Figure(
        go.Scatter(
            x=names,
            y=table["rating"],
            mode="markers",
            marker={"size": 10},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": upper - table["rating"],
                "arrayminus": table["rating"] - lower,
            },
            customdata=hover,
            hovertemplate="%{x}: %{y:.0f} [%{customdata[0]}, %{customdata[1]}]"
            "<br>%{customdata[2]} battles<extra></extra>",
        )
    )
    fig.update_layout(
        title="Arena leaderboard: Bradley–Terry rating, 95% bootstrap interval",
        xaxis_title="model",
        yaxis_title="rating",
        template="plotly_white",
        height=350,
    )
    if finite.size:  # open bounds' bars run past the edge
        fig.update_yaxes(range=[low - pad, high + pad])
    return fig


def plot_win_matrix(matrix: pd.DataFrame) -> go.Figure:
    """Heatmap of P(row beats column), ties as half (from `compute_win_matrix`); blank if unmet."""
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(),
            x=[str(c) for c in matrix.columns],
            y=[str(i) for i in matrix.index],
            zmin=0,
            zmax=1,
            colorscale="RdBu",
            texttemplate="%{z:.2f}",
            hovertemplate="%{y} beats %{x}: %{z:.2f} (a tie counts as ½)<extra></extra>",
            colorbar={"title": "P(win), tie = ½"},
        )
    )
    fig.update_layout(
        title="How often the row model beats the column model (a tie counts as ½)",
        xaxis_title="opponent",
        yaxis_title="model",
        yaxis_autorange="reversed",  # best model on top, as in the leaderboard
        template="plotly_white",
        height=450,
    )
    return fig


def plot_seed_spread(
    seeds: pd.DataFrame, models: pd.DataFrame, this_run: pd.DataFrame | None = None
) -> go.Figure:
    """Gold per model over seeds: a dot per seed, the mean with its 95% interval, and this run.

    `seeds` and `models` are `sweep.json`'s `runs` and `models`; `this_run` a model table.
    """
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=seeds["model"], y=seeds["gold_mean"], mode="markers", name="one seed",
            text=[f"seed {s}" for s in seeds["seed"]], marker={"color": "lightgray", "size": 9},
        )
    )  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=models["model"], y=models["gold_mean"], mode="markers", name="mean, 95% interval",
            marker={"color": "black", "symbol": "line-ew-open", "size": 18},
            error_y={
                "type": "data", "symmetric": False,
                "array": models["gold_mean_hi"] - models["gold_mean"],
                "arrayminus": models["gold_mean"] - models["gold_mean_lo"],
            },
        )
    )  # fmt: skip
    if this_run is not None:
        fig.add_trace(
            go.Scatter(
                x=this_run["model"], y=this_run["gold_mean"], mode="markers", name="this run",
                marker={"color": "crimson", "size": 11, "symbol": "diamond"},
            )
        )  # fmt: skip
    fig.update_layout(
        title=f"Mean gold on held-out prompts over {seeds['seed'].nunique()} seeds",
        yaxis_title="gold",
        template="plotly_white",
        height=380,
    )
    return fig


def plot_before_after(numbers: pd.DataFrame) -> go.Figure:
    """Before and after bars per measure, with 95% intervals (`compute_before_after_numbers`)."""
    fig = go.Figure()
    for when, color in (("before", "lightgray"), ("after", "steelblue")):
        rows = numbers[numbers["when"] == when]
        fig.add_trace(
            go.Bar(
                x=rows["measure"], y=rows["value"], name=when, marker_color=color,
                error_y={
                    "type": "data", "symmetric": False, "array": rows["high"] - rows["value"],
                    "arrayminus": rows["value"] - rows["low"],
                },
            )
        )  # fmt: skip
    fig.update_layout(
        barmode="group", yaxis={"range": [0, 1], "title": "share of pairs"},
        template="plotly_white", height=320, title="Before and after the round",
    )  # fmt: skip
    return fig


def plot_start_vs_policy(table: pd.DataFrame, title: str = "") -> go.Figure:
    """The start model's and the policy's bars per measure (`lab.yardstick.compute_before_after`)."""
    fig = go.Figure()
    for when, name, color in (("before", "base model", "lightgray"), ("after", "after PPO", "steelblue")):  # fmt: skip
        fig.add_trace(go.Bar(x=table.index, y=table[when], name=name, marker_color=color))
    fig.update_layout(barmode="group", template="plotly_white", height=320, title=title)
    return fig


def plot_group_styles(styles: pd.DataFrame) -> go.Figure:
    """Each policy's mean length, polite phrases and gold side by side (`compute_group_styles`)."""
    panels = [("length", "tokens per answer"), ("polite", "polite phrases per answer"),
              ("gold", "gold score")]  # fmt: skip
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[t for _, t in panels])
    for col, (column, _) in enumerate(panels, start=1):
        fig.add_trace(
            go.Bar(x=styles["policy"], y=styles[column], showlegend=False, marker_color="steelblue"),
            row=1, col=col,
        )  # fmt: skip
    fig.update_layout(
        template="plotly_white", height=320, title="The groups' policies, same prompts"
    )
    return fig
