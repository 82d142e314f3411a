"""Server-wide objects (the job queue, loaded runs) and what one session remembers."""

from __future__ import annotations

import streamlit as st
import torch

from mnist_core.jobs import Job, JobQueue
from mnist_core.report import build_report, predict
from mnist_core.runs import Run, RunError, list_runs, load_run, runs_root

from .common import shared_dataset


@st.cache_resource
def job_queue() -> JobQueue:
    """One queue per server process: every session's training goes through it."""
    return JobQueue()


def session_job() -> Job | None:
    """This session's latest job. Its id is also kept in the URL, so a refresh finds it again."""
    job_id = st.session_state.get("job_id") or st.query_params.get("job")
    job = job_queue().get(job_id)
    if job is not None:
        st.session_state["job_id"] = job.id
    return job


def remember_job(job: Job) -> None:
    st.session_state["job_id"] = job.id
    st.query_params["job"] = job.id


@st.cache_resource(max_entries=32, show_spinner="Loading the run...")
def _cached_run(path: str, saved_at: float) -> Run:
    run = load_run(path)
    if run.report is None and run.meta.get("status") in ("finished", "stopped"):
        run.report = build_report(run.model, shared_dataset(run.config.dataset))
    return run


def run_ids() -> list[str]:
    return [p.name for p in list_runs()]


def get_run(run_id: str) -> Run | None:
    """A saved run with its model, or None with a message on the page if it is damaged."""
    path = runs_root() / run_id
    try:
        return _cached_run(str(path), path.joinpath("run.json").stat().st_mtime)
    except (RunError, OSError) as exc:
        st.error(f"Run {run_id} cannot be read: {exc}")
        return None


def run_picker(label: str = "Run", key: str = "run_picker") -> str | None:
    """A select box of saved runs, newest first, defaulting to this session's latest run."""
    ids = run_ids()
    if not ids:
        return None
    current = st.session_state.get("selected_run")
    index = ids.index(current) if current in ids else 0
    choice = st.selectbox(label, ids, index=index, key=key)
    st.session_state["selected_run"] = choice
    return choice


@st.cache_resource(max_entries=8)
def test_predictions(run_id: str) -> torch.Tensor:
    """The predicted class of every test image for a saved run, computed once."""
    run = get_run(run_id)
    return predict(run.model, shared_dataset(run.config.dataset).test_images).argmax(1)
