"""What the Train page's buttons and knobs do: queue a run or a range test, steer a running one, name a saved
one. Callbacks run before the page redraws; each keeps a refusal's message in the session for the page to show.
The page (app_pages/3_Train.py) draws; this talks to the queue."""

from __future__ import annotations

import time

import streamlit as st

from mnist_core.config import NETWORK_KNOBS, TrainConfig
from mnist_core.jobs import Job, QueueError
from mnist_core.outcomes import JobState
from mnist_core.presets import PRESETS
from mnist_core.run_schema import RunError
from mnist_core.runs import name_run
from ui.common import current
from ui.inside import chosen_digit
from ui.state import client_address, job_queue, owner, session_job, viewer

KNOBS = (
    "lr",
    "epochs",
    "batch_size",
    "optimiser",
    "momentum",
    "loop",
    *NETWORK_KNOBS,
    "seed",
    "device",
    "record_every",
)
LR_FIND_WAIT_S = 60.0  # the range test takes about a second on the sample; the page waits for it
FIRST_LOSS_WAIT_S = 0.5  # Start waits this long at most for the first loss before the page redraws
ACK_TIMEOUT_S = 5.0  # how long a control button waits for the trainer to confirm before the page redraws anyway


def keep_knobs(job: Job | None) -> None:
    """The knobs show the run's own settings after a refresh or a visit from another page; else the tutorial's."""
    if job is not None and st.session_state.get("knobs_of") != job.id:
        for name in KNOBS:
            st.session_state[f"keep_{name}"] = getattr(job.config, name)
        if job.history is not None and job.history.lr_schedule:
            st.session_state["keep_lr"] = job.history.lr_schedule[-1][1]
        st.session_state["knobs_of"] = job.id
    tutorial = TrainConfig()  # the tutorial's defaults, kept across pages once changed
    for name in KNOBS:
        st.session_state.setdefault(f"keep_{name}", getattr(tutorial, name))


def send_knob(name: str) -> None:
    """A live knob moved while the run trains: the trainer uses it from its next batch on."""
    current_job = session_job()
    if current_job is None or current_job.state != JobState.RUNNING:
        return
    try:
        job_queue().control(current_job.id, owner(), "set", **{name: st.session_state[f"keep_{name}"]})
    except QueueError as exc:
        st.session_state["control_error"] = str(exc)


def wait_until(condition, timeout: float) -> None:
    """Poll ``condition`` until it holds or ``timeout`` passes: the trainer answers in milliseconds."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)


def knobs_config() -> TrainConfig:
    """The run the knobs describe, on the data set in use (not yet validated)."""
    settings = {name: st.session_state[f"keep_{name}"] for name in KNOBS}
    return TrainConfig(dataset=current()[0].name, **settings)


def queue_job(task: str = "train") -> Job | None:
    """Queue the knobs' config as a run or an lr-find ``task``; None (with the reason kept for the page) if refused."""
    dataset = current()[0]
    try:
        # Offline (the sample is in use) the trainer need not try the network again.
        return job_queue().submit(
            knobs_config(),
            owner=owner(),
            allow_download=dataset.source_kind != "sample",
            task=task,
            watch=chosen_digit(dataset)[0] if task == "train" else None,
            address=client_address(),
            sizes=(dataset.n_train, dataset.n_test),
        )
    except ValueError as exc:
        st.session_state["control_error"] = str(exc)
        return None


def find_lr() -> None:
    """The range test's callback: it runs in the warm trainer like a run, and takes a second or two."""
    if new := queue_job("lr-find"):
        wait_until(lambda: new.done or job_queue().waits_behind(new), LR_FIND_WAIT_S)  # behind another: no wait


def use_lr(value: float) -> None:
    st.session_state["keep_lr"] = value


def apply_preset(name: str) -> None:
    """Preset ``name``'s knobs (the tutorial's for those it leaves alone); seed, device and recorder stay."""
    preset = next(p for p in PRESETS if p.name == name)
    for knob, value in preset.values().items():
        st.session_state[f"keep_{knob}"] = value


def start_run() -> None:
    """Start's callback, before the page redraws: queue the run, and since a warm trainer starts at once,
    wait a moment for its first loss so that this very redraw shows it (not when every trainer is busy)."""
    if new := queue_job():
        st.session_state["knobs_of"] = new.id
        # A run waiting behind another would only keep the click unanswered: its page shows its place at once.
        wait_until(
            lambda: new.done or (new.history is not None and new.history.step > 0) or job_queue().waits_behind(new),
            FIRST_LOSS_WAIT_S,
        )


def act(j: Job, action: str, **kwargs) -> None:
    """Send a control and wait (bounded) for the trainer to confirm it, so the view shows the result."""
    before = j.history.step if j.history else 0
    try:
        job_queue().control(j.id, owner(), action, **kwargs)
    except QueueError as exc:
        st.session_state["control_error"] = str(exc)
        return
    confirmed = {
        "stop": lambda: j.done,
        "pause": lambda: j.done or j.history.paused,
        "resume": lambda: j.done or not j.history.paused,
        "step": lambda: j.done or (j.history.paused and j.history.step > before),
        "epoch": lambda: j.done or (j.history.paused and j.history.step > before),
    }[action]
    wait_until(confirmed, ACK_TIMEOUT_S)


def name_it(j: Job) -> None:
    try:
        meta = name_run(j.run_dir, viewer(), st.session_state[f"name_{j.id}"])
        st.session_state[f"named_{j.id}"] = meta.name
    except RunError as exc:
        st.session_state[f"named_{j.id}"] = None
        st.session_state[f"name_error_{j.id}"] = str(exc)
