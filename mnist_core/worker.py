"""The training process: ``python -m mnist_core.worker``, kept warm by ``jobs.JobQueue``.

It imports torch and loads the data sets it is told to preload *before* any job arrives, says
``Ready``, and then trains one ``Job`` after another, each saved to its run folder by this process
(so a closed tab loses nothing), with its weight snapshots (``watch.SnapshotRecorder``). While a job
trains, ``Control`` lines steer it (stop, pause, resume, step, new learning rate or momentum) from the next
batch on; the layers' health goes back every few batches (``Health``) and, if the job names a digit to
watch, that digit's maps and probabilities a few times a second (``Watch``), and once the run is saved the
digit at each of its saved steps (``Replay``). Every message is defined in
``protocol.py``; they travel as JSON lines on stdin and on the original stdout, which is kept for
the protocol alone (``print`` from any library goes to stderr instead).

A job leaves nothing behind in the process: the trainer seeds its own generators, builds a new
model and optimiser, and drops them when it ends. After ``RECYCLE_AFTER`` jobs the process exits
anyway and the queue starts a fresh one, so a slow leak cannot grow without bound. If stdin
closes (the server went away) the running job is saved as "interrupted" and the process ends.
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TextIO

import torch

from . import protocol as p
from . import settings
from .config import TrainConfig
from .data import DATASETS, Dataset, load_dataset
from .health import HealthMonitor, HealthStats
from .history import EpochMetrics
from .i18n import N_, _
from .lr_find import SUGGESTION_RULE, lr_find
from .outcomes import Ending
from .runs import finish_run, save_run
from .threads import ThreadTuner, fixed_threads, usable_cores
from .train import Budget, Callback, RunControl, StepClock, Trainer
from .watch import DigitView, DigitWatcher, SnapshotRecorder, digit_image, replay

SEND_EVERY_S = 0.1  # how often new losses are sent; the first loss of a run goes at once
CHECKPOINT_EVERY_S = 5.0  # at an epoch end, the run folder is written if the last write is older than this
RECYCLE_AFTER = 25  # jobs per process
# A job's messages are saved (run.json, the queue's Job) and read back later, so they are made in English (N_): a
# page shows them through i18n.stored(), which translates them, values and all.
NOTHING_TRAINED = N_("Stopped before training began; nothing was trained.")


class Sender(Callback):
    """Streams a run's progress: losses in chunks, epochs, knob changes, pauses."""

    def __init__(self, send, checkpoint=None) -> None:
        self.send = send
        self.checkpoint = checkpoint  # called at epoch ends and pauses, with the trainer and whether to report
        self.losses: list[float] = []
        self.sent = 0  # losses sent so far; steps are numbered 1, 2, ... in order
        self.full_sent = 0
        self.last = 0.0
        self.last_checkpoint = time.monotonic()

    def on_train_start(self, trainer: Trainer) -> None:
        h = trainer.history
        self.send(
            p.Start(
                total_steps=h.total_steps,
                steps_per_epoch=h.steps_per_epoch,
                started_at=h.started_at,
                lr=trainer.lr,
                momentum=trainer.momentum,
            )
        )

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        self.losses.append(loss)
        if self.sent == 0 or time.monotonic() - self.last >= SEND_EVERY_S:
            self.flush(trainer)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self.flush(trainer)
        self.send(p.Epoch(metrics=asdict(metrics)))
        if self.checkpoint and time.monotonic() - self.last_checkpoint >= CHECKPOINT_EVERY_S:
            self.checkpoint(trainer, False)
            self.last_checkpoint = time.monotonic()

    def on_pause(self, trainer: Trainer, paused: bool) -> None:
        self.flush(trainer)
        self.send(p.State(paused=paused, step=trainer.history.step))
        if paused and self.checkpoint and not trainer.control.stop_event.is_set():
            self.checkpoint(trainer, True)  # the paused model can be reported on
            self.last_checkpoint = time.monotonic()

    def on_knobs(self, trainer: Trainer, step: int, lr: float, momentum: float | None) -> None:
        self.flush(trainer)
        self.send(p.Knobs(step=step, lr=lr, momentum=momentum))

    def on_train_end(self, trainer: Trainer) -> None:
        self.flush(trainer)

    def flush(self, trainer: Trainer) -> None:
        h = trainer.history
        full = h.full_losses[self.full_sent :]
        self.full_sent += len(full)
        first_step = self.sent + 1
        self.sent += len(self.losses)
        self.send(
            p.Batches(
                first_step=first_step,
                losses=self.losses,
                epoch=h.epoch,
                step=h.step,
                train_seconds=h.train_seconds,
                images_done=h.images_done,
                full_losses=[list(x) for x in full],
            )
        )
        self.losses = []
        self.last = time.monotonic()


