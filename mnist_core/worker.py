"""The training child process: ``python -m mnist_core.worker``, driven by ``jobs.JobQueue``.

Reads one JSON line on stdin (job id, config, runs folder, data folder), trains, saves the run
folder, and writes its progress as JSON lines on stdout: ``start``, ``batches`` (new losses every
fraction of a second), ``epoch`` and finally ``done``. A later ``stop`` line on stdin, or stdin
closing because the server went away, stops the run within one batch; it is saved all the same.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict
from typing import TextIO

import torch

from .data import load_dataset
from .runs import finish_run
from .train import Callback, EpochMetrics, TrainConfig, Trainer

SEND_EVERY_S = 0.2  # how often new losses are sent


class Sender(Callback):
    """Streams a run's progress as JSON lines: losses in chunks, epochs, the recorder's losses."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.losses: list[float] = []
        self.sent = 0  # losses sent so far; steps are numbered 1, 2, ... in order
        self.full_sent = 0
        self.last = time.monotonic()

    def send(self, kind: str, **data) -> None:
        self.out.write(json.dumps({"kind": kind, **data}) + "\n")
        self.out.flush()

    def on_train_start(self, trainer: Trainer) -> None:
        h = trainer.history
        self.send("start", total_steps=h.total_steps, steps_per_epoch=h.steps_per_epoch, started_at=h.started_at)

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        self.losses.append(loss)
        if time.monotonic() - self.last >= SEND_EVERY_S:
            self.flush(trainer)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self.flush(trainer)
        self.send("epoch", metrics=asdict(metrics))

    def on_train_end(self, trainer: Trainer) -> None:
        self.flush(trainer)

    def flush(self, trainer: Trainer) -> None:
        h = trainer.history
        full = h.full_losses[self.full_sent :]
        self.full_sent += len(full)
        first_step = self.sent + 1
        self.sent += len(self.losses)
        self.send(
            "batches",
            first_step=first_step,
            losses=self.losses,
            epoch=h.epoch,
            step=h.step,
            train_seconds=h.train_seconds,
            images_done=h.images_done,
            full_losses=full,
        )
        self.losses = []
        self.last = time.monotonic()


def listen_for_stop(stream: TextIO, stop_event: threading.Event) -> None:
    """Set ``stop_event`` on a ``stop`` line or when the parent closes the pipe."""
    for line in stream:
        if line.strip() == "stop":
            break
    stop_event.set()


def run_job(spec: dict, out: TextIO, stop_event: threading.Event) -> str:
    """Train the job described by ``spec``, save it, send ``done``; returns the outcome."""
    sender = Sender(out)
    try:
        config = TrainConfig.from_dict(spec["config"])
        dataset = load_dataset(
            config.dataset, data_dir=spec.get("data_dir"), allow_download=spec.get("allow_download", True)
        )
        trainer = Trainer(config, dataset, callbacks=[sender], stop_event=stop_event)
    except Exception as exc:  # a data set that cannot load, a device that is missing
        sender.send("done", status="failed", message=f"Could not start: {exc}", run_dir=None)
        return "failed"
    trainer.run()
    run_dir, _, message = finish_run(trainer, dataset, root=spec.get("root"), run_id=spec["job_id"])
    sender.send("done", status=trainer.history.status, message=message, run_dir=run_dir and str(run_dir))
    return trainer.history.status


def training_threads() -> int:
    """``MNIST_TRAIN_THREADS``, else all cores but one: the web server that draws the live chart keeps a
    core, because OpenMP threads that must wait for a busy core slow the loop several times over."""
    try:
        return max(1, int(os.environ.get("MNIST_TRAIN_THREADS", "0")) or (os.cpu_count() or 1) - 1)
    except ValueError:
        return 1


def main() -> int:
    torch.set_num_threads(training_threads())
    spec = json.loads(sys.stdin.readline())
    stop_event = threading.Event()
    threading.Thread(target=listen_for_stop, args=(sys.stdin, stop_event), daemon=True).start()
    run_job(spec, sys.stdout, stop_event)
    return 0


if __name__ == "__main__":
    sys.exit(main())
