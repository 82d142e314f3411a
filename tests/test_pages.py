"""AppTest: every page renders on the embedded sample; Train trains a run and Report shows it."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import confidently_right, digit_png, trained_run, wait_for
from streamlit.testing.v1 import AppTest

import ui.state
from mnist_core.config import TrainConfig
from mnist_core.presets import PRESETS
from mnist_core.report import CLASS, GUESSES_RIGHT, IMAGES, RIGHT, worst_cell
from mnist_core.run_archive import export_run
from mnist_core.runs import finish_run, list_runs, load_run
from mnist_core.train import train

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
PAGES = [
    "app_pages/1_Data.py",
    "app_pages/2_Model.py",
    "app_pages/3_Train.py",
    "app_pages/4_Report.py",
    "app_pages/5_Runs.py",
    "app_pages/6_Predict.py",
    "app_pages/7_Tune.py",
]


def controls(at: AppTest) -> list[str]:
    """The Train page's training buttons (not the digit panel's "Another digit", nor the presets' buttons)."""
    presets = {p.name for p in PRESETS}
    return [b.label for b in at.button if b.label != "Another digit" and b.label not in presets]


def start_button(at: AppTest):
    return next(b for b in at.button if b.label == "Start training")


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def test_home_names_the_sample_and_device(runs_dir):
    at = open_page()
    text = " ".join(m.value for m in at.markdown) + " ".join(str(s.value) for s in at.subheader)
    assert "MNIST sample (5,000 digits)" in text
    assert [m.value for m in at.metric][:2] == ["4,000", "1,000"]
    assert "CPU" in at.metric[2].value or "GPU" in at.metric[2].value


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(runs_dir, page):
    at = open_page(page)
    assert not at.error
    title = at.title[0].value
    assert title.split()[0] in page or (page.endswith("Predict.py") and title.startswith("Predict"))


def test_model_page_table_and_prediction(runs_dir):
    at = open_page("app_pages/2_Model.py")
    table = at.table[0].value  # a static table: wraps, so nothing is cut off at 1280 px
    assert table["parameters"].sum() == 15_594 and table["multiply-adds"].sum() == 206_560
    assert any("Prediction of this image" in m.value for m in at.markdown)


def test_model_page_shows_a_run_at_its_saved_snapshots(runs_dir, blobs):
    from mnist_core.config import TrainConfig
    from mnist_core.report import build_report
    from mnist_core.runs import save_run
    from mnist_core.train import train
    from mnist_core.watch import SnapshotRecorder, saved_steps

    recorder = SnapshotRecorder()
    trainer = train(TrainConfig(epochs=2, optimiser="ADAM", lr=0.01), blobs, [recorder])
    run_dir = save_run(trainer, build_report(trainer.model, blobs), root=runs_dir, snapshots=recorder.tensors())
    steps = saved_steps(run_dir)
    assert steps[0] == 0 and len(steps) > 2

    at = open_page("app_pages/2_Model.py")
    at.selectbox[0].select(run_dir.name).run()
    slider = at.select_slider(key=f"at_{run_dir.name}")
    assert slider.value == steps[-1] and list(slider.options) == [f"{s:,}" for s in steps]
    last_guess = next(m.value for m in at.markdown if "Prediction of this image" in m.value)
    slider.set_value(0).run()
    assert not at.exception, at.exception
    untrained_guess = next(m.value for m in at.markdown if "Prediction of this image" in m.value)
    assert untrained_guess != last_guess  # the untrained network of step 0 is not the trained one


