"""Speed of the training engine against the usual torchvision Dataset + DataLoader pipeline.

Run by hand, never by the tests:  python benchmarks/bench_engine.py [--dataset fashion-mnist] [--epochs 3]

Offline it uses Debian's full Fashion-MNIST (same shapes as MNIST). Prints, side by side in the
same run: epoch time of the engine (median), of the engine with a per-batch loss callback, of a
DataLoader pipeline with the same model, the evaluation time of the 10,000 test images, and the
accuracy the tutorial's defaults (Descent 0.1, 10 epochs, batch 128) reach.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...`: the project's packages

from mnist_core.config import TrainConfig
from mnist_core.data import DEBIAN_FASHION_DIR, FILES, load_dataset, load_sample  # noqa: E402
from mnist_core.model import as_input, build_model  # noqa: E402
from mnist_core.report import build_report  # noqa: E402
from mnist_core.train import Callback, Trainer, evaluate


class KeepLosses(Callback):
    """What a live chart needs: every batch's loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_batch_end(self, trainer, step, epoch, loss):
        self.losses.append(loss)


def engine_epochs(dataset, epochs: int, callbacks=()) -> list[float]:
    trainer = Trainer(TrainConfig(dataset=dataset.name, epochs=epochs), dataset, callbacks=list(callbacks))
    trainer.run()
    return [e.seconds for e in trainer.history.epochs]


def dataloader_epochs(dataset_name: str, epochs: int) -> list[float]:
    """The pytorch/examples way: torchvision dataset, ToTensor + Normalize, DataLoader(shuffle=True)."""
    from torchvision import datasets, transforms

    tmp = Path(tempfile.mkdtemp())
    sub = "FashionMNIST" if dataset_name == "fashion-mnist" else "MNIST"
    raw = tmp / sub / "raw"
    raw.mkdir(parents=True)
    for stem in FILES.values():
        src = DEBIAN_FASHION_DIR / (stem + ".gz")
        with gzip.open(src) as f, open(raw / stem, "wb") as g:
            shutil.copyfileobj(f, g)
    cls = datasets.FashionMNIST if dataset_name == "fashion-mnist" else datasets.MNIST
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    train_set = cls(str(tmp), train=True, download=False, transform=transform)
    loader = torch.utils.data.DataLoader(train_set, batch_size=128, shuffle=True, num_workers=0)
    model = build_model(seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    times = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        for x, y in loader:
            opt.zero_grad()
            loss = F.cross_entropy(model.logits(x), y)
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    shutil.rmtree(tmp)
    return times


def eval_times(dataset, repeats: int = 7) -> list[float]:
    trainer = Trainer(TrainConfig(dataset=dataset.name, epochs=1), dataset)
    x, y = as_input(dataset.test_images, trainer.device), dataset.test_labels.to(trainer.device)
    evaluate(trainer.model, x, y)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        evaluate(trainer.model, x, y)
        times.append(time.perf_counter() - t0)
    return times


def tutorial_accuracy(dataset) -> tuple[float, float, float]:
    trainer = Trainer(TrainConfig(dataset=dataset.name), dataset)  # the tutorial's defaults
    trainer.run()
    report = build_report(trainer.model, dataset)
    return report.train_acc, report.test_acc, trainer.history.train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "mnist"])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timing")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset, allow_download=False)
    print(f"{dataset.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads")

    engine = engine_epochs(dataset, args.epochs)
    with_cb = engine_epochs(dataset, args.epochs, [KeepLosses()])
    baseline = dataloader_epochs(args.dataset, args.epochs)
    evals = eval_times(dataset)
    med = statistics.median
    print(f"engine epoch           median {med(engine):.3f} s  {[round(t, 3) for t in engine]}")
    print(f"engine + loss callback median {med(with_cb):.3f} s  overhead {med(with_cb) / med(engine) - 1:+.1%}")
    print(f"DataLoader pipeline    median {med(baseline):.3f} s  {[round(t, 3) for t in baseline]}")
    print(f"speed-up over DataLoader        {med(baseline) / med(engine):.2f}x")
    print(f"evaluate {dataset.n_test:,} images   median {med(evals) * 1000:.1f} ms")
    if not args.skip_accuracy:
        for ds in (dataset, load_sample()):
            train_acc, test_acc, seconds = tutorial_accuracy(ds)
            print(f"tutorial defaults on {ds.title}: train {train_acc:.2%}, test {test_acc:.2%} ({seconds:.1f} s)")


if __name__ == "__main__":
    main()
