"""Plotly figures for the pages; the numbers come from mnist_core."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mnist_core.history import EpochMetrics
from mnist_core.i18n import _
from mnist_core.model import LayerRow
from mnist_core.visual import needs_log_scale, smooth, thin

MAX_POINTS = 2000  # a saved run's chart stays light whatever the run's length
BLUE = "#1f77b4"


def loss_figure(
    batch_losses: list[float],
    epochs: list[EpochMetrics],
    full_losses: list[tuple[int, float]] | None = None,
    total_steps: int | None = None,
    height: int = 420,
    lr_schedule: list[tuple[int, float]] | None = None,
) -> dict:
    """Every batch's loss (thinned), its smoothed line, per-epoch test accuracy on a second axis, and a
    marker where the learning rate changed during the run.

    A plain dict, not ``make_subplots``: it costs a fraction of the figure objects' validation. (While a run
    trains, the Train page draws ui.live_chart instead, from the same numbers.)
    """
    data = _loss_traces(batch_losses, epochs, full_losses)
    if not data:  # Streamlit refuses a figure without traces (plotly 7 lacks the error it means to raise)
        data.append({"type": "scatter", "x": [], "y": [], "showlegend": False})
    shapes, notes = lr_markers(lr_schedule or [])
    layout = {
        "height": height,
        "margin": {"t": 40, "b": 40},
        "legend": {"orientation": "h", "y": 1.16},
        "xaxis": {"title": {"text": _("step (batch)")}, **({"range": [0, total_steps]} if total_steps else {})},
        "yaxis": {"title": {"text": _("cross-entropy loss")}, "rangemode": "tozero"},
        "yaxis2": {
            "title": {"text": _("test accuracy")},
            "overlaying": "y",
            "side": "right",
            "range": [0, 1],
            "tickformat": ".0%",
            "dtick": 0.2,
            "showgrid": False,
        },
        "shapes": shapes,
        "annotations": notes,
        "uirevision": "keep",  # a refresh keeps the learner's zoom
    }
    return {"data": data, "layout": layout}


def _loss_traces(batch_losses: list[float], epochs: list[EpochMetrics], full_losses) -> list[dict]:
    """The traces of ``loss_figure``: batch losses (thinned), smoothed, the recorder's, test accuracy."""
    data = []
    if batch_losses:
        steps, raw = thin(batch_losses, MAX_POINTS)
        smoothed = smooth(batch_losses)[steps - 1]
        # Lines, not WebGL markers: a browser without a GPU (or a busy one) redraws an SVG path several times
        # faster than a WebGL context, and the faint raw line over a bold smoothed one reads like TensorBoard.
        data.append(
            _trace("scatter", steps, raw, _("batch loss"), mode="lines", line={"width": 1, "color": BLUE}, opacity=0.35)
        )
        data.append(_trace("scatter", steps, smoothed, _("smoothed"), mode="lines", line={"width": 2.5, "color": BLUE}))
    if full_losses:
        s, v = zip(*full_losses)
        data.append(_trace("scatter", s, v, _("loss on whole train set"), mode="lines+markers"))
    if epochs:
        data.append(
            _trace(
                "scatter",
                [e.step for e in epochs],
                [e.test_acc for e in epochs],
                _("test accuracy"),
                mode="lines+markers",
                line={"dash": "dot"},
                yaxis="y2",
            )
        )
    return data


def lr_markers(lr_schedule: list[tuple[int, float]]) -> tuple[list[dict], list[dict]]:
    """A dashed line and a label ("lr 0.01") at each change of the learning rate (the first entry is the run's
    own lr, not a change): Plotly shapes and annotations."""
    shapes, notes = [], []
    for step, lr in lr_schedule[1:]:
        shapes.append(
            {"type": "line", "xref": "x", "yref": "paper", "x0": step, "x1": step, "y0": 0, "y1": 1,
             "line": {"color": "#ff7f0e", "width": 1.5, "dash": "dash"}}
        )  # fmt: skip
        notes.append(
            {"x": step, "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom", "text": _("lr {lr:g}").format(lr=lr),
             "showarrow": False, "font": {"color": "#ff7f0e", "size": 11}}
        )  # fmt: skip
    return shapes, notes


