"""AppTest: every page renders on the embedded sample; Train trains a run and Report shows it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from mnist_core.runs import list_runs, load_run

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
PAGES = ["app_pages/1_Data.py", "app_pages/2_Model.py", "app_pages/3_Train.py", "app_pages/4_Report.py"]


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path))
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    st.cache_resource.clear()  # a fresh job queue that saves into tmp_path
    yield tmp_path
    st.cache_resource.clear()


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
    assert at.title[0].value in page


def test_model_page_table_and_prediction(runs_dir):
    at = open_page("app_pages/2_Model.py")
    table = at.dataframe[0].value
    assert table["parameters"].sum() == 15_594 and table["multiply-adds"].sum() == 206_560
    assert any("Prediction of this image" in m.value for m in at.markdown)


def test_train_then_report(runs_dir):
    at = open_page("app_pages/3_Train.py")
    assert [b.label for b in at.button] == ["Start training", "Stop"]
    at.slider(key="keep_epochs").set_value(1)
    at.radio(key="keep_opt").set_value("ADAM")
    at.select_slider(key="keep_lr").set_value(0.01)
    at.button[0].click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + 240
    while not at.success and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert at.success, "the run did not finish"
    assert "Test accuracy" in at.success[0].value

    runs = list_runs(runs_dir)
    assert len(runs) == 1
    saved = load_run(runs[0])
    assert (saved.config.epochs, saved.config.optimiser, saved.config.lr) == (1, "ADAM", 0.01)
    assert saved.meta["status"] == "finished"

    at.switch_page("app_pages/4_Report.py").run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Test accuracy"] == f"{saved.report.test_acc:.2%}"
    assert saved.report.test_acc > 0.5  # one epoch of ADAM on real digits is far above chance


def test_bad_fashion_data_is_a_message(runs_dir, monkeypatch, tmp_path):
    from mnist_core import data

    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "_check_network", lambda url, timeout=3: (_ for _ in ()).throw(data.DataError("offline")))
    at = open_page()
    at.sidebar.selectbox[0].set_value("fashion-mnist").run()
    assert not at.exception
    assert any("dataset-fashion-mnist" in e.value for e in at.error)
