"""The Train page's live loss chart: a canvas component that redraws in place, several times a second.

While a run trains, the chart changes five times a second. ``st.plotly_chart`` makes the browser rebuild
Plotly's whole SVG each time. Measured on this project's 2-core box (Chromium's CPU while the Train page
watches a run; benchmarks/bench_live_loop.py prints it per refresh): the page took 82% of a core with
Plotly's chart, 54% with this one, 38% with no chart at all. This component keeps one canvas and
repaints it, so the learner's browser leaves more of the CPU to the trainer. The finished (or paused) run is
drawn with the full interactive Plotly chart (``ui.charts.loss_figure``) from the same numbers.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import streamlit as st

from mnist_core.train import EpochMetrics
from mnist_core.visual import smooth, thin

LIVE_POINTS = 1000  # per curve: the chart is repainted several times a second; the shape needs no more
_HERE = Path(__file__).parent
_component = st.components.v2.component(
    "mnist.live_chart",
    js=(_HERE / "live_chart.js").read_text(),
    css=(_HERE / "live_chart.css").read_text(),
    isolate_styles=False,  # in the page's own DOM: the browser tests and benchmarks read the canvas's data-*
)


def _numbers(values: np.ndarray | list[float], digits: int = 5) -> list[float | None]:
    """JSON-safe: rounded, and None (a gap) for a NaN or infinite loss."""
    return [round(v, digits) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


def live_chart_data(
    batch_losses: list[float],
    epochs: list[EpochMetrics],
    full_losses: list[tuple[int, float]],
    total_steps: int,
    lr_schedule: list[tuple[int, float]],
    height: int = 360,
) -> dict:
    """What the canvas draws: thinned batch losses and their smoothed line, test accuracy per epoch,
    the whole-train-set loss the recorder took, and the learning-rate changes (the first entry is the
    run's own lr, not a change)."""
    steps, raw = thin(batch_losses, LIVE_POINTS) if batch_losses else (np.array([]), np.array([]))
    smoothed = smooth(batch_losses)[steps - 1] if batch_losses else np.array([])
    return {
        "total": int(total_steps),
        "steps": steps.tolist(),
        "raw": _numbers(raw),
        "smooth": _numbers(smoothed),
        "accSteps": [e.step for e in epochs],
        "acc": _numbers([e.test_acc for e in epochs]),
        "fullSteps": [s for s, _ in full_losses],
        "full": _numbers([v for _, v in full_losses]),
        "lr": [[step, f"{lr:g}"] for step, lr in lr_schedule[1:]],
        "height": height,
    }


def live_chart(data: dict, key: str = "live_chart") -> None:
    """Draw (or repaint) the live chart."""
    _component(data=data, key=key, height=data["height"])