def lr_find_figure(lrs: list[float], losses: list[float], smoothed: list[float], suggested: float) -> dict:
    """The learning-rate range test: loss against lr on a log axis, the suggestion marked."""
    data = [
        _trace("scatter", lrs, losses, _("batch loss"), mode="lines", line={"width": 1, "color": BLUE}, opacity=0.35),
        _trace("scatter", lrs, smoothed, _("smoothed"), mode="lines", line={"width": 2.5, "color": BLUE}),
    ]
    mark = {"type": "line", "xref": "x", "yref": "paper", "x0": suggested, "x1": suggested, "y0": 0, "y1": 1,
            "line": {"color": "#2ca02c", "width": 2, "dash": "dash"}}  # fmt: skip
    note = {"x": math.log10(suggested), "xref": "x", "y": 1, "yref": "paper", "yanchor": "bottom",
            "text": _("suggested {lr:.2g}").format(lr=suggested), "showarrow": False,
            "font": {"color": "#2ca02c"}}  # fmt: skip
    top = min(max(smoothed) * 1.1, smoothed[0] * 3)  # the explosion at the end would flatten the rest
    layout = {
        "height": 260,
        "margin": {"t": 30, "b": 40, "l": 50, "r": 10},
        "showlegend": False,
        "xaxis": {"type": "log", "title": {"text": _("lr (log scale)")}},
        "yaxis": {"title": {"text": _("loss")}, "range": [0, top]},
        "shapes": [mark],
        "annotations": [note],
    }
    return {"data": data, "layout": layout}


def _trace(kind: str, x, y, name: str, **style) -> dict:
    x = x.tolist() if isinstance(x, np.ndarray) else list(x)
    y = y.tolist() if isinstance(y, np.ndarray) else list(y)
    return {"type": kind, "x": x, "y": y, "name": name, **style}


def honest_loss_axis(figure: dict, losses) -> dict:
    """Put ``loss_figure``'s loss axis on a log scale when a spike would flatten everything else; its smoothed
    line then averages the logs (a plain average would trail the spike for hundreds of steps)."""
    if needs_log_scale(losses):
        top = max(v for v in losses if math.isfinite(v))
        geometric = np.exp(smooth(np.log(np.clip(np.asarray(losses, dtype=np.float64), 1e-12, None))))
        for trace in figure["data"]:
            if trace.get("name") == _("smoothed"):  # the name loss_figure gave it, in the same language
                trace["y"] = geometric[np.asarray(trace["x"], dtype=int) - 1].tolist()
        figure["layout"]["yaxis"] = {"title": {"text": _("cross-entropy loss (log scale)")}, **LOG_AXIS}
        figure["layout"]["annotations"] = [
            *figure["layout"].get("annotations", []),
            {"text": _("log scale: the loss reached {top:,.3g}").format(top=top), "xref": "paper", "yref": "paper",
             "x": 0, "y": 1, "yanchor": "bottom", "xanchor": "left", "showarrow": False, "font": {"color": "#d62728"}},
        ]  # fmt: skip
    return figure


LOG_AXIS = {"type": "log", "dtick": 1}  # a tick per power of ten: 1, 10, 100, ... (not 2, 5 between them)
ACCURACY_AXIS = {"range": [0, 1.02], "tickformat": ".0%", "dtick": 0.2}  # whole tens: never "10%, 10%, 9%"


