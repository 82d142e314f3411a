"""Server-wide objects (the job queue, loaded runs) and what one session remembers."""

from __future__ import annotations

import atexit
import hashlib
import re
import secrets
import sys
import threading
from pathlib import Path

import streamlit as st

from mnist_core.data import DataError
from mnist_core.feed import Feed
from mnist_core.i18n import N_, _
from mnist_core.jobs import Job, JobQueue
from mnist_core.owners import default_run, is_mine, mark_seen, owner_id, visible
from mnist_core.run_schema import RunError, RunMeta
from mnist_core.runs import Run, list_run_metas, load_run, read_meta, runs_root

from .common import shared_dataset

APP_DIR = Path(__file__).resolve().parents[1]  # streamlit_app.py's folder: Streamlit serves its static/
OWNER_COOKIE = "mnist_owner"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32,64}")


# The queue lives on ``sys``, not in this module: Streamlit re-imports a changed module (Community Cloud pulls
# every push with runOnSave on), and a module global would then start a second queue and a second warm
# trainer (0.85 GB) while the first ran on unseen. Nor in st.cache_resource: any browser may clear that cache.
_HELD = "_mnist_job_queue"
_lock = getattr(sys, _HELD + "_lock", None) or threading.Lock()
setattr(sys, _HELD + "_lock", _lock)
CORE = Path(__file__).resolve().parents[1] / "mnist_core"


