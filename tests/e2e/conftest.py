"""A real ``streamlit run`` on 127.0.0.1 and Debian's headless Chromium, driven by Playwright."""

from __future__ import annotations

import pytest
from appserver import (
    CHROMIUM_FLAGS,
    ROOT,
    chromium_path,
    free_port,
    returning_visitor,
    start_server,
    stop_server,
    wait_healthy,
)
from playwright.sync_api import expect

# A page redraw on a busy 2-core machine can take longer than Playwright's default 5 s.
expect.set_options(timeout=30_000)

SHOTS = ROOT / "tests" / "e2e" / "screenshots"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """Start the app with an empty runs folder; yield its URL; stop it with its trainers."""
    port = free_port()
    runs = tmp_path_factory.mktemp("runs")
    log_path = tmp_path_factory.mktemp("log") / "streamlit.log"
    proc = start_server(port, runs, log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
    except RuntimeError as exc:
        stop_server(proc)
        pytest.fail(f"{exc}:\n{log_path.read_text()}")
    yield {"url": url, "runs": runs, "log": log_path}
    stop_server(proc)


@pytest.fixture(scope="session")
def browser():
    path = chromium_path()
    if path is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium, or set CHROMIUM_PATH)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, server, request):
    """A returning visitor's page; on failure its screenshot goes to tests/e2e/screenshots/."""
    context = returning_visitor(browser, server["url"], viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        SHOTS.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