def test_train_then_report(runs_dir, monkeypatch):
    at = open_page("app_pages/3_Train.py")
    import ui.inside

    replayed = []  # the digits this server process replayed itself
    real_replay = ui.inside.replay
    monkeypatch.setattr(
        ui.inside, "replay", lambda run_dir, digit: replayed.append(digit) or real_replay(run_dir, digit)
    )
    assert controls(at) == ["Start training", "Run the range test"]  # Start first, in the first screen
    at.slider(key="keep_epochs").set_value(1)
    at.radio(key="keep_optimiser").set_value("ADAM")
    at.select_slider(key="keep_lr").set_value(0.01)
    start_button(at).click().run()
    assert not at.exception, at.exception
    wait_for(lambda: any("Test accuracy" in s.value for s in at.run().success), timeout=240, every=0.5)

    runs = list_runs(runs_dir)
    assert len(runs) == 1
    saved = load_run(runs[0])
    assert (saved.config.epochs, saved.config.optimiser, saved.config.lr) == (1, "ADAM", 0.01)
    assert saved.meta["status"] == "finished"
    # The finished run's digit panel scrubs through the views the trainer replayed: the server ran no model...
    (job,) = [j for j in ui.state.job_queue()._jobs.values() if j.run_dir == runs[0]]
    scrub = at.select_slider(key=f"replay_{job.id}")
    assert scrub.options == [f"step {v.step}" for v in job.replay] and not replayed
    # ...until the learner follows another digit: that one is replayed here.
    at.number_input(key="keep_watch").set_value(job.watch_digit + 1).run()
    assert not at.exception, at.exception
    assert len(replayed) == 1 and at.select_slider(key=f"replay_{job.id}").options == scrub.options

    # The finished curve stays the canvas the learner watched; Plotly's chart only when asked for.
    def charts(kind: str) -> list:
        return [c for c in at.get(kind) if c.key in ("still_chart", "live_chart")]

    assert not charts("plotly_chart") and len(charts("bidi_component")) == 1
    at.toggle(key="zoom_chart").set_value(True).run()
    (curve,) = charts("plotly_chart")
    assert len(json.loads(curve.proto.spec)["data"][0]["y"]) == len(saved.history.batch_losses)
    # Only the open tab of the panel below is drawn: the health table once its tab is chosen.
    assert not at.table and not any("Measured at step" in c.value for c in at.caption)
    at.session_state["inside_tab"] = "Training health"
    at.run()
    assert not at.exception, at.exception
    assert at.table and any("Measured at step" in c.value for c in at.caption)
    assert f"replay_{job.id}" not in [w.key for w in at.select_slider]  # ...and the digit's tab is not

    at.switch_page("app_pages/4_Report.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{saved.report.test_acc:.2%}"
    assert saved.report.test_acc > 0.5  # one epoch of ADAM on real digits is far above chance


def test_report_of_a_collapsed_run_says_so_and_its_charts_stay_readable(runs_dir, sample):
    """ADAM at lr 1: dead ReLUs, 10% test accuracy. Not a green "Finished", and no flattened or "10%, 10%" axes."""
    trainer = train(TrainConfig(epochs=2, optimiser="ADAM", lr=1.0), sample)
    assert trainer.history.status == "collapsed"
    assert max(trainer.history.batch_losses) > 1000 * min(trainer.history.batch_losses)  # the spike
    folder, _, _ = finish_run(trainer, sample, root=runs_dir)

    at = open_page("app_pages/4_Report.py")
    assert at.selectbox(key="run_picker").value is None  # a collapsed run is never a new visitor's default
    at.selectbox(key="run_picker").set_value(folder.name).run()
    assert not at.success and any("collapsed to chance" in w.value for w in at.warning)
    assert any("chance level" in t.value for t in at.text)
    loss, epochs = (json.loads(c.proto.spec) for c in at.get("plotly_chart")[:2])
    assert loss["layout"]["yaxis"]["type"] == "log"  # the spike does not flatten the curve
    assert epochs["layout"]["yaxis2"]["range"] == [0, 1.02] and epochs["layout"]["yaxis2"]["dtick"] == 0.2
    per_class = at.table[0].value
    assert list(per_class.columns[:3]) == [CLASS, IMAGES, RIGHT]
    assert list(per_class[GUESSES_RIGHT]).count("no guesses") == 9  # nine digits never guessed: no "None"


def test_a_chosen_confusion_cell_does_not_carry_over_to_another_run(runs_dir, blobs):
    first, second = trained_run(runs_dir, blobs, epochs=1), trained_run(runs_dir, blobs, epochs=2)
    at = open_page("app_pages/4_Report.py")
    shown = at.selectbox(key="run_picker").value
    at.selectbox(key=f"true-{shown}").set_value(7).run()
    assert at.selectbox(key=f"true-{shown}").value == 7
    other = first.name if shown == second.name else second.name
    at.selectbox(key="run_picker").set_value(other).run()
    assert not at.exception, at.exception
    expected = worst_cell(load_run(runs_dir / other).report.confusion)
    assert (at.selectbox(key=f"true-{other}").value, at.selectbox(key=f"pred-{other}").value) == expected
    assert any("cannot be shown" in i.value for i in at.info)  # generated blobs: not a source this server has


def test_the_lr_finder_puts_its_suggestion_on_the_slider(runs_dir):
    at = open_page("app_pages/3_Train.py")
    at.radio(key="keep_optimiser").set_value("ADAM").run()
    next(b for b in at.button if b.label == "Run the range test").click().run()
    assert not at.exception, at.exception
    use = next(b for b in at.button if b.label.startswith("Use lr "))
    suggested = float(use.label.removeprefix("Use lr "))
    assert any("Suggested learning rate" in c.value and "ADAM" in c.value for c in at.caption)
    assert 1e-5 <= suggested <= 1
    use.click().run()
    assert at.select_slider(key="keep_lr").value == suggested
    assert list_runs(runs_dir) == []  # the range test saves no run


def test_a_second_session_can_neither_see_nor_steer_the_first_ones_run(runs_dir):
    """The attack that worked before: the victim's run id from the Runs page, then ?job=<id> on Train."""
    victim = open_page("app_pages/3_Train.py")
    victim.slider(key="keep_epochs").set_value(100)
    victim.select_slider(key="keep_batch_size").set_value(8)
    start_button(victim).click().run()
    assert not victim.exception, victim.exception
    assert controls(victim) == ["Start training", "Pause", "Stop"]  # the range test folds away while it trains
    from ui.state import job_queue

    (job,) = job_queue().active()
    wait_for(lambda: job.history.step > 0)  # the trainer may still be warming
    (run_id,) = [c.value.split("`")[1] for c in victim.caption if c.value.startswith("Run `")]

    attacker = open_page("app_pages/5_Runs.py")
    shown = " ".join(str(e.value) for e in (*attacker.info, *attacker.markdown, *attacker.caption))
    assert "Training now: 1 run" in shown and run_id not in shown
    attacker.query_params["job"] = run_id
    attacker.switch_page("app_pages/3_Train.py").run()
    assert not attacker.exception, attacker.exception
    assert controls(attacker) == ["Start training", "Run the range test"]  # nothing to steer
    assert run_id not in " ".join(str(e.value) for e in (*attacker.caption, *attacker.markdown, *attacker.info))

    step = job.history.step
    wait_for(lambda: job.history.step > step)
    assert not job.done  # it trained on through all of that
    victim.run()
    next(b for b in victim.button if b.label == "Stop").click().run()
    wait_for(lambda: any("Stopped by the user" in box.value for box in victim.run().info), timeout=60, every=0.2)


def test_bad_fashion_data_is_a_message(runs_dir, monkeypatch, tmp_path):
    from mnist_core import data

    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "_check_network", lambda url, timeout=3: (_ for _ in ()).throw(data.DataError("offline")))
    at = open_page()
    next(s for s in at.sidebar.selectbox if s.label == "Data set").set_value("fashion-mnist").run()
    assert not at.exception
    assert any("dataset-fashion-mnist" in e.value for e in at.error)


