"""Plotly figures for the notebooks and the app; each `plot_*` returns a Figure, never shows it."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


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


def plot_gold_by_kind(tables: dict[str, pd.DataFrame]) -> go.Figure:
    """Mean gold score per task kind for several models (name -> gold table)."""
    rows = [
        {"model": name, "kind": kind, "gold": g}
        for name, table in tables.items()
        for kind, g in table.groupby("kind")["gold"].mean().items()
    ]
    fig = px.bar(
        pd.DataFrame(rows),
        x="kind",
        y="gold",
        color="model",
        barmode="group",
        title="Gold score by task kind",
    )
    fig.update_layout(template="plotly_white", height=350)
    return fig
