"""The GPU check of the live loop, in one short script (it runs on a CPU too, and says so).

Run by hand:  python benchmarks/bench_device.py [--device auto] [--data-dir PATH]

With MNIST's four IDX files in ``--data-dir`` it uses them; otherwise synthetic data of MNIST's
shape (60,000 + 10,000 random digits, labels from a fixed rule so the loss can fall). Prints:
- one epoch of 60,000 images at batch 128 (median of 3, after a warm-up epoch), on CUDA both eager and with
  the step replayed from a CUDA graph (the default there);
- 10 epochs plus the evaluation of the test set after each (the tutorial's defaults);
- the time from a job's submission to its first loss with a warm trainer (the real JobQueue and its
  training process), median of 5 jobs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere, the package not installed
from mnist_core.config import TrainConfig
from mnist_core.data import DATASETS, Dataset, load_idx_folder  # noqa: E402
from mnist_core.devices import device_label, resolve_device
from mnist_core.jobs import JobQueue  # noqa: E402
from mnist_core.train import Trainer


def synthetic(n_train: int = 60_000, n_test: int = 10_000) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_train + n_test, 28, 28), dtype=torch.uint8, generator=gen)
    labels = (images[:, 10:18, 10:18].float().mean((1, 2)) // 25.6).long().clamp(0, 9)  # learnable
    return Dataset(
        "mnist", "synthetic", "local", images[:n_train], labels[:n_train], images[n_train:], labels[n_train:],
        DATASETS["mnist"],
    )  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def write_idx_folder(dataset: Dataset, folder: Path) -> None:
    import struct

    for name, array in (
        ("train-images-idx3-ubyte", dataset.train_images.numpy()),
        ("train-labels-idx1-ubyte", dataset.train_labels.numpy().astype(np.uint8)),
        ("t10k-images-idx3-ubyte", dataset.test_images.numpy()),
        ("t10k-labels-idx1-ubyte", dataset.test_labels.numpy().astype(np.uint8)),
    ):
        magic = 2051 if array.ndim == 3 else 2049
        header = struct.pack(">i", magic) + struct.pack(f">{array.ndim}i", *array.shape)
        (folder / name).write_bytes(header + array.astype(np.uint8).tobytes())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--jobs", type=int, default=5)
    args = parser.parse_args()
    device = resolve_device(args.device)
    dataset = load_idx_folder(args.data_dir) if args.data_dir else synthetic()
    print(f"device: {device_label(device)}; data: {dataset.describe()}", flush=True)

    for graph in (False, True) if device.type == "cuda" else (False,):
        epoch_times = []
        for i in range(4):  # the first is warm-up (cuDNN autotuning, kernel loading)
            trainer = Trainer(TrainConfig(epochs=1, batch_size=128, device=args.device), dataset)
            trainer.use_graph = graph
            sync(device)
            trainer.run()
            sync(device)
            if i:
                epoch_times.append(trainer.history.train_seconds)
        how = "CUDA graph of the step" if graph else "eager, op by op"
        median = statistics.median(epoch_times)
        print(f"one epoch of {dataset.n_train:,} at batch 128 ({how}): median {median:.3f} s", flush=True)

    if trainer._graph is not None and trainer._graph.graph is not None:  # the floor: replays alone, no loop
        graph, perm = trainer._graph, torch.randperm(dataset.n_train, device=device)
        sync(device)
        t0 = time.perf_counter()
        for start in range(0, dataset.n_train - 127, 128):
            graph.step(perm[start : start + 128])
        sync(device)
        print(f"  of which replays alone (468 steps): {time.perf_counter() - t0:.3f} s", flush=True)

    t0 = time.perf_counter()
    trainer = Trainer(TrainConfig(epochs=10, batch_size=128, device=args.device), dataset)
    trainer.run()
    sync(device)
    total = time.perf_counter() - t0
    acc = trainer.history.epochs[-1].test_acc
    print(f"10 epochs + evaluation after each: {total:.2f} s (test accuracy {acc:.2%})", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.data_dir) if args.data_dir else Path(tmp) / "data"
        if not args.data_dir:
            folder.mkdir()
            write_idx_folder(dataset, folder)
        queue = JobQueue(root=Path(tmp) / "runs", data_dir=folder, allow_download=False)
        try:
            queue.wait_warm()
            waits = []
            for seed in range(args.jobs):
                t0 = time.perf_counter()
                job = queue.submit(TrainConfig(epochs=1, batch_size=128, seed=seed, device=args.device), owner="b")
                while job.history is None or not job.history.batch_losses:
                    if job.done:
                        raise SystemExit(f"job failed: {job.message}")
                    time.sleep(0.001)
                waits.append(time.perf_counter() - t0)
                queue.stop(job.id, "b")
                queue.wait_idle()
            print(
                f"submit -> first loss with a warm trainer: median {statistics.median(waits) * 1000:.0f} ms", flush=True
            )
        finally:
            queue.close()


if __name__ == "__main__":
    main()
