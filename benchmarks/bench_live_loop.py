"""How the live loop feels in a browser: Start -> first point, refresh rate and lag, Pause, Stop, server CPU.

Run by hand, never by the tests:
    python benchmarks/bench_live_loop.py [--runs 5] [--tabs 10] [--checkout PATH]

It starts ``streamlit run`` (from this tree, or from ``--checkout``, another checkout of the project,
to measure an older commit with the same script) with an empty runs folder and the embedded MNIST
sample, opens the Train page in headless Chromium on the same machine, and with the tutorial's
defaults (Descent 0.1, batch 128) measures:

- Start -> first loss point drawn: the click, then the first time the chart's batch-loss trace has a
  point (read from the chart in the page: appserver.LAST_STEP_JS), ``--runs`` times (each run then stopped).
- Refreshes per second of the chart while training, and how far the drawn point lags the trainer:
  each time the last drawn step changes, the browser notes the wall time; the trainer's time of that
  step is estimated from the saved run (started_at + step / steps-per-second; evaluation is ~1% here).
- Server CPU ms per refresh: the server process's CPU time (from /proc; trainers are separate
  processes) over the watched window, divided by the refreshes the browser saw; the same for the
  browser (every Chromium process), which draws the chart.
- Pause -> chart frozen: the last change of the drawn step after the click (0 if none came).
- Stop -> "Stopped" shown.
- Idle: ``--tabs`` tabs open on the Train page, no job: the server's CPU share over 20 s.
Prints one line per figure; medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from appserver import (  # noqa: E402
    CHROMIUM_FLAGS,
    LAST_STEP_JS,
    chromium_path,
    free_port,
    returning_visitor,
    start_server,
    stop_server,
    wait_healthy,
)

# Notes every change of the last drawn step of the live chart: [epoch ms, step].
WATCH_JS = (
    """() => {
  window.__seen = [];
  const last = """
    + LAST_STEP_JS
    + """;
  let prev = last();
  const tick = () => {
    const now = last();
    if (now !== prev) { window.__seen.push([performance.timeOrigin + performance.now(), now]); prev = now; }
    window.__tick = requestAnimationFrame(tick);
  };
  tick();
}"""
)

# When a text is first shown: the frame (requestAnimationFrame, just before the paint) in which an element with
# that text is first visible, in ms since the epoch. Playwright's own wait for a text retries at growing intervals
# (up to 500 ms apart): timing a Stop with it put about one Stop in three at 0.9-1.1 s that the page had drawn at
# 0.3-0.6 s (README, "The live loop").
SHOWN_JS = """(text) => {
  window.__shown = 0;
  let asked = false;
  const look = (now) => {
    asked = false;
    const found = document.evaluate(`//*[contains(text(), "${text}")]`, document.body, null, 7, null);
    for (let i = 0; i < found.snapshotLength; i++) {
      if (found.snapshotItem(i).checkVisibility()) {
        window.__shown = performance.timeOrigin + now;
        observer.disconnect();
        return;
      }
    }
  };
  const observer = new MutationObserver(() => {
    if (!asked) { asked = true; requestAnimationFrame(look); }
  });
  observer.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
}"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser_cpu_seconds() -> float:
    """CPU time of every Chromium process on the machine (the benchmark's browser is the only one)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "chrom" in text[text.index("(") + 1 : text.rindex(")")].lower():
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def newest_run(runs: Path, before: set) -> dict | None:
    new = [p for p in runs.iterdir() if p not in before and (p / "run.json").is_file()]
    return json.loads((max(new) / "run.json").read_text()) if new else None


def open_train(page, url: str) -> None:
    page.goto(url + "/Train")
    page.get_by_role("button", name="Start training").wait_for(timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)


def one_run(page, url: str, runs: Path, server_pid: int, watch_s: float) -> dict:
    open_train(page, url)
    # A long run (the most epochs the slider offers) so there is time to watch, pause and stop it.
    epochs = page.get_by_role("slider", name="Epochs")
    epochs.focus()
    epochs.press("End")
    time.sleep(0.5)
    before = set(runs.iterdir())
    page.evaluate(WATCH_JS)
    cpu0, browser0 = cpu_seconds(server_pid), browser_cpu_seconds()
    t_click = time.time()
    page.get_by_role("button", name="Start training").click()
    page.wait_for_function("() => window.__seen.length > 0", timeout=120_000, polling="raf")
    first = page.evaluate("() => window.__seen[0][0]") / 1000 - t_click
    time.sleep(watch_s)
    seen = page.evaluate("() => window.__seen")
    cpu, browser = cpu_seconds(server_pid) - cpu0, browser_cpu_seconds() - browser0
    t_end = time.time()
    result = {"first_point_s": first, "seen": seen, "window": (t_click, t_end), "cpu_s": cpu, "browser_s": browser}
    pause = page.get_by_role("button", name="Pause")
    if pause.count():
        n = len(page.evaluate("() => window.__seen"))
        t_pause = time.time()
        pause.click()
        page.get_by_role("button", name="Resume").wait_for(timeout=30_000)
        time.sleep(2.0)
        after = page.evaluate("() => window.__seen")[n:]
        result["pause_frozen_s"] = max([s[0] / 1000 - t_pause for s in after], default=0.0)
        result["after_pause"] = [(round(s[0] / 1000 - t_pause, 2), s[1]) for s in after]
        page.get_by_role("button", name="Resume").click()
        page.get_by_role("button", name="Pause").wait_for(timeout=30_000)
    page.evaluate(SHOWN_JS, "Stopped by the user")
    t_stop = time.time()
    page.get_by_test_id("stMain").get_by_role("button", name=re.compile(r"Stop$")).click()
    page.wait_for_function("() => window.__shown", timeout=60_000)
    result["stop_s"] = page.evaluate("() => window.__shown") / 1000 - t_stop
    page.evaluate("() => cancelAnimationFrame(window.__tick)")
    deadline = time.monotonic() + 30
    while (meta := newest_run(runs, before)) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    result["meta"] = meta
    return result


def lag_and_rate(result: dict) -> tuple[float, float]:
    """(refreshes per second, median lag in s) over the watched window, from the saved run's pace."""
    meta, seen = result["meta"], result["seen"]
    t_click, t_end = result["window"]
    rate = meta["steps"] / meta["train_seconds"]  # steps per second of training
    points = [(t / 1000, step) for t, step in seen if t / 1000 <= t_end]
    lags = [t - (meta["started_at"] + step / rate) for t, step in points]
    span = points[-1][0] - points[0][0] if len(points) > 1 else float("nan")
    return (len(points) - 1) / span, statistics.median(lags)


