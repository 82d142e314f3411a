"""The Train page's look inside the network: one digit's journey (live, then replayed) and training health."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
import torch

from mnist_core.config import NETWORK_KNOBS, TrainConfig
from mnist_core.data import Dataset
from mnist_core.health import HealthStats, health_flags, health_summary
from mnist_core.jobs import Job
from mnist_core.model import build_model, layer_table
from mnist_core.train import estimate_epoch_seconds
from mnist_core.visual import duration, network_brief
from mnist_core.watch import DigitView, replay, view_digit
from ui.charts import health_figure
from ui.common import KEEP
from ui.digit_view import digit_view, digit_view_data

WATCH_KEY = "keep_watch"  # the test digit (its index) the learner follows
SOURCE_KEY = "keep_watch_source"  # "test" or "drawn": which digit is followed
DRAWN_KEY = "drawn_digit"  # the digit last prepared on Predict: 784 bytes, (28, 28) row by row
SOURCES = {"test": "a test digit", "drawn": "the digit from Predict"}


Digit = tuple[int | list[int], np.ndarray, int | None]


def knobs_network() -> dict:
    """The network the Train page's knobs describe (the tutorial's until they change; a bad width: the tutorial's)."""
    state = st.session_state
    try:
        config = TrainConfig(**{k: state[f"keep_{k}"] for k in NETWORK_KNOBS if f"keep_{k}" in state})
        config.validate()
        return config.network()
    except (ValueError, TypeError):
        return TrainConfig().network()


@st.cache_data(max_entries=64, show_spinner="Timing a few steps of this network...")
def epoch_estimate(config: dict, n_fit: int) -> float:
    """Seconds an epoch of ``n_fit`` images trains, timed on this server (shared by every visitor, per shape)."""
    return estimate_epoch_seconds(TrainConfig(**config), n_fit)


def estimated_epoch(config: TrainConfig, n_fit: int) -> float | None:
    """Seconds an epoch of the knobs' ``config`` trains here; None where the knobs do not make a run."""
    try:
        config.validate()
    except ValueError:
        return None
    timed = {k: getattr(config, k) for k in (*NETWORK_KNOBS, "batch_size", "optimiser", "loop", "device")}
    return epoch_estimate(timed, n_fit)


def network_card(config: TrainConfig, n_fit: int) -> None:
    """The network the knobs describe, before it trains: its layers, parameters, multiply-adds and an epoch's
    estimated time (a warning instead where the knobs do not make a network)."""
    seconds = estimated_epoch(config, n_fit)
    if seconds is None:
        return  # the knob's own check says what is wrong, where the run is started
    rows = layer_table(build_model(**config.network()))
    st.table(network_brief(rows).style.format({"parameters": "{:,}"}).hide(axis="index"))
    st.caption(
        f"{sum(r.params for r in rows):,} parameters · {sum(r.macs for r in rows) / 1e6:.1f} M multiply-adds per "
        f"image · about {duration(seconds)} an epoch here, timed on a few batches. The whole table and its Flux "
        "code: **Model**."
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


@st.cache_data(max_entries=8, show_spinner="Replaying the saved snapshots...")
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
            "Follow",
            list(SOURCES),
            format_func=SOURCES.get,
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
        f"Test digit to follow (0-{dataset.n_test - 1:,})",
        0,
        dataset.n_test - 1,
        key=WATCH_KEY,
        disabled=disabled,
        persist_state=KEEP,
        help="The run sends this digit's feature maps and probabilities a few times a second while it trains. "
        "A digit drawn or uploaded on Predict can be followed too.",
    )
    right.button("Another digit", on_click=another, disabled=disabled, use_container_width=True)


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
        st.caption("Before training: the network's random filters, and a guess no better than chance.")
    elif not job.done:
        view = job.watch
        if view is None:  # the network as the run starts it; the trainer's views follow (from the feed, if any)
            model = build_model(job.config.init, seed=job.config.seed, **job.config.network())  # as the trainer
            view = view_digit(model, torch.from_numpy(digit.copy()), step=0)
            st.caption("The trainer's views of this digit follow, a few a second, from its first batch on.")
    elif job.run_dir is None:
        return
    else:
        if job.replay is not None and watch == job.watch_digit:  # the trainer replayed the digit it watched
            views = job.replay
        else:  # another digit: replayed here, once per run and digit
            meta = job.run_dir / "run.json"
            views = _replay(str(job.run_dir), meta.stat().st_mtime if meta.is_file() else 0.0, digit.tobytes())
        if not views:
            st.caption("This run kept no snapshots to replay.")
            return
        steps = [v.step for v in views]
        step = st.select_slider(
            "Scrub back through training (saved steps)",
            steps,
            value=steps[-1],
            format_func=lambda s: f"step {s}",
            key=f"replay_{job.id}",
        )
        view = views[steps.index(step)]
    digit_view(digit_view_data(view, digit, label, dataset.classes, feed), key="digit_view")


def _number(value: float | None, fmt: str) -> str:
    if value is None:
        return "no ReLU"
    return format(value, fmt) if math.isfinite(value) else "not finite"


def health_table(stats: HealthStats) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "layer": name,
                "gradient norm": _number(h.grad_norm, ".3g"),
                "update / weights": _number(h.update_ratio, ".1e"),
                "dead ReLU channels": _number(h.dead_share, ".0%"),
                "weight norm": _number(h.weight_norm, ".3g"),
            }
            for name, h in stats.layers.items()
        ]
    ).set_index("layer")


def health_panel(job: Job | None) -> None:
    """Per layer, the latest measured step; flags in words; the history of update sizes once the run stops."""
    if job is None or job.task != "train":
        st.caption(
            "While a run trains: per layer, how big the gradients and the steps are, and how many ReLUs are dead, "
            "with a warning in words when a number means trouble."
        )
        return
    stats = job.health
    if stats is None:
        st.caption("The first measurement comes after a few batches...")
        return
    log = job.health_log
    every = f"one step in {log[-1].step - log[-2].step} is measured" if len(log) > 1 else "measured now and then"
    st.caption(f"Measured at step {stats.step} ({every}, so that measuring costs a few percent of training at most).")
    st.table(health_table(stats))
    h = job.history
    recent = list(h.batch_losses[-20:]) if h is not None else []
    loss = sum(recent) / len(recent) if recent else None
    flags = health_flags(stats, loss)
    for flag in flags:
        st.warning(flag[:1].upper() + flag[1:] + ".", icon=":material/health_and_safety:")
    if not flags:
        st.success(health_summary(stats, loss))
    if (job.done or (job.history is not None and job.history.paused)) and len(job.health_log) > 1:
        st.plotly_chart(health_figure(job.health_log), key=f"health_{job.id}")
