"""The worst a single visitor can cost this server, with the limits of mnist_core.settings (issue 22).

Run by hand, never by the tests:  python benchmarks/bench_visitor_cost.py [--seconds 3]

Prints, for the settings in the environment (their defaults unless set):
- trainer time per job: the slowest work a job may ask for (batch 8, the most images the budget allows),
  at the images/s this machine trains batch 8 at, capped by the time limit; beside it what the same visitor
  could ask before the budget (100 epochs, batch 8, the whole-train-set loss after every batch);
- queue places: how many jobs one address gets in line when every session comes without a cookie;
- disk: bytes stored by imports of the largest archive the schema accepts, from one address cycling owners,
  until the server refuses, and how long that took;
- memory per upload: the upload cap, and the peak Python memory (tracemalloc) of importing that archive.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `python benchmarks/...`: the project's packages
sys.path.insert(0, str(ROOT / "tests"))  # the largest accepted archive is built by the schema's tests

from mnist_core import settings  # noqa: E402
from mnist_core.config import TrainConfig, planned_images  # noqa: E402
from mnist_core.data import load_sample  # noqa: E402
from mnist_core.jobs import JobQueue, QueueError  # noqa: E402
from mnist_core.owners import owner_id  # noqa: E402
from mnist_core.run_archive import import_run  # noqa: E402
from mnist_core.run_schema import RunError  # noqa: E402
from mnist_core.train import Callback, Trainer  # noqa: E402


class StopAfter(Callback):
    def __init__(self, seconds: float) -> None:
        self.seconds, self.start = seconds, time.perf_counter()

    def on_batch_end(self, trainer, step, epoch, loss):
        if time.perf_counter() - self.start > self.seconds:
            trainer.stop()


def images_per_second(config: TrainConfig, seconds: float) -> float:
    dataset = load_sample()
    trainer = Trainer(config, dataset, callbacks=[StopAfter(seconds)])
    trainer.run()
    h = trainer.history
    return h.images_done / h.train_seconds


def trainer_time(seconds: float) -> None:
    most_images, most_s = settings.get("MNIST_MAX_JOB_IMAGES"), settings.get("MNIST_MAX_JOB_S")
    rate = images_per_second(TrainConfig(epochs=100, batch_size=8), seconds)
    worst = min(most_s, most_images / rate)
    print(f"trainer time per job: batch 8 trains {rate:,.0f} images/s here; the budget of {most_images:,} images")
    print(f"  takes {most_images / rate:,.0f} s at that rate; the time limit is {most_s:,.0f} s: worst {worst:,.0f} s")
    before = planned_images(TrainConfig(epochs=100, batch_size=8, record_every=1), 4_000, 1_000)
    print(f"  before the budget: 100 epochs, batch 8, recorder every batch = {sum(before.values()):,} images")


def queue_places() -> None:
    with tempfile.TemporaryDirectory() as runs:
        queue = JobQueue(root=runs, data_dir=runs)  # nothing trains: the jobs only wait
        accepted = 0
        try:
            for _ in range(100):
                queue.submit(TrainConfig(epochs=1), owner=secrets.token_urlsafe(32), address="203.0.113.9")
                accepted += 1
        except QueueError as exc:
            print(f"queue places: {accepted} jobs from one address of cookie-less sessions, then: {exc}")
        finally:
            queue.close()


def disk_and_memory() -> None:
    from test_run_schema import worst_files, zip_of

    archive = zip_of(worst_files(), folder="worst-run")
    with zipfile.ZipFile(io.BytesIO(archive)) as z:
        unpacked = sum(i.file_size for i in z.infolist())
    print("memory per upload: uploads are capped at 25 MiB (server.maxUploadSize); the largest accepted")
    with tempfile.TemporaryDirectory() as runs:
        tracemalloc.start()
        import_run(archive, root=runs, owner=owner_id("one"))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"  archive is {len(archive) / 1e6:.1f} MB ({unpacked / 1e6:.1f} MB unpacked); importing it peaks at")
        print(f"  {peak / 2**20:.0f} MiB of Python memory")
        budget = settings.get("MNIST_RUNS_DISK_MB") * 1e6
        start, written, imports, refused = time.perf_counter(), unpacked, 1, ""
        while written < 1.5 * budget and not refused:  # a new cookie each time: a new owner, never seen
            try:
                import_run(archive, root=runs, owner=owner_id(secrets.token_hex(8)))
                written, imports = written + unpacked, imports + 1
            except RunError as exc:
                refused = str(exc)
        took = time.perf_counter() - start
        total = sum(f.stat().st_size for f in Path(runs).rglob("*") if f.is_file())
    rate = written / took * 3600 / 1e9
    idle = settings.get("MNIST_IDLE_OWNER_S")
    print(f"disk: {imports} imports wrote {written / 1e6:,.0f} MB in {took:.1f} s ({rate:,.0f} GB/h of writes)")
    print(f"  on disk at the end: {total / 1e6:,.0f} MB, the server's budget {budget / 1e6:,.0f} MB (oldest runs of")
    print(f"  owners not seen for {idle:,.0f} s went first)" + (f"; refused: {refused}" if refused else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long to measure batch 8's speed")
    parser.add_argument("--disk-mb", type=float, help="MNIST_RUNS_DISK_MB for this measurement (a quicker run)")
    args = parser.parse_args()
    if args.disk_mb:
        os.environ["MNIST_RUNS_DISK_MB"] = str(args.disk_mb)
    trainer_time(args.seconds)
    queue_places()
    disk_and_memory()


if __name__ == "__main__":
    main()