def test_runs_page_table_compare_and_archives(runs_dir, sample, tmp_path_factory, monkeypatch):
    first = trained_run(runs_dir, sample, epochs=1)
    archive = export_run(first)
    at = open_page("app_pages/5_Runs.py")
    table = at.dataframe[0].value
    assert list(table["run"]) == [first.name]
    assert table.iloc[0]["optimiser"] == "ADAM" and table.iloc[0]["status"] == "Finished"
    assert table.iloc[0]["data set"] == "MNIST sample (5,000 digits)"

    # a damaged archive: a clear message, nothing added
    at.file_uploader[0].set_value(("bad.zip", b"PK\x03\x04 broken", "application/zip")).run()
    assert not at.exception
    assert any("nothing changed" in e.value for e in at.error)
    assert len(list_runs(runs_dir)) == 1

    # the same run's archive in a fresh folder is added
    other = tmp_path_factory.mktemp("other")
    monkeypatch.setenv("MNIST_RUNS_DIR", str(other))
    at = open_page("app_pages/5_Runs.py")
    at.file_uploader[0].set_value(("run.zip", archive, "application/zip")).run()
    assert not at.exception and any(first.name in s.value for s in at.success)
    (added,) = list_runs(other)
    assert added.name.startswith(first.name + "-i")  # a new id, never one a run had
    mine = at.dataframe[0].value  # the first table is the visitor's own runs: an import is its importer's
    assert list(mine["run"]) == [added.name]


