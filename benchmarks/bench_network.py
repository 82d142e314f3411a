"""Networks other than the tutorial's, on this machine: accuracy and time per epoch.

Run by hand, never by the tests:
    python benchmarks/bench_network.py [--epochs 10] [--data-dir FOLDER]

On the embedded MNIST sample (or an MNIST folder of four IDX files): the tutorial's defaults; 16,32,64,64 with tanh
and ADAM at lr 0.003; and the slowest network the knobs allow (256 channels in every conv layer, batch norm, gelu)
for one epoch. Prints parameters, test accuracy and the median epoch time of each, beside the Train page's
estimate made before the run (``estimate_epoch_seconds``, at the same thread count).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mnist_core.config import MAX_WIDTH, TrainConfig  # noqa: E402
from mnist_core.data import load_idx_folder, load_sample  # noqa: E402
from mnist_core.model import build_model, count_parameters  # noqa: E402
from mnist_core.train import estimate_epoch_seconds, train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--data-dir", type=Path, help="a folder of the four MNIST IDX files (default: the sample)")
    args = parser.parse_args()
    dataset = load_idx_folder(args.data_dir, "mnist") if args.data_dir else load_sample()
    widest = ",".join([str(MAX_WIDTH)] * 4)
    cases = [
        ("the tutorial's Chain (Descent 0.1)", TrainConfig(epochs=args.epochs)),
        (
            "16,32,64,64 + tanh (ADAM 0.003)",
            TrainConfig(epochs=args.epochs, channels="16,32,64,64", activation="tanh", optimiser="ADAM", lr=0.003),
        ),
        (f"{widest} + batch norm + gelu (ADAM 0.003)",
         TrainConfig(epochs=1, channels=widest, activation="gelu", batch_norm=True, optimiser="ADAM", lr=0.003)),
    ]  # fmt: skip
    print(dataset.describe())
    for name, config in cases:
        params = count_parameters(build_model(**config.network()))
        estimate = estimate_epoch_seconds(config, dataset.n_train)
        h = train(config, dataset).history
        seconds = statistics.median(e.seconds for e in h.epochs)
        print(
            f"{name}: {params:,} parameters, {len(h.epochs)} epoch(s), test accuracy {h.epochs[-1].test_acc:.2%}, "
            f"{seconds:.2f} s per epoch ({h.images_per_sec:,.0f} images/s); estimated beforehand {estimate:.2f} s"
        )


if __name__ == "__main__":
    main()