class WarmProcess:
    """The loop of one training process: read messages, keep data sets, train jobs."""

    def __init__(self, out: TextIO, data_dir: str | None = None, tune_threads: bool = False) -> None:
        self.out = out
        self.data_dir = data_dir
        self.tune_threads = tune_threads  # each run finds its fastest thread count (ThreadTuner)
        self.tuner: ThreadTuner | None = None  # the last run that tuned (a CPU run with a count to choose)
        self.datasets: dict[tuple[str, str | None], Dataset] = {}
        self.inbox: queue.Queue = queue.Queue()  # (Job, RunControl) or Quit
        self.control: RunControl | None = None  # of the job being read for or trained now
        self.job_id = ""  # that job's id: controls for any other job are dropped
        self.lock = threading.Lock()
        self.jobs_done = 0

    def send(self, message: p.Message) -> None:
        with self.lock:
            try:
                self.out.write(p.encode(message))
                self.out.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the server is gone: its end of stdin closes too, and the run is saved as interrupted

    def dataset(self, name: str, data_dir: str | None = None, allow_download: bool = True) -> Dataset:
        """Loaded once per process: a warm process keeps every data set it has loaded."""
        key = (name, data_dir or self.data_dir)
        if key not in self.datasets:
            self.datasets[key] = load_dataset(name, data_dir=key[1], allow_download=allow_download)
        return self.datasets[key]

    def preload(self, names: list[str], allow_download: bool) -> None:
        """Load the data sets a job will ask for; only the first (the default) may be downloaded here,
        the others only if they are on disk (a download waits for a job that wants it)."""
        for i, name in enumerate(names):
            try:
                self.dataset(name, allow_download=allow_download and i == 0)
            except Exception as exc:  # a missing set is reported by the job that asks for it
                print(f"preload of {name} failed: {exc}", file=sys.stderr)

    def warm_up(self) -> None:
        """Train a throwaway model for two batches: torch's first forward and backward pass (thread pool,
        kernel selection) costs about a second, which the learner's first job then does not pay."""
        rng = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (256, 28, 28), dtype=torch.uint8, generator=rng)
        labels = torch.arange(256) % 10
        scratch = Dataset("mnist", "warm-up", "sample", images, labels, images[:64], labels[:64], DATASETS["mnist"])
        for batch_size in (128, 64):
            Trainer(TrainConfig(epochs=1, batch_size=batch_size), scratch).run()

    def read(self, stream: TextIO) -> None:
        """The reader thread: controls act at once, jobs wait in the inbox; EOF means the server is gone."""
        for line in stream:
            try:
                message = p.decode(line)
            except p.ProtocolError as exc:
                print(f"ignored: {exc}", file=sys.stderr)
                continue
            if isinstance(message, p.Job):
                self.control, self.job_id = RunControl(max_pause_s=max_pause_s()), message.job_id
                self.inbox.put((message, self.control))
            elif isinstance(message, p.Control) and self.control is not None and message.job_id == self.job_id:
                self.steer(self.control, message)
            elif isinstance(message, p.Quit):
                self.inbox.put(message)
        if self.control is not None:
            self.control.stop(Ending.INTERRUPTED, N_("The web server went away; training ended"))
        self.inbox.put(p.Quit())

    @staticmethod
    def steer(control: RunControl, message: p.Control) -> None:
        action = message.action
        if action == "stop":
            control.stop()
        elif action == "pause":
            control.pause()
        elif action == "resume":
            control.resume()
        elif action == "step":
            control.step(message.batches)
        elif action == "epoch":
            control.step_epoch()
        elif action == "set":
            try:
                control.set_knobs(lr=message.lr, momentum=message.momentum)
            except ValueError as exc:  # the queue checks first; this only guards the process
                print(f"ignored knob change: {exc}", file=sys.stderr)

    def serve(self) -> None:
        while True:
            self.send(p.Ready(pid=os.getpid(), datasets=[k[0] for k in self.datasets], jobs_done=self.jobs_done))
            item = self.inbox.get()
            if isinstance(item, p.Quit):
                return
            job, control = item
            self.run_job(job, control)
            self.jobs_done += 1
            if self.jobs_done >= RECYCLE_AFTER:
                return

    def run_job(self, job: p.Job, control: RunControl) -> str:
        """Train the job, save it, send ``Done``; returns the outcome."""
        recorder = SnapshotRecorder()
        checkpoint = lambda trainer, with_report: self.checkpoint(trainer, job, with_report, recorder.tensors())
        sender = Sender(self.send, checkpoint)
        try:
            config = TrainConfig.from_dict(job.config)
            dataset = self.dataset(config.dataset, job.data_dir, job.allow_download)
            budget = Budget(settings.get("MNIST_MAX_JOB_IMAGES"), settings.get("MNIST_MAX_JOB_S"))
            callbacks = [sender, recorder, HealthMonitor(on_stats=self.send_health), budget]
            # from what the last run that tuned learnt: the machine is likely as busy as it was
            tuner = ThreadTuner(start=torch.get_num_threads(), after=self.tuner) if self.tune_threads else None
            if tuner is not None:
                callbacks.append(tuner)
            if (clock := StepClock.from_env("page")) is not None:  # MNIST_STEP_LOG: each step's time, for benchmarks
                callbacks.append(clock)
            image = None if job.watch is None else watched_digit(job.watch, dataset)
            if image is not None:
                callbacks.append(DigitWatcher(image, self.send_view))
            # The range test builds its own Trainer; a run gets this one.
            trainer = None if job.task == "lr-find" else Trainer(config, dataset, callbacks=callbacks, control=control)
        except Exception as exc:  # a data set that cannot load, a device that is missing, a digit not in the set
            self.send(
                p.Done(status=Ending.FAILED, message=N_("Could not start: {error}").format(error=exc), run_dir=None)
            )
            return Ending.FAILED
        if control.stop_event.is_set():  # stopped before the first batch: nothing to save
            self.send(p.Done(status=Ending.CANCELLED, message=NOTHING_TRAINED, run_dir=None))
            return Ending.CANCELLED
        if trainer is None:
            return self.find_lr(config, dataset, control)
        trainer.run()
        if tuner is not None and tuner.active:  # not a run stopped before its first batch, nor one on a GPU
            self.tuner = tuner
        run_dir, _report, message = finish_run(
            trainer, dataset, job.root, job.job_id, snapshots=recorder.tensors(), owner=job.owner
        )
        if run_dir is not None and image is not None:
            self.send_replay(run_dir, image)
        self.send(p.Done(status=trainer.history.status, message=message, run_dir=run_dir and str(run_dir)))
        return trainer.history.status

    def find_lr(self, config: TrainConfig, dataset: Dataset, control: RunControl) -> str:
        """The learning-rate range test as a job: its curve and suggestion go back, nothing is saved."""
        try:
            result = lr_find(config, dataset, control=control)
        except (ValueError, RuntimeError) as exc:
            message = N_("The learning-rate range test failed: {error}").format(error=exc)
            self.send(p.Done(status=Ending.FAILED, message=message, run_dir=None))
            return Ending.FAILED
        self.send(
            p.LrCurve(result.lrs, result.losses, result.smoothed, result.suggested_lr, result.ending)
        )  # fmt: skip
        message = N_("Suggested learning rate {lr:.3g} for {optimiser} ({rule}); {batches} batches in {seconds:.1f} s.")
        message = message.format(
            lr=result.suggested_lr,
            optimiser=config.optimiser,
            rule=SUGGESTION_RULE,
            batches=len(result.lrs),
            seconds=result.seconds,
        )
        self.send(p.Done(status=Ending.FINISHED, message=message, run_dir=None))
        return Ending.FINISHED

    def send_health(self, stats: HealthStats) -> None:
        self.send(p.Health(step=stats.step, layers=stats.to_dict()))

    def send_view(self, view: DigitView) -> None:
        self.send(view.to_message())

    def send_replay(self, run_dir: Path, image: torch.Tensor) -> None:
        """The watched digit at every saved step of the run (about 12 ms on one CPU thread for a tutorial run)."""
        try:
            views = replay(run_dir, image)
        except Exception as exc:  # the page can still replay the run itself
            print(f"replay failed: {exc}", file=sys.stderr)
            return
        self.send(p.Replay(views=[asdict(view.to_message()) for view in views]))

    @staticmethod
    def checkpoint(trainer: Trainer, job: p.Job, with_report: bool, snapshots: dict | None = None) -> None:
        """Write the run folder as it is now, marked "interrupted": if this process dies, that is the truth."""
        h = trainer.history
        message = N_(
            "The training process ended at step {step} of {total} (epoch {epoch}) before the run did; this is what "
            "it had learned by its last save."
        ).format(step=h.step, total=h.total_steps, epoch=h.epoch)
        try:
            report = None
            if with_report:
                from .report import build_report

                report = build_report(trainer.model, trainer.dataset)
            save_run(
                trainer, report, job.root, job.job_id, Ending.INTERRUPTED, message, snapshots=snapshots, owner=job.owner
            )
        except Exception as exc:  # a checkpoint that fails must not end the run
            print(f"checkpoint failed: {exc}", file=sys.stderr)


