"""Plotly figures for the pages; the numbers come from mnist_core."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mnist_core.model import LayerRow
from mnist_core.train import EpochMetrics
from mnist_core.visual import smooth, thin

MAX_POINTS = 2000  # the live chart stays light whatever the run's length


def loss_figure(
    batch_losses: list[float],
    epochs: list[EpochMetrics],
    full_losses: list[tuple[int, float]] | None = None,
    total_steps: int | None = None,
    height: int = 420,
) -> go.Figure:
    """Every batch's loss (thinned), its smoothed line, and per-epoch test accuracy on a second axis."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    if batch_losses:
        smoothed = smooth(batch_losses)
        steps, raw = thin(batch_losses, MAX_POINTS)
        fig.add_trace(
            go.Scattergl(x=steps, y=raw, mode="markers", name="batch loss", marker={"size": 3, "opacity": 0.35}),
            secondary_y=False,
        )
        fig.add_trace(
            go.Scattergl(x=steps, y=smoothed[steps - 1], mode="lines", name="smoothed", line={"width": 2.5}),
            secondary_y=False,
        )
    if full_losses:
        s, v = zip(*full_losses)
        fig.add_trace(go.Scatter(x=s, y=v, mode="lines+markers", name="loss on whole train set"), secondary_y=False)
    if epochs:
        fig.add_trace(
            go.Scatter(
                x=[e.step for e in epochs],
                y=[e.test_acc for e in epochs],
                mode="lines+markers",
                name="test accuracy",
                line={"dash": "dot"},
            ),
            secondary_y=True,
        )
    fig.update_xaxes(title_text="step (batch)", range=[0, total_steps] if total_steps else None)
    fig.update_yaxes(title_text="cross-entropy loss", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(
        title_text="test accuracy",
        secondary_y=True,
        range=[0, 1],
        tickformat=".0%",
        tickmode="linear",
        dtick=0.2,
        showgrid=False,
    )
    fig.update_layout(height=height, margin={"t": 30, "b": 40}, legend={"orientation": "h", "y": 1.12})
    return fig


def epoch_figure(epochs: list[EpochMetrics]) -> go.Figure:
    """Per-epoch train and test loss and accuracy."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    x = [e.epoch for e in epochs]
    for name, key, col in (
        ("train loss", "train_loss", 1),
        ("test loss", "test_loss", 1),
        ("train accuracy", "train_acc", 2),
        ("test accuracy", "test_acc", 2),
    ):
        fig.add_trace(go.Scatter(x=x, y=[getattr(e, key) for e in epochs], mode="lines+markers", name=name), 1, col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_layout(height=340, margin={"t": 40, "b": 40})
    return fig


def confusion_figure(confusion: np.ndarray, classes: list[str]) -> go.Figure:
    """The confusion matrix as a heatmap; an almost invisible marker on each cell makes cells clickable
    (Streamlit reports clicks on points, and a heatmap has none)."""
    k = len(classes)
    fig = go.Figure(
        go.Heatmap(
            z=confusion,
            x=classes,
            y=classes,
            colorscale="Blues",
            text=confusion,
            texttemplate="%{text}",
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=[classes[j] for i in range(k) for j in range(k)],
            y=[classes[i] for i in range(k) for j in range(k)],
            customdata=confusion.reshape(-1),
            mode="markers",
            marker={"size": 30, "opacity": 0.01, "symbol": "square"},
            hovertemplate="true %{y}, predicted %{x}: %{customdata}<extra>click to see them</extra>",
            showlegend=False,
        )
    )
    fig.update_xaxes(title_text="predicted", type="category")
    fig.update_yaxes(title_text="true", autorange="reversed", type="category")
    fig.update_layout(height=520, margin={"t": 20, "b": 40}, clickmode="event+select")
    return fig


def probability_figure(probs: np.ndarray, classes: list[str], height: int = 260) -> go.Figure:
    best = int(np.argmax(probs))
    colors = ["#d62728" if i == best else "#1f77b4" for i in range(len(probs))]
    fig = go.Figure(go.Bar(x=list(classes), y=probs, marker_color=colors, text=[f"{p:.0%}" for p in probs]))
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text="probability")
    fig.update_layout(height=height, margin={"t": 10, "b": 30})
    return fig


def class_count_figure(counts: pd.DataFrame) -> go.Figure:
    fig = go.Figure(
        [go.Bar(x=part["class"], y=part["count"], name=split) for split, part in counts.groupby("split", sort=False)]
    )
    fig.update_xaxes(type="category")
    fig.update_layout(barmode="group", height=300, margin={"t": 10, "b": 30}, yaxis_title="images")
    return fig


def shrink_figure(rows: list[LayerRow]) -> go.Figure:
    """How the feature maps shrink (28 -> 14 -> 7 -> 4 -> 2) while the channels grow."""
    convs = [r for r in rows if len(r.shape_nchw) == 4 and r.shape_nchw[2] > 1]  # the conv layers
    names = ["input"] + [f"conv {r.index}" for r in convs]
    sizes = [28] + [r.shape_nchw[2] for r in convs]
    channels = [1] + [r.shape_nchw[1] for r in convs]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Bar(x=names, y=sizes, name="width = height", text=[f"{s}x{s}" for s in sizes]), secondary_y=False)
    fig.add_trace(
        go.Scatter(
            x=names, y=channels, name="channels", mode="lines+markers+text", text=channels, textposition="top center"
        ),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="feature map side (pixels)", secondary_y=False)
    fig.update_yaxes(title_text="channels", secondary_y=True)
    fig.update_layout(height=320, margin={"t": 20, "b": 30}, legend={"orientation": "h", "y": 1.15})
    return fig


def compare_figure(runs: list, labels: list[str]) -> go.Figure:
    """Smoothed per-batch loss and per-epoch test accuracy of several runs on one chart."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss per batch (smoothed)", "test accuracy per epoch"))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for i, (run, label) in enumerate(zip(runs, labels)):
        color = palette[i % len(palette)]
        losses = run.history.batch_losses
        if losses:
            steps, _ = thin(losses, MAX_POINTS)
            fig.add_trace(
                go.Scattergl(
                    x=steps,
                    y=smooth(losses)[steps - 1],
                    mode="lines",
                    name=label,
                    legendgroup=label,
                    line={"color": color},
                ),
                1,
                1,
            )
        if run.history.epochs:
            fig.add_trace(
                go.Scatter(
                    x=[e.epoch for e in run.history.epochs],
                    y=[e.test_acc for e in run.history.epochs],
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=not losses,
                    line={"color": color},
                ),
                1,
                2,
            )
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_yaxes(title_text="cross-entropy", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(tickformat=".0%", row=1, col=2)
    fig.update_layout(height=420, margin={"t": 40, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig
