"""The Tune page in headless Chromium: a 3-trial study runs to the end through the server's queue; Stop ends one."""

from __future__ import annotations

import re

from helpers import wait_for
from playwright.sync_api import Page, expect

from mnist_core.runs import list_run_metas


def study_runs(runs, study: str) -> list:
    return [meta for _, meta in list_run_metas(runs) if meta is not None and meta.study == study]


def start_study(page: Page, name: str, trials: int) -> None:
    page.get_by_label("Study name").fill(name)
    page.get_by_label("Study name").press("Enter")
    trials_box = page.get_by_label("Trials", exact=True)
    trials_box.fill(str(trials))
    trials_box.press("Enter")
    expect(trials_box).to_have_value(str(trials))
    page.get_by_role("button", name="Start the study").click()


def choose_only(page: Page, label: str, value: str) -> None:
    """Clear a multiselect, then choose ``value`` from its list."""
    box = page.get_by_test_id("stMultiSelect").filter(has_text=label)
    chosen = box.get_by_role("button", name=re.compile("^Remove "))
    for _ in range(3):  # a rerun that lands between the clicks can bring the old choice back: try again
        box.get_by_role("button", name="Clear all").click()
        expect(chosen).to_have_count(0)  # cleared, before typing: a late rerun must not undo the choice
        page.get_by_role("combobox", name=label).fill(value)
        page.get_by_role("option", name=value, exact=True).click()
        page.keyboard.press("Escape")
        expect(box.get_by_role("button", name=f"Remove {value}")).to_be_attached()
        if chosen.count() == 1:
            return
    raise AssertionError(f"{label}: could not choose {value} alone; chosen: {chosen.all_inner_texts()}")


def test_a_three_trial_study_runs_to_the_end_and_stop_ends_another(server, page: Page):
    page.goto(server["url"] + "/Tune")
    expect(page.get_by_test_id("stSidebar")).to_contain_text("Device", timeout=60_000)
    expect(page.get_by_role("heading", name="Tune")).to_be_visible()
    expect(page.get_by_text("never used to choose")).to_be_visible()

    # The defaults: lr 0.001..1, Descent and ADAM, batch 128, 3 epochs, TPE; three trials of them.
    start_study(page, "browser", 3)
    expect(page.get_by_role("button", name="Stop the study")).to_be_enabled()
    expect(page.get_by_text(re.compile(r"Trial \d training"))).to_be_visible()
    expect(page.get_by_role("button", name="Start the study")).to_be_enabled(timeout=300_000)  # the study ended
    expect(page.get_by_text("Best so far: trial")).to_be_visible()
    expect(page.get_by_text("Its test accuracy, read once")).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="Time pruning saved")).to_contain_text(" s")
    runs = study_runs(server["runs"], "browser")
    assert sorted(meta.trial for meta in runs) == [0, 1, 2]
    assert all(meta.config.validation == 0.1 and meta.config.epochs == 3 for meta in runs)
    expect(page.get_by_role("tab", name="History")).to_be_visible()

    page.get_by_role("button", name="Open the best trial in Report").click()
    expect(page.get_by_role("heading", name="Report")).to_be_visible()
    expect(page.get_by_test_id("stMetric").filter(has_text="Test accuracy")).to_contain_text("%", timeout=60_000)

    # Stop ends a study at once: the running trial is saved as stopped, no other starts.
    page.get_by_role("link", name="Tune", exact=True).click()
    # Long trials (10 epochs of batch 8: several seconds each on the sample), so that the Stop lands while one
    # trains: at batch 128 a trial took 1-2 s and could end between the page showing it and the click.
    choose_only(page, "Epochs", "10")
    choose_only(page, "Batch sizes", "8")
    start_study(page, "stopped", 12)
    expect(page.get_by_text(re.compile(r"Trial \d+ training"))).to_be_visible()
    page.get_by_role("button", name="Stop the study").click()
    expect(page.get_by_text(re.compile(r"Stopped: trial \d+ was saved as stopped"))).to_be_visible(timeout=60_000)
    wait_for(lambda: any(m.status == "stopped" for m in study_runs(server["runs"], "stopped")))
    runs = study_runs(server["runs"], "stopped")
    (stopped,) = [m for m in runs if m.status == "stopped"]  # one trial was running when Stop came
    assert (
        stopped.config.epochs == 10 and stopped.config.batch_size == 8 and stopped.trial == max(m.trial for m in runs)
    )
    assert len(runs) < 12
