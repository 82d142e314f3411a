"""The Train page's look inside the network: one digit's journey (live, then replayed) and training health."""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from mnist_core.config import NETWORK_KNOBS, TrainConfig
from mnist_core.data import Dataset
from mnist_core.explain import pixel_sum
from mnist_core.health import HealthStats, health_flags, health_summary
from mnist_core.i18n import N_, _, language
from mnist_core.jobs import Job
from mnist_core.model import build_model, layer_table
from mnist_core.train import estimate_epoch_seconds
from mnist_core.visual import duration, network_brief
from mnist_core.watch import DigitView, replay, view_digit
from ui.charts import feature_map_picker, health_figure, numbers_figure
from ui.common import KEEP
from ui.digit_view import digit_view, digit_view_data

WATCH_KEY = "keep_watch"  # the test digit (its index) the learner follows
SOURCE_KEY = "keep_watch_source"  # "test" or "drawn": which digit is followed
DRAWN_KEY = "drawn_digit"  # the digit last prepared on Predict: 784 bytes, (28, 28) row by row
SOURCES = {"test": N_("a test digit"), "drawn": N_("the digit from Predict")}


Digit = tuple[int | list[int], np.ndarray, int | None]


def sentence(text: str) -> str:
    """A phrase (a knob's help, a health flag: lower case, no full stop) as a sentence: capitalised where it starts
    with a Latin letter, and ended with the stop of its script ("." for English, "。" for Chinese)."""
    if text[:1].isascii() and text[:1].isalpha():
        text = text[:1].upper() + text[1:]
    return text + ("。" if language() == "zh_CN" else ".")


def knobs_network() -> dict:
    """The network the Train page's knobs describe (the tutorial's until they change; a bad width: the tutorial's)."""
    state = st.session_state
    try:
        config = TrainConfig(**{k: state[f"keep_{k}"] for k in NETWORK_KNOBS if f"keep_{k}" in state})
        config.validate()
        return config.network()
    except (ValueError, TypeError):
        return TrainConfig().network()


@st.cache_data(max_entries=64, ttl=600, show_spinner=False)  # its spinner: estimated_epoch's, translated
def epoch_estimate(config: dict, n_fit: int) -> float:
    """Seconds an epoch of ``n_fit`` images trains, timed on this server (shared by every visitor, per shape;
    timed again after ten minutes, as the server's load changes)."""
    return estimate_epoch_seconds(TrainConfig(**config), n_fit)


def estimated_epoch(config: TrainConfig, n_fit: int) -> float | None:
    """Seconds an epoch of the knobs' ``config`` trains here; None where the knobs do not make a run."""
    try:
        config.validate()
    except ValueError:
        return None
    timed = {k: getattr(config, k) for k in (*NETWORK_KNOBS, "batch_size", "optimiser", "loop", "device")}
    with st.spinner(_("Timing a few steps of this network...")):  # shown only where it takes a while (not cached)
        return epoch_estimate(timed, n_fit)


def network_card(config: TrainConfig, n_fit: int) -> None:
    """The network the knobs describe, before it trains: its layers, parameters, multiply-adds and an epoch's
    estimated time (a warning instead where the knobs do not make a network)."""
    seconds = estimated_epoch(config, n_fit)
    if seconds is None:
        return  # the knob's own check says what is wrong, where the run is started
    rows = layer_table(build_model(**config.network()))
    # One line a layer: the narrow knobs column has no room for a table's columns
    brief = network_brief(rows)
    st.caption(
        "  \n".join(
            _("{layer}: {output} · {weights:,} weights").format(layer=b.layer, output=b.output, weights=b.parameters)
            if b.parameters
            else _("{layer}: {output}").format(layer=b.layer, output=b.output)
            for b in brief.itertuples(index=False)
        )
    )
    st.caption(
        _(
            "{parameters:,} parameters · {macs:.1f} M multiply-adds per image · about {time} an epoch here, timed "
            "on a few batches. The whole table and its Flux code: **Model**."
        ).format(parameters=sum(r.params for r in rows), macs=sum(r.macs for r in rows) / 1e6, time=duration(seconds))
    )


