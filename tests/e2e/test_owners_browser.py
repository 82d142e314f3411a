"""Two browsers on one server: each sees its own runs and the shared ones, deletes only its own, and a new
visitor's Report opens on the best finished shared run, never a collapsed one (issue 22)."""

from __future__ import annotations

import json
import re

from appserver import OWNER_COOKIE, ROOT, returning_visitor
from helpers import trained_run
from playwright.sync_api import expect

from mnist_core.runs import read_meta

SHOTS = ROOT / "tests" / "e2e" / "screenshots"
RELOADED_JS = "() => performance.getEntriesByType('navigation')[0].type === 'reload'"


def claim(folder, **fields) -> None:
    """Edit a run.json as a run of that kind would have it (the schema checks types, not the truth)."""
    meta = json.loads((folder / "run.json").read_text())
    meta.update(fields)
    (folder / "run.json").write_text(json.dumps(meta))


def test_two_fresh_tabs_get_one_owner_and_the_secret_is_never_in_a_page(server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    tabs = [context.new_page(), context.new_page()]
    for tab in tabs:  # both start before either has stored a secret
        tab.goto(server["url"] + "/Runs", wait_until="commit")
    for tab in tabs:
        tab.wait_for_function(RELOADED_JS, timeout=60_000)  # each reloaded once, with the cookie
        expect(tab.get_by_role("heading", name="Runs", exact=True)).to_be_visible(timeout=60_000)
    cookies = [c for c in context.cookies() if c["name"] == OWNER_COOKIE]
    assert len(cookies) == 1 and len(cookies[0]["value"]) >= 43  # one secret: 32 random bytes
    secret = cookies[0]["value"]
    for tab in tabs:
        assert secret not in tab.content()
    tabs[1].reload()  # a later visit keeps it, and does not reload again
    expect(tabs[1].get_by_role("heading", name="Runs", exact=True)).to_be_visible(timeout=60_000)
    assert [c["value"] for c in context.cookies() if c["name"] == OWNER_COOKIE] == [secret]
    context.close()


def test_a_visitor_sees_and_deletes_only_their_own_runs(server, browser, sample):
    shared = trained_run(server["runs"], sample, epochs=1)  # the command line's: no owner, shared
    claim(shared, test_acc=0.999)
    collapsed = trained_run(server["runs"], sample, epochs=1)
    claim(collapsed, status="collapsed", test_acc=1.0)  # claims the best accuracy: still never a default

    alice = returning_visitor(browser, server["url"], viewport={"width": 1280, "height": 800}).new_page()
    alice.goto(server["url"] + "/Train")
    expect(alice.get_by_role("button", name="Start training")).to_be_enabled(timeout=60_000)
    alice.get_by_role("button", name="Start training").click()
    expect(alice.get_by_text(re.compile(r"^Finished 10 epochs")).first).to_be_visible(timeout=120_000)
    alices = alice.locator("[data-testid=stCaptionContainer] code").first.inner_text()
    assert read_meta(server["runs"] / alices).owner  # saved for her
    alice.get_by_role("link", name="Runs", exact=True).click()
    expect(alice.get_by_text("Your runs")).to_be_visible()
    expect(alice.get_by_text(re.compile(r"^1 runs\. Only you see them"))).to_be_visible()

    bob = returning_visitor(browser, server["url"], viewport={"width": 1280, "height": 800}).new_page()
    bob.goto(server["url"] + "/Report")
    picker = bob.get_by_role("combobox", name="Run")
    expect(picker).to_have_value(f"{shared.name} (shared)", timeout=60_000)  # the best finished shared run
    bob.get_by_role("link", name="Runs", exact=True).click()
    expect(bob.get_by_text("Shared runs")).to_be_visible()
    expect(bob.get_by_text(re.compile(r"None yet: runs you train"))).to_be_visible()  # Bob has no runs
    assert alices not in bob.content()
    # Bob ticks every shared row (the header box): he may compare and download, never delete
    grid = bob.get_by_test_id("stDataFrame").first
    grid.hover()
    grid.locator(".dvn-scroller").first.click(position={"x": 10, "y": 15})  # the header's select-all box
    expect(bob.get_by_text(re.compile(r"runs selected|Selected run"))).to_be_visible()
    expect(bob.get_by_text("Shared runs are read-only")).to_be_visible()
    assert bob.get_by_role("button", name=re.compile("^Delete")).count() == 0
    assert shared.exists() and collapsed.exists() and (server["runs"] / alices).exists()
    bob.screenshot(path=str(SHOTS / "runs-shared-selected.png"), full_page=True)
    alice.context.close()
    bob.context.close()
