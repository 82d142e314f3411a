"""How many CPU threads a warm trainer trains with: the fastest count now, found while it trains.

On a CPU, PyTorch's OpenMP threads meet at a barrier in every operation, so a thread that loses its core
for a moment holds the others up. Whether the trainer is faster with every core or with fewer depends on
what else the machine does at the time, and that changes: on this project's 2-core box, with the Train page
watched in a browser on the same machine, 2 threads made 28,612 images/s and 1 thread 21,770
(``benchmarks/bench_live_chart.py --train-threads 1,2``); beside a busy loop, 2 threads made 10,712 and
1 thread 23,425. So no fixed count is right, and ``ThreadTuner`` measures instead: it trains a short window
with the current count, tries a neighbouring count (the next of 1, 2, 4, ... and the machine's cores) for a
window, keeps the faster, and looks again later (sooner when the speed drops, less often while the choice
holds). Exploring costs a short window at the slower count now and then: on a quiet machine, about 2% of
a short run and less of a long one.

The numbers a run computes do not depend on the count beyond floating-point rounding (a sum split across
threads is added in another order).
"""

from __future__ import annotations

import os
import sys
import time

import torch

from . import settings
from .train import Callback, Trainer

WINDOW_S = 0.5  # seconds of training measured per count, before comparing
# The first neighbour is tried once this much training was measured: not in a run's first second, while the
# page that started it redraws (a burst of CPU that would make every count look slow).
FIRST_LOOK_S = 1.5
LOOK_EVERY_S = (2.0, 60.0)  # between looks: from, growing 3x each time the choice holds, up to
CARRIED_LOOK_S = 10.0  # a run's first look comes at most this late, however sure the last run was
DROP = 0.7  # a window this much slower than the last at the same count: conditions changed, look again
# A neighbour must be this much faster to be chosen (the measurement is noisy): fewer threads by more, as
# a short burst of other work makes more threads look slow for a moment, where a busy neighbour halves them.
BETTER_FEWER, BETTER_MORE = 1.10, 1.03


def quota_cores(cgroup: str = "/sys/fs/cgroup") -> float | None:
    """A container's CPU quota in cores: cgroup v2 ``cpu.max``, else cgroup v1 ``cpu.cfs_quota_us``; None if none."""
    try:
        with open(f"{cgroup}/cpu.max") as limits:
            quota, period = limits.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    for folder in (f"{cgroup}/cpu", f"{cgroup}/cpu,cpuacct"):
        try:
            with open(f"{folder}/cpu.cfs_quota_us") as q, open(f"{folder}/cpu.cfs_period_us") as p:
                quota, period = int(q.read()), int(p.read())
            return None if quota <= 0 else quota / period
        except (OSError, ValueError):
            continue
    return None


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, and a container's CPU quota (cgroup v1 or v2) where
    one is set, which ``os.cpu_count()`` does not see."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = quota_cores()
    if quota is not None:
        cores = min(cores, max(1, round(quota)))
    return max(1, cores)


def fixed_threads() -> int | None:
    """``MNIST_TRAIN_THREADS``, where set to 1 or more: train with that many CPU threads. None (unset or 0):
    every entry point tunes its count while it trains (``ThreadTuner``)."""
    return settings.get("MNIST_TRAIN_THREADS") or None