def chosen_digit(dataset: Dataset, watch: int | list[int] | None = None) -> Digit:
    """(what the queue is told to watch, the digit as uint8 (28, 28), its true class or None for a drawn one):
    of ``watch`` (a running job's), else of the learner's choice."""
    if watch is None:
        if st.session_state.get(SOURCE_KEY) == "drawn" and DRAWN_KEY in st.session_state:
            watch = list(st.session_state[DRAWN_KEY])
        else:
            watch = min(int(st.session_state.get(WATCH_KEY, 0)), dataset.n_test - 1)
    if isinstance(watch, int):
        return watch, dataset.test_images[watch].numpy(), int(dataset.test_labels[watch])
    return watch, np.asarray(watch, dtype=np.uint8).reshape(28, 28), None


@st.cache_data(max_entries=8, show_spinner=False)  # its spinner: watch_panel's, translated
def _replay(run_dir: str, saved_at: float, digit: bytes) -> list[DigitView]:
    """Every saved step's view of one digit; cached per run (and its save time) and digit."""
    return replay(Path(run_dir), np.frombuffer(digit, dtype=np.uint8))


def pick_digit(dataset: Dataset, disabled: bool) -> None:
    """The digit to follow: a test image by its index, a random one, or the one drawn or uploaded on Predict."""
    st.session_state.setdefault(WATCH_KEY, 0)
    if st.session_state[WATCH_KEY] >= dataset.n_test:
        st.session_state[WATCH_KEY] = 0
    if DRAWN_KEY in st.session_state:
        st.radio(
            _("Follow"),
            list(SOURCES),
            format_func=lambda source: _(SOURCES[source]),
            key=SOURCE_KEY,
            horizontal=True,
            disabled=disabled,
            persist_state=KEEP,
        )
    if st.session_state.get(SOURCE_KEY) == "drawn" and DRAWN_KEY in st.session_state:
        return

    def another() -> None:
        st.session_state[WATCH_KEY] = random.randrange(dataset.n_test)

    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.number_input(
        _("Test digit to follow (0-{last:,})").format(last=dataset.n_test - 1),
        0,
        dataset.n_test - 1,
        key=WATCH_KEY,
        disabled=disabled,
        persist_state=KEEP,
        help=_(
            "The run sends this digit's feature maps and probabilities a few times a second while it trains. "
            "A digit drawn or uploaded on Predict can be followed too."
        ),
    )
    right.button(_("Another digit"), on_click=another, disabled=disabled, use_container_width=True)


def watch_panel(job: Job | None, dataset: Dataset, seed: int, feed: str | None = None) -> None:
    """Before a run: the untrained network's view of the digit. During: the trainer's latest view, and with
    the page's ``feed`` (the one it follows) the newer views from it. After: a slider through the run's
    saved snapshots."""
    busy = job is not None and not job.done
    if busy and job.watch_digit is not None:
        watch, digit, label = chosen_digit(dataset, job.watch_digit)
    else:
        pick_digit(dataset, disabled=busy)
        watch, digit, label = chosen_digit(dataset)
    if job is None or job.task != "train":
        view = view_digit(build_model(seed=seed, **knobs_network()), torch.from_numpy(digit.copy()), step=0)
        st.caption(_("Before training: the network's random filters, and a guess no better than chance."))
    elif not job.done:
        view = job.watch
        if view is None:  # the network as the run starts it; the trainer's views follow (from the feed, if any)
            model = build_model(job.config.init, seed=job.config.seed, **job.config.network())  # as the trainer
            view = view_digit(model, torch.from_numpy(digit.copy()), step=0)
            st.caption(_("The trainer's views of this digit follow, a few a second, from its first batch on."))
    elif job.run_dir is None:
        return
    else:
        if job.replay is not None and watch == job.watch_digit:  # the trainer replayed the digit it watched
            views = job.replay
        else:  # another digit: replayed here, once per run and digit
            meta = job.run_dir / "run.json"
            with st.spinner(_("Replaying the saved snapshots...")):  # shown only where it takes a while
                views = _replay(str(job.run_dir), meta.stat().st_mtime if meta.is_file() else 0.0, digit.tobytes())
        if not views:
            st.caption(_("This run kept no snapshots to replay."))
            return
        steps = [v.step for v in views]
        step = st.select_slider(
            _("Scrub back through training (saved steps)"),
            steps,
            value=steps[-1],
            format_func=lambda s: _("step {step}").format(step=s),
            key=f"replay_{job.id}",
        )
        view = views[steps.index(step)]
    digit_view(digit_view_data(view, digit, label, dataset.classes, feed), key="digit_view")


