"""What the training-health monitor costs: training time with and without ``HealthMonitor``.

    python benchmarks/bench_health.py [--epochs 3] [--repeats 5] [--batch-size 128] [--threads 2]

The embedded MNIST sample, the tutorial's defaults (Descent 0.1), on ``--threads`` CPU threads (default: what a
trainer starts with, ``worker.trainer_threads()``; its tuner moves to fewer only on a busy machine). Runs without
the monitor, with it every ``health_every(batch)`` batches (as the trainer runs it) and with it on every
batch (the cost of one measurement) alternate, so a machine that gets busier slows all three alike. The
figures are the median training time (History.train_seconds: the loop alone, evaluation excluded) and the
median CPU time of the whole run (time.process_time), steadier on a machine shared with other work; and the
fastest run of each, the least disturbed one on a busy machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...`: the project's packages

from mnist_core.config import TrainConfig
from mnist_core.data import load_sample  # noqa: E402
from mnist_core.devices import resolve_device
from mnist_core.health import HealthMonitor, health_every  # noqa: E402
from mnist_core.train import train
from mnist_core.worker import trainer_threads  # noqa: E402


def print_costs(label: str, table: dict[str, list[float]], base_name: str, indent: str = "") -> None:
    """One line per variant: its median, how much more than ``base_name``'s (median, and fastest against
    fastest), and every measurement. Shared with bench_watch.py."""
    base = statistics.median(table[base_name])
    width = max(map(len, table))
    for name, values in table.items():
        med = statistics.median(values)
        runs = ", ".join(f"{v:.3f}" for v in values)
        low = min(values) / min(table[base_name]) - 1
        print(
            f"{indent}{label:>10} {name:>{width}}: median {med:.3f} ({med / base - 1:+.1%}; fastest {low:+.1%})  {runs}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=trainer_threads(), help="CPU threads (default: a trainer's)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (as TrainConfig.device)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_sample()
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=args.device)
    every = health_every(args.batch_size, resolve_device(args.device).type)  # what the trainer uses
    variants = {"without": None, f"every {every}": every, "every batch": 1}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    measured = 0
    train(config, dataset)  # warm-up: thread pool, kernels
    for _ in range(args.repeats):
        for name, k in variants.items():
            stats = []
            callbacks = [HealthMonitor(k, on_stats=stats.append)] if k else []
            t0 = time.process_time()
            trainer = train(config, dataset, callbacks)
            cpu[name].append(time.process_time() - t0)
            seconds[name].append(trainer.history.train_seconds)
            measured = max(measured, len(stats)) if k == every else measured
    steps = trainer.history.step
    threads = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    print(f"{args.epochs} epochs of the sample, batch {args.batch_size}, {steps} steps, {threads}, {trainer.device}")
    for label, table in (("training s", seconds), ("CPU s", cpu)):
        print_costs(label, table, "without")
        base = statistics.median(table["without"])
        one = (statistics.median(table["every batch"]) - base) / steps * 1000
        print(f"{label:>10}: one measurement costs about {one:.2f} ms; a step {base / steps * 1000:.2f} ms")
    print(f"every {every}: {measured} measurements per run")


if __name__ == "__main__":
    main()
