"""The real app in headless Chromium: train live, stop, and read the report."""

from __future__ import annotations

import re
import shutil

from appserver import LAST_STEP_JS, returning_visitor
from helpers import confidently_right, digit_png, trained_run
from playwright.sync_api import Page, expect

from mnist_core.runs import list_runs, load_run


def set_slider(page: Page, label: str, key: str, expected: str) -> None:
    """Focus a Streamlit slider by its label, press a key (Home / End / arrows), check its new value."""
    thumb = page.get_by_role("slider", name=label)
    thumb.focus()
    thumb.press(key)
    expect(thumb).to_have_attribute("aria-valuetext", expected)


def wait_for_app(page: Page, device: str = "Device") -> None:
    """Until the sidebar names the device (``device``: that word in the page's language)."""
    expect(page.get_by_test_id("stSidebar")).to_contain_text(device, timeout=60_000)


def last_step(page: Page) -> int:
    return page.evaluate(LAST_STEP_JS)


def wait_step(page: Page, condition: str) -> int:
    """Wait until the live chart's last step satisfies ``condition`` (a JS expression of ``s``); return it."""
    page.wait_for_function(f"(() => {{ const s = ({LAST_STEP_JS})(); return {condition}; }})", timeout=60_000)
    return last_step(page)


def outcome_box(page: Page, text: str):
    """How the run ended, in the page's own box (the live chart shows the same words a moment before)."""
    return page.get_by_test_id(re.compile(r"stAlertContent")).get_by_text(text)


def main_button(page: Page, name: str):
    """A button of the page itself (the header has a Stop of its own)."""
    return page.get_by_test_id("stMain").get_by_role("button", name=re.compile(rf"{name}$"))


def test_train_pause_step_change_lr_refresh_stop(server, page: Page):
    page.goto(server["url"])
    wait_for_app(page)
    expect(page.get_by_role("heading", name="Watch a neural network learn")).to_be_visible()

    page.get_by_role("link", name="Train", exact=True).click()
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()
    # A long run on the sample: 100 epochs of batch 8, so there is time to steer it.
    set_slider(page, "Epochs", "End", "100")
    set_slider(page, "Batch size", "Home", "8")
    expect(page.get_by_text("100 epochs × 500 batches of 8 = 50,000 steps")).to_be_visible()  # the server has them
    page.get_by_role("button", name="Start training").click()

    first = wait_step(page, "s > 0")
    wait_step(page, f"s > {first}")
    expect(page.get_by_text(re.compile(r"epoch \d+/100 · step \d+/50000"))).to_be_visible()

    # Pause freezes the chart: one Step then adds exactly one point.
    main_button(page, "Pause").click()
    expect(main_button(page, "Resume")).to_be_visible()
    expect(page.get_by_text(re.compile(r"paused at step \d+"))).to_be_visible()
    paused_at = last_step(page)
    main_button(page, "Step 1 batch").click()
    assert wait_step(page, f"s > {paused_at}") == paused_at + 1
    expect(page.get_by_text(f"paused at step {paused_at + 1}")).to_be_visible()

    # A new learning rate while paused applies from the next batch, and the chart marks it.
    set_slider(page, "Learning rate (log scale)", "ArrowLeft", "0.079")
    main_button(page, "Step 1 batch").click()
    wait_step(page, f"s > {paused_at + 1}")
    page.wait_for_function("() => document.querySelector('.live-chart canvas')?.dataset.markers === '1'")
    expect(page.get_by_text(f"lr 0.1 → 0.079 from step {paused_at + 2}")).to_be_visible()

    main_button(page, "Resume").click()
    expect(main_button(page, "Pause")).to_be_visible()
    resumed = wait_step(page, f"s > {paused_at + 2}")

    # A refresh is a new session: the browser's own secret finds the run, and the knobs show its settings.
    page.reload()
    wait_for_app(page)
    wait_step(page, f"s > {resumed}")
    assert "job=" not in page.url  # nothing in the URL another visitor could use
    page.get_by_text("This run's other settings").click()  # folded while it trains
    expect(page.get_by_role("slider", name="Epochs")).to_have_attribute("aria-valuetext", "100")
    expect(page.get_by_role("slider", name="Batch size")).to_have_attribute("aria-valuetext", "8")
    expect(page.get_by_role("slider", name="Learning rate (log scale)")).to_have_attribute("aria-valuetext", "0.079")

    main_button(page, "Stop").click()
    expect(outcome_box(page, "Stopped by the user")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("button", name="Start training")).to_be_enabled(timeout=30_000)
    assert last_step(page) < 50000

    (run_dir,) = [p for p in list_runs(server["runs"]) if load_run(p).config.batch_size == 8]
    run = load_run(run_dir)
    assert run.meta["status"] == "stopped"
    assert run.history.lr_schedule == [(0, 0.1), (paused_at + 1, 0.079)]

    page.get_by_role("link", name="Open its report").click()
    expect(page.get_by_role("heading", name="Report")).to_be_visible()
    metric = page.get_by_test_id("stMetric").filter(has_text="Test accuracy")
    expect(metric).to_contain_text("%", timeout=60_000)
    value = float(re.search(r"([\d.]+)%", metric.inner_text()).group(1))
    assert 0 <= value <= 100