def _number(value: float | None, fmt: str) -> str:
    if value is None:
        return _("no ReLU")
    return format(value, fmt) if math.isfinite(value) else _("not finite")


def layer_name(name: str) -> str:
    """A layer's machine name ("conv 2", "dense") as the visitor reads it."""
    if m := re.fullmatch(r"conv (\d+)", name):
        return _("conv {index}").format(index=int(m.group(1)))
    return _("dense") if name == "dense" else name


def health_table(stats: HealthStats) -> pd.DataFrame:
    """The latest reading per layer, for the page to show (its columns in the visitor's language)."""
    return pd.DataFrame(
        [
            {
                _("layer"): layer_name(name),
                _("gradient norm"): _number(h.grad_norm, ".3g"),
                _("update / weights"): _number(h.update_ratio, ".1e"),
                _("dead ReLU channels"): _number(h.dead_share, ".0%"),
                _("weight norm"): _number(h.weight_norm, ".3g"),
            }
            for name, h in stats.layers.items()
        ]
    ).set_index(_("layer"))


def health_panel(job: Job | None) -> None:
    """Per layer, the latest measured step; flags in words; the history of update sizes once the run stops."""
    if job is None or job.task != "train":
        st.caption(
            _(
                "While a run trains: per layer, how big the gradients and the steps are, and how many ReLUs are "
                "dead, with a warning in words when a number means trouble."
            )
        )
        return
    stats = job.health
    if stats is None:
        st.caption(_("The first measurement comes after a few batches..."))
        return
    log = job.health_log
    if len(log) > 1:
        measured = _(
            "Measured at step {step} (one step in {every} is measured, so that measuring costs a few percent of "
            "training at most)."
        ).format(step=stats.step, every=log[-1].step - log[-2].step)
    else:
        measured = _(
            "Measured at step {step} (measured now and then, so that measuring costs a few percent of training at "
            "most)."
        ).format(step=stats.step)
    st.caption(measured)
    st.table(health_table(stats))
    h = job.history
    recent = list(h.batch_losses[-20:]) if h is not None else []
    loss = sum(recent) / len(recent) if recent else None
    flags = health_flags(stats, loss)
    for flag in flags:
        st.warning(sentence(flag), icon=":material/health_and_safety:")
    if not flags:
        st.success(health_summary(stats, loss))
    if (job.done or (job.history is not None and job.history.paused)) and len(job.health_log) > 1:
        st.plotly_chart(health_figure(job.health_log), key=f"health_{job.id}")


MOST_MAPS = 32  # feature maps a layer shows to click in; a wider layer shows its first 32


def _picked(chart_key: str, cells: list) -> tuple[int, int, int] | None:
    """The pixel last clicked in the chart ``chart_key`` (read from its state before it is drawn, so that the
    outline follows the click in the same run)."""
    event = st.session_state.get(chart_key)
    points = (event or {}).get("selection", {}).get("points", []) if hasattr(event, "get") else []
    points = [p for p in points if p.get("curve_number") == 1 and p.get("point_index") is not None]
    if points and points[0]["point_index"] < len(cells):
        return cells[points[0]["point_index"]]
    return None


