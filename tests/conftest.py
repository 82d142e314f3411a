"""Shared fixtures: a small learnable data set and the embedded sample."""

from __future__ import annotations

import pytest
from helpers import blobs_dataset

from mnist_core.data import Dataset, load_sample


@pytest.fixture(scope="session")
def sample() -> Dataset:
    return load_sample()


@pytest.fixture
def blobs() -> Dataset:
    return blobs_dataset()


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    """An empty runs folder for the app, and a fresh job queue (its own warm trainer) that saves there."""
    import streamlit as st

    from ui.state import close_job_queue

    monkeypatch.setenv("MNIST_RUNS_DIR", str(tmp_path))
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    close_job_queue()
    st.cache_resource.clear()
    yield tmp_path
    close_job_queue()
    st.cache_resource.clear()
