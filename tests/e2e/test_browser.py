"""The real app in headless Chromium: train live, stop, and read the report."""

from __future__ import annotations

import re
import time

from helpers import confidently_right, digit_png, trained_run
from playwright.sync_api import Page, expect

from mnist_core.runs import load_run

# Plotly keeps the decoded traces in _fullData; trace 0 of the live chart is the batch loss.
LAST_STEP = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const x = plots.length ? plots[plots.length - 1]._fullData?.[0]?.x : null;
  return x && x.length ? Number(x[x.length - 1]) : 0;
}"""


def set_slider(page: Page, label: str, key: str, expected: str) -> None:
    """Focus a Streamlit slider by its label, press a key (Home / End / arrows), check its new value."""
    thumb = page.get_by_role("slider", name=label)
    thumb.focus()
    thumb.press(key)
    expect(thumb).to_have_attribute("aria-valuetext", expected)


def wait_for_app(page: Page) -> None:
    expect(page.get_by_test_id("stSidebar")).to_contain_text("Device", timeout=60_000)


def test_train_live_stop_and_report(server, page: Page):
    page.goto(server["url"])
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Watch a neural network learn")).to_be_visible()

    page.get_by_role("link", name="Train").click()
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()
    # A long run on the sample: 30 epochs of batch 16, so there is time to watch it and stop it.
    set_slider(page, "Epochs", "End", "30")
    set_slider(page, "Batch size", "Home", "16")
    time.sleep(1)
    page.get_by_role("button", name="Start training").click()

    stop = page.locator("button[kind=secondary]", has_text="Stop")  # not the header's own Stop
    expect(stop).to_be_enabled(timeout=30_000)
    page.wait_for_function(f"({LAST_STEP})() > 0", timeout=60_000)
    first = page.evaluate(LAST_STEP)
    page.wait_for_function(f"({LAST_STEP})() > {first}", timeout=30_000)
    second = page.evaluate(LAST_STEP)
    assert second > first > 0, "the live chart did not gain points"
    expect(page.get_by_text(re.compile(r"epoch \d+/30 · step \d+/7500"))).to_be_visible()

    # A refresh is a new session: the run goes on, and the job id in the URL finds it again.
    assert "job=" in page.url
    page.reload()
    wait_for_app(page)
    page.wait_for_function(f"({LAST_STEP})() > {second}", timeout=60_000)

    stop.click()
    expect(page.get_by_text("Stopped by the user")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Start training")).to_be_enabled(timeout=30_000)
    stopped_at = page.evaluate(LAST_STEP)
    assert stopped_at < 7500

    page.get_by_role("link", name="Open its report").click()
    expect(page.get_by_role("heading", name="Report")).to_be_visible()
    metric = page.get_by_test_id("stMetric").filter(has_text="Test accuracy")
    expect(metric).to_contain_text("%", timeout=60_000)
    value = float(re.search(r"([\d.]+)%", metric.inner_text()).group(1))
    assert 0 <= value <= 100
    expect(page.get_by_text("status stopped")).to_be_visible()


def test_every_page_shows_without_error(server, page: Page):
    page.goto(server["url"])
    wait_for_app(page)
    for name, heading in (("Data", "Sample images"), ("Model", "Inside the network"), ("Report", "Report")):
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=60_000)
        assert page.get_by_test_id("stException").count() == 0


def test_upload_a_digit_and_read_the_prediction(server, page: Page, sample, tmp_path):
    run_dir = trained_run(server["runs"], sample)
    index = confidently_right(run_dir, sample)
    true = int(sample.test_labels[index])
    png = tmp_path / "digit.png"
    png.write_bytes(digit_png(sample.test_images[index].numpy()))

    page.goto(server["url"] + "/Predict")
    wait_for_app(page)
    page.locator("input[type=file]").set_input_files(str(png))
    headline = page.get_by_role("heading", name=re.compile(r"^Prediction: "))
    expect(headline).to_be_visible(timeout=60_000)
    assert headline.inner_text().startswith(f"Prediction: {true} ")
    expect(page.get_by_text("Centred by mass in 28x28")).to_be_visible()


def test_click_a_confusion_cell_shows_its_images(server, page: Page, sample):
    run = load_run(trained_run(server["runs"], sample, epochs=1))
    count = int(run.report.confusion[3, 3])
    page.goto(server["url"] + "/Report")
    wait_for_app(page)
    heatmap = page.locator(".js-plotly-plot").last
    expect(heatmap).to_be_visible(timeout=60_000)
    heatmap.scroll_into_view_if_needed()
    box = heatmap.locator(".nsewdrag").first.bounding_box()
    # the cell (true 3, predicted 3) of the 10x10 grid
    page.mouse.click(box["x"] + box["width"] * 3.5 / 10, box["y"] + box["height"] * 3.5 / 10)
    expect(page.get_by_text(f"{count} test images are 3 and were predicted 3")).to_be_visible(timeout=30_000)