def pixel_worked_out(model, image_28: np.ndarray, maps: list[torch.Tensor]) -> None:
    """CNN Explainer's view: click a pixel of a feature map to see the filter that made it, the patch of the
    layer's input under it, and the arithmetic from there to the pixel's value."""
    layer = st.radio(_("Conv layer"), range(1, len(maps) + 1), horizontal=True, key="pixel_layer")
    fmap = maps[layer - 1][0].float().numpy()
    shown = fmap[:MOST_MAPS]
    c, h, w = shown.shape
    columns = max(1, min(c, round(60 / (w + 1))))
    cells = [(ch, r, col) for ch in range(c) for r in range(h) for col in range(w)]
    chart_key, pick_key = f"pixel_maps_{layer}", f"pixel_pick_{layer}"
    if (clicked := _picked(chart_key, cells)) is not None:
        st.session_state[pick_key] = clicked
    chosen = st.session_state.get(pick_key)
    if chosen not in cells:  # first visit, or another network: start on the layer's strongest pixel
        chosen = tuple(int(i) for i in np.unravel_index(np.abs(shown).argmax(), shown.shape))
    if fmap.shape[0] > MOST_MAPS:
        click = _(
            "Click a pixel of one of the {count} feature maps (the first {most} of {total}); each map is scaled to "
            "its own range."
        ).format(count=c, most=MOST_MAPS, total=fmap.shape[0])
    else:
        click = _("Click a pixel of one of the {count} feature maps; each map is scaled to its own range.").format(
            count=c
        )
    st.caption(click)
    figure, _cells = feature_map_picker(shown, chosen, columns)
    st.plotly_chart(figure, key=chart_key, on_select="rerun", selection_mode="points")
    found = pixel_sum(model, image_28, layer, *chosen)
    ch, r, col = chosen
    st.markdown(
        _("**Map {map}, row {row}, column {column} of conv layer {layer}: {value:.4f}**").format(
            map=ch, row=r, column=col, layer=layer, value=found.value
        )
    )
    order = sorted(range(len(found.partial)), key=lambda i: -abs(found.partial[i]))
    source = 0
    if len(order) > 1:
        source = st.selectbox(
            _("Input channel under the filter"),
            order,
            format_func=lambda i: _("channel {channel}: adds {amount:+.4f}").format(channel=i, amount=found.partial[i]),
            key=f"pixel_source_{layer}_{ch}_{r}_{col}",  # a new pixel starts on its largest contributor
            help=_("Each of the layer's input channels has its own slice of the filter; ordered by how much it adds."),
        )
    k = found.kernel.shape[-1]
    source_map = image_28.astype(np.float64) / 255 if layer == 1 else maps[layer - 2][0, source].double().numpy()
    where, patch, kernel, product = st.columns(4)
    name = _("the digit") if layer == 1 else _("input channel {channel}").format(channel=source)
    where.plotly_chart(numbers_figure(source_map, name, (found.top, found.left, k)), key="pixel_where")
    patch.plotly_chart(numbers_figure(found.patch[source], _("the patch")), key="pixel_patch")
    kernel.plotly_chart(numbers_figure(found.kernel[source], _("× the filter")), key="pixel_kernel")
    product.plotly_chart(
        numbers_figure(found.patch[source] * found.kernel[source], _("= products")), key="pixel_product"
    )
    st.markdown(sum_in_words(found, order))


def sum_in_words(found, order: list[int]) -> str:
    """The arithmetic of one output pixel, line by line, as markdown."""
    lines = []
    if len(order) == 1:
        lines.append(_("Sum of the products: {value:.4f}").format(value=found.partial[0]))
    else:
        terms = " + ".join(f"{found.partial[i]:.3f}" for i in order[:4])
        values = {"count": len(order), "terms": terms, "total": found.partial.sum()}
        if len(order) > 4:
            line = _("Sum over the {count} input channels: {terms} + … ({more} more channels) = {total:.4f}")
            lines.append(line.format(more=len(order) - 4, **values))
        else:
            lines.append(_("Sum over the {count} input channels: {terms} = {total:.4f}").format(**values))
    lines.append(_("plus the filter's bias {bias:+.4f} = {value:.4f}").format(bias=found.bias, value=found.conv))
    before = found.conv
    if found.normed is not None:
        lines.append(
            _("batch norm (its running mean and variance, then its scale and shift) gives {value:.4f}").format(
                value=found.normed
            )
        )
        before = found.normed
    lines.append(
        _("{activation}({before:.4f}) = **{value:.4f}**, the pixel's value").format(
            activation=found.activation, before=before, value=found.value
        )
    )
    return "  \n".join(lines)
