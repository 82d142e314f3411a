"""Load test: many browser sessions train at once through the server's one job queue.

Run by hand, never by the tests:  python benchmarks/load_test.py --sessions 10 [--epochs 2] [--timeout 600]

It starts ``streamlit run streamlit_app.py`` on a free port of 127.0.0.1 with an empty runs folder,
opens N sessions (browser contexts of one headless Chromium, driven by Playwright), sets Epochs on
the Train page in each, presses "Start training" in all of them within a second or two, and
follows every session until its own run shows "Finished". Meanwhile it samples the memory (RSS)
of the server process and of its children (the training workers).

Chromium runs at a lower priority (``--browser-nice``): the browsers stand in for users' own
machines and should not take CPU from the server they measure on this one.

A page still not showing "Finished" ``--stale-after`` seconds after its run was saved is reloaded,
as a user would (the browser's owner cookie brings the job back); that session still counts as failed.

It prints: sessions, runs finished, failures, the queue places the sessions saw, the wait from the
click to the start of training (``started_at`` in run.json), the time from the click to the
"Finished" message and from the save to that message, the peak memory of the server with its
workers and of the server alone, CPU time of both, and the total wall time. It exits non-zero if a
session failed (no "Finished" without a reload, a Streamlit exception or an st.error on its page,
its run missing or not "finished"; an st.warning is only listed) or if the peak total memory is
over --max-memory-mb.
Screenshots of failing sessions and the server log go to a temp folder whose path is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from appserver import CHROMIUM_FLAGS, free_port, returning_visitor, start_server, stop_server, wait_healthy  # noqa: E402  (shared with tests/e2e)

MAX_RELOADS = 3  # per session, each after a longer wait than the one before
QUEUE_RE = re.compile(r"Waiting in the queue: place (\S+) of (\d+) waiting")

# One round trip per poll: what a session's page shows now. Alerts are found by Streamlit's test ids; the place in
# line is in an info box, or above the live chart when the page follows its job's feed.
# The moment "Finished" appears is taken by the page itself (a MutationObserver, installed on the first poll
# and again after a reload): polling ten pages in turn on two busy cores would add seconds of its own.
# The box's text starts with its icon's name, so "Finished" is looked for anywhere in it.
PAGE_STATE_JS = """() => {
  const texts = (id) => [...document.querySelectorAll(`[data-testid=${id}]`)].map((e) => e.innerText);
  const finished = () => texts('stAlertContentSuccess').some((t) => t.includes('Finished'));
  // the live chart shows the outcome from its feed before the page redraws (ui/live_chart.js)
  const shown = () => [...document.querySelectorAll('.live-chart .outcome')].some(
    (e) => e.style.display !== 'none' && e.innerText.includes('Finished'));
  if (!window.__finishWatch) {
    window.__finishWatch = new MutationObserver(() => {
      if (!window.__finishedAt && finished()) window.__finishedAt = Date.now() / 1000;
      if (!window.__shownAt && (finished() || shown())) window.__shownAt = Date.now() / 1000;
    });
    window.__finishWatch.observe(document.body, { childList: true, subtree: true, characterData: true });
  }
  return {
    finished_at: window.__finishedAt || null,
    shown_at: window.__shownAt || null,
    queue: [...texts('stAlertContentInfo'), document.querySelector('.live-chart .progress .text')?.innerText || '']
      .find((t) => t.includes('Waiting in the queue')) || null,
    success: texts('stAlertContentSuccess').find((t) => t.includes('Finished')) || null,
    warnings: texts('stAlertContentWarning'),
    errors: texts('stAlertContentError'),
    exceptions: texts('stException'),
    caption_job: document.querySelector('[data-testid=stCaptionContainer] code')?.innerText || null,
    url: location.href,
  };
}"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10, help="browser sessions training at once")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (set with the slider)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds for the whole test after the clicks")
    parser.add_argument("--stale-after", type=float, default=30, help="reload a page this long after its run was saved")
    parser.add_argument("--max-memory-mb", type=float, default=2048, help="fail above this peak server+workers RSS")
    parser.add_argument("--browser-nice", type=int, default=10, help="niceness of this driver and Chromium")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
    parser.add_argument("--keep", action="store_true", help="keep the runs folder and server log")
    return parser.parse_args()


# --------------------------------------------------------------------------- memory and CPU


