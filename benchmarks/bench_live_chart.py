"""Does watching the live chart slow training? The same config through the CLI and through the page.

Run by hand:  python benchmarks/bench_live_chart.py [--dataset fashion-mnist] [--epochs 2] [--rounds 2]

Alternates, `--rounds` times: one run with `python -m mnist_core train` (no page open) and one run
started from the Train page in headless Chromium, which stays on the page and watches the chart
refresh (five times a second) until the run ends. Compares the images/s each run saved in its run.json.
Everything is on this machine, browser included: on a 2-core box that is the worst case.
``--browser-nice 19`` stands the browser in for a learner's own machine (as load_test.py does): it
then takes only the CPU the server and the trainer leave.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from appserver import CHROMIUM_FLAGS, chromium_path, free_port, start_server, stop_server  # noqa: E402  (shared with tests/e2e)


def images_per_sec(run_dir: Path) -> float:
    return float(json.loads((run_dir / "run.json").read_text())["images_per_sec"])


def cli_run(args, runs: Path) -> float:
    before = set(runs.iterdir()) if runs.exists() else set()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "mnist_core",
            "train",
            "--dataset",
            args.dataset,
            "--epochs",
            str(args.epochs),
            "--offline",
            "--runs-dir",
            str(runs),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    (new,) = set(runs.iterdir()) - before
    return images_per_sec(new)


def page_run(args, page, url: str, runs: Path) -> float:
    before = set(runs.iterdir())
    page.goto(url + "/Train")
    page.get_by_test_id("stSidebar").get_by_text("Device").wait_for(timeout=60_000)
    if args.dataset != "mnist":
        page.get_by_test_id("stSidebar").get_by_role("combobox").click()
        page.get_by_role("option", name="Fashion-MNIST").click()
        page.get_by_test_id("stSidebar").get_by_text("60,000 train").wait_for(timeout=60_000)
    epochs = page.get_by_role("slider", name="Epochs")
    epochs.focus()
    epochs.press("Home")
    for _ in range(args.epochs - 1):
        epochs.press("ArrowRight")
    time.sleep(1)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("The run is saved").wait_for(timeout=600_000)
    while len(set(runs.iterdir()) - before) < 1:
        time.sleep(0.2)
    (new,) = set(runs.iterdir()) - before
    return images_per_sec(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--train-threads", type=int, help="MNIST_TRAIN_THREADS for the server's trainer")
    parser.add_argument("--browser-nice", type=int, default=0, help="niceness of this driver and Chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    runs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    port = free_port()
    env = {"MNIST_TRAIN_THREADS": str(args.train_threads)} if args.train_threads else None
    server = start_server(port, runs, Path(tempfile.mkdtemp(prefix="bench-log-")) / "streamlit.log", env=env)
    cli, page_speeds = [], []
    try:
        time.sleep(5)
        os.nice(args.browser_nice)  # after the server started: only this driver, the CLI runs and Chromium get it
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            for i in range(args.rounds):
                cli.append(cli_run(args, runs))
                page_speeds.append(page_run(args, page, f"http://127.0.0.1:{port}", runs))
                print(f"round {i + 1}: CLI {cli[-1]:,.0f} images/s, page {page_speeds[-1]:,.0f} images/s", flush=True)
            browser.close()
    finally:
        stop_server(server)
    c, w = statistics.median(cli), statistics.median(page_speeds)
    print(
        f"{args.dataset}, {args.epochs} epochs, batch 128: CLI median {c:,.0f} images/s, "
        f"page (chart watched) median {w:,.0f} images/s, slowdown {1 - w / c:.1%}"
    )


if __name__ == "__main__":
    main()
