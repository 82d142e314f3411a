"""A learner's path on Train and Predict: presets, the live chart's axis, smoothing and hover, one message per
outcome, naming a run, and a warning for a drawing that is no digit."""

from __future__ import annotations

import re

import pytest
from appserver import returning_visitor
from helpers import trained_run
from playwright.sync_api import Page, expect
from test_browser import main_button, outcome_box, set_slider, wait_for_app

from mnist_core.runs import list_runs, load_run

CANVAS = ".live-chart canvas"


def canvas_data(page: Page, name: str) -> str:
    return page.evaluate(f"() => document.querySelector('{CANVAS}')?.dataset.{name}")


def preset(page: Page, name: str) -> None:
    """Open the Presets popover and choose ``name``."""
    page.get_by_test_id("stMain").get_by_role("button", name="Presets").click()
    page.get_by_role("button", name=name, exact=True).click()
    expect(page.get_by_text(f"Preset: {name}", exact=True)).to_be_visible()


def test_a_preset_a_spiking_run_one_message_and_a_named_run(server, page: Page):
    page.goto(server["url"] + "/Train")
    wait_for_app(page)
    expect(page.get_by_text("Preset: The tutorial's settings", exact=True)).to_be_visible()

    # A preset sets the knobs and says what to look for; a knob moved makes the settings the learner's own.
    set_slider(page, "Epochs", "ArrowRight", "11")
    expect(page.get_by_text("Your own settings", exact=True)).to_be_visible()
    preset(page, "Watch it diverge")
    lr = page.get_by_role("slider", name="Learning rate (log scale)")
    expect(lr).to_have_attribute("aria-valuetext", "1")
    expect(page.get_by_role("radio", name="ADAM", exact=True)).to_be_checked()
    expect(page.get_by_text(re.compile("the chart turns to a log axis"))).to_be_visible()

    main_button(page, "Start training").click()
    expect(outcome_box(page, re.compile(r"But the test accuracy is 10\.00%"))).to_be_visible(timeout=60_000)
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()
    # The spike (hundreds of thousands) turned the "auto" axis to a log one; one message says how it ended.
    page.wait_for_function(f"() => document.querySelector('{CANVAS}')?.dataset.scale === 'log'")
    assert page.get_by_text(re.compile("Either the run is still on the initial plateau")).count() == 0

    # The learner's axis and smoothing: a choice redraws at once and is kept across a reload.
    page.get_by_label("Loss axis").select_option("linear")
    page.wait_for_function(f"() => document.querySelector('{CANVAS}').dataset.scale === 'linear'")
    page.get_by_label("Smoothing").fill("0.5")
    page.wait_for_function(f"() => document.querySelector('{CANVAS}').dataset.smoothing === '0.5'")
    page.reload()
    wait_for_app(page)
    page.wait_for_function(f"() => document.querySelector('{CANVAS}')?.dataset.scale === 'linear'")
    assert canvas_data(page, "smoothing") == "0.5"
    page.get_by_label("Loss axis").select_option("auto")

    # Hover: step, loss and the learning rate in force there.
    box = page.locator(CANVAS).bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tip = page.locator(".live-chart .tip")
    expect(tip).to_contain_text("step")
    expect(tip).to_contain_text("batch loss")
    expect(tip).to_contain_text("lr 1")

    # Name the saved run where it ended; Runs and the run pickers show the name.
    name = page.get_by_placeholder("Name this run (Runs shows it)")
    name.fill("my first divergence")
    name.press("Enter")
    expect(page.get_by_text("Saved as “my first divergence”.")).to_be_visible()
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    (run_dir,) = [p for p in list_runs(server["runs"]) if load_run(p, with_model=False).config.lr == 1.0]
    assert load_run(run_dir, with_model=False).meta.name == "my first divergence"

    # Back to the tutorial's settings in one choice.
    page.get_by_role("link", name="Train", exact=True).click()
    preset(page, "The tutorial's settings")
    expect(page.get_by_role("slider", name="Learning rate (log scale)")).to_have_attribute("aria-valuetext", "0.1")
    expect(page.get_by_role("radio", name="Descent", exact=True)).to_be_checked()


def test_a_scribble_that_is_no_digit_is_called_a_guess(server, page: Page, sample, tmp_path):
    from PIL import Image, ImageDraw

    trained_run(server["runs"], sample)
    img = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(img)
    pen.line((60, 60, 220, 220), fill=0, width=18)
    pen.line((220, 60, 60, 220), fill=0, width=18)
    png = tmp_path / "x.png"
    img.save(png)
    page.goto(server["url"] + "/Predict")
    wait_for_app(page)
    page.locator("input[type=file]").set_input_files(str(png))
    expect(page.get_by_role("heading", name=re.compile(r"^Prediction: "))).to_be_visible(timeout=60_000)
    expect(page.get_by_text(re.compile("does not look like anything the network learned from"))).to_be_visible()


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)])
def test_start_then_pause_and_stop_are_in_the_first_screen(server, browser, size):
    width, height = size
    context = returning_visitor(browser, server["url"], viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(server["url"] + "/Train")
        expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible(timeout=60_000)
        start = page.get_by_role("button", name="Start training")
        set_slider(page, "Epochs", "End", "100")  # long enough to find its controls while it trains
        set_slider(page, "Batch size", "Home", "8")
        assert within(start.bounding_box(), height)
        start.click()
        stop = main_button(page, "Stop")
        expect(stop).to_be_visible(timeout=60_000)
        expect(main_button(page, "Pause")).to_be_visible()
        assert within(stop.bounding_box(), height) and within(main_button(page, "Pause").bounding_box(), height)
        stop.click()
        expect(outcome_box(page, "Stopped by the user")).to_be_visible(timeout=60_000)
    finally:
        context.close()


def within(box: dict | None, height: int) -> bool:
    """True when an element's box lies inside the window's first screen (no scrolling)."""
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


def test_a_click_on_a_feature_map_works_out_that_pixel(server, page: Page):
    """Issue 26 (CNN Explainer's view): a click on a pixel of a layer's feature maps shows that pixel's sum."""
    page.goto(server["url"] + "/Model")
    wait_for_app(page)
    heading = page.get_by_text(re.compile(r"^Map \d+, row \d+, column \d+ of conv layer 1: "))
    expect(heading).to_be_visible(timeout=60_000)  # the layer's strongest pixel first
    page.get_by_role("radiogroup", name="Conv layer").get_by_text("2", exact=True).click()
    first = page.get_by_text(re.compile(r"of conv layer 2: "))
    expect(first).to_be_visible()
    before = first.inner_text()
    maps = page.locator(".stPlotlyChart").filter(has=page.locator(".heatmaplayer")).first
    box = maps.locator(".heatmaplayer image").first.bounding_box()  # the mosaic itself, not the margins
    for fx, fy in ((0.1, 0.2), (0.9, 0.8)):  # two pixels in different maps: at least one is not the first
        page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
        expect(page.get_by_text(re.compile(r"of conv layer 2: "))).not_to_have_text(before, timeout=30_000)
        before = page.get_by_text(re.compile(r"of conv layer 2: ")).inner_text()
    expect(page.get_by_text(re.compile(r"the pixel's value"))).to_contain_text(before.rsplit(": ", 1)[1])
