"""The tweak loop in a browser: Start, wait for "Finished", open Train, Start again at once (issue 25, point 0).

Run by hand, never by the tests:  python benchmarks/bench_tweak_loop.py [--runs 10] [--checkout PATH]

Serves the app (this checkout or ``--checkout``) with the embedded sample, opens the Train page in headless
Chromium, and with the tutorial's defaults runs ``--runs`` times in a row, each started as soon as the last
shows "Finished" and the Train page was opened again. Prints for each run the time from the click to the
first loss point drawn and the trainer's CPU seconds from the last "Finished" to that point; then the median
and the worst.
"""

from __future__ import annotations

import argparse
import os
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
    trainer_pids,
    wait_healthy,
)


def trainer_cpu(server_pid: int) -> float:
    """CPU seconds of the server's trainer processes."""
    total = 0.0
    for pid in trainer_pids(server_pid):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout to serve")
    parser.add_argument("--goto", action="store_true", help="open Train by its address (a new session), not the link")
    parser.add_argument("--data-dir", default="", help="MNIST_DATA_DIR: a local folder of IDX files (default: sample)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    runs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    log = Path(tempfile.mkdtemp(prefix="bench-log-")) / "streamlit.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, runs, log, env={"MNIST_DATA_DIR": args.data_dir}, root=args.checkout.resolve())
    firsts, cpus = [], []
    try:
        wait_healthy(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            page = returning_visitor(browser, url, viewport={"width": 1280, "height": 800}).new_page()
            page.goto(url + "/Train")
            page.get_by_role("button", name="Start training").wait_for(timeout=180_000)
            time.sleep(15)  # the trainer warms
            finished_cpu = None
            for i in range(args.runs):
                if i and args.goto:
                    page.goto(url + "/Train")
                elif i:
                    page.get_by_role("link", name="Train", exact=True).click()  # open Train, as a learner would
                start = page.get_by_role("button", name="Start training")
                start.wait_for(timeout=60_000)
                page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')")
                shown = page.evaluate(LAST_STEP_JS)  # the last run's chart may still be up: its last step
                t0 = time.monotonic()
                start.click()
                page.wait_for_function(  # a step of the new run: past 0, short of the last run's end
                    f"() => {{ const s = ({LAST_STEP_JS})(); return s > 0 && (s < {shown} || {shown} === 0); }}",
                    timeout=120_000,
                    polling=10,
                )
                firsts.append(time.monotonic() - t0)
                cpu = ""
                if finished_cpu is not None:
                    cpus.append(trainer_cpu(server.pid) - finished_cpu)
                    cpu = f", trainer CPU since Finished {cpus[-1]:.2f} s"
                page.get_by_text("Finished 10 epochs").first.wait_for(timeout=600_000)
                finished_cpu = trainer_cpu(server.pid)
                print(f"run {i + 1}: first point {firsts[-1]:.2f} s{cpu}", flush=True)
            browser.close()
    finally:
        stop_server(server)
    print(f"served from {args.checkout}; {args.runs} runs in a row, tutorial defaults on the MNIST sample")
    print(f"start -> first point: median {statistics.median(firsts):.2f} s, worst {max(firsts):.2f} s")
    if cpus:
        print(f"trainer CPU from Finished to the next first point: median {statistics.median(cpus):.2f} s")


if __name__ == "__main__":
    main()
