"""The tweak loop without a browser: a run, then the next one the moment it ends, through the queue (issue 25).

Run by hand, never by the tests:  python benchmarks/bench_restart.py [--runs 10] [--no-watch] [--feed]

Submits the tutorial's defaults on the embedded sample as the Train page does (a watched test digit, the
data set's sizes; with ``--feed`` a live feed folder too), waits until the job is done, and submits the next
at once. Prints, per run, the time from submit to the first loss in the server's mirror, and the trainer
process's CPU seconds from the end of one run to the first loss of the next (work it did after "Finished"
or before the next run's first batch); then the median and the worst.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnist_core.config import TrainConfig
from mnist_core.feed import Feed  # noqa: E402
from mnist_core.jobs import JobQueue  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-watch", action="store_true", help="no watched digit")
    parser.add_argument("--feed", action="store_true", help="write live feeds, as the app does")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-restart-"))
    feed = Feed(scratch / "feed", "feed") if args.feed else None
    queue = JobQueue(root=scratch / "runs", feed=feed, allow_download=False)
    firsts, after_cpu = [], []
    try:
        assert queue.wait_warm(timeout=300)
        pid = queue.trainers[0].pid
        ended_cpu = None
        for i in range(args.runs):
            pid = queue.trainers[0].pid if queue.trainers[0] is not None else pid
            t0 = time.perf_counter()
            job = queue.submit(TrainConfig(), owner=f"o{i}", watch=None if args.no_watch else 0, sizes=(5_000, 1_000))
            while job.history is None or job.history.step == 0:
                if job.done:
                    break
                time.sleep(0.001)
            firsts.append(time.perf_counter() - t0)
            if ended_cpu is not None:
                after_cpu.append(cpu_seconds(pid) - ended_cpu)
            while not job.done:
                time.sleep(0.001)
            ended_cpu = cpu_seconds(pid)
            extra = f", trainer CPU since the last run ended {after_cpu[-1]:.2f} s" if after_cpu else ""
            print(f"run {i + 1}: first loss {firsts[-1] * 1000:.0f} ms after submit ({job.outcome}){extra}", flush=True)
    finally:
        queue.close()
    print(f"first loss: median {statistics.median(firsts) * 1000:.0f} ms, worst {max(firsts) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
