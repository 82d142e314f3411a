"""One queue for the training jobs of every session, trained by warm processes.

The queue lives once per server process. Each of its ``max_concurrent`` slots keeps one training
process (``mnist_core.worker``) warm: torch imported and the data sets loaded before any job, so
a job starts training at once. Training never runs in the server's Python, whose GIL would slow
the loop. The process streams its losses back every tenth of a second into a ``History`` the
pages read (and, with a ``feed``, into a small file per job that its page polls: mnist_core.feed), and saves
the run folder itself, so a closed tab or a refresh loses nothing. A
process that dies is replaced at once and its job is marked failed (its last checkpoint stays on
disk as "interrupted").

A job belongs to the session that started it: every action on it (stop, pause, step, a new
learning rate) needs its ``owner`` secret, which never appears on a page or in a URL. Other
visitors learn only how busy the queue is. One owner has at most one active job, and the line is
at most ``max_waiting`` long.
"""

from __future__ import annotations

import queue as queue_lib
import secrets
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from . import protocol as p
from . import settings
from .config import TrainConfig, batches_per_epoch, check_knob, over_budget, problems_sentence
from .feed import FEED_EVERY_S, FEED_KEEP_S, Feed, new_token
from .health import HealthStats
from .history import History, epoch_line, plateau_warning
from .i18n import DEFAULT, N_, _, language, stored, using
from .outcomes import RUNNING, Ending, JobState, Phase, outcome
from .owners import QuotaError, make_room, owner_id
from .runs import describe_schedule, new_run_id, runs_root
from .visual import Smoother, live_chart_data
from .watch import DigitView
from .worker import NOTHING_TRAINED

WARMING = N_("Getting the trainer ready: PyTorch is starting and the data is being loaded (once per server).")
STARTING = N_("Starting: the data goes to the trainer's device and the first batch trains...")
Progress = tuple[float | None, str]  # share done (None: not started) and the line that says where it stands
KEEP_FINISHED = 100  # finished jobs remembered in memory (their runs stay on disk regardless)
MAX_HEALTH_LOG = 2_000  # health readings a job keeps for a chart; beyond, every other one is dropped
READY_TIMEOUT_S = 600.0  # a process that is not warm by then is replaced
KNOB_SETTLE_S = 0.4  # a live knob sent once it has rested this long: 17 arrow presses are one change, not 9
HISTORY_EVENTS = {cls.kind for cls in (p.Start, p.Batches, p.Epoch, p.Knobs, p.State, p.Done)}  # History.apply's
RUN_BYTES = 1_200_000  # a saved run but its batch losses: weights, snapshots, epochs, report (about 1 MB)


class QueueError(ValueError):
    """A job was refused or an action was not allowed; the message is meant for the user."""


@dataclass(frozen=True)
class JobSnapshot:
    """A job's state as one page run draws it (``Job.snapshot``)."""

    state: JobState
    paused: bool
    feed: str | None  # the feed its page follows while it waits, trains or is paused (None once it ended)

    @property
    def mode(self) -> str:
        """What decides the page's layout (knobs, buttons), as one string: the page redraws when its feed's
        mode is not the one it was drawn for (it starts, pauses, resumes, ends). All else the feed carries and
        the chart shows by itself (``Job.live_lines``)."""
        return f"{self.state}|{self.paused}"