def epoch_figure(epochs: list[EpochMetrics]) -> go.Figure:
    """Per-epoch train and test loss and accuracy."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(_("loss"), _("accuracy")))
    x = [e.epoch for e in epochs]
    for name, key, col in (
        (_("train loss"), "train_loss", 1),
        (_("test loss"), "test_loss", 1),
        (_("train accuracy"), "train_acc", 2),
        (_("test accuracy"), "test_acc", 2),
    ):
        fig.add_trace(go.Scatter(x=x, y=[getattr(e, key) for e in epochs], mode="lines+markers", name=name), 1, col)
    fig.update_xaxes(title_text=_("epoch"), tickformat="d", dtick=1 if len(epochs) <= 20 else None)
    losses = [v for e in epochs for v in (e.train_loss, e.test_loss)]
    if needs_log_scale(losses):
        fig.update_yaxes(**LOG_AXIS, title_text=_("log scale"), row=1, col=1)
    fig.update_yaxes(**ACCURACY_AXIS, row=1, col=2)
    fig.update_layout(height=340, margin={"t": 40, "b": 40})
    return fig


def click_layer(x, y, customdata, size: int, hover: str, hint: str) -> go.Scatter:
    """Almost invisible square markers over a heatmap's cells: Streamlit reports clicks on points only, and a
    heatmap has none. ``hover`` may hold Plotly's %{...} tokens (put in as values, so that a translation may move
    them but never break them); ``hint`` says what a click does."""
    return go.Scatter(
        x=x,
        y=y,
        customdata=customdata,
        mode="markers",
        marker={"size": size, "opacity": 0.01, "symbol": "square"},
        hovertemplate=hover + "<extra>" + hint + "</extra>",
        showlegend=False,
    )


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
        click_layer(
            [classes[j] for i in range(k) for j in range(k)],
            [classes[i] for i in range(k) for j in range(k)],
            confusion.reshape(-1),
            30,
            _("true {true}, predicted {predicted}: {count}").format(
                true="%{y}", predicted="%{x}", count="%{customdata}"
            ),
            _("click to see them"),
        )
    )
    fig.update_xaxes(title_text=_("predicted"), type="category")
    fig.update_yaxes(title_text=_("true"), autorange="reversed", type="category")
    fig.update_layout(height=520, margin={"t": 20, "b": 40}, clickmode="event+select")
    return fig


def probability_figure(probs: np.ndarray, classes: list[str], height: int = 260) -> go.Figure:
    best = int(np.argmax(probs))
    colors = ["#d62728" if i == best else "#1f77b4" for i in range(len(probs))]
    fig = go.Figure(go.Bar(x=list(classes), y=probs, marker_color=colors, text=[f"{p:.0%}" for p in probs]))
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[0, 1], tickformat=".0%", title_text=_("probability"))
    fig.update_layout(height=height, margin={"t": 10, "b": 30})
    return fig


def class_count_figure(counts: pd.DataFrame) -> go.Figure:
    splits = {"train": _("train"), "test": _("test")}  # mnist_core.visual.class_counts's split words
    fig = go.Figure(
        [
            go.Bar(x=part["class"], y=part["count"], name=splits.get(split, split))
            for split, part in counts.groupby("split", sort=False)
        ]
    )
    fig.update_xaxes(type="category")
    fig.update_layout(barmode="group", height=300, margin={"t": 10, "b": 30}, yaxis_title=_("images"))
    return fig


def shrink_figure(rows: list[LayerRow]) -> go.Figure:
    """How the feature maps shrink (28 -> 14 -> 7 -> 4 -> 2) while the channels grow."""
    convs = [r for r in rows if len(r.shape_nchw) == 4 and r.shape_nchw[2] > 1]  # the conv layers
    names = [_("input")] + [_("conv {index}").format(index=r.index) for r in convs]
    sizes = [28] + [r.shape_nchw[2] for r in convs]
    channels = [1] + [r.shape_nchw[1] for r in convs]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(x=names, y=sizes, name=_("width = height"), text=[f"{s}x{s}" for s in sizes]), secondary_y=False
    )
    fig.add_trace(
        go.Scatter(
            x=names,
            y=channels,
            name=_("channels"),
            mode="lines+markers+text",
            text=channels,
            textposition="top center",  # untranslated: a Plotly option
        ),
        secondary_y=True,
    )
    # ticks at the values themselves: whole pixels and channel counts, never -1.31 or 28.9
    fig.update_yaxes(
        title_text=_("feature map side (pixels)"), tickvals=sorted(set(sizes)), range=[0, 30], secondary_y=False
    )
    fig.update_yaxes(
        title_text=_("channels"), tickvals=sorted(set(channels)), range=[0, max(channels) * 1.25], secondary_y=True
    )
    fig.update_layout(height=320, margin={"t": 20, "b": 30}, legend={"orientation": "h", "y": 1.15})
    return fig


def compare_figure(runs: list, labels: list[str]) -> go.Figure:
    """Smoothed per-batch loss and per-epoch test accuracy of several runs on one chart."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=(_("loss per batch (smoothed)"), _("test accuracy per epoch")))
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]
    for i, (run, label) in enumerate(zip(runs, labels)):
        color = palette[i % len(palette)]
        losses = run.history.batch_losses
        if losses:
            steps, _kept = thin(losses, MAX_POINTS)
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
    fig.update_xaxes(title_text=_("step"), row=1, col=1)
    fig.update_xaxes(title_text=_("epoch"), row=1, col=2)
    spiky = any(needs_log_scale(run.history.batch_losses) for run in runs)
    fig.update_yaxes(
        title_text=_("cross-entropy (log scale)") if spiky else _("cross-entropy"),
        **(LOG_AXIS if spiky else {"rangemode": "tozero"}),
        row=1,
        col=1,
    )
    fig.update_yaxes(**ACCURACY_AXIS, row=1, col=2)
    fig.update_layout(height=420, margin={"t": 40, "b": 40}, legend={"orientation": "h", "y": -0.2})
    return fig