def watched_digit(watch: int | list[int], dataset: Dataset) -> torch.Tensor:
    """A Job's digit to watch as uint8 (28, 28): the test image it names, or its 784 pixels."""
    if isinstance(watch, int):
        if not 0 <= watch < dataset.n_test:
            raise ValueError(
                _(
                    "the digit to watch is test image {index:,}, but {title} has {n:,} test images (0 to {last:,})"
                ).format(index=watch, title=_(dataset.title), n=dataset.n_test, last=dataset.n_test - 1)
            )
        return dataset.test_images[watch]
    return digit_image(watch)


def max_pause_s() -> float:
    """``MNIST_MAX_PAUSE_S``, else 600: a run paused longer is stopped and saved, freeing its trainer."""
    return settings.get("MNIST_MAX_PAUSE_S")


def trainer_threads() -> int:
    """The CPU threads a warm trainer starts with: ``fixed_threads()``, else every usable core (its tuner
    then moves to fewer while the machine is busy). The sidebar shows the same number."""
    return fixed_threads() or usable_cores()


def lower_priority() -> None:
    """Yield the CPU to the web server and the learner's browser whenever they need it: the trainer takes what
    they leave (``MNIST_TRAIN_NICE`` steps of niceness, default 19; 0 to keep the server's priority).
    On Linux a nice value is per thread, so every thread of this process so far is lowered (threads made
    later inherit it)."""
    steps = settings.get("MNIST_TRAIN_NICE")
    if steps <= 0 or not hasattr(os, "nice"):  # Windows has no nice values
        return
    tasks = Path("/proc/self/task")
    for tid in [int(t) for t in os.listdir(tasks)] if tasks.is_dir() else [None]:
        try:
            if tid is None:
                os.nice(steps)
            else:
                os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
        except ProcessLookupError:  # a thread that ended meanwhile
            pass
        except OSError as exc:  # not allowed here: train at the server's priority
            print(f"could not lower the trainer's priority: {exc}", file=sys.stderr)
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnist_core.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--preload", default="", help="comma-separated data sets to load before the first job")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--offline", action="store_true", help="do not try to download while preloading")
    args = parser.parse_args(argv)
    # The protocol owns the real stdout; anything a library prints goes to stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    lower_priority()
    torch.set_num_threads(trainer_threads())
    process = WarmProcess(out, data_dir=args.data_dir, tune_threads=fixed_threads() is None)
    process.preload([n for n in args.preload.split(",") if n], allow_download=not args.offline)
    process.warm_up()
    threading.Thread(target=process.read, args=(sys.stdin,), daemon=True).start()
    process.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