@dataclass
class Job:
    """A training request and, once it runs, a live mirror of its history."""

    id: str  # also the name of its run folder
    config: TrainConfig
    owner: str = field(default="", repr=False)  # the secret of the session that started it
    run_owner: str = ""  # owners.owner_id its saved run belongs to ("" for none: shared)
    address: str | None = field(default=None, repr=False)  # the client address it came from, where known
    language: str = DEFAULT  # the language of the session that started it (i18n)
    task: str = "train"  # or "lr-find": the learning-rate range test, whose result is ``lr_curve``
    allow_download: bool = True  # False when the server already knows there is no network
    submitted_at: float = field(default_factory=time.time)
    history: History | None = None  # None while waiting
    state: JobState = JobState.QUEUED
    # while running: "warming" (the trainer is still starting), "loading" (data to the device), "training"
    phase: Phase = Phase.QUEUED
    outcome: Ending | str = ""  # when done: an Ending
    message: str = ""  # how it ended, in English (N_, as its run.json saves it): shown with i18n.stored()
    folder: Path | None = None  # where its run is saved: checkpoints while it trains, the run when it ends
    run_dir: Path | None = None  # the saved run, once it has ended with one
    started_at: float | None = None
    stop_requested: bool = False
    lr_curve: p.LrCurve | None = None  # an lr-find job's result
    watch_digit: int | list[int] | None = None  # the digit asked to be watched: a test-set index or 784 pixels
    watch: DigitView | None = None  # the latest view of that digit from the trainer
    replay: list[DigitView] | None = None  # that digit at every saved step, from the trainer once the run is saved
    health: HealthStats | None = None  # the latest health reading (mnist_core.health)
    health_log: list[HealthStats] = field(default_factory=list, repr=False)  # all of them, thinned past MAX_HEALTH_LOG
    process: subprocess.Popen | None = field(default=None, repr=False)
    feed_url: str | None = None  # where its page polls its live feed (mnist_core.feed); None without a feed
    feed_token: str = field(default="", repr=False)
    fed_at: float = field(default=0.0, repr=False)  # time.monotonic() of its last feed write
    fed: int = field(default=0, repr=False)  # feed writes so far: the page sees a feed that stopped changing
    pending_knobs: dict = field(default_factory=dict, repr=False)  # a knob change not sent yet (KNOB_SETTLE_S)
    knob_timer: threading.Timer | None = field(default=None, repr=False)
    # its batch losses smoothed so far: each feed write smooths only the new ones
    smoother: Smoother = field(default_factory=Smoother, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.state == JobState.DONE

    def outcome_text(self) -> str:
        """How it ended, in words: its message, its test accuracy, whether its run is saved. In English, as its
        message is: shown with i18n.stored()."""
        h, text = self.history, self.message
        if self.outcome == Ending.FINISHED and self.run_dir is not None and h and h.epochs:
            text = N_("{message} Test accuracy {accuracy:.2%}. The run is saved.").format(
                message=text, accuracy=h.epochs[-1].test_acc
            )
        elif self.run_dir is not None and self.outcome in (Ending.COLLAPSED, Ending.STOPPED, Ending.INTERRUPTED):
            text = N_("{message} The run is saved and can be reported on.").format(message=text)
        return text

    def snapshot(self) -> JobSnapshot:
        """One reading of what decides its page's layout. The job moves on in the queue's threads while a page
        draws: a page that read "running" for its knobs and "done" for its chart would never redraw itself."""
        state, paused = self.state, self.history is not None and self.history.paused
        return JobSnapshot(state, paused, None if state == JobState.DONE else self.feed_url)

    @property
    def mode(self) -> str:
        """Its feed's mode now (``JobSnapshot.mode``)."""
        return self.snapshot().mode

    def live_lines(self, waiting_line: str | None = None) -> tuple[Progress | None, list[str], str | None]:
        """The lines above a waiting or training job's live chart: (share done or None, the progress line or
        what is happening), the epoch's line and knob changes, a warning or None."""
        h = self.history
        if h is None or self.state == JobState.QUEUED:
            return (None, waiting_line) if waiting_line else None, [], None
        if self.phase == Phase.WARMING:
            return (None, _(WARMING)), [], None
        if h.step == 0:  # one that ended before its first batch has nothing to say here: its outcome says it
            return (None if self.done else (None, _(STARTING))), [], None
        notes = [epoch_line(h.epochs[-1])] if h.epochs else []
        notes += [
            describe_schedule(n, s) for n, s in (("lr", h.lr_schedule), ("momentum", h.momentum_schedule)) if len(s) > 1
        ]
        # An ended run's outcome says what went wrong in one message (collapse_note): no second, vaguer one
        warning = (
            None
            if self.done and self.outcome not in (Ending.FINISHED, Ending.STOPPED)
            else plateau_warning(h.epochs[:])
        )
        return h.progress(self.config.epochs), notes, warning


class TrainerProcess:
    """One warm training process: started, read by a thread of its own, told what to do."""

    def __init__(self, args: list[str], env: dict) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mnist_core.worker", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.messages: queue_lib.Queue = queue_lib.Queue()  # decoded messages of a job; None at EOF
        self.ready = False  # warm and idle: said Ready and has no job since
        self.jobs_done = 0
        self._said = threading.Event()  # set on Ready or at the end
        self._send_lock = threading.Lock()  # page threads and the slot thread write to one pipe
        threading.Thread(target=self._read, name=f"mnist-trainer-{self.proc.pid}", daemon=True).start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                message = p.decode(line)
            except Exception:  # not ours (ProtocolError, or worse): the reader must never die on a line
                continue
            if isinstance(message, p.Ready):
                self.ready, self.jobs_done = True, message.jobs_done
                self._said.set()
            else:
                self.messages.put(message)
        self.ready = False
        self.messages.put(None)
        self._said.set()

    def send(self, message: p.Message) -> bool:
        try:
            with self._send_lock:
                self.proc.stdin.write(p.encode(message))
                self.proc.stdin.flush()
            return True
        except (BrokenPipeError, ValueError, OSError):
            return False  # it has ended; its reader will say so

    def next(self, timeout: float | None = None) -> p.Message | None:
        """The next message; None when the process has ended (or nothing came within ``timeout``)."""
        try:
            return self.messages.get(timeout=timeout)
        except queue_lib.Empty:
            return None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Block until the process is warm and idle; False if it ended (or took longer than ``timeout``)."""
        self._said.wait(timeout)
        return self.ready

    def give(self, job: p.Job) -> None:
        """Hand over a job; the process is busy until it says Ready again."""
        self.ready = False
        self._said.clear()
        self.send(job)

    def end(self) -> int:
        """Ask it to quit, then make sure it is gone; returns its exit code."""
        self.send(p.Quit())
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


# --------------------------------------------------------------------------- the queue


class JobQueue:
    """First come, first served; ``max_concurrent`` warm trainers, each training one job at a time."""

    def __init__(
        self,
        root: Path | str | None = None,
        max_concurrent: int | None = None,
        data_dir: Path | str | None = None,
        preload: tuple[str, ...] = ("mnist",),
        allow_download: bool = True,
        max_waiting: int | None = None,
        feed: Feed | None = None,
    ) -> None:
        """``feed``: where each job's live feed is written for its page (mnist_core.feed), or None for none."""
        self.root = runs_root(root).resolve()  # the trainer may not share our idea of "."
        self.feed = feed
        self.max_concurrent = max_concurrent or settings.get("MNIST_MAX_JOBS")  # on 2 cores, two runs slow each other
        self.max_waiting = max_waiting or settings.get("MNIST_MAX_QUEUE")
        self.data_dir = str(data_dir) if data_dir else None  # else the trainer looks where load_dataset does
        self.preload, self.allow_download = tuple(preload), allow_download
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self.trainers: list[TrainerProcess | None] = [None] * self.max_concurrent  # one per slot
        self.started_processes = 0
        self._closed = False
        self._slots = [
            threading.Thread(target=self._slot, args=(i,), name=f"mnist-slot-{i}", daemon=True)
            for i in range(self.max_concurrent)
        ]
        for slot in self._slots:
            slot.start()  # each warms its trainer now, before any job

    # ----------------------------------------------------------------- for the pages

    def submit(
        self,
        config: TrainConfig,
        owner: str = "",
        allow_download: bool = True,
        task: str = "train",
        watch: int | list[int] | None = None,
        run_owner: str | None = None,
        address: str | None = None,
        sizes: tuple[int, int] | None = None,
    ) -> Job:
        """Queue a run (or an lr-find ``task``) for ``owner``; raises ValueError (QueueError for this server's limits).
        ``watch``: a digit to follow while it trains (a test-set index or 784 pixels 0-255), seen in ``job.watch``.
        ``run_owner``: whose the saved run is (an owners.owner_id; default: ``owner``'s). ``address``: the client's
        address, where known: a few jobs per address, whatever cookies it keeps. ``sizes``: the data set's
        (train, test) images, to refuse at once a run that is more work than this server allows one run."""
        config.validate()
        if task not in p.TASKS:
            raise QueueError(f"unknown task {task!r}")
        if problem := p.check_watch(watch):
            raise QueueError(_("{problems}.").format(problems=problem[0].upper() + problem[1:]))
        if sizes is not None and task == "train":
            if problem := over_budget(config, *sizes, settings.get("MNIST_MAX_JOB_IMAGES")):
                raise QueueError(problem)
        run_owner = owner_id(owner) if run_owner is None else run_owner
        if task == "train":  # what the run will need on disk: one line per step, the weights and snapshots
            steps = batches_per_epoch(sizes[0], config.batch_size) * config.epochs if sizes else 0
            try:
                make_room(self.root, run_owner, RUN_BYTES + 24 * steps)
            except QuotaError as exc:
                raise QueueError(str(exc)) from None
        with self._cond:
            self._check_share(owner, address)
            run_id = new_run_id(config)
            while run_id in self._jobs:  # one second and 16 random bits: rare, but never two jobs in one folder
                run_id = new_run_id(config)
            job = Job(run_id, config, owner=owner, task=task, allow_download=allow_download, folder=self.root / run_id)
            job.run_owner, job.address = run_owner, address
            job.watch_digit = watch
            job.language = language()  # the submitting session's: its live lines are written in it
            if self.feed is not None:
                job.feed_token = new_token()
                job.feed_url = self.feed.url(job.feed_token)
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._publish_places()  # every waiting job's line: "place 1 of N" counts the newcomer too
            self._cond.notify_all()
        return job

    def _check_share(self, owner: str, address: str | None) -> None:
        """QueueError if ``owner`` (or the client ``address``) has its share of the queue already, or it is full."""
        active = [j for j in self._jobs.values() if not j.done]
        if owner and any(j.owner == owner for j in active):
            raise QueueError(_("You already have a run training or waiting: stop it before starting another."))
        most = settings.get("MNIST_MAX_JOBS_PER_ADDRESS")
        if address and sum(j.address == address for j in active) >= most:
            raise QueueError(
                _(
                    "{most} runs from your network are training or waiting already, the most this server takes from "
                    "one address. Try again when one of them ends."
                ).format(most=most)
            )
        if len(self._waiting) >= self.max_waiting:
            raise QueueError(
                _("The training queue is full ({waiting} runs waiting). Try again in a few minutes.").format(
                    waiting=len(self._waiting)
                )
            )

    def get(self, job_id: str | None) -> Job | None:
        return self._jobs.get(job_id) if job_id else None

    def latest_of(self, owner: str, task: str = "train") -> Job | None:
        """The newest job of ``owner`` (of this ``task``): the one a refreshed page shows again."""
        if not owner:
            return None
        with self._cond:
            mine = [j for j in self._jobs.values() if j.task == task and secrets.compare_digest(j.owner, owner)]
        return max(mine, key=lambda j: j.submitted_at, default=None)

    def position(self, job_id: str) -> int | None:
        """1-based place in the waiting line, or None if the job is not waiting."""
        with self._cond:
            for i, job in enumerate(self._waiting, start=1):
                if job.id == job_id:
                    return i
        return None

    def waiting_line(self, job_id: str) -> str:
        """What a waiting job's page says of the line."""
        running, waiting = self.busy()
        return _(
            "Waiting in the queue: place {place} of {waiting} waiting ({running} training now). Training runs {most} "
            "at a time so each finishes as fast as it can."
        ).format(place=self.position(job_id), waiting=waiting, running=running, most=self.max_concurrent)

    def waits_behind(self, job: Job) -> bool:
        """Whether ``job`` waits for another job to end first (every trainer busy, or others ahead of it)."""
        return job.state == JobState.QUEUED and (
            self.busy()[0] >= self.max_concurrent or self.position(job.id) not in (None, 1)
        )

    def busy(self) -> tuple[int, int]:
        """(running, waiting): all another visitor may know of the queue."""
        with self._cond:
            return sum(j.state == JobState.RUNNING for j in self._jobs.values()), len(self._waiting)

    def _owned(self, job_id: str, owner: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or not owner or not secrets.compare_digest(job.owner, owner):
            raise QueueError(_("This run belongs to another session; only the session that started it can steer it."))
        return job

    def stop(self, job_id: str, owner: str) -> None:
        """Stop a running job within one batch (its run is saved), or take a waiting one out of the line at once."""
        with self._cond:
            job = self._owned(job_id, owner)
            if job.done:
                return
            job.stop_requested = True
            if job in self._waiting:
                self._waiting.remove(job)
                job.state, job.phase, job.outcome = JobState.DONE, Phase.DONE, Ending.CANCELLED
                job.message = N_("Cancelled while waiting in the queue; nothing was trained.")
                self._publish(job)
                self._publish_places()
                return
            if (
                job.process is None
            ):  # taken from the line but not handed over (its trainer is warming): it never will be
                job.state, job.phase, job.outcome, job.message = (
                    JobState.DONE,
                    Phase.DONE,
                    Ending.CANCELLED,
                    NOTHING_TRAINED,
                )
                return
            trainer = self._trainer_of(job)
        if trainer is not None:
            self._send_knobs(job, trainer)  # a change made just before Stop is kept in the run
            trainer.send(p.Control(action="stop", job_id=job.id))

    def control(
        self,
        job_id: str,
        owner: str,
        action: str,
        batches: int = 1,
        lr: float | None = None,
        momentum: float | None = None,
    ) -> None:
        """Pause, resume, step (``batches``), step to the end of the epoch, or set the lr/momentum of a running job."""
        if action == "stop":
            return self.stop(job_id, owner)
        if action not in p.CONTROL_ACTIONS:
            raise QueueError(f"unknown action {action!r}")
        if action == "set":
            problems = [m for n, v in (("lr", lr), ("momentum", momentum)) if v is not None and (m := check_knob(n, v))]
            if problems:
                raise QueueError(problems_sentence(problems))
        with self._cond:
            job = self._owned(job_id, owner)
            trainer = self._trainer_of(job) if job.state == JobState.RUNNING else None
        if trainer is None:
            raise QueueError(_("The run is not training now, so it cannot be paused, stepped or changed."))
        if action == "set":  # a drag or a held arrow key is one change: sent once the knob rests KNOB_SETTLE_S
            with self._cond:
                job.pending_knobs.update({k: v for k, v in (("lr", lr), ("momentum", momentum)) if v is not None})
                if job.knob_timer is not None:
                    job.knob_timer.cancel()
                job.knob_timer = threading.Timer(KNOB_SETTLE_S, self._send_knobs, (job, trainer))
                job.knob_timer.daemon = True
                job.knob_timer.start()
            return
        self._send_knobs(job, trainer)  # a knob change waiting to be sent goes first: it came first
        trainer.send(p.Control(action=action, job_id=job.id, batches=int(batches), lr=lr, momentum=momentum))

    def _send_knobs(self, job: Job, trainer: TrainerProcess) -> None:
        with self._cond:
            knobs, job.pending_knobs = job.pending_knobs, {}
            if job.knob_timer is not None:
                job.knob_timer.cancel()
                job.knob_timer = None
        if knobs:
            trainer.send(p.Control(action="set", job_id=job.id, **knobs))

    def active(self) -> list[Job]:
        """Running jobs, then waiting ones in order."""
        with self._cond:
            running = [j for j in self._jobs.values() if j.state == JobState.RUNNING]
            return running + list(self._waiting)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no job is running or waiting (for tests and scripts)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.active():
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def wait_warm(self, timeout: float = READY_TIMEOUT_S) -> bool:
        """Block until every slot has a warm trainer (for tests, scripts and benchmarks)."""
        deadline = time.monotonic() + timeout
        while not all(t is not None and t.ready for t in self.trainers):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """End the trainers (a running job is saved as interrupted)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for trainer in self.trainers:
            if trainer is not None:
                trainer.end()

    # ----------------------------------------------------------------- slots

    def _trainer_of(self, job: Job) -> TrainerProcess | None:
        for trainer in self.trainers:
            if trainer is not None and job.process is trainer.proc:
                return trainer
        return None

    def _spawn(self) -> TrainerProcess:
        package_root = str(Path(__file__).resolve().parents[1])
        env = settings.child_env(package_root)
        args = ["--preload", ",".join(self.preload)]
        if self.data_dir:
            args += ["--data-dir", self.data_dir]
        if not self.allow_download:
            args.append("--offline")
        self.started_processes += 1
        # Same working directory as the server, so relative data and cache folders mean the same thing.
        return TrainerProcess(args, env)

    def _next_job(self) -> Job | None:
        with self._cond:
            while not self._waiting and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            job = self._waiting.popleft()
            job.started_at = time.time()
            job.history = History(status=RUNNING, started_at=job.started_at)  # before the state: a page
            job.state = JobState.RUNNING  # that reads "running" finds its history
            self._publish(job)
            self._publish_places()
            return job

    def _fresh_trainer(self, i: int) -> TrainerProcess | None:
        """Start slot ``i``'s trainer, retrying with a back-off if the system refuses (no memory, no file
        descriptors); None once the queue is closed."""
        delay = 1.0
        while True:
            with self._cond:
                if self._closed:
                    self.trainers[i] = None
                    return None
            try:
                trainer = self.trainers[i] = self._spawn()
                return trainer
            except OSError as exc:
                print(f"mnist: could not start a trainer ({exc}); retrying in {delay:.0f} s", file=sys.stderr)
                time.sleep(delay)
                delay = min(delay * 2, 60.0)

    def _slot(self, i: int) -> None:
        trainer = self._fresh_trainer(i)
        while trainer is not None:
            job = self._next_job()
            if job is None:
                break
            with self._cond:
                if not job.done:  # a Stop may have cancelled it already
                    job.phase = Phase.LOADING if trainer.ready else Phase.WARMING
                    self._publish(job)
            try:
                if trainer.proc.poll() is not None or not trainer.wait_ready():
                    trainer.end()  # it died or hung while warming: a fresh one, and this job tries it once more
                    trainer = self._fresh_trainer(i)
                    if trainer is None or not trainer.wait_ready():
                        raise RuntimeError(N_("the training process could not start (see the server log)"))
                self._run(job, trainer)
            except Exception as exc:  # never let one job take the slot down
                if not job.done:
                    job.outcome, job.message = Ending.FAILED, N_("Training failed: {error}").format(error=exc)
            finally:
                with self._cond:
                    if not job.outcome:
                        job.outcome = Ending.FAILED
                    job.state, job.phase = JobState.DONE, Phase.DONE
                    if job.history.status == RUNNING:
                        job.history.status = job.outcome
                        job.history.message = job.message
                    job.history.paused = False
                    self._publish(job)
                    self._forget_old()
            if trainer is None:
                break
            trainer.wait_ready(timeout=30)  # it says Ready again unless it recycles itself (then it exits)
            if trainer.proc.poll() is not None or not trainer.ready:
                trainer.end()
                trainer = self._fresh_trainer(i)  # warms while the learner reads the result
        if trainer is not None:
            trainer.end()

    def _run(self, job: Job, trainer: TrainerProcess) -> None:
        """Hand ``job`` to the warm ``trainer`` and mirror what it sends into ``job.history`` until it is done."""
        job.phase = Phase.LOADING
        with self._cond:
            job.process = trainer.proc
            cancelled = job.stop_requested
        if cancelled:
            job.outcome, job.message = Ending.CANCELLED, NOTHING_TRAINED
            return
        config, root = job.config.to_dict(), str(self.root)
        trainer.give(
            p.Job(job.id, config, root, self.data_dir, job.allow_download, job.task, job.watch_digit, job.run_owner)
        )
        if job.stop_requested:  # Stop pressed while we were handing it over
            trainer.send(p.Control(action="stop", job_id=job.id))
        while True:
            message = trainer.next()
            if message is None:  # the process died: its last checkpoint, if any, is on disk as "interrupted"
                self._lost(job, trainer.proc.wait())
                return
            if self._mirror(job, message):
                return

    def _lost(self, job: Job, code: int) -> None:
        """The trainer of ``job`` died: what it saved last is the run, marked interrupted, or nothing."""
        job.run_dir = job.folder if (job.folder / "run.json").is_file() else None
        job.outcome = Ending.INTERRUPTED if job.run_dir else Ending.FAILED
        if job.run_dir:
            message = N_(
                "The training process ended unexpectedly (exit code {code}) at step {step}. What it had learned by its "
                "last save is kept."
            )
        else:
            message = N_(
                "The training process ended unexpectedly (exit code {code}) at step {step}. Nothing had been saved yet."
            )
        job.message = message.format(code=code, step=job.history.step)

    def _mirror(self, job: Job, message: p.Message) -> bool:
        """Fold one message of the trainer into ``job``: its history (History.apply, the one reducer), the views
        beside it (health, the watched digit, the range test's curve), and its feed. True once it is done."""
        h = job.history
        if message.kind in HISTORY_EVENTS:
            if isinstance(message, p.Batches):
                job.smoother.truncate(message.first_step - 1)
            first = h.step == 0
            h.apply(message)
            if isinstance(message, p.Start):
                job.phase = Phase.TRAINING
            if isinstance(message, p.Done):
                job.outcome, job.message = message.status, message.message
                job.run_dir = Path(message.run_dir) if message.run_dir else None
                return True
            # losses come several times a second: the feed is written at most every FEED_EVERY_S
            if not isinstance(message, p.Batches) or first or time.monotonic() - job.fed_at >= FEED_EVERY_S:
                self._publish(job)
        elif isinstance(message, p.Health):
            job.health = HealthStats.from_dict(message.step, message.layers)
            job.health_log.append(job.health)
            if len(job.health_log) > MAX_HEALTH_LOG:
                job.health_log = job.health_log[::2]
        elif isinstance(message, p.Watch):
            job.watch = DigitView.from_message(message)
        elif isinstance(message, p.Replay):
            job.replay = [DigitView.from_message(p.Watch(**view)) for view in message.views]
        elif isinstance(message, p.LrCurve):
            job.lr_curve = message
        return False

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.done]
        for job in sorted(finished, key=lambda j: j.submitted_at)[:-KEEP_FINISHED]:
            del self._jobs[job.id]
            if self.feed is not None:
                self.feed.remove(job.feed_token)

    # ----------------------------------------------------------------- the live feed

    def feed_payload(self, job: Job) -> dict:
        """What ``job``'s feed says now: its mode and lines, its chart once it trains, its digit, its outcome.
        The page draws its chart from the same (``feed_payload(job)``), so a fetch changes nothing it drew."""
        snap, h, done = job.snapshot(), job.history, job.done
        with using(job.language):  # the lines are read by the job's owner, in the language they started it in
            waiting = self.waiting_line(job.id) if snap.state == JobState.QUEUED else None
            progress, notes, warning = job.live_lines(waiting)
            ending = stored(job.outcome_text()) if done else None  # saved in English, read in theirs
        payload: dict = {
            "seq": job.fed,
            "mode": snap.mode,
            "state": snap.state,
            "paused": snap.paused,
            "progress": progress,
            "notes": notes,
            "warning": warning,
        }
        if h is not None and h.total_steps:
            losses = h.batch_losses[:]
            payload["chart"] = live_chart_data(
                losses, h.epochs[:], h.full_losses[:], h.total_steps, h.lr_schedule[:], job.smoother.follow(losses)
            )
        if job.watch is not None:
            payload["watch"] = job.watch.drawn()
        if done:  # shown by the chart at once, while the page redraws around it
            o = outcome(job.outcome)
            payload["outcome"] = [o.colour, ending]
        return payload

    def _publish(self, job: Job) -> None:
        """Write ``job``'s feed (``feed_payload``)."""
        if self.feed is None:
            return
        job.fed_at, job.fed = time.monotonic(), job.fed + 1
        if not self.feed.publish(job.feed_token, self.feed_payload(job)):
            self.feed.remove(job.feed_token)  # an old feed must not be read as the news: the page then redraws
        if job.done:  # its page has the outcome within a poll and redraws from the server; the digit goes too
            timer = threading.Timer(FEED_KEEP_S, self.feed.remove, (job.feed_token,))
            timer.daemon = True
            timer.start()

    def _publish_places(self) -> None:
        """The line moved: every waiting job's place changed."""
        for job in list(self._waiting):
            self._publish(job)
