"""Shared fixtures: a small learnable data set and the embedded sample."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import blobs_dataset, write_idx

from mnist_core.data import Dataset, load_sample

# The tests read the command line's English: a machine set to another language must not change that (the tests
# of the Chinese command line ask for it themselves).
for _name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["LANG"] = "C.UTF-8"


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


@pytest.fixture
def data_dir(tmp_path):
    """The learnable blobs written as the four IDX files, for the child processes to load."""
    ds = blobs_dataset(n_train=512, n_test=100)
    folder = tmp_path / "data"
    write_idx(folder / "train-images-idx3-ubyte", ds.train_images.numpy())
    write_idx(folder / "train-labels-idx1-ubyte", ds.train_labels.numpy().astype(np.uint8))
    write_idx(folder / "t10k-images-idx3-ubyte", ds.test_images.numpy())
    write_idx(folder / "t10k-labels-idx1-ubyte", ds.test_labels.numpy().astype(np.uint8))
    return folder