def idle_cpu(browser, url: str, server_pid: int, tabs: int, window_s: float = 20.0) -> float:
    context = returning_visitor(browser, url, viewport={"width": 1280, "height": 900})
    pages = [context.new_page() for _ in range(tabs)]
    for page in pages:
        open_train(page, url)
    time.sleep(3)
    c0, t0 = cpu_seconds(server_pid), time.monotonic()
    time.sleep(window_s)
    share = (cpu_seconds(server_pid) - c0) / (time.monotonic() - t0)
    context.close()
    return share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--watch", type=float, default=6.0, help="seconds to watch each run before pausing")
    parser.add_argument("--tabs", type=int, default=10)
    parser.add_argument("--verbose", action="store_true", help="print the chart's changes after each pause")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout to serve")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    runs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    log = Path(tempfile.mkdtemp(prefix="bench-log-")) / "streamlit.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, runs, log, env={"MNIST_DATA_DIR": ""}, root=args.checkout.resolve())
    results = []
    try:
        wait_healthy(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            page = returning_visitor(browser, url, viewport={"width": 1280, "height": 1000}).new_page()
            open_train(page, url)  # the first page view of a fresh server starts its trainers
            time.sleep(15)
            for i in range(args.runs):
                r = one_run(page, url, runs, server.pid, args.watch)
                rate, lag = lag_and_rate(r)
                refreshes = max(1, len(r["seen"]))
                r.update(rate=rate, lag=lag, cpu_ms_per_refresh=1000 * r["cpu_s"] / refreshes)
                r.update(browser_ms_per_refresh=1000 * r["browser_s"] / refreshes)
                results.append(r)
                print(
                    f"run {i + 1}: first point {r['first_point_s']:.2f} s, {rate:.1f} refreshes/s, lag {lag:.2f} s, "
                    f"server {r['cpu_ms_per_refresh']:.0f} ms CPU/refresh, "
                    f"browser {r['browser_ms_per_refresh']:.0f} ms, "
                    f"stop {r['stop_s']:.2f} s"
                    + (f", pause froze after {r['pause_frozen_s']:.2f} s" if "pause_frozen_s" in r else "")
                    + (f" {r['after_pause']}" if args.verbose else ""),
                    flush=True,
                )
            idle = idle_cpu(browser, url, server.pid, args.tabs)
            browser.close()
    finally:
        stop_server(server)

    def med(key: str) -> str:
        values = [r[key] for r in results if key in r]
        return f"{statistics.median(values):.2f}" if values else "n/a"

    print(f"served from {args.checkout}; {args.runs} runs, tutorial defaults on the MNIST sample")
    every = [round(r["first_point_s"], 2) for r in results]
    print(f"start -> first point drawn: median {med('first_point_s')} s (all: {every})")
    print(f"chart refreshes while training: median {med('rate')} /s; drawn point lags the trainer by {med('lag')} s")
    print(f"server CPU per refresh (one watching tab): median {med('cpu_ms_per_refresh')} ms")
    print(f"browser CPU per refresh (all of Chromium, the chart drawn): median {med('browser_ms_per_refresh')} ms")
    print(f"pause -> chart frozen: median {med('pause_frozen_s')} s; stop -> 'Stopped' shown: median {med('stop_s')} s")
    print(f"idle server with {args.tabs} Train tabs open, no job: {idle:.1%} of a core")


if __name__ == "__main__":
    main()