class CpuLoad:
    """How busy the machine's other processes keep the CPU, from /proc/stat: read once, then again later, and
    the CPU time in between not spent by this process is theirs. Linux only (elsewhere: 0)."""

    def __init__(self) -> None:
        self.start = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float] | None:
        """(busy seconds of all cores, wall seconds, this process's CPU seconds), or None without /proc/stat."""
        try:
            with open("/proc/stat") as stat:
                fields = [int(v) for v in stat.readline().split()[1:8]]
        except (OSError, ValueError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        busy = (sum(fields) - fields[3] - fields[4]) / ticks  # all but idle and iowait
        return busy, time.monotonic(), time.process_time()

    def others(self) -> float:
        """Cores the other processes kept busy since this object was made, on average."""
        now = self._read()
        if self.start is None or now is None or now[1] - self.start[1] < 0.05:
            return 0.0
        busy = (now[0] - self.start[0]) - (now[2] - self.start[2])
        return max(0.0, busy / (now[1] - self.start[1]))


def starting_threads(load: CpuLoad | None = None) -> int:
    """The count a run starts with: ``fixed_threads()``, else the usable cores that ``load`` (measured while
    the run got ready: its data loading, its model) found free; at least 1. On a 2-core machine beside one
    busy process, 2 threads trained at 11% of their speed alone and 1 thread at 65% (docs/performance.md)."""
    if fixed := fixed_threads():
        return fixed
    cores = usable_cores()
    busy = round(load.others()) if load is not None else 0
    return max(1, cores - busy)


def run_threads(load: CpuLoad | None = None, after: ThreadTuner | None = None) -> list[Callback]:
    """One rule for every entry point that trains (CLI train, lr-find, tune, tune-worker; the warm trainer has
    its own tuner that carries over jobs): start from the free cores, then a ThreadTuner keeps the fastest
    count while the run trains; with ``MNIST_TRAIN_THREADS`` the count is fixed and nothing is tuned."""
    start = starting_threads(load)
    torch.set_num_threads(start)
    return [] if fixed_threads() else [ThreadTuner(start=start, after=after)]


def ladder(cores: int) -> list[int]:
    """The counts the tuner may choose among, fewest first: 1, 2, 4, ... up to ``cores`` (which is included)."""
    counts, n = [], 1
    while n < cores:
        counts.append(n)
        n *= 2
    return counts + [cores]


class ThreadTuner(Callback):
    """Sets ``torch.set_num_threads`` to the fastest count of ``counts`` (``ladder(usable_cores())``), measured
    on the run's own steps; starts at ``start`` (None: the most). Does nothing on a GPU or where there is one
    count only.

    Windows are measured in the run's training time (``History.train_seconds``: no pause, no evaluation), so
    they run on across epochs, however short. A run's first window is not counted (its first steps pay for
    warming up).

    ``after``, the tuner of the process's last run that tuned, carries what it learnt: its count (instead of
    ``start``) and how sure it was (the time between looks, the first look capped at ``CARRIED_LOOK_S``), so
    that a warm trainer's next run on a machine that has not changed does not pay for looking again at once.

    ``set_threads`` is for the tests. ``choices`` lists (step, count) each time the chosen count changes, the
    first entry being the starting count; ``tries`` counts the looks at a neighbour."""

    def __init__(
        self,
        counts: list[int] | None = None,
        start: int | None = None,
        after: ThreadTuner | None = None,
        set_threads=torch.set_num_threads,
    ) -> None:
        self.counts = sorted(set(counts or ladder(usable_cores())))
        self.learnt = (after.counts[after.home], after.look_every) if after is not None and after.active else None
        self.start = self.learnt[0] if self.learnt else start
        self.set_threads = set_threads
        self.active = False
        self.choices: list[tuple[int, int]] = []
        self.tries = 0

    def on_train_start(self, trainer: Trainer) -> None:
        self.active = trainer.device.type == "cpu" and len(self.counts) > 1
        if not self.active:
            return
        # index of the count in use: the start's, or the nearest below it
        self.at = max([0] + [i for i, n in enumerate(self.counts) if self.start is None or n <= self.start])
        self.home = self.at  # the count chosen; `at` differs from it while a neighbour is tried
        self.speed: dict[int, float] = {}  # images/s of the last window at each count
        self.measured = 0.0  # seconds of training measured so far (all counts)
        self.look_every = self.learnt[1] if self.learnt else LOOK_EVERY_S[0]
        self.next_look = max(FIRST_LOOK_S, min(CARRIED_LOOK_S, self.look_every) if self.learnt else 0.0)
        self.down = True  # which neighbour to try next, where both exist
        self.warm = False  # the first window is over
        self.set_threads(self.counts[self.at])
        self.choices.append((trainer.history.step, self.counts[self.at]))
        self._window_start(trainer)

    def _window_start(self, trainer: Trainer) -> None:
        self.seconds0, self.images0 = trainer.history.train_seconds, trainer.history.images_done

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        if not self.active:
            return
        h = trainer.history
        seconds = h.train_seconds - self.seconds0
        if seconds < WINDOW_S:
            return
        speed = (h.images_done - self.images0) / seconds
        self._window_start(trainer)
        if not self.warm:
            self.warm = True
            return
        count = self.counts[self.at]
        self.measured += seconds
        before = self.speed.get(count)
        self.speed[count] = speed
        if self.at != self.home:  # a neighbour was tried: keep it if it is faster
            better = BETTER_FEWER if count < self.counts[self.home] else BETTER_MORE
            if speed > better * self.speed.get(self.counts[self.home], 0.0):
                self.home = self.at
                self.choices.append((step, count))
                self.look_every = LOOK_EVERY_S[0]  # moved: see soon whether the next one is better still
            else:
                self.look_every = min(LOOK_EVERY_S[1], self.look_every * 3)
                self.down = not self.down  # try the other side next time, where there is one
                self.at = self.home
                self.set_threads(self.counts[self.home])
            self.next_look = self.measured + self.look_every
        elif self.measured >= self.next_look or (before is not None and speed < DROP * before):
            self.at = self._neighbour()
            self.tries += 1
            self.set_threads(self.counts[self.at])

    def on_train_end(self, trainer: Trainer) -> None:
        if not self.active:
            return
        self.at = self.home  # a run that ends while trying a count leaves the chosen one (lr-find, the saved label)
        self.set_threads(self.counts[self.home])
        if len(self.choices) > 1:  # in the server's log: what the machine's load made it do
            moves = ", ".join(f"{n} at step {step}" for step, n in self.choices[1:])
            print(f"thread counts: {self.choices[0][1]}, then {moves} ({self.tries} looks)", file=sys.stderr)

    def _neighbour(self) -> int:
        below, above = self.home - 1, self.home + 1
        if below < 0:
            return above
        if above >= len(self.counts):
            return below
        return below if self.down else above
