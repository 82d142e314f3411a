"""What the training-health monitor costs: training time with and without ``HealthMonitor``.

    python benchmarks/bench_health.py [--epochs 3] [--repeats 5] [--batch-size 128]

The embedded MNIST sample, the tutorial's defaults (Descent 0.1), one thread (as a trainer next to the web
server runs). Runs without the monitor, with it every ``HEALTH_EVERY`` batches, and with it on every batch
(the cost of one measurement) alternate, so a machine that gets busier slows all three alike; the figure
is the median training time (History.train_seconds: the loop alone, evaluation excluded) of each.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from mnist_core.data import load_sample
from mnist_core.health import HEALTH_EVERY, HealthMonitor
from mnist_core.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = load_sample()
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size)
    variants = {"without": None, f"every {HEALTH_EVERY}": HEALTH_EVERY, "every batch": 1}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    measured = 0
    train(TrainConfig(epochs=1, batch_size=args.batch_size), dataset)  # warm-up: thread pool, kernels
    for _ in range(args.repeats):
        for name, every in variants.items():
            stats = []
            callbacks = [HealthMonitor(every, on_stats=stats.append)] if every else []
            trainer = train(config, dataset, callbacks)
            seconds[name].append(trainer.history.train_seconds)
            measured = max(measured, len(stats)) if every == HEALTH_EVERY else measured
    base = statistics.median(seconds["without"])
    steps = trainer.history.step
    print(f"{args.epochs} epochs of the embedded sample, batch {args.batch_size}, {steps} steps, 1 thread")
    for name, values in seconds.items():
        med = statistics.median(values)
        runs = ", ".join(f"{v:.3f}" for v in values)
        print(f"{name:>12}: median {med:.3f} s ({(med / base - 1) * 100:+.1f}%)  runs: {runs}")
    every_batch = statistics.median(seconds["every batch"])
    one = (every_batch - base) / steps * 1000
    print(f"one measurement costs about {one:.2f} ms; a step {base / steps * 1000:.2f} ms")
    print(f"every {HEALTH_EVERY}: {measured} measurements per run")


if __name__ == "__main__":
    main()