def test_predict_page_reads_an_uploaded_digit(runs_dir, sample):
    at = open_page("app_pages/6_Predict.py")
    assert any("no trained run" in i.value for i in at.info)

    run_dir = trained_run(runs_dir, sample)
    index = confidently_right(run_dir, sample)
    true = int(sample.test_labels[index])
    at = open_page("app_pages/6_Predict.py")
    at.file_uploader[0].set_value(("digit.png", digit_png(sample.test_images[index].numpy()), "image/png")).run()
    assert not at.exception and not at.error
    headline = [s.value for s in at.subheader if s.value.startswith("Prediction")][0]
    assert headline.startswith(f"Prediction: {true} ")

    # The Train page can follow that digit through the network while a run trains.
    at.switch_page("app_pages/3_Train.py").run()
    assert at.number_input(key="keep_watch")  # a test digit, until the learner chooses the one from Predict
    at.radio(key="keep_watch_source").set_value("drawn").run()
    assert not at.exception, at.exception
    assert not [n for n in at.number_input if n.key == "keep_watch"]
    at.slider(key="keep_epochs").set_value(1)
    start_button(at).click().run()
    (job,) = ui.state.job_queue()._jobs.values()  # this test's only job
    assert isinstance(job.watch_digit, list) and len(job.watch_digit) == 784
    assert sum(job.watch_digit) > 0  # the prepared digit's ink, not a blank


@pytest.mark.parametrize(
    "content, words",
    [
        (b"this is not an image", "not an image"),
        (digit_png(np.zeros((28, 28), np.uint8))[:200], "truncated"),
        (digit_png(np.zeros((28, 28), np.uint8)), "No digit found"),
    ],
)
def test_predict_page_bad_uploads(runs_dir, sample, content, words):
    trained_run(runs_dir, sample, epochs=1)
    at = open_page("app_pages/6_Predict.py")
    at.file_uploader[0].set_value(("x.png", content, "image/png")).run()
    assert not at.exception
    assert any(words.lower() in e.value.lower() for e in at.error), [e.value for e in at.error]


