"""A screenshot of every page at 1280 x 800, to look at by eye: nothing clipped, nothing ugly.

Run by hand, never by the tests:
    python benchmarks/screenshot_walk.py [--out /tmp/shots/pages9] [--checkout PATH] [--size 390x844] [--lang zh_CN]

It trains two runs on the embedded MNIST sample with the CLI (the tutorial's defaults, and ADAM at lr 1,
which collapses to chance), starts ``streamlit run`` on them, and in headless Chromium with a 1280 x 800
window saves each page (Home, Data, Model, Train, Report of both runs, Runs, Predict, and any other page in
the sidebar) twice: as the window shows it (``NN-page.png``) and whole (``NN-page-full.png``).
With ``--lang`` the browser asks for that language (its locale), and the walk finds the buttons by their
translated names. Prints each file it wrote.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
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
from bench_report import settled  # noqa: E402

sys.path.insert(0, str(ROOT))
from mnist_core.i18n import _, using  # noqa: E402

PAGES = ("Data", "Model", "Train", "Report", "Runs", "Predict", "Tune")
RUNS = {"tutorial": [], "collapsed": ["--optimiser", "ADAM", "--lr", "1", "--epochs", "2"]}


def train_runs(checkout: Path, runs: Path) -> None:
    env = {**os.environ, "MNIST_RUNS_DIR": str(runs), "MNIST_DATA_DIR": "", "PYTHONPATH": str(checkout)}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    for flags in RUNS.values():  # the collapsed run is saved last, so it is the newest
        subprocess.run([sys.executable, "-m", "mnist_core", "train", *flags], cwd=checkout, env=env, **quiet)


def shoot(page, out: Path, name: str) -> None:
    width, high = page.viewport_size["width"], page.viewport_size["height"]
    settled(page)
    page.wait_for_timeout(800)  # let Plotly finish its transitions: a picture, not a measurement
    page.screenshot(path=str(out / f"{name}.png"))
    # The page scrolls inside Streamlit's main block, not the document: a taller window shows all of it.
    height = page.evaluate("document.querySelector('[data-testid=stMain]').scrollHeight")
    page.set_viewport_size({"width": width, "height": min(max(height, high), 12_000)})
    page.wait_for_timeout(800)
    page.screenshot(path=str(out / f"{name}-full.png"))
    page.set_viewport_size({"width": width, "height": high})
    print(out / f"{name}.png", f"(and -full, {height} px)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/shots/pages9"))
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the project checkout to serve")
    parser.add_argument("--size", default="1280x800", help="the window, WIDTHxHEIGHT (a phone: 390x844)")
    parser.add_argument("--lang", default="en", help="the browser's language: en or zh_CN")
    args = parser.parse_args()
    with using(args.lang):
        walk(args)


def walk(args: argparse.Namespace) -> None:
    width, height = map(int, args.size.split("x"))
    from playwright.sync_api import sync_playwright

    checkout = args.checkout.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="shots-runs-"))
    train_runs(checkout, runs)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port, runs, Path(tempfile.mkdtemp(prefix="shots-log-")) / "streamlit.log",
                          env={"MNIST_DATA_DIR": ""}, root=checkout)  # fmt: skip
    try:
        wait_healthy(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_FLAGS)
            locale = args.lang.replace("_", "-")
            page = returning_visitor(
                browser, url, viewport={"width": width, "height": height}, locale=locale
            ).new_page()
            page.goto(url)
            page.get_by_text(_("Test images")).first.wait_for(timeout=120_000)
            shoot(page, args.out, "00-home")
            # by address: a narrow window hides the sidebar and its links
            for i, name in enumerate(PAGES):
                page.goto(f"{url}/{name}")
                page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=120_000)
                shoot(page, args.out, f"{i + 1:02d}-{name.lower()}")
                if name == "Train":  # and a run of the "Watch it diverge" preset, ended
                    page.get_by_test_id("stMain").get_by_role("button", name=_("Presets")).click()
                    page.get_by_role("button", name=_("Watch it diverge"), exact=True).click()
                    page.get_by_role("button", name=_("Start training")).click()
                    page.get_by_placeholder(_("Name this run (Runs shows it)")).wait_for(timeout=120_000)
                    shoot(page, args.out, f"{i + 1:02d}-{name.lower()}-ended")
                if name == "Report":  # the other run too: the collapsed one is shown first (newest)
                    page.get_by_test_id("stMain").get_by_role("combobox").first.click()
                    page.get_by_role("option").last.click()
                    shoot(page, args.out, f"{i + 1:02d}-{name.lower()}-tutorial")
            browser.close()
    finally:
        stop_server(server)


if __name__ == "__main__":
    main()
