"""One way to start the app for the browser tests and the benchmarks: ``streamlit run`` on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


OWNER_COOKIE = "mnist_owner"  # ui/state.py's


def returning_visitor(browser, url: str, **context_args):
    """A browser context that has visited before: it holds an owner cookie, so its first page load is not
    followed by the one reload a fresh browser makes to store its owner secret (ui/state.keep_owner_cookie)."""
    import secrets

    context = browser.new_context(**context_args)
    context.add_cookies([{"name": OWNER_COOKIE, "value": secrets.token_urlsafe(32), "url": url}])
    return context


def chromium_path() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_PATH"), "/usr/bin/chromium"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    port: int,
    runs_dir: Path,
    log_path: Path,
    env: dict | None = None,
    root: Path = ROOT,
    options: tuple[str, ...] = ("--server.fileWatcherType=none",),
) -> subprocess.Popen:
    """``streamlit run`` in its own process group, so that the group (server + trainers) can be ended whole;
    from ``root``, this checkout or another one (a benchmark's ``--checkout``, an older commit). ``options``:
    more command-line options; by default no reloading of edited modules mid-test (an edit elsewhere in the
    tree must not restart anything), where benchmarks/bench_cloud.py passes Community Cloud's."""
    env = {**os.environ, "MNIST_RUNS_DIR": str(runs_dir), "PYTHONPATH": str(root), **(env or {})}
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "streamlit_app.py",
        "--server.headless=true",
        "--server.address=127.0.0.1",
        f"--server.port={port}",
        "--browser.gatherUsageStats=false",
        *options,
    ]
    with open(log_path, "w") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=2).status == 200:
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit was not healthy after {timeout:.0f} s")


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo += children.get(found[-1], [])
    return found


def trainer_pids(server_pid: int) -> list[int]:
    """The server's warm trainers: processes below it running mnist_core.worker."""
    pids = []
    for pid in descendants(server_pid):
        try:
            if b"mnist_core.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                pids.append(pid)
        except OSError:
            continue
    return pids


def stop_server(proc: subprocess.Popen) -> None:
    """End the server and its trainers (the whole process group): SIGTERM, then SIGKILL for what is left
    (trainers that outlived the server, or a server that hung)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


# The last step the Train page's loss chart shows, whichever chart is up: the live canvas (ui/live_chart.js
# writes it in data-last-step) while a run trains or is paused, Plotly's (trace 0 is the batch loss) once done.
LAST_STEP_JS = """() => {
  const canvas = document.querySelector('.live-chart canvas');
  if (canvas) return Number(canvas.dataset.lastStep || 0);
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const x = plots.length ? plots[plots.length - 1]._fullData?.[0]?.x : null;
  return x && x.length ? Number(x[x.length - 1]) : 0;
}"""
