"""Does watching the live chart slow training? The same config through the CLI and through the page.

Run by hand:  python benchmarks/bench_live_chart.py [--dataset mnist] [--epochs 10] [--rounds 2]
                  [--train-threads 1,2] [--baseline PATH] [--step-log] [--chart-only]

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
``--browser-nice N`` lowers this driver, its CLI runs and Chromium (as load_test.py does) below the server. The
trainers run at nice 19 themselves (MNIST_TRAIN_NICE), so at 19 Chromium shares the cores with them as an equal
(measured on the tutorial's defaults: 68% against 71% without it): it does not stand in for a browser on
another machine.
``--step-log`` has every run log when each of its steps ended (``mnist_core.train.StepClock``, MNIST_STEP_LOG) and
prints where the page's runs lose time to the CLI's: the median step, and the time spent in slow steps (over twice
the run's median) beyond the median, in the first START_S of training (while Chromium draws what Start changed:
the Start click's rerun reaches the browser 0.1-0.3 s into the run, after the first few dozen steps) and after.
``--chart-only`` adds, to each round, a CLI run while Chromium shows the live chart alone (ui/live_chart.js,
unchanged, on a bare page) following a feed written five times a second by ``mnist_core.feed`` and served by
Python's http.server: what following a run at 4.2 refreshes a second costs the trainer with no Streamlit page
around it and no Start rerun, the least any page that draws the run live costs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]
from appserver import (  # noqa: E402  (shared with tests/e2e)
    CHROMIUM_FLAGS,
    chromium_path,
    free_port,
    returning_visitor,
    start_server,
    stop_server,
    wait_healthy,
)

from mnist_core.feed import FEED_EVERY_S, FEED_POLL_S, Feed  # noqa: E402
from mnist_core.train import STEP_LOG_ENV  # noqa: E402
from mnist_core.visual import live_chart_data  # noqa: E402

START_S = 0.5  # --step-log: the first this many seconds of training are the Start redraw's
CHART_ONLY = "chart alone, CLI"  # --chart-only's label


def shown(label: str) -> str:
    """How a kind of run is named in the output (and its step logs' folder)."""
    return label if label == CHART_ONLY else f"page, threads {label}"


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


def step_costs(folder: Path) -> list[tuple[float, float, float]]:
    """Per finished run logged in ``folder`` (StepClock): its median step, and the time its slow steps (over twice
    the median) took beyond the median in its first START_S of training and after, in ms."""
    costs = []
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        if record["steps"] != record["total_steps"] or not record["seconds"]:  # stopped, or an lr-find
            continue
        ends = [0.0, *record["seconds"]]
        steps = [b - a for a, b in zip(ends, ends[1:])]
        median = statistics.median(steps)
        slow = [(end, t - median if t > 2 * median else 0.0) for end, t in zip(ends[1:], steps)]
        first = sum(extra for end, extra in slow if end <= START_S)
        costs.append((1000 * median, 1000 * first, 1000 * sum(extra for _, extra in slow) - 1000 * first))
    return costs


def print_step_costs(label: str, folder: Path) -> None:
    costs = step_costs(folder)
    if not costs:
        print(f"  steps, {label}: no step logs (a checkout without StepClock?)")
        return
    median, first, rest = (statistics.median(column) for column in zip(*costs))
    print(
        f"  steps, {label} ({len(costs)} runs, medians): a step {median:.2f} ms; slow steps beyond the median: "
        f"first {START_S:g} s {first:.0f} ms, the rest {rest:.0f} ms"
    )


def cli_run(args, runs: Path, env: dict | None = None) -> float:
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
        env={**os.environ, **(env or {})},
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


@contextmanager
def chart_only(total: int):
    """A bare page with the live chart alone following a feed that grows like a run of ``total`` steps (60 steps
    a write, about what this box trains in FEED_EVERY_S), served by http.server: yields its address."""
    folder = Path(tempfile.mkdtemp(prefix="bench-chart-"))
    for name in ("live_chart.js", "live_chart.css"):
        (folder / name).write_bytes((ROOT / "ui" / name).read_bytes())
    feed = Feed(folder / "feed", "feed")
    data = {"chart": live_chart_data([], [], [], total, []), "height": 360, "feed": feed.url("run")}
    data |= {"mode": "training", "progress": None, "notes": [], "warning": None, "poll": FEED_POLL_S}
    (folder / "index.html").write_text(
        '<!doctype html><link rel="stylesheet" href="live_chart.css"><div id="chart" style="width: 900px"></div>'
        '<script type="module">import render from "./live_chart.js"; render({setTriggerValue: () => {}, '
        f'parentElement: document.getElementById("chart"), data: {json.dumps(data)}}});</script>'
    )
    done = threading.Event()

    def write() -> None:
        step = 0
        while not done.wait(FEED_EVERY_S):
            step = min(step % total + 60, total)
            chart = live_chart_data([2.3 / (1 + i / 40) for i in range(step)], [], [], total, [(0, 0.1)])
            progress = [step / total, f"step {step}/{total}"]
            feed.publish("run", {"mode": "training", "chart": chart, "progress": progress})

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}/index.html"
    finally:
        done.set()
        server.terminate()
        server.wait()


