"""One queue for the training jobs of every session; each job trains in its own process.

The queue lives once per server process and a browser session keeps only a job's id. A job
trains in a child process (``mnist_core.worker``) so that the web server's Python work never
holds the GIL against the training loop; the child streams its losses back every fraction
of a second into a ``History`` the pages read. The child saves the run folder itself when the
run ends (finished, stopped, diverged or failed), so a closed tab or a refresh loses nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from .runs import new_run_id, runs_root
from .train import EpochMetrics, History, TrainConfig

KEEP_FINISHED = 100  # finished jobs remembered in memory (their runs stay on disk regardless)


def default_max_concurrent() -> int:
    """``MNIST_MAX_JOBS``, else 1: on a 2-core machine two runs only slow each other down."""
    try:
        return max(1, int(os.environ.get("MNIST_MAX_JOBS", "1")))
    except ValueError:
        return 1


@dataclass
class Job:
    """A training request and, once it runs, a live mirror of its history."""

    id: str  # also the name of its run folder
    config: TrainConfig
    allow_download: bool = True  # False when the server already knows there is no network
    submitted_at: float = field(default_factory=time.time)
    history: History | None = None  # None while waiting
    state: str = "queued"  # queued, running, done
    outcome: str = ""  # when done: finished, stopped, diverged, failed or cancelled
    message: str = ""
    run_dir: Path | None = None
    started_at: float | None = None
    stop_requested: bool = False
    training: bool = False  # the child has loaded its data and started the loop
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def done(self) -> bool:
        return self.state == "done"


# --------------------------------------------------------------------------- the queue


class JobQueue:
    """First come, first served; at most ``max_concurrent`` jobs train at once, each in a process."""

    def __init__(
        self,
        root: Path | str | None = None,
        max_concurrent: int | None = None,
        data_dir: Path | str | None = None,
    ) -> None:
        self.root = runs_root(root).resolve()  # the child may not share our idea of "."
        self.max_concurrent = max_concurrent or default_max_concurrent()
        self.data_dir = str(data_dir) if data_dir else None  # else the child looks where load_dataset does
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._workers: list[threading.Thread] = []

    # ----------------------------------------------------------------- for the pages

    def submit(self, config: TrainConfig, allow_download: bool = True) -> Job:
        """Queue a run; raises ValueError for a bad config before anything is queued."""
        config.validate()
        job = Job(id=new_run_id(config), config=config, allow_download=allow_download)
        with self._cond:
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._start_workers()
            self._cond.notify()
        return job

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def position(self, job_id: str) -> int | None:
        """1-based place in the waiting line, or None if the job is not waiting."""
        with self._cond:
            for i, job in enumerate(self._waiting, start=1):
                if job.id == job_id:
                    return i
        return None

    def stop(self, job_id: str) -> None:
        """Stop a running job within one batch (its run is saved), or take a waiting one out of the line."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None or job.done:
                return
            job.stop_requested = True
            if job.process is not None:
                self._stop_child(job)
            if job in self._waiting:
                self._waiting.remove(job)
                job.state, job.outcome = "done", "cancelled"
                job.message = "Cancelled while waiting in the queue; nothing was trained."

    def active(self) -> list[Job]:
        """Running jobs, then waiting ones in order."""
        with self._cond:
            running = [j for j in self._jobs.values() if j.state == "running"]
            return running + list(self._waiting)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is running or waiting (for tests and scripts)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.active():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    # ----------------------------------------------------------------- workers

    def _start_workers(self) -> None:
        self._workers = [w for w in self._workers if w.is_alive()]
        while len(self._workers) < self.max_concurrent:
            worker = threading.Thread(target=self._work, name=f"mnist-job-{len(self._workers)}", daemon=True)
            worker.start()
            self._workers.append(worker)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
                job = self._waiting.popleft()
                job.state, job.started_at = "running", time.time()
                job.history = History(status="running", started_at=job.started_at)
            try:
                self._supervise(job)
            except Exception as exc:  # never let one job take the worker down
                job.outcome, job.message = "failed", f"Training failed: {exc}"
            finally:
                job.state = "done"
                if job.history is not None and job.history.status == "running":
                    job.history.status = job.outcome or "failed"
                with self._cond:
                    self._forget_old()

    def _supervise(self, job: Job) -> None:
        """Start the child and mirror what it sends into ``job.history`` until it is done."""
        spec = {
            "job_id": job.id,
            "config": job.config.to_dict(),
            "root": str(self.root),
            "data_dir": self.data_dir,
            "allow_download": job.allow_download,
        }
        package_root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        # Same working directory as the server, so relative data and cache folders mean the same thing.
        with subprocess.Popen(
            [sys.executable, "-m", "mnist_core.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        ) as proc:
            try:
                proc.stdin.write(json.dumps(spec) + "\n")  # the spec goes first, before any "stop"
                proc.stdin.flush()
                with self._cond:
                    job.process = proc
                    if job.stop_requested:  # Stop pressed while the child was starting
                        self._stop_child(job)
                self._mirror(job, proc)
            finally:
                if proc.poll() is None:  # we stopped listening: the child must not live on unread
                    proc.kill()
                code = proc.wait()
        if not job.outcome:
            if job.stop_requested and job.history.step == 0:
                job.outcome, job.message = "cancelled", "Stopped before training began; nothing was trained."
            else:
                job.outcome = "failed"
                job.message = f"The training process ended unexpectedly (exit code {code})."

    @staticmethod
    def _mirror(job: Job, proc: subprocess.Popen) -> None:
        h = job.history
        for line in proc.stdout:
            try:
                msg = json.loads(line)
                kind = msg.pop("kind")
            except (ValueError, AttributeError, KeyError, TypeError):
                continue  # not ours (a library printing); the protocol lines are JSON objects with a kind
            if kind == "start":
                job.training = True
                h.total_steps, h.steps_per_epoch = msg["total_steps"], msg["steps_per_epoch"]
                h.started_at = msg["started_at"]
            elif kind == "batches":
                del h.batch_losses[msg["first_step"] - 1 :]  # normally a no-op; keeps the order exact
                h.batch_losses.extend(msg["losses"])
                h.full_losses.extend(tuple(x) for x in msg["full_losses"])
                h.epoch, h.step = msg["epoch"], msg["step"]
                h.train_seconds, h.images_done = msg["train_seconds"], msg["images_done"]
            elif kind == "epoch":
                h.epochs.append(EpochMetrics(**msg["metrics"]))
            elif kind == "done":
                job.outcome, job.message = msg["status"], msg["message"]
                job.run_dir = Path(msg["run_dir"]) if msg["run_dir"] else None
                h.status, h.message = job.outcome, job.message

    @staticmethod
    def _stop_child(job: Job) -> None:
        """Ask a training child to stop (it saves its run); one still loading data is ended outright."""
        if not job.training:
            job.process.terminate()
            return
        try:
            job.process.stdin.write("stop\n")
            job.process.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # the child has already ended

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.done]
        for job in sorted(finished, key=lambda j: j.submitted_at)[:-KEEP_FINISHED]:
            del self._jobs[job.id]