def code_version() -> str:
    """A fingerprint of the code the queue and its trainers run: a queue of other code is replaced."""
    digest = hashlib.sha256()
    for path in sorted(CORE.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def job_queue() -> JobQueue:
    """One queue per server process, whatever Streamlit re-imports: every session's training goes through it.
    Its trainers start warming now, with the data set the server opens on.

    After a change to mnist_core (a push), the old queue is ended (a run it trains is saved as interrupted,
    with its last checkpoint) and a new one starts on the new code; a change elsewhere keeps it."""
    with _lock:
        held = getattr(sys, _HELD, None)
        version = code_version()
        if held is not None and held[1] == version and not held[0].closed:
            return held[0]
        if held is not None:
            held[0].close()
        try:
            offline = shared_dataset("mnist").source_kind == "sample"  # no network for the server: nor for them
        except DataError:
            offline = False
        queue = JobQueue(preload=("mnist",), allow_download=not offline, feed=_live_feed(clean=held is None))
        setattr(sys, _HELD, (queue, version))
        return queue


def _live_feed(clean: bool) -> Feed | None:
    """The jobs' live feeds, in the app's static folder (``server.enableStaticServing``, on in
    .streamlit/config.toml), served at ``app/static/``; None if static files are not served or the
    folder cannot be written: the pages then follow their jobs on a timer. ``clean``: remove the feeds of an
    earlier server (the first queue of this process only)."""
    if not st.get_option("server.enableStaticServing"):
        return None
    try:
        return Feed(APP_DIR / "static" / "feed", "app/static/feed", clean=clean)
    except OSError:
        return None


def close_job_queue() -> None:
    """End the queue's trainers and forget it (tests, scripts, and the server's exit)."""
    with _lock:
        held = getattr(sys, _HELD, None)
        setattr(sys, _HELD, None)
    if held is not None:
        held[0].close()


atexit.register(close_job_queue)  # a stopped server leaves no trainer behind


def _cookie() -> str:
    token = st.context.cookies.get(OWNER_COOKIE)
    return token if isinstance(token, str) else ""  # AppTest has no browser, hence no cookies


def owner() -> str:
    """This browser's secret: it owns the jobs it starts and the runs they save. It lives in a cookie that the
    browser makes itself (``keep_owner_cookie``), so it is never in a page or a URL; a refresh or a second tab
    finds the same runs, and no other visitor can steer or delete them. A session without the cookie (before
    its first reload, or in a browser that refuses cookies) has a secret of its own, kept on the server."""
    if "owner" not in st.session_state:
        token = _cookie()
        st.session_state["owner"] = token if _TOKEN.fullmatch(token) else secrets.token_urlsafe(32)
    return st.session_state["owner"]


def viewer() -> str:
    """This browser's owner id: what its runs store, and whose runs and studies it sees (mnist_core.owners)."""
    return owner_id(owner())


def client_address() -> str | None:
    """The client's network address, where Streamlit knows it (not on localhost): the queue's per-address limit."""
    try:
        return st.context.ip_address
    except Exception:  # AppTest has no connection
        return None


# The browser makes its own secret (32 random bytes) if it has none, then reloads once so that the server
# reads it from the cookie; a browser that refuses the cookie reloads only once (sessionStorage says so).
# Two tabs opened at once share whichever secret was stored first: the second finds the cookie set.
_COOKIE_SCRIPT = (
    "<script>"  # untranslated: code
    """
(() => {
  const name = "%s", has = document.cookie.split("; ").some((c) => c.startsWith(name + "="));
  if (!has) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    const token = btoa(String.fromCharCode(...bytes)).replace(/[+]/g, "-").replace(/[/]/g, "_").replace(/=+$/, "");
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${name}=${token}; path=/; max-age=31536000; SameSite=Strict${secure}`;
  }
  if (!sessionStorage.getItem("mnist_owner_reloaded")) {
    sessionStorage.setItem("mnist_owner_reloaded", "1");
    location.reload();
  }
})();
</script>"""
)


def keep_owner_cookie() -> None:
    """A session without the owner cookie asks the browser to make one and come back with it (once); a session
    with it marks its owner as seen (their runs are kept first when the disk is full)."""
    if _TOKEN.fullmatch(_cookie()):
        if not st.session_state.get("owner_seen"):
            st.session_state["owner_seen"] = True
            mark_seen(viewer(), runs_root())
        return
    if st.session_state.get("owner_cookie_asked") or not st.context.headers:  # AppTest: no browser
        return
    st.session_state["owner_cookie_asked"] = True
    with st.sidebar:
        st.html(_COOKIE_SCRIPT % OWNER_COOKIE, unsafe_allow_javascript=True)


def session_job() -> Job | None:
    """This browser's latest job, running or ended."""
    return job_queue().latest_of(owner())


@st.cache_resource(max_entries=32, show_spinner=False)  # get_run's spinner is in the visitor's language
def _cached_run(path: str, saved_at: float) -> Run:
    """Keyed by the folder and its run.json's time: a run replaced under the same name is read anew."""
    return load_run(path)


def visible_runs() -> list[tuple[Path, RunMeta]]:
    """The runs this browser may see, newest first: its own and the shared ones (mnist_core.owners)."""
    me = viewer()
    return [(path, meta) for path, meta in list_run_metas() if visible(meta, me)]


def run_ids() -> list[str]:
    return [path.name for path, _meta in visible_runs()]


def get_run(run_id: str) -> Run | None:
    """A saved run this browser may see, with its model; None with a message on the page if it is damaged
    or not this browser's to see."""
    path = runs_root() / run_id
    try:
        if not visible(read_meta(path), viewer()):
            raise RunError(_("it belongs to another visitor, who has not shared it."))
        saved_at = path.joinpath("run.json").stat().st_mtime
        with st.spinner(_("Loading the run...")):  # shown only if it takes a while
            return _cached_run(str(path), saved_at)
    except (RunError, OSError) as exc:
        st.error(_("Run `{run_id}` cannot be read.").format(run_id=run_id))
        st.text(str(exc))  # it may quote what a file holds: text, never markdown
        return None


def run_picker(label: str = N_("Run"), key: str = "run_picker") -> str | None:
    """A select box of the runs this browser may see, newest first, its own marked; None while none is chosen.

    It starts on this session's choice or latest run, else on this browser's newest run, else on the best
    finished shared run of the data set in use (never a collapsed or diverged one).
    """
    runs = visible_runs()
    ids = [path.name for path, _meta in runs]
    if not ids:
        return None
    me = viewer()
    mine = {path.name for path, meta in runs if is_mine(meta, me)}
    names = {path.name: meta.name for path, meta in runs if meta.name}
    current = st.session_state.get("selected_run")
    if current not in ids:
        job = session_job()  # after a refresh: this browser's run, saved under its job's id
        current = job.id if job is not None else None
    if current not in ids:
        current = default_run(runs, me, st.session_state.get("dataset_name", "mnist"))

    def shown(run_id: str) -> str:
        whose = _("{run_id} (yours)") if run_id in mine else _("{run_id} (shared)")
        return (f"{names[run_id]} · " if run_id in names else "") + whose.format(run_id=run_id)

    choice = st.selectbox(
        _(label),
        ids,
        index=ids.index(current) if current in ids else None,
        key=key,
        format_func=shown,
        placeholder=_("Choose a run"),
    )
    if choice is not None:
        st.session_state["selected_run"] = choice
    return choice


def chosen_run(label: str, key: str, empty: str) -> Run:
    """The run picked in a select box, loaded; with no runs (or a damaged one) the page stops with a message."""
    run_id = run_picker(label, key=key)
    if run_id is None:
        if run_ids():
            st.info(_("Choose a run above: none of yours is saved yet, and no shared run has finished well."))
        else:
            st.info(empty)
            st.page_link(
                "app_pages/3_Train.py",  # untranslated: a page's path
                label=_("Go to Train"),
                icon=":material/show_chart:",
            )
        st.stop()
    run = get_run(run_id)
    if run is None:
        st.stop()
    return run
