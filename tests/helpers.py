"""Test helpers: IDX files made on the spot and a small learnable data set."""

from __future__ import annotations

import gzip
import struct
import time
from pathlib import Path

import numpy as np
import torch

from mnist_core.data import DATASETS, Dataset


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    """Write ``array`` (uint8) as an IDX file, the format of MNIST's four files."""
    magic = 2051 if array.ndim == 3 else 2049
    raw = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape) + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def make_idx_folder(folder: Path, n_train: int = 60, n_test: int = 20, gz: bool = False, seed: int = 0) -> dict:
    """Four random but valid IDX files in ``folder``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, gz=gz)
    return arrays


def blobs_dataset(n_train: int = 256, n_test: int = 64, seed: int = 0) -> Dataset:
    """A tiny learnable data set: class k is a bright square at one of 10 places, plus noise."""
    gen = torch.Generator().manual_seed(seed)

    def make(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.arange(n) % 10
        images = torch.randint(0, 60, (n, 28, 28), generator=gen, dtype=torch.uint8)
        for i, k in enumerate(labels.tolist()):
            r, c = 2 + (k // 5) * 13, 2 + (k % 5) * 5
            images[i, r : r + 10, c : c + 4] = 230
        return images, labels

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    return Dataset("mnist", "generated blobs", "local", x_train, y_train, x_test, y_test, DATASETS["mnist"])


def trained_run(root: Path, dataset, epochs: int = 2) -> Path:
    """A real run on ``dataset`` (ADAM, quick to learn), saved with its report under ``root``."""
    from mnist_core.config import TrainConfig
    from mnist_core.report import build_report
    from mnist_core.runs import save_run
    from mnist_core.train import train

    trainer = train(TrainConfig(epochs=epochs, optimiser="ADAM", lr=0.01), dataset)
    return save_run(trainer, build_report(trainer.model, dataset), root=root)


def digit_png(image_28: np.ndarray, size: int = 280) -> bytes:
    """An MNIST digit as a user would photograph it: enlarged, dark ink on white paper, as PNG bytes."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(255 - image_28).resize((size, size), Image.BILINEAR).save(buffer, format="PNG")
    return buffer.getvalue()


def confidently_right(run_dir: Path, dataset) -> int:
    """Index of a test digit the saved run classifies correctly with at least 95% probability."""
    from mnist_core.report import predict
    from mnist_core.runs import load_run

    probs = predict(load_run(run_dir).model, dataset.test_images).exp()
    good = (probs.argmax(1) == dataset.test_labels) & (probs.max(1).values > 0.95)
    return int(good.nonzero()[0])


def wait_for(condition, timeout: float = 120.0, every: float = 0.01) -> None:
    """Wait until ``condition()`` holds, checking every ``every`` s; fail after a generous ``timeout``.

    The one way the tests wait for something another thread or process does: on a condition, never a clock.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not reached within {timeout:.0f} s"
        time.sleep(every)
