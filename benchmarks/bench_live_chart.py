"""Does watching the live chart slow training? The same config through the CLI and through the page.

Run by hand:  python benchmarks/bench_live_chart.py [--dataset mnist] [--epochs 10] [--rounds 2]
                  [--train-threads 1,2] [--baseline PATH]

The defaults are the issue's own condition: the tutorial's defaults on the embedded sample (10 epochs of 4,000
digits: about 1.2 s of training, so what a page costs once per run, its redraw at Start, weighs as much as what
it costs per second). ``--dataset fashion-mnist --epochs 3`` (180,000 images, 5-6 s) shows the steadier share.

Alternates runs with `python -m mnist_core train` (no page open) and runs started from the Train page in
headless Chromium, which stays on the page and watches the chart refresh (4.2 times a second) until the run
ends: CLI, page, CLI, page, ..., CLI, `--rounds` page runs per server. Compares the images/s each run saved in
its run.json: the pages' median against the CLI's, and each page run against the mean of the two CLI runs
beside it (the host's speed drifts within minutes).
With several ``--train-threads`` (MNIST_TRAIN_THREADS) one server runs per value and each round has a page
run on each, so the choices are compared in the same minutes of a noisy host.
``--baseline PATH`` adds a server per choice from another checkout of the project (an older commit, from
``git worktree add``), in the same rounds, so that a change is compared with what it changed in the same minutes.
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
from appserver import CHROMIUM_FLAGS, chromium_path, free_port, start_server, stop_server, wait_healthy  # noqa: E402  (shared with tests/e2e)


def images_per_sec(run_dir: Path) -> float:
    """The saved run's images/s, once the run is saved for good (a page's run is checkpointed as "interrupted"
    while it trains, with the speed so far)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            run = json.loads((run_dir / "run.json").read_text())
        except (OSError, ValueError):  # not there yet, or being written
            run = {}
        if run.get("status", "interrupted") != "interrupted":
            return float(run["images_per_sec"])
        time.sleep(0.2)
    raise TimeoutError(f"{run_dir} was not saved in 10 minutes")


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
    # The page may still show the last run's end: follow the runs folder (a run trains in NAME.partial,
    # renamed to NAME when it is saved).
    deadline = time.monotonic() + 600
    while not (new := [d for d in set(runs.iterdir()) - before if not d.name.endswith(".partial")]):
        if time.monotonic() > deadline:
            raise TimeoutError("the page's run was not saved in 10 minutes")
        time.sleep(0.2)
    speed = images_per_sec(new[0])
    page.get_by_test_id("stAlertContentSuccess").get_by_text("The run is saved").wait_for(timeout=600_000)
    return speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--train-threads",
        default="tuned",
        help="MNIST_TRAIN_THREADS for the server's trainer, or 'tuned' (unset: the trainer finds its count); "
        "a comma list compares them, e.g. 1,2,tuned",
    )
    parser.add_argument("--baseline", type=Path, help="another checkout to serve beside this one, in the same rounds")
    parser.add_argument("--browser-nice", type=int, default=0, help="niceness of this driver and Chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    choices = [t.strip() for t in args.train_threads.split(",")]
    runs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    servers = {}  # label -> (process, url)
    trees = {"": ROOT} | ({" baseline": args.baseline.resolve()} if args.baseline else {})
    for suffix, tree in trees.items():
        for threads in choices:
            port = free_port()
            env = None if threads == "tuned" else {"MNIST_TRAIN_THREADS": threads}
            log = Path(tempfile.mkdtemp(prefix="bench-log-")) / "streamlit.log"
            server = start_server(port, runs, log, env=env, root=tree)
            servers[threads + suffix] = (server, f"http://127.0.0.1:{port}")
    cli, page_speeds = [], {label: [] for label in servers}
    try:
        for process, url in servers.values():
            wait_healthy(url, process)
        os.nice(args.browser_nice)  # after the server started: only this driver, the CLI runs and Chromium get it
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            # CLI, page, CLI, page, ... CLI: each page run between two CLI runs, so that it is compared with
            # the CLI of its own minutes (this host's speed drifts by a quarter within the hour)
            cli.append(cli_run(args, runs))
            bracketed = {label: [] for label in servers}  # each page run / the mean of the CLI runs beside it
            for i in range(args.rounds):
                line = f"round {i + 1}: CLI {cli[-1]:,.0f} images/s"
                for label, (_, url) in servers.items():
                    page_speeds[label].append(page_run(args, page, url, runs))
                    cli.append(cli_run(args, runs))
                    bracketed[label].append(page_speeds[label][-1] / statistics.mean(cli[-2:]))
                    line += f", page ({label}) {page_speeds[label][-1]:,.0f}, CLI {cli[-1]:,.0f}"
                print(line, flush=True)
            browser.close()
    finally:
        for process, _ in servers.values():
            stop_server(process)
    c = statistics.median(cli)
    print(f"{args.dataset}, {args.epochs} epochs, batch 128, {args.rounds} rounds: CLI median {c:,.0f} images/s")
    for label, speeds in page_speeds.items():
        w = statistics.median(speeds)
        print(
            f"  page (chart watched), threads {label}: median {w:,.0f} images/s, {w / c:.0%} of the CLI's median; "
            f"median of each run against the CLI runs beside it: {statistics.median(bracketed[label]):.0%}"
        )


if __name__ == "__main__":
    main()
