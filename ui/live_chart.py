"""The Train page's live loss chart: a canvas component that redraws in place, several times a second.

While a run trains, the chart changes five times a second. ``st.plotly_chart`` makes the browser rebuild
Plotly's whole SVG each time. Measured on this project's 2-core box (Chromium's CPU while the Train page
watches a run; benchmarks/bench_live_loop.py prints it per refresh): the page took 82% of a core with
Plotly's chart, 54% with this one, 38% with no chart at all. This component keeps one canvas and
repaints it, so the learner's browser leaves more of the CPU to the trainer. The finished run is drawn with
the full interactive Plotly chart (``ui.charts.loss_figure``) from the same numbers.

Given its job's live feed (``mnist_core.feed``), the chart fetches the newest curves itself and the page
stops rerunning five times a second: measured with one tab watching a long run (batch 8), Chromium's
renderers went from 53% of a core to 26%, and the run trained 41% more steps in the same 10 s.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from mnist_core.feed import FEED_POLL_S
from mnist_core.i18n import _

_HERE = Path(__file__).parent
_component = st.components.v2.component(
    "mnist.live_chart",
    js=(_HERE / "live_chart.js").read_text(),
    css=(_HERE / "live_chart.css").read_text(),
    isolate_styles=False,  # in the page's own DOM: the browser tests and benchmarks read the canvas's data-*
)


def chart_strings() -> dict[str, str]:
    """The chart's words in the visitor's language: the canvas draws them (live_chart.js fills in the ``{name}``s
    itself, and has these English ones for a page without them)."""
    return {
        "stepAxis": _("step (batch)"),
        "lossAxis": _("cross-entropy loss"),
        "lossAxisLog": _("cross-entropy loss (log scale)"),
        "accuracy": _("test accuracy"),
        "lr": _("lr {lr}"),
        "clipped": _("▲ some batches are off the top (highest {value})"),
        "batchLoss": _("batch loss"),
        "smoothed": _("smoothed"),
        "full": _("loss on whole train set"),
        "tipStep": _("step {step}"),
        "tipBatchLoss": _("batch loss {value}"),
        "tipSmoothed": _("smoothed {value}"),
        "tipAccuracy": _("test accuracy {accuracy}% (step {step})"),
        "scale": _("Loss axis"),
        "scaleAuto": _("auto (log on a spike)"),
        "scaleLinear": _("linear"),
        "scaleLog": _("log"),
        "smoothing": _("Smoothing"),
        "chart": _("live loss chart"),
    }


def live_chart(
    curves: dict,
    feed: str | None = None,
    mode: str | None = None,
    progress: tuple[float | None, str] | None = None,
    notes: list[str] = (),
    warning: str | None = None,
    poll: float = FEED_POLL_S,
    height: int = 360,
    key: str = "live_chart",
) -> None:
    """Draw (or repaint) the live chart of ``curves`` (``mnist_core.visual.live_chart_data``). With a ``feed``
    address it follows the job by itself (mnist_core.feed), with the ``progress`` line (share done or None,
    text), ``notes`` and a ``warning`` above the canvas as the feed updates them, and reruns the page when
    the feed's mode is no longer ``mode``; it fetches the feed every ``poll`` seconds."""
    data = {
        "chart": curves,
        "height": height,
        "feed": feed,
        "mode": mode,
        "progress": progress,
        "notes": list(notes),
        "warning": warning,
        "poll": poll,
        "strings": chart_strings(),
    }
    # Sized to its content: the lines above the canvas come and go with the feed (an epoch's line, a knob change,
    # a warning); a height fixed when the page drew it cut the canvas's axis off as they came.
    _component(data=data, key=key, on_mode_change=lambda: None)