def test_a_queued_job_is_cancelled_at_once_and_others_cannot_see_it(server, browser, page: Page):
    """Two visitors: the second waits behind the first, cannot see or steer the first's run, and Cancel frees
    its page at once."""
    first = returning_visitor(browser, server["url"], viewport={"width": 1280, "height": 900}).new_page()
    first.goto(server["url"] + "/Train")
    wait_for_app(first)
    set_slider(first, "Epochs", "End", "100")
    set_slider(first, "Batch size", "Home", "8")
    expect(first.get_by_text("100 epochs × 500 batches of 8")).to_be_visible()
    first.get_by_role("button", name="Start training").click()
    wait_step(first, "s > 0")
    their_id = first.locator("[data-testid=stCaptionContainer] code").first.inner_text()

    page.goto(server["url"] + "/Train")
    wait_for_app(page)
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(re.compile("Waiting in the queue: place 1"))).to_be_visible()
    assert their_id not in page.content()
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_text(re.compile(r"Training now: 1 run"))).to_be_visible()
    assert their_id not in page.content()

    page.get_by_role("link", name="Train", exact=True).click()
    main_button(page, "Cancel").click()
    expect(outcome_box(page, "Cancelled while waiting in the queue")).to_be_visible()
    expect(page.get_by_role("button", name="Start training")).to_be_enabled()

    wait_step(first, "s > 0")  # the first visitor's run goes on
    main_button(first, "Stop").click()
    expect(outcome_box(first, "Stopped by the user")).to_be_visible(timeout=30_000)
    first.context.close()


def test_a_waiting_page_follows_its_feed_and_starts_by_itself(server, browser, page: Page):
    """The second visitor's page, with no timer of its own (its chart follows the live feed), moves
    from its place in line to training when the first run stops, and its chart and digit follow the run."""
    first = returning_visitor(browser, server["url"], viewport={"width": 1280, "height": 900}).new_page()
    first.goto(server["url"] + "/Train")
    wait_for_app(first)
    set_slider(first, "Epochs", "End", "100")
    set_slider(first, "Batch size", "Home", "8")
    first.get_by_role("button", name="Start training").click()
    wait_step(first, "s > 0")

    page.goto(server["url"] + "/Train")
    wait_for_app(page)
    set_slider(page, "Epochs", "End", "100")
    set_slider(page, "Batch size", "Home", "8")
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text(re.compile("Waiting in the queue: place 1"))).to_be_visible()
    assert last_step(page) == 0
    main_button(first, "Stop").click()
    expect(outcome_box(first, "Stopped by the user")).to_be_visible()

    # The feed says "running": the page redraws itself, then its chart and digit move with every fetch.
    step = wait_step(page, "s > 0")
    expect(page.get_by_text(re.compile(r"epoch 1/100 · step \d+/50000 · [\d,]+ images/s"))).to_be_visible()
    wait_step(page, f"s > {step + 100}")
    seen = int(page.wait_for_function(f"() => {DIGIT_VIEW}?.dataset.step").json_value())
    page.wait_for_function(f"() => Number({DIGIT_VIEW}?.dataset.step) > {seen}")
    main_button(page, "Stop").click()
    expect(outcome_box(page, "Stopped by the user")).to_be_visible()
    first.context.close()