def health_figure(log: list) -> dict:
    """Training health over a run: each layer's update size relative to its weights, per measured step, on a
    log axis (1e-3 is the healthy pace; a flat line far below it is a stalled layer, above 1 a jumping one)."""
    steps = [s.step for s in log]
    names = list(log[-1].layers)
    data = [
        _trace(
            "scatter",
            steps,
            [s.layers[n].update_ratio if n in s.layers and s.layers[n].update_ratio > 0 else None for s in log],
            n,
            mode="lines",
        )
        for n in names
    ]
    healthy = {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 1e-3, "y1": 1e-3,
               "line": {"color": "#2ca02c", "width": 1, "dash": "dot"}}  # fmt: skip
    layout = {
        "height": 280,
        "margin": {"t": 30, "b": 40},
        "legend": {"orientation": "h", "y": 1.15},
        "xaxis": {"title": {"text": _("step (batch)")}},
        "yaxis": {"title": {"text": _("update / weights")}, "type": "log", "exponentformat": "power"},
        "shapes": [healthy],
    }
    return {"data": data, "layout": layout}


def map_mosaic(maps: np.ndarray, columns: int) -> tuple[np.ndarray, list[tuple[int, int, int]], list[tuple[int, int]]]:
    """Feature maps (C, H, W), each scaled to its own range, laid out ``columns`` to a row with one blank (NaN)
    cell between them: (the mosaic, each pixel's (channel, row, col), its (y, x) in the mosaic)."""
    c, h, w = maps.shape
    rows = math.ceil(c / columns)
    mosaic = np.full((rows * (h + 1) - 1, columns * (w + 1) - 1), np.nan)
    cells, where = [], []
    for ch in range(c):
        low, high = float(maps[ch].min()), float(maps[ch].max())
        scaled = (maps[ch] - low) / (high - low) if high > low else np.zeros((h, w))
        y0, x0 = (ch // columns) * (h + 1), (ch % columns) * (w + 1)
        mosaic[y0 : y0 + h, x0 : x0 + w] = scaled
        cells += [(ch, r, col) for r in range(h) for col in range(w)]
        where += [(y0 + r, x0 + col) for r in range(h) for col in range(w)]
    return mosaic, cells, where


def feature_map_picker(maps: np.ndarray, chosen: tuple[int, int, int], columns: int) -> tuple[go.Figure, list]:
    """A layer's feature maps, every pixel clickable (an almost invisible marker on each: Streamlit reports
    clicks on points only), the ``chosen`` pixel outlined; and each marker's (channel, row, col)."""
    mosaic, cells, where = map_mosaic(maps, columns)
    fig = go.Figure(go.Heatmap(z=mosaic, colorscale="gray", showscale=False, hoverinfo="skip"))
    across = mosaic.shape[1]
    fig.add_trace(
        click_layer(
            [x for _y, x in where],
            [y for y, _x in where],
            [list(cell) for cell in cells],
            max(4, 640 // across),
            _("map {map}, row {row}, column {column}").format(
                map="%{customdata[0]}", row="%{customdata[1]}", column="%{customdata[2]}"
            ),
            _("click to work it out"),
        )
    )
    y, x = where[cells.index(chosen)]
    fig.add_shape(type="rect", x0=x - 0.5, x1=x + 0.5, y0=y - 0.5, y1=y + 0.5, line={"color": "red", "width": 3})
    fig.update_xaxes(visible=False, range=[-0.5, across - 0.5])
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    height = max(160, min(560, int(700 * mosaic.shape[0] / across) + 20))
    fig.update_layout(height=height, margin={"t": 10, "b": 10, "l": 10, "r": 10}, clickmode="event+select")
    return fig, cells


def numbers_figure(matrix: np.ndarray, title: str, window: tuple[int, int, int] | None = None) -> go.Figure:
    """A small matrix as coloured cells with its numbers (red positive, blue negative); ``window`` (top, left,
    size) outlines where a filter sits on it."""
    big = matrix.shape[0] > 7  # a whole input map: no numbers, the window shows where the patch lies
    top = float(np.abs(matrix).max()) or 1.0
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            zmin=-top,
            zmax=top,
            colorscale="RdBu_r",
            showscale=False,
            text=None if big else np.round(matrix, 2),
            texttemplate=None if big else "%{text}",
            hovertemplate=_("row {row}, column {column}: {value}").format(row="%{y}", column="%{x}", value="%{z:.4f}")
            + "<extra></extra>",
        )
    )
    if window is not None:
        t, left, k = window
        fig.add_shape(type="rect", x0=left - 0.5, x1=left + k - 0.5, y0=t - 0.5, y1=t + k - 0.5,
                      line={"color": "black", "width": 3})  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, autorange="reversed", scaleanchor="x")
    fig.update_layout(title={"text": title, "font": {"size": 13}}, height=230, margin={"t": 30, "b": 5, "l": 5, "r": 5})
    return fig
