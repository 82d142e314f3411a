"""How long a learner waits: the first page of a cold start, and opening the Report of a tutorial run.

Run by hand, never by the tests:
    python benchmarks/bench_report.py [--starts 3] [--checkout PATH]

It trains one run with the tutorial's defaults (Descent 0.1, 10 epochs, batch 128) on the embedded MNIST
sample with the CLI of the checkout served, then ``--starts`` times: starts ``streamlit run`` (from this
tree, or from ``--checkout``, another checkout of the project, to measure an older commit with the same
script) on that runs folder, and in headless Chromium on the same machine measures

- cold first page: navigation to the server's root -> the page's first heading visible (the server has
  answered its health check, nothing else has run yet: no data set loaded, no PyTorch imported);
- Report, first open: a click on "Report" in the sidebar (the Home page fully drawn) -> the page's
  last section ("Most confident mistakes") drawn and the script run ended;
- Report, second open: the same after going back to Home (what the caches keep).

Prints one line per start and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from appserver import (  # noqa: E402
    CHROMIUM_FLAGS,
    chromium_path,
    free_port,
    returning_visitor,
    start_server,
    stop_server,
    wait_healthy,
)

RUNNING = '[data-testid="stStatusWidget"]'  # Streamlit's "Running..." indicator


def train_tutorial_run(checkout: Path, runs: Path) -> None:
    env = {**os.environ, "MNIST_RUNS_DIR": str(runs), "MNIST_DATA_DIR": "", "PYTHONPATH": str(checkout)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run([sys.executable, "-m", "mnist_core", "train"], cwd=checkout, env=env, check=True, **quiet)


def settled(page, timeout_ms: int = 120_000) -> None:
    """The script run has ended: no "Running..." indicator for a moment."""
    page.wait_for_function(
        f"""() => {{
            const busy = document.querySelector('{RUNNING}');
            const now = performance.now();
            if (busy && busy.offsetParent !== null) {{ window.__idle = null; return false; }}
            window.__idle = window.__idle || now;
            return now - window.__idle > 300;
        }}""",
        timeout=timeout_ms,
        polling=50,
    )


def open_report(page) -> float:
    """Click Report in the sidebar; seconds until the mistakes section is drawn and the run ended."""
    t0 = time.perf_counter()
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Report").click()
    page.get_by_text("Most confident mistakes").wait_for(timeout=120_000)
    page.locator('[data-testid="stMain"] img').last.wait_for(timeout=120_000)
    seconds = time.perf_counter() - t0
    settled(page)
    return seconds


def one_start(browser, checkout: Path, runs: Path) -> dict:
    log = Path(tempfile.mkdtemp(prefix="bench-log-")) / "streamlit.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, runs, log, env={"MNIST_DATA_DIR": ""}, root=checkout)
    try:
        wait_healthy(url, server)
        page = returning_visitor(browser, url, viewport={"width": 1280, "height": 800}).new_page()
        t0 = time.perf_counter()
        page.goto(url)
        page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=120_000)
        cold = time.perf_counter() - t0
        page.get_by_text("Test images").first.wait_for(timeout=120_000)  # Home with its data set figures
        settled(page)
        first = open_report(page)
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Home").click()
        page.get_by_text("Test images").first.wait_for(timeout=120_000)
        settled(page)
        second = open_report(page)
        page.close()
        return {"cold": cold, "first": first, "second": second}
    finally:
        stop_server(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout to serve")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    checkout = args.checkout.resolve()
    runs = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    train_tutorial_run(checkout, runs)
    results = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
        for i in range(args.starts):
            r = one_start(browser, checkout, runs)
            results.append(r)
            print(f"start {i + 1}: cold first heading {r['cold']:.2f} s, Report first open {r['first']:.2f} s, "
                  f"second open {r['second']:.2f} s", flush=True)  # fmt: skip
        browser.close()
    med = {k: statistics.median(r[k] for r in results) for k in ("cold", "first", "second")}
    print(f"served from {checkout}; a tutorial run on the MNIST sample; {args.starts} server starts")
    print(f"cold start -> first heading: median {med['cold']:.2f} s")
    print(f"Report, first open: median {med['first']:.2f} s; second open: median {med['second']:.2f} s")


if __name__ == "__main__":
    main()
