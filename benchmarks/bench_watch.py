"""Watching a digit while it trains: how often a view arrives, what the watching costs, what snapshots weigh.

    python benchmarks/bench_watch.py [--epochs 10] [--repeats 5]

1. Cost, in this process, one thread, the embedded sample and the tutorial's defaults: training time
   (History.train_seconds, wall clock) and the CPU time of the whole run (time.process_time: on a machine
   shared with other work, the steadier figure) of a bare run, of a run with what the trainer now adds to
   every job (the health monitor and the snapshot recorder) and of one that also watches a digit (a view
   every 0.3 s, encoded as for the wire), alternating. The fastest of each is compared too: on a busy
   machine, the least disturbed run.
2. Rate, through the real queue and its warm trainer: Watch messages per second of training for a job that
   watches test digit 0 (each new view seen by polling ``job.watch`` every 5 ms; views come >= 0.3 s apart).
3. Disk: the saved run's files with and without snapshots.safetensors.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_health import print_costs  # the same cost table (benchmarks/ is this script's folder)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...`: the project's packages

from mnist_core.config import TrainConfig
from mnist_core.data import load_sample  # noqa: E402
from mnist_core.health import HealthMonitor  # noqa: E402
from mnist_core.jobs import JobQueue  # noqa: E402
from mnist_core.train import train
from mnist_core.watch import DigitWatcher, SnapshotRecorder  # noqa: E402


def cost(config: TrainConfig, repeats: int) -> None:
    dataset = load_sample()
    image = dataset.test_images[0]
    variants = {
        "bare": lambda: [],
        "health + snapshots": lambda: [HealthMonitor(), SnapshotRecorder()],
        "+ watching a digit": lambda: [
            HealthMonitor(),
            SnapshotRecorder(),
            DigitWatcher(image, lambda view: view.to_message()),  # encoded as for the wire
        ],
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    train(TrainConfig(epochs=1, device=config.device), dataset)  # warm-up: thread pool, kernels
    for _ in range(repeats):
        for name, callbacks in variants.items():
            t0 = time.process_time()
            seconds[name].append(train(config, dataset, callbacks()).history.train_seconds)
            cpu[name].append(time.process_time() - t0)
    print(f"1. cost: {config.epochs} epochs of the sample, batch {config.batch_size}, 1 thread, {config.device}")
    for label, table in (("training s", seconds), ("CPU s", cpu)):
        print_costs(label, table, "bare", indent="   ")


def rate_and_disk(config: TrainConfig, repeats: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    queue = JobQueue(root=root / "runs", max_concurrent=1, allow_download=False)
    try:
        assert queue.wait_warm(timeout=300), "the trainer did not warm up"
        rates, views_per_run = [], []
        for i in range(repeats):
            job = queue.submit(config, owner=f"bench-{i}", watch=0)
            seen, last = 0, None
            while not job.done:
                if job.watch is not None and job.watch is not last:
                    seen, last = seen + 1, job.watch
                time.sleep(0.005)
            if job.watch is not last:
                seen += 1
            train_s = job.history.train_seconds
            rates.append(seen / train_s)
            views_per_run.append(seen)
        print(
            f"2. rate through the queue: {statistics.median(views_per_run)} views per run of "
            f"{train_s:.2f} s training; Watch messages per second: median {statistics.median(rates):.2f} "
            f"(runs: {', '.join(f'{r:.2f}' for r in rates)})"
        )
        files = {f.name: f.stat().st_size for f in job.run_dir.iterdir()}
        snapshots = files.pop("snapshots.safetensors", 0)
        before = sum(files.values())
        sizes = ", ".join(f"{k} {v:,}" for k, v in files.items())
        print(f"3. disk: the run without snapshots {before:,} bytes ({sizes})")
        print(f"   snapshots.safetensors {snapshots:,} bytes: +{snapshots / before:.0%}")
    finally:
        queue.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (as TrainConfig.device)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = TrainConfig(epochs=args.epochs, device=args.device)
    cost(config, args.repeats)
    rate_and_disk(config, args.repeats)


if __name__ == "__main__":
    main()