def cli_run_beside_chart(args, page, url: str, runs: Path, env: dict | None) -> float:
    """A CLI run while ``page`` shows the chart alone (``chart_only``), refreshing."""
    deadline = time.monotonic() + 60
    while True:
        try:
            page.goto(url)
            page.wait_for_function("+document.querySelector('canvas')?.dataset.points > 0", timeout=10_000)
            break
        except Exception:  # http.server not listening yet
            if time.monotonic() > deadline:
                raise
    speed = cli_run(args, runs, env)
    page.goto("about:blank")
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
    parser.add_argument(
        "--browser-nice", type=int, default=0, help="niceness of this driver, its CLI runs and Chromium"
    )
    parser.add_argument("--step-log", action="store_true", help="log each step's time, print where the time goes")
    parser.add_argument(
        "--chart-only", action="store_true", help="also a CLI run per round beside the live chart alone, no Streamlit"
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    choices = [t.strip() for t in args.train_threads.split(",")]
    runs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    servers = {}  # label -> (process, url)
    logs = Path(tempfile.mkdtemp(prefix="bench-steps-"))  # --step-log: a folder per server, and the CLI's
    cli_env = {STEP_LOG_ENV: str(logs / "cli")} if args.step_log else None
    trees = {"": ROOT} | ({" baseline": args.baseline.resolve()} if args.baseline else {})
    for suffix, tree in trees.items():
        for threads in choices:
            port = free_port()
            env = {} if threads == "tuned" else {"MNIST_TRAIN_THREADS": threads}
            if args.step_log:
                env[STEP_LOG_ENV] = str(logs / shown(threads + suffix))
            log = Path(tempfile.mkdtemp(prefix="bench-log-")) / "streamlit.log"
            server = start_server(port, runs, log, env=env, root=tree)
            servers[threads + suffix] = (server, f"http://127.0.0.1:{port}")
    cli, page_speeds = [], {label: [] for label in servers}
    try:
        for process, url in servers.values():
            wait_healthy(url, process)
        os.nice(args.browser_nice)  # after the server started: only this driver, the CLI runs and Chromium get it
        with sync_playwright() as p, ExitStack() as stack:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            page = returning_visitor(browser, url, viewport={"width": 1400, "height": 1000}).new_page()
            # CLI, page, CLI, page, ... CLI: each page run between two CLI runs, so that it is compared with
            # the CLI of its own minutes (this host's speed drifts by a quarter within the hour)
            cli.append(cli_run(args, runs, cli_env))
            runs_of = {label: lambda url=url: page_run(args, page, url, runs) for label, (_, url) in servers.items()}
            if args.chart_only:  # the CLI beside the chart alone, as long a run as the first CLI run
                first = json.loads((max(runs.iterdir(), key=lambda d: d.stat().st_mtime) / "run.json").read_text())
                url = stack.enter_context(chart_only(first["total_steps"]))
                env = {STEP_LOG_ENV: str(logs / CHART_ONLY)} if args.step_log else None
                runs_of[CHART_ONLY] = lambda url=url, env=env: cli_run_beside_chart(args, page, url, runs, env)
                page_speeds[CHART_ONLY] = []
            bracketed = {label: [] for label in runs_of}  # each page run / the mean of the CLI runs beside it
            for i in range(args.rounds):
                line = f"round {i + 1}: CLI {cli[-1]:,.0f} images/s"
                for label, run in runs_of.items():
                    page_speeds[label].append(run())
                    cli.append(cli_run(args, runs, cli_env))
                    bracketed[label].append(page_speeds[label][-1] / statistics.mean(cli[-2:]))
                    line += f", {shown(label)} {page_speeds[label][-1]:,.0f}, CLI {cli[-1]:,.0f}"
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
            f"  {shown(label)}: median {w:,.0f} images/s, {w / c:.0%} of the CLI's median; "
            f"median of each run against the CLI runs beside it: {statistics.median(bracketed[label]):.0%}"
        )
    if args.step_log:
        print_step_costs("CLI", logs / "cli")
        for label in page_speeds:
            print_step_costs(shown(label), logs / shown(label))


if __name__ == "__main__":
    main()