def test_a_page_whose_feed_cannot_be_read_still_reaches_the_end(server, page: Page):
    """The feed file of a running job turns into a folder (so the queue cannot replace it and the browser gets
    404): the page redraws itself from the server instead, and shows the run's end without a reload."""
    from appserver import ROOT

    feeds = ROOT / "static" / "feed"
    page.goto(server["url"] + "/Train")
    wait_for_app(page)
    set_slider(page, "Epochs", "End", "100")
    set_slider(page, "Batch size", "Home", "8")
    before = set(feeds.glob("*.json"))
    page.get_by_role("button", name="Start training").click()
    wait_step(page, "s > 0")
    (mine,) = set(feeds.glob("*.json")) - before
    for _ in range(100):  # the queue rewrites the file five times a second: take its place between two writes
        try:
            mine.unlink(missing_ok=True)
            (mine / "blocked").mkdir(parents=True)  # os.replace cannot put a file where a non-empty folder is
            break
        except (FileExistsError, NotADirectoryError):
            continue
    assert (mine / "blocked").is_dir()
    try:
        step = last_step(page)
        wait_step(page, f"s > {step + 50}")  # redrawn by the page, not by the feed
    finally:
        shutil.rmtree(mine)
        main_button(page, "Stop").click()  # the next tests need the trainer
    expect(outcome_box(page, "Stopped by the user")).to_be_visible()


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
    picker = page.get_by_role("combobox", name="Run")  # a shared run: choose it (the best one opens first)
    picker.click()
    picker.fill(run.run_id)
    page.get_by_role("option", name=f"{run.run_id} (shared)").click()
    expect(picker).to_have_value(f"{run.run_id} (shared)")
    # the confusion matrix of the chosen run is drawn (its cell true 3, predicted 3 holds this run's count)
    page.wait_for_function(
        f"""() => {{
            const plots = document.querySelectorAll('.js-plotly-plot');
            const trace = plots.length && plots[plots.length - 1]._fullData?.[0];  // decoded: z as numbers
            return trace?.type === 'heatmap' && trace.z?.[3]?.[3] === {count};
        }}""",
        timeout=60_000,
    )
    heatmap = page.locator(".js-plotly-plot").last
    heatmap.scroll_into_view_if_needed()
    box = heatmap.locator(".nsewdrag").first.bounding_box()
    # the cell (true 3, predicted 3) of the 10x10 grid
    page.mouse.click(box["x"] + box["width"] * 3.5 / 10, box["y"] + box["height"] * 3.5 / 10)
    expect(page.get_by_text(f"{count} test images are 3 and were predicted 3")).to_be_visible(timeout=30_000)


DIGIT_VIEW = "document.querySelector('.digit-view canvas')"


def probs(page: Page) -> list[float]:
    """The 10 probabilities the digit panel draws now."""
    return [float(v) for v in page.evaluate(f"() => {DIGIT_VIEW}.dataset.probs").split(",")]


def test_watch_one_digit_while_it_trains_then_scrub_back(server, page: Page):
    """Pick a test digit, train: the panel follows it from the trainer; after Stop, the slider replays it."""
    page.goto(server["url"] + "/Train")
    wait_for_app(page)
    digit = page.get_by_role("spinbutton", name=re.compile("Test digit to follow"))
    digit.fill("7")
    digit.press("Enter")
    page.wait_for_function(f"() => {DIGIT_VIEW}?.dataset.step === '0'")
    before = probs(page)  # the untrained network's guess, drawn before the run starts
    set_slider(page, "Epochs", "End", "100")
    set_slider(page, "Batch size", "Home", "8")
    expect(page.get_by_text("100 epochs × 500 batches of 8 = 50,000 steps")).to_be_visible()
    page.get_by_role("button", name="Start training").click()

    # The view comes from the trainer and moves on with the run.
    first = int(
        page.wait_for_function(
            f"() => Number({DIGIT_VIEW}?.dataset.step) > 0 && {DIGIT_VIEW}.dataset.step"
        ).json_value()
    )
    page.wait_for_function(f"() => Number({DIGIT_VIEW}?.dataset.step) > {first}")
    assert max(abs(a - b) for a, b in zip(probs(page), before)) > 0.01
    page.get_by_role("tab", name="Training health").click()
    measured = page.get_by_text(re.compile(r"Measured at step \d+"))
    expect(measured).to_be_visible()
    # the open health tab follows the run (its own timer; the digit's tab needs none)
    first_measured = re.search(r"step (\d+)", measured.inner_text())[1]
    expect(measured).not_to_contain_text(f"step {first_measured} ")

    main_button(page, "Stop").click()
    expect(outcome_box(page, "Stopped by the user")).to_be_visible(timeout=30_000)
    page.get_by_role("tab", name="Watch one digit").click()
    scrub = page.get_by_role("slider", name="Scrub back through training (saved steps)")
    expect(scrub).to_be_visible()
    # the panel's canvas mounts a moment after its slider shows: wait for it, never read it before
    last = int(page.wait_for_function(f"() => {DIGIT_VIEW}?.dataset.step").json_value())
    assert last > first
    scrub.focus()
    scrub.press("Home")  # the first snapshot: the untrained network, as drawn before the run started
    page.wait_for_function(f"() => {DIGIT_VIEW}?.dataset.step === '0'")
    # float16 snapshot against the float32 model drawn before: the same network
    assert max(abs(a - b) for a, b in zip(probs(page), before)) < 2e-3