def descendants(pid: int) -> list[int]:
    """All processes below ``pid``: from /proc/<pid>/task/*/children, else from one scan of /proc/*/stat."""
    kids: dict[int, list[int]] = {}
    if not list(Path(f"/proc/{pid}/task").glob("*/children")):  # a kernel without CONFIG_PROC_CHILDREN
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue  # the process ended while we looked
            ppid = int(text[text.rfind(")") + 2 :].split()[1])  # the name in (...) may hold spaces
            kids.setdefault(ppid, []).append(int(stat.parent.name))

    def children(p: int) -> list[int]:
        if kids:
            return kids.get(p, [])
        found = []
        for f in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                found += [int(x) for x in f.read_text().split()]
            except OSError:
                pass
        return found

    found, todo = [], children(pid)
    while todo:
        found.append(todo.pop())
        todo += children(found[-1])
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def describe(pid: int) -> str:
    """``<state> <command>`` of a process, e.g. ``Z python -m mnist_core.worker`` for an unreaped one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "gone"
    state = stat[stat.rfind(")") + 2]
    name = stat[stat.find("(") : stat.rfind(")") + 1]
    args = cmd.split()[1:4]  # without the interpreter's path
    return f"{state} {' '.join(args) if args else name}"


def tree_cpu_seconds(pids: list[int]) -> float:
    """CPU time of the live processes ``pids`` (the browser's, here)."""
    times = [cpu_seconds(pid)[0] for pid in pids]
    return sum(t for t in times if t == t)  # NaN (a process that ended meanwhile) != itself


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time of ``pid`` itself and of the children it has reaped (the finished training workers)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return float("nan"), float("nan")  # the server has already gone
    utime, stime, cutime, cstime = (int(x) for x in text[text.rfind(")") + 2 :].split()[11:15])
    tick = os.sysconf("SC_CLK_TCK")
    return (utime + stime) / tick, (cutime + cstime) / tick


class MemorySampler(threading.Thread):
    """Samples RSS of the server alone and of the server plus all its descendants, keeping the peaks."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_total = self.peak_server = 0.0
        self.peak_workers = 0  # most descendant processes seen at once
        self.peak_tree: list[str] = []  # what they were
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            server = rss_mb(self.pid)
            tree = descendants(self.pid)
            self.peak_server = max(self.peak_server, server)
            self.peak_total = max(self.peak_total, server + sum(rss_mb(p) for p in tree))
            if len(tree) > self.peak_workers:
                self.peak_workers, self.peak_tree = len(tree), [describe(p) for p in tree]

    def stop(self) -> None:
        self._stop_event.set()
        self.join(5)


# --------------------------------------------------------------------------- the sessions


@dataclass
class Session:
    index: int
    page: Page
    clicked_at: float | None = None  # time.time(), comparable with run.json's started_at
    job_id: str | None = None
    queue_places: list[str] = field(default_factory=list)  # each distinct "place P of M" seen, in order
    finished_at: float | None = None  # the page redrawn with its "Finished" box
    shown_at: float | None = None  # "Finished" first shown: by the live chart's outcome line or that box
    reloads: int = 0  # reloads needed because the page went stale
    reloaded_at: float = 0.0
    poll_errors: int = 0  # reads of the page that failed in a row
    warnings: set[str] = field(default_factory=set)
    js_errors: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.finished_at is not None or bool(self.problems)


def new_session(browser: Browser, index: int, url: str) -> Session:
    """A browser context of its own: its own owner cookie (as a returning visitor), so its own session."""
    page = returning_visitor(browser, url, viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(90_000)  # ten pages on two cores: first loads are slow
    session = Session(index, page)
    # What the page's JavaScript threw or logged as an error: a blank page has no other trace.
    page.on("pageerror", lambda exc: session.js_errors.append(f"uncaught: {exc}"[:500]))
    page.on("crash", lambda _: session.js_errors.append("the page crashed"))
    page.on("console", lambda msg: msg.type == "error" and session.js_errors.append(f"console: {msg.text}"[:500]))
    return session


def prepare(session: Session, url: str, epochs: int) -> None:
    """Open /Train and put the Epochs slider at ``epochs``; batch size stays at its default 128."""
    page = session.page
    page.goto(url + "/Train")
    page.get_by_role("button", name="Start training").wait_for()
    thumb = page.get_by_role("slider", name="Epochs")
    thumb.focus()
    thumb.press("Home")  # 1 epoch
    for _ in range(epochs - 1):
        thumb.press("ArrowRight")
    expect(thumb).to_have_value(str(epochs))
    time.sleep(0.3)  # let the slider's value reach the server before the click reruns the script


def click_start(session: Session) -> None:
    session.clicked_at = time.time()
    session.page.get_by_role("button", name="Start training").click()


def poll(session: Session) -> None:
    """Read the page once and record the queue place, the job id, the finish, or a problem."""
    # wait_for_function, unlike evaluate, takes a timeout: a page stuck loading must not stall the loop.
    state = session.page.wait_for_function(PAGE_STATE_JS, polling=100, timeout=5_000).json_value()
    if session.job_id is None:  # from the "Run `<id>`" caption
        session.job_id = state["caption_job"]
    if state["queue"] and (m := QUEUE_RE.search(state["queue"])):
        place = f"{m[1]}/{m[2]}"
        if not session.queue_places or session.queue_places[-1] != place:
            session.queue_places.append(place)
    for kind in ("exceptions", "errors"):
        for text in state[kind]:
            session.problems.append(f"{kind[:-1]}: {text.strip()[:300]}")
    # Warnings are advice (the loss plateau) or a stop; a stopped run is caught by its run.json status.
    session.warnings.update(text.strip()[:60] + "..." for text in state["warnings"])
    if state["success"]:  # the page's own clock (the same machine's), else the time of this poll
        session.finished_at = state["finished_at"] or time.time()
        session.shown_at = state["shown_at"] or session.finished_at


def reload_if_stale(session: Session, meta: dict | None, stale_after: float, shots: Path) -> None:
    """Reload a page that still does not say "Finished" ``stale_after`` s after its run was saved (or after
    its last reload), keeping a screenshot and the text of what it showed. Nothing is awaited: a slow server
    must not hold up the other sessions."""
    if session.reloads >= MAX_RELOADS or not meta or not meta.get("saved_at"):
        return
    if time.time() - max(meta["saved_at"], session.reloaded_at) > stale_after:
        stale = shots / f"stale-session-{session.index:02d}-{session.reloads + 1}"
        try:
            session.page.screenshot(path=f"{stale}.png", full_page=True, timeout=10_000)
            text = session.page.evaluate("document.body.innerText")
            stale.with_suffix(".txt").write_text(text + "\n\nJavaScript errors:\n" + "\n".join(session.js_errors))
        except Exception as exc:
            print(f"(no record of stale session {session.index}: {exc})")
        session.reloads += 1
        session.reloaded_at = time.time()
        session.page.evaluate("location.reload()")  # page.reload() waits for the swamped server: up to minutes


def hopeless(session: Session, runs: dict[str, dict], expected: int, stale_after: float) -> bool:
    """Nothing more to wait for: its reloads are spent, or (job id unknown) every run was saved long ago."""
    now = time.time()
    if session.reloads >= MAX_RELOADS:
        return now - session.reloaded_at > stale_after
    saved = [m["saved_at"] for m in runs.values() if m.get("saved_at")]
    return session.job_id not in runs and len(saved) >= expected and now - max(saved) > stale_after * MAX_RELOADS


def follow(
    sessions: list[Session],
    server: subprocess.Popen,
    runs_dir: Path,
    deadline: float,
    stale_after: float,
    shots: Path,
) -> None:
    """Poll every session in turn until each has finished, failed or is hopeless, the deadline passes,
    or the server ends."""
    clicked = [s for s in sessions if s.clicked_at is not None]
    while time.monotonic() < deadline:
        if server.poll() is not None:
            print(f"the server exited with code {server.returncode} during the test")
            break
        runs = read_runs(runs_dir)
        waiting = [s for s in clicked if not s.done and not hopeless(s, runs, len(clicked), stale_after)]
        if not waiting:
            break
        for s in waiting:
            try:
                poll(s)
                if not s.done:
                    reload_if_stale(s, runs.get(s.job_id or ""), stale_after, shots)
                s.poll_errors = 0
            except Exception as exc:  # a page mid-reload cannot be read; a crashed one must not stop the others
                s.poll_errors += 1
                if s.poll_errors >= 20:
                    s.problems.append(f"browser: {type(exc).__name__}: {exc}")
        time.sleep(0.5)
    for s in clicked:
        if not s.done:
            s.problems.append(
                f"never showed 'Finished' (reloads: {s.reloads}; queue places seen: {s.queue_places or 'none'})"
            )
        elif s.reloads and not s.problems:
            s.problems.append(f"'Finished' only after {s.reloads} reload(s): the live view had gone stale")


# --------------------------------------------------------------------------- checks and summary


def read_runs(runs_dir: Path) -> dict[str, dict]:
    """run.json of every run folder, by folder name; unreadable ones as {"status": "unreadable (...)"}."""
    runs = {}
    for folder in sorted(p for p in runs_dir.iterdir() if p.is_dir()):
        try:
            runs[folder.name] = json.loads((folder / "run.json").read_text())
        except (OSError, ValueError) as exc:  # a ".partial" folder being written, or damage
            runs[folder.name] = {"status": f"unreadable ({exc})"}
    return runs


def check_runs(sessions: list[Session], runs: dict[str, dict]) -> list[str]:
    """Each clicking session owns exactly one finished run folder; no folder is left over."""
    problems = []
    ids = [s.job_id for s in sessions if s.clicked_at is not None]
    if len(set(ids)) != len(ids):
        problems.append(f"job ids are not distinct or not known: {ids}")
    for s in sessions:
        if s.clicked_at is None:
            continue
        meta = runs.get(s.job_id or "")
        if meta is None:
            s.problems.append(f"no run folder for job {s.job_id}")
        elif meta.get("status") != "finished":
            s.problems.append(f"run {s.job_id} has status {meta.get('status')!r}: {meta.get('message')}")
    extra = sorted(set(runs) - set(ids))
    if extra:
        problems.append(f"run folders no session owns: {extra}")
    return problems


def spread(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"min {min(values):.1f}  median {statistics.median(values):.1f}  max {max(values):.1f} s"


def summary(
    sessions: list[Session],
    runs: dict[str, dict],
    memory: MemorySampler,
    cpu: tuple[float, float, float],
    wall: float,
) -> list[str]:
    clicked = [s for s in sessions if s.clicked_at is not None]
    metas = [(s, runs[s.job_id]) for s in clicked if s.job_id in runs]
    waits = [m["started_at"] - s.clicked_at for s, m in metas if m.get("started_at")]
    trains = [m["train_seconds"] for _, m in metas if m.get("train_seconds") is not None]
    to_finish = [s.finished_at - s.clicked_at for s in clicked if s.finished_at]
    lag = [s.finished_at - m["saved_at"] for s, m in metas if s.finished_at and m.get("saved_at")]
    shown = [s.shown_at - m["saved_at"] for s, m in metas if s.shown_at and m.get("saved_at")]
    finished = sum(1 for m in runs.values() if m.get("status") == "finished")
    failed = [s for s in sessions if s.problems]
    return [
        f"sessions            {len(sessions)} ({len(clicked)} clicked Start training)",
        f"runs finished       {finished} of {len(runs)} run folders",
        f"sessions failed     {len(failed)} ({sum(1 for s in clicked if s.reloads)} needed a reload)",
        f"saw the queue       {sum(1 for s in clicked if s.queue_places)} sessions; first place seen per session: "
        + ", ".join(s.queue_places[0] if s.queue_places else "-" for s in clicked),
        f"click -> training   {spread(waits)}   (run.json started_at)",
        f"training alone      {spread(trains)}   (run.json train_seconds)",
        f"click -> Finished   {spread(to_finish)}   (seen in the browser, reloads included)",
        f"saved -> shown      {spread(shown)}   (the outcome first shown: the live chart's line or the page's box)",
        f"saved -> Finished   {spread(lag)}   (run.json saved_at to the page redrawn with its 'Finished' box)",
        "  in the order the runs ended: "
        + " ".join(
            f"{s.finished_at - m['saved_at']:.1f}"
            for s, m in sorted(
                ((s, m) for s, m in metas if s.finished_at and m.get("saved_at")), key=lambda sm: sm[1]["saved_at"]
            )
        ),
        f"peak memory         {memory.peak_total:.0f} MB server + workers, {memory.peak_server:.0f} MB server alone "
        f"(at most {memory.peak_workers} processes under the server at once: {'; '.join(memory.peak_tree)})",
        f"CPU time            {cpu[0]:.0f} s server, {cpu[1]:.0f} s training workers, {cpu[2]:.0f} s Chromium "
        f"(nice {os.nice(0)}); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
        f"warnings seen       {sorted(set().union(*(s.warnings for s in sessions))) or 'none'} "
        f"in {sum(1 for s in sessions if s.warnings)} sessions",
        f"total wall time     {wall:.1f} s",
    ] + [
        f"FAILED session {s.index}: "
        + " | ".join(s.problems + [f"JavaScript errors: {s.js_errors[:5]}"] * bool(s.js_errors))
        for s in failed
    ]


def screenshot_failures(sessions: list[Session], shots: Path) -> None:
    for s in sessions:
        if s.problems:
            try:
                s.page.screenshot(path=str(shots / f"session-{s.index:02d}.png"), full_page=True)
            except Exception as exc:
                print(f"(no screenshot of session {s.index}: {exc})")


# --------------------------------------------------------------------------- main


def main() -> int:
    args = parse_args()
    # A plain SIGTERM would skip the finally below and leave the server and its workers running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="mnist-load-"))
    runs_dir, shots = work / "runs", work / "screenshots"
    runs_dir.mkdir()
    shots.mkdir()
    print(f"work folder (runs, server log, screenshots): {work}")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    server = start_server(port, runs_dir, work / "streamlit.log")
    memory = MemorySampler(server.pid)
    sessions: list[Session] = []
    try:
        wait_healthy(url, server)
        memory.start()
        # The browsers stand in for users' machines: they must not take the server's CPU on this one.
        os.nice(args.browser_nice)  # after the server started, so only this process and the browser get it
        with sync_playwright() as pw:
            # One Chromium, one context per session: separate cookies, so separate Streamlit sessions.
            browser = pw.chromium.launch(executable_path=args.chromium, headless=True, args=CHROMIUM_FLAGS)
            # Set every session up first, then click in a tight loop: the jobs reach the queue together.
            for i in range(args.sessions):
                sessions.append(new_session(browser, i, url))
                try:
                    prepare(sessions[-1], url, args.epochs)
                except Exception as exc:  # recorded; the other sessions still run
                    sessions[-1].problems.append(f"could not set up /Train: {type(exc).__name__}: {exc}")
            print(f"{len(sessions)} sessions ready after {time.monotonic() - t0:.1f} s; clicking Start training")
            server_tree = {server.pid, *descendants(server.pid)}
            browser_pids = [p for p in descendants(os.getpid()) if p not in server_tree]
            at_click = (tree_cpu_seconds(browser_pids), tree_cpu_seconds(list(server_tree)), time.monotonic())
            for s in sessions:
                if s.problems:
                    continue
                try:
                    click_start(s)
                except Exception as exc:
                    s.problems.append(f"could not click Start training: {exc}")
            follow(sessions, server, runs_dir, time.monotonic() + args.timeout, args.stale_after, shots)
            time.sleep(1)  # the last run's folder is renamed into place just before "done" is sent
            runs = read_runs(runs_dir)
            other = check_runs(sessions, runs)
            cpu = cpu_seconds(server.pid)  # while the server lives: its reaped workers are counted in it
            server_tree = {server.pid, *descendants(server.pid)}
            browser_cpu = tree_cpu_seconds([p for p in descendants(os.getpid()) if p not in server_tree])
            since = time.monotonic() - at_click[2]
            print(  # the phase the figures above are about, without the ten pages' first loads
                f"from the clicks on ({since:.0f} s): "
                f"Chromium {(tree_cpu_seconds(browser_pids) - at_click[0]) / since:.0%}"
                f" of a core, server + trainer {(tree_cpu_seconds(list(server_tree)) - at_click[1]) / since:.0%}"
            )
            screenshot_failures(sessions, shots)
            browser.close()
        wall = time.monotonic() - t0
    finally:
        memory.stop()
        stop_server(server)
    lines = summary(sessions, runs, memory, (*cpu, browser_cpu), wall) + [f"FAILED: {p}" for p in other]
    too_big = memory.peak_total > args.max_memory_mb
    if too_big:
        lines.append(f"FAILED: peak memory {memory.peak_total:.0f} MB is over {args.max_memory_mb:.0f} MB")
    print("\n".join(lines))
    failed = too_big or other or any(s.problems for s in sessions)
    if failed:
        print(f"screenshots and server log: {work}")
    elif args.keep:
        print(f"runs and server log kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
