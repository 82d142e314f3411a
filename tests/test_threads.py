"""The warm trainer's thread count: ThreadTuner keeps the fastest count as the machine's load changes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import mnist_core.threads as threads
from mnist_core.config import TrainConfig
from mnist_core.threads import ThreadTuner, ladder, usable_cores
from mnist_core.train import Trainer

BATCH = 128
ROOT = Path(__file__).resolve().parents[1]


class Machine:
    """A pretend CPU: how many images/s each thread count makes, which the test may change mid-run."""

    def __init__(self, speeds: dict[int, float]) -> None:
        self.speeds = speeds
        self.now = 0.0  # training time: what History.train_seconds counts
        self.threads = None
        self.seconds_at: dict[int, float] = {}

    def set_threads(self, n: int) -> None:
        self.threads = n


def pretend_trainer(device: str = "cpu") -> SimpleNamespace:
    history = SimpleNamespace(step=0, images_done=0, train_seconds=0.0)
    return SimpleNamespace(device=SimpleNamespace(type=device), history=history)


def chosen(tuner: ThreadTuner) -> int:
    """The count the tuner holds as fastest (a look at a neighbour may be under way)."""
    return tuner.counts[tuner.home]


def train(tuner: ThreadTuner, machine: Machine, seconds: float, trainer=None, on_step=None, epoch_steps=None):
    """Steps of BATCH images until ``seconds`` of pretend training time passed; the time a step takes follows
    the count the tuner set; an epoch ends every ``epoch_steps`` steps. Returns the pretend trainer."""
    if trainer is None:
        trainer = pretend_trainer()
        tuner.on_train_start(trainer)
    end = machine.now + seconds
    while machine.now < end:
        took = BATCH / machine.speeds[machine.threads]
        machine.now += took
        machine.seconds_at[machine.threads] = machine.seconds_at.get(machine.threads, 0.0) + took
        h = trainer.history
        h.step += 1
        h.images_done += BATCH
        h.train_seconds += took
        tuner.on_batch_end(trainer, h.step, 1, 0.5)
        if epoch_steps and h.step % epoch_steps == 0:
            tuner.on_epoch_end(trainer, None)
        if on_step:
            on_step(trainer)
    return trainer


def test_ladder_halves_down_to_one_thread():
    assert ladder(1) == [1]
    assert ladder(2) == [1, 2]
    assert ladder(6) == [1, 2, 4, 6]
    assert ladder(8) == [1, 2, 4, 8]
    assert 1 <= usable_cores()


def test_a_quiet_machine_keeps_every_core_and_pays_little_for_looking():
    machine = Machine({1: 20_000, 2: 30_000})
    tuner = ThreadTuner(counts=[1, 2], set_threads=machine.set_threads)
    train(tuner, machine, 60)
    assert chosen(tuner) == 2
    assert tuner.choices == [(0, 2)]
    assert tuner.tries >= 2  # it did look at the other count
    assert machine.seconds_at[1] / 60 < 0.03  # and only briefly: about 1% of a minute's run


def test_a_busy_machine_moves_to_fewer_threads():
    # measured beside a busy loop on this 2-core box: 2 threads 10,712 images/s, 1 thread 23,425
    machine = Machine({1: 23_425, 2: 10_712})
    tuner = ThreadTuner(counts=[1, 2], set_threads=machine.set_threads)
    train(tuner, machine, 30)
    assert chosen(tuner) == 1
    # the run's start at 2 threads and three looks back (2, 6 and 18 s apart)
    assert machine.seconds_at[2] < threads.FIRST_LOOK_S + 4 * threads.WINDOW_S


def test_it_follows_the_machine_when_the_load_changes():
    machine = Machine({1: 20_000, 2: 30_000})
    tuner = ThreadTuner(counts=[1, 2], set_threads=machine.set_threads)
    trainer = train(tuner, machine, 120)  # long enough that it looks only once a minute
    assert chosen(tuner) == 2
    machine.speeds = {1: 23_000, 2: 10_000}  # a busy neighbour starts
    changed_at = machine.now
    moved = []
    train(tuner, machine, 30, trainer, on_step=lambda t: moved.append(machine.now) if machine.threads == 1 else None)
    assert chosen(tuner) == 1
    assert moved[0] - changed_at < 2  # the drop in speed made it look at once, not a minute later
    machine.speeds = {1: 20_000, 2: 30_000}  # quiet again: it comes back to every core at its next look
    train(tuner, machine, 120, trainer)
    assert chosen(tuner) == 2


def test_it_climbs_down_a_ladder_of_counts():
    # a container whose quota is 2 cores on a 16-core host: 16 and 8 threads crawl
    machine = Machine({1: 15_000, 2: 28_000, 4: 20_000, 8: 9_000, 16: 4_000})
    tuner = ThreadTuner(counts=ladder(16), set_threads=machine.set_threads)
    train(tuner, machine, 60)
    assert chosen(tuner) == 2


def test_starts_from_the_count_given():
    machine = Machine({1: 20_000, 2: 30_000, 4: 10_000})
    tuner = ThreadTuner(counts=[1, 2, 4], start=3, set_threads=machine.set_threads)
    train(tuner, machine, 0.1)
    assert tuner.choices[0] == (0, 2)  # the nearest count below


def test_the_time_a_run_waits_is_not_measured():
    machine = Machine({1: 20_000, 2: 30_000})
    tuner = ThreadTuner(counts=[1, 2], set_threads=machine.set_threads)
    trainer = train(tuner, machine, 0.6)  # the first window, not counted
    tuner.on_pause(trainer, True)  # paused (or evaluating) for a minute: the run's training time stands still
    tuner.on_pause(trainer, False)
    train(tuner, machine, threads.WINDOW_S + 0.1, trainer)
    assert tuner.speed[2] == pytest.approx(30_000, rel=0.01)


def test_short_epochs_are_measured_across_their_ends():
    # the embedded sample: 31 steps an epoch, a fraction of a second each on a busy machine
    machine = Machine({1: 23_425, 2: 10_712})
    tuner = ThreadTuner(counts=[1, 2], set_threads=machine.set_threads)
    train(tuner, machine, 30, epoch_steps=31)
    assert chosen(tuner) == 1
    assert tuner.speed == {1: pytest.approx(23_425, rel=0.02), 2: pytest.approx(10_712, rel=0.02)}


def test_a_run_that_ends_while_trying_a_count_leaves_the_chosen_one():
    machine = Machine({1: 20_000, 2: 30_000})
    tuner = ThreadTuner(counts=[1, 2], set_threads=machine.set_threads)
    trainer = train(tuner, machine, 2.1)  # ends inside its first look at 1 thread
    assert machine.threads == 1
    tuner.on_train_end(trainer)
    assert machine.threads == 2


def test_does_nothing_on_a_gpu():
    machine = Machine({1: 20_000, 2: 30_000})
    machine.threads = 2
    tuner = ThreadTuner(counts=[1, 2], set_threads=lambda n: pytest.fail("set on a GPU"))
    trainer = pretend_trainer("cuda")
    tuner.on_train_start(trainer)
    train(tuner, machine, 5, trainer)
    assert tuner.choices == []


def test_a_real_run_with_the_tuner_learns_what_a_run_without_it_learns(sample, monkeypatch):
    import torch

    # windows of a few steps, so that this short run changes its count many times
    monkeypatch.setattr(threads, "WINDOW_S", 0.005)
    monkeypatch.setattr(threads, "FIRST_LOOK_S", 0.01)
    monkeypatch.setattr(threads, "LOOK_EVERY_S", (0.01, 0.01))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        plain = Trainer(TrainConfig(epochs=2), sample)
        plain.run()
        tuner = ThreadTuner(counts=[1, 2])
        tuned = Trainer(TrainConfig(epochs=2), sample, callbacks=[tuner])
        tuned.run()
        assert tuned.history.status == "finished"
        assert tuner.choices[0] == (0, 2)
        assert tuner.tries >= 1  # it did change counts mid-run (how often depends on this machine's speed)
        assert torch.get_num_threads() == tuner.choices[-1][1]
        # the same run, up to the rounding of sums split across another number of threads
        assert tuned.history.batch_losses == pytest.approx(plain.history.batch_losses, rel=1e-4)
        assert tuned.history.epochs[-1].test_loss == pytest.approx(plain.history.epochs[-1].test_loss, rel=1e-4)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("tune", [True, False])
def test_a_warm_trainer_tunes_its_threads_unless_told_a_count(sample, tmp_path, monkeypatch, tune):
    import io

    import torch

    import mnist_core.worker as worker
    from mnist_core import protocol as p
    from mnist_core.train import RunControl

    made = []

    class Recorded(ThreadTuner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(worker, "ThreadTuner", Recorded)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        process = worker.WarmProcess(io.StringIO(), tune_threads=tune)
        process.datasets[("mnist", None)] = sample
        job = p.Job(job_id="job-1", config=TrainConfig(epochs=1).to_dict(), root=str(tmp_path))
        assert process.run_job(job, RunControl()) == "finished"
    finally:
        torch.set_num_threads(before)
    assert len(made) == (1 if tune else 0)
    if tune and len(made[0].counts) > 1:
        assert made[0].choices[0][1] == min(2, max(made[0].counts))  # from the count the process had
    elif tune:  # a 1-core machine: nothing to choose
        assert made[0].choices == []


def test_the_next_run_starts_from_what_the_last_one_learnt():
    machine = Machine({1: 23_425, 2: 10_712})
    first = ThreadTuner(counts=[1, 2], set_threads=machine.set_threads)
    train(first, machine, 60)
    assert chosen(first) == 1
    machine.seconds_at.clear()
    second = ThreadTuner(counts=[1, 2], after=first, set_threads=machine.set_threads)
    train(second, machine, threads.CARRIED_LOOK_S - 1)
    assert second.choices[0][1] == 1  # no second start at every core
    assert 2 not in machine.seconds_at  # and, as sure as the first run ended, no look for a while
    machine.speeds = {1: 20_000, 2: 30_000}  # the machine got quiet between runs: the next run looks soon enough
    third = ThreadTuner(counts=[1, 2], after=second, set_threads=machine.set_threads)
    train(third, machine, threads.CARRIED_LOOK_S + 2 * threads.WINDOW_S + 1)
    assert chosen(third) == 2


# Runs on Linux, CI included; elsewhere a nice value is the whole process's and os.nice is all there is.
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread niceness is Linux's (/proc/self/task)")
def test_the_trainer_process_yields_to_the_server_in_every_thread():
    code = """
import os, threading
from mnist_core.worker import lower_priority
base = os.getpriority(os.PRIO_PROCESS, 0)
ready, done = threading.Event(), threading.Event()  # the threads live until the process ends
threading.Thread(target=lambda: (ready.set(), done.wait()), daemon=True).start()  # a thread from before
ready.wait()
lower_priority()
threading.Thread(target=done.wait, daemon=True).start()  # and one made after
print(base, sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}))
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_TRAIN_NICE": "3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    base, nices = out.split(" ", 1)
    assert nices.strip() == f"[{min(19, int(base) + 3)}]"  # every thread, the main one too
