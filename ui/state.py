"""Server-wide objects (the job queue, loaded runs) and what one session remembers."""

from __future__ import annotations

import re
import secrets
import threading
from pathlib import Path

import streamlit as st

from mnist_core.data import DATASETS, DataError
from mnist_core.feed import Feed
from mnist_core.jobs import Job, JobQueue
from mnist_core.runs import Run, RunError, list_run_metas, list_runs, load_run, newest_trained_run, runs_root

from .common import shared_dataset

APP_DIR = Path(__file__).resolve().parents[1]  # streamlit_app.py's folder: Streamlit serves its static/
OWNER_COOKIE = "mnist_owner"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")


_queue: JobQueue | None = None
_queue_lock = threading.Lock()


def job_queue() -> JobQueue:
    """One queue per server process: every session's training goes through it. Its trainers start
    warming now, with every data set the server offers already loaded (a missing one is skipped).

    A module global, not st.cache_resource: any browser may send Streamlit's "clear cache" message, and
    that must not end everyone's training."""
    global _queue
    with _queue_lock:
        if _queue is None:
            try:
                offline = shared_dataset("mnist").source_kind == "sample"  # no network for the server: nor for them
            except DataError:
                offline = False
            _queue = JobQueue(preload=tuple(DATASETS), allow_download=not offline, feed=_live_feed())
        return _queue


def _live_feed() -> Feed | None:
    """The jobs' live feeds, in the app's static folder (``server.enableStaticServing``, on in
    .streamlit/config.toml), served at ``app/static/``; None if static files are not served or the
    folder cannot be written: the pages then follow their jobs on a timer."""
    if not st.get_option("server.enableStaticServing"):
        return None
    try:
        return Feed(APP_DIR / "static" / "feed", "app/static/feed")
    except OSError:
        return None


def close_job_queue() -> None:
    """End the queue's trainers and forget it (tests and scripts; the next job_queue() makes a new one)."""
    global _queue
    with _queue_lock:
        queue, _queue = _queue, None
    if queue is not None:
        queue.close()


def _cookie() -> str:
    token = st.context.cookies.get(OWNER_COOKIE)
    return token if isinstance(token, str) else ""  # AppTest has no browser, hence no cookies


def owner() -> str:
    """This browser's secret: it owns the jobs it starts. Kept in a cookie (never in a page or a URL) so a
    refresh, a new session of the same browser, finds its run again and no other visitor can steer it."""
    if "owner" not in st.session_state:
        token = _cookie()
        st.session_state["owner"] = token if _TOKEN.fullmatch(token) else secrets.token_urlsafe(32)
    return st.session_state["owner"]


def keep_owner_cookie() -> None:
    """Store the owner secret in this browser (once per session, if it is not there yet)."""
    token = owner()
    if _cookie() == token or st.session_state.get("owner_cookie_sent"):
        return
    st.session_state["owner_cookie_sent"] = True
    with st.sidebar:
        st.html(
            f"<script>document.cookie = '{OWNER_COOKIE}={token}; path=/; max-age=31536000; SameSite=Strict';</script>",
            unsafe_allow_javascript=True,
        )


def session_job() -> Job | None:
    """This browser's latest job, running or ended."""
    return job_queue().latest_of(owner())


@st.cache_resource(max_entries=32, show_spinner="Loading the run...")
def _cached_run(path: str, saved_at: float) -> Run:
    """Keyed by the folder and its run.json's time: a run replaced under the same name is read anew."""
    return load_run(path)


def run_ids() -> list[str]:
    return [p.name for p in list_runs()]


def get_run(run_id: str) -> Run | None:
    """A saved run with its model, or None with a message on the page if it is damaged."""
    path = runs_root() / run_id
    try:
        return _cached_run(str(path), path.joinpath("run.json").stat().st_mtime)
    except (RunError, OSError) as exc:
        st.error(f"Run `{run_id}` cannot be read.")
        st.text(str(exc))  # it may quote what a file holds: text, never markdown
        return None


def run_picker(label: str = "Run", key: str = "run_picker") -> str | None:
    """A select box of saved runs, newest first, imported ones marked; None while none is chosen.

    It starts on this session's choice or latest run, else on the newest run trained on this server:
    a run imported from an archive is the default only for the session that imported it.
    """
    runs = list_run_metas()
    ids = [path.name for path, _ in runs]
    if not ids:
        return None
    imported = {path.name for path, meta in runs if meta is not None and meta.imported}
    current = st.session_state.get("selected_run")
    if current not in ids:
        job = session_job()  # after a refresh: this browser's run, saved under its job's id
        current = job.id if job is not None else None
    if current not in ids:
        current = newest_trained_run(runs)
    choice = st.selectbox(
        label,
        ids,
        index=ids.index(current) if current in ids else None,
        key=key,
        format_func=lambda run_id: f"{run_id} (imported)" if run_id in imported else run_id,
        placeholder="Choose a run",
    )
    if choice is not None:
        st.session_state["selected_run"] = choice
    return choice


def chosen_run(label: str, key: str, empty: str) -> Run:
    """The run picked in a select box, loaded; with no runs (or a damaged one) the page stops with a message."""
    run_id = run_picker(label, key=key)
    if run_id is None:
        if run_ids():
            st.info("Choose a run above: runs added from archives by other visitors are never chosen for you.")
        else:
            st.info(empty)
            st.page_link("app_pages/3_Train.py", label="Go to Train", icon=":material/show_chart:")
        st.stop()
    run = get_run(run_id)
    if run is None:
        st.stop()
    return run