def test_a_run_that_ends_while_the_page_draws_still_gets_its_page_redrawn(runs_dir, monkeypatch):
    """The job ends just after the page read its state: the page draws it as it read it (running: knobs
    locked) and its chart follows the feed of that state, so the browser asks for a redraw once the feed
    says the run ended. A page drawn half running, half ended had no chart and no timer: it stayed locked."""
    from mnist_core.jobs import Job, JobSnapshot

    at = open_page("app_pages/3_Train.py")
    at.slider(key="keep_epochs").set_value(1)
    start_button(at).click().run()
    wait_for(lambda: any("Test accuracy" in s.value for s in at.run().success), timeout=240, every=0.5)
    (job,) = ui.state.job_queue()._jobs.values()
    assert job.done

    real = Job.snapshot
    page_reads = []  # the page script's reads (not the queue's threads)

    def snapshot(j: Job) -> JobSnapshot:
        """The page's first read sees the run a moment before it ended; every later read sees it ended."""
        if threading.current_thread().name.startswith("mnist-"):
            return real(j)
        page_reads.append(j.id)
        return JobSnapshot("running", False, "app/static/feed/x.json") if len(page_reads) == 1 else real(j)

    monkeypatch.setattr(Job, "snapshot", snapshot)
    at.run()
    assert not at.exception, at.exception
    assert start_button(at).disabled  # the knobs as read: running (a second read would say ended)
    (chart,) = [c for c in at.get("bidi_component") if c.key == "live_chart"]
    data = json.loads(chart.proto.json)
    data = data.get("data", data)
    # the chart follows the feed of the state drawn: the feed says "done", so the browser asks for a redraw
    assert (data["feed"], data["mode"]) == ("app/static/feed/x.json", "running|False")

    monkeypatch.setattr(Job, "snapshot", real)
    at.run()  # that redraw
    assert not start_button(at).disabled and any("Finished" in s.value for s in at.success)


def test_the_knobs_outlive_a_visit_to_another_page_and_being_hidden(runs_dir):
    """The training and search knobs keep their values across pages (persist_state), and momentum keeps its
    value while Descent hides it."""
    at = open_page("app_pages/3_Train.py")
    at.slider(key="keep_epochs").set_value(3)
    at.select_slider(key="keep_lr").set_value(0.01)
    at.radio(key="keep_optimiser").set_value("Momentum").run()
    at.slider(key="keep_momentum").set_value(0.5).run()
    at.radio(key="keep_optimiser").set_value("Descent").run()
    assert not [s for s in at.slider if s.key == "keep_momentum"]  # hidden for Descent
    at.switch_page("app_pages/7_Tune.py").run()
    at.number_input(key="keep_tune_trials").set_value(5).run()
    at.switch_page("app_pages/4_Report.py").run()
    at.switch_page("app_pages/3_Train.py").run()
    assert at.slider(key="keep_epochs").value == 3 and at.select_slider(key="keep_lr").value == 0.01
    at.radio(key="keep_optimiser").set_value("Momentum").run()
    assert at.slider(key="keep_momentum").value == 0.5
    at.switch_page("app_pages/7_Tune.py").run()
    assert at.number_input(key="keep_tune_trials").value == 5
    assert not at.exception, at.exception


def test_the_train_page_describes_the_network_before_it_trains(runs_dir):
    """Issue 26: before a run, the knobs' network as a table, its size, and an epoch's time measured here."""
    at = open_page("app_pages/3_Train.py")

    def card() -> tuple[str, str]:
        layers = next(c.value for c in at.caption if c.value.startswith("Conv: "))
        caption = next(c.value for c in at.caption if "multiply-adds per image" in c.value)
        return layers, caption

    layers, caption = card()
    assert layers.startswith("Conv: 8 × 14 × 14 · 208 weights") and "Dense: 10 · 330 weights" in layers
    assert caption.startswith("15,594 parameters · 0.2 M multiply-adds")
    assert "an epoch here" in caption
    steps = next(c.value for c in at.caption if "steps on" in c.value)
    assert "of training" in steps  # the whole run's estimate beside its steps
    at.text_input(key="keep_channels").set_value("16,32,64,64").run()
    at.radio(key="keep_activation").set_value("tanh").run()
    layers, caption = card()
    assert layers.startswith("Conv: 16 × 14 × 14") and caption.startswith("61,130 parameters")
    at.text_input(key="keep_channels").set_value("16,32").run()
    assert not [c for c in at.caption if "multiply-adds per image" in c.value]  # no network to describe
    assert not at.exception, at.exception
