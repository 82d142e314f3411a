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
