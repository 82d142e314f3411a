"""The app served the way Streamlit Community Cloud serves it: memory, pushes, and the live loop (issue 23).

Run by hand, never by the tests:  python benchmarks/bench_cloud.py [--pushes 2] [--dataset fashion-mnist]

It copies the tracked files of this checkout to a scratch folder and makes that tree read-only but for
static/feed (the live feeds; runs go to a scratch runs folder), then serves it with Cloud's options
(runOnSave on, the file watcher on, headless) at a path prefix, and measures with headless Chromium:

- idle memory: PSS (what a host charges: shared pages split between the processes that map them) of the
  server and all its children, after the trainer is warm and a page has been drawn;
- a simulated push: one line appended to mnist_core/feed.py (the tree is made writable for that edit only);
  the open page reruns itself (runOnSave); then the number of warm trainers, and whether a new run's live
  chart follows it (Start -> first point drawn);
- training on ``--dataset`` (chosen in the sidebar; fashion-mnist is Debian's 60,000 images): the peak PSS
  sampled every 0.1 s while one epoch trains.
"""

from __future__ import annotations

import argparse
import subprocess
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
    descendants,
    free_port,
    returning_visitor,
    start_server,
    stop_server,
    trainer_pids,
    wait_healthy,
)

PREFIX = "cloud/app"  # Cloud serves an app under a path of its own
CLOUD_OPTIONS = (
    "--server.runOnSave=true",
    "--server.fileWatcherType=auto",
    f"--server.baseUrlPath={PREFIX}",
)


def pss_mb(pid: int) -> float:
    """PSS of ``pid`` and its descendants, in MB."""
    total = 0
    for p in descendants(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


trainers = trainer_pids


def read_only_tree(scratch: Path, checkout: Path) -> Path:
    tree = scratch / "app"
    files = subprocess.run(["git", "ls-files"], cwd=checkout, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        target = tree / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((checkout / name).read_bytes())
    (tree / "static" / "feed").mkdir(parents=True, exist_ok=True)
    subprocess.run(["chmod", "-R", "a-w", str(tree)], check=True)
    subprocess.run(["chmod", "-R", "u+w", str(tree / "static" / "feed")], check=True)
    return tree


def push(tree: Path, n: int) -> None:
    """What Cloud does with a push: the changed file appears in the running app's tree."""
    path = tree / "mnist_core" / "feed.py"
    path.chmod(0o644)
    path.write_text(path.read_text() + f"# push {n}\n")
    path.chmod(0o444)


def wait_until(condition, timeout: float, every: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def first_point(page, base: str) -> float:
    """Start a run with the tutorial's defaults; seconds from the click to its first point drawn; then Stop."""
    page.goto(base + "/Train")
    start = page.get_by_role("button", name="Start training")
    start.wait_for(timeout=120_000)
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=60_000)
    t0 = time.monotonic()
    start.click()
    page.wait_for_function(f"() => ({LAST_STEP_JS})() > 0", timeout=120_000, polling=10)
    took = time.monotonic() - t0
    stop = page.get_by_test_id("stMain").get_by_role("button", name="Stop")
    if stop.count():
        stop.click()
    page.get_by_role("button", name="Start training").wait_for(timeout=60_000)
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=2)
    parser.add_argument("--dataset", default="fashion-mnist", help="data set of the peak-memory run ('' for none)")
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the checkout to serve (an older commit: before)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    scratch = Path(tempfile.mkdtemp(prefix="bench-cloud-"))
    tree, runs, log = read_only_tree(scratch, args.checkout.resolve()), scratch / "runs", scratch / "streamlit.log"
    port = free_port()
    url, base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/{PREFIX}"
    server = start_server(port, runs, log, env={"MNIST_DATA_DIR": ""}, root=tree, options=CLOUD_OPTIONS)
    try:
        wait_healthy(base, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            page = returning_visitor(browser, url, viewport={"width": 1280, "height": 800}).new_page()
            page.goto(base + "/Train")
            page.get_by_role("button", name="Start training").wait_for(timeout=180_000)
            wait_until(lambda: len(trainers(server.pid)) == 1, 120)
            time.sleep(10)  # the trainer warms (torch, the data, two batches) and settles
            idle = pss_mb(server.pid)
            print(
                f"idle (trainer warm, one Train page drawn): PSS {idle:,.0f} MB; trainers {len(trainers(server.pid))}"
            )
            print(f"first point before any push: {first_point(page, base):.2f} s")
            for n in range(1, args.pushes + 1):
                before = set(trainers(server.pid))
                push(tree, n)
                page.goto(base + "/Train")  # a visit after the push imports the new code
                page.get_by_role("button", name="Start training").wait_for(timeout=180_000)
                wait_until(lambda before=before: set(trainers(server.pid)) - before, 60)  # the new code's trainer
                wait_until(lambda: len(trainers(server.pid)) == 1, 60)
                time.sleep(10)
                print(
                    f"after push {n}: trainers {len(trainers(server.pid))}, PSS {pss_mb(server.pid):,.0f} MB, "
                    f"first point {first_point(page, base):.2f} s"
                )
            saved = [p for p in (runs.iterdir() if runs.is_dir() else ()) if (p / "run.json").is_file()]
            print(f"runs saved so far: {len(saved)} of {args.pushes + 1} started")
            if args.dataset:
                page.goto(base + "/Train")
                page.get_by_role("combobox", name="Data set").click()
                page.get_by_role("option", name="Fashion-MNIST" if args.dataset == "fashion-mnist" else "MNIST").click()
                start = page.get_by_role("button", name="Start training")
                start.wait_for(timeout=180_000)
                epochs = page.get_by_role("slider", name="Epochs")
                epochs.focus()
                epochs.press("Home")  # one epoch
                page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')")
                start.click()
                peak, t0 = 0.0, time.monotonic()
                while time.monotonic() - t0 < 300:
                    peak = max(peak, pss_mb(server.pid))
                    if page.get_by_role("button", name="Start training").is_enabled():
                        break
                    time.sleep(0.1)
                time.sleep(5)
                print(
                    f"training one epoch of {args.dataset}: peak PSS {peak:,.0f} MB; after: {pss_mb(server.pid):,.0f}"
                )
            browser.close()
    finally:
        stop_server(server)
        subprocess.run(["chmod", "-R", "u+w", str(scratch)], check=False)
    version = subprocess.run([sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True)
    print(f"torch {version.stdout.decode().strip()}; the server's log: {log}")


if __name__ == "__main__":
    main()
