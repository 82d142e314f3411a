"""Hyperparameter search on Optuna: a study's search space, its storage, its trials and what they found.

A study searches a ``SearchSpace`` (a learning-rate range on a log scale, optimisers, batch sizes,
epochs) by grid, random or TPE sampling. Every trial is an ordinary run: trained by the engine,
saved by ``runs.save_run`` and tagged with its study (``runs.tag_run``). Trials are selected on
a validation split held out of the training set (``TrainConfig.validation``), never on the test
set; the test accuracy of the best trial is read once, at the end. Optuna's median pruner ends a
trial whose validation accuracy after an epoch is below the median of earlier trials' at the same
epoch.

Two ways to run trials, one study format:
- ``run_trials`` trains in this process (the CLI's ``tune`` and ``tune-worker``): any number of
  processes, on any number of machines, can join one study through a shared storage;
- ``StudyDriver`` sends each trial to the server's ``JobQueue`` (the Tune page): the same warm
  trainers as the Train page, pruning read off the job's per-epoch history and done with the
  queue's stop.

The storage is SQLite in the runs folder by default, or any URL Optuna accepts; ``journal:PATH``
names Optuna's journal file storage (for processes sharing a disk, where SQLite's locking is not
to be trusted, e.g. NFS).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import socket
import threading
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.storages._heartbeat import get_heartbeat_thread  # public only through study.optimize

from . import settings
from .config import TrainConfig, check_knob, log_values, problems_sentence
from .data import Dataset
from .history import EpochMetrics
from .i18n import N_, _
from .jobs import JobQueue, QueueError
from .model import TUTORIAL_CHANNELS
from .outcomes import Ending
from .run_schema import RunError
from .runs import STUDY_STORE, finish_run, runs_root, tag_run
from .threads import ThreadTuner, fixed_threads
from .train import Callback, Trainer

SAMPLERS = ("grid", "random", "TPE")  # how a study picks its next trial
PRUNE_AFTER_TRIALS = 2  # the median pruner compares with this many finished trials at least
TPE_STARTUP_TRIALS = 5  # TPE samples at random until this many trials have finished
# A trial's process says it is alive every HEARTBEAT_S; one silent for GRACE_S (its process was killed) is
# marked failed and tried once more, so a grid never keeps a point that no one trains.
HEARTBEAT_S = 20
GRACE_S = 120
IMPORTANCE_AFTER = 4  # finished trials before parameter importances are worth drawing
USER_STOPS = (Ending.STOPPED, Ending.CANCELLED, Ending.INTERRUPTED)  # endings that say nothing of the hyperparameters
STORAGE_FILE = STUDY_STORE  # the default storage: SQLite in the runs folder

optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial is the caller's business


def scaled_channels(width: float) -> str:
    """The tutorial's conv widths times ``width``, as the channels knob writes them: 2 -> "16,32,64,64"."""
    return ",".join(str(max(1, round(c * width))) for c in TUTORIAL_CHANNELS)


@dataclass(frozen=True)
class SearchSpace:
    """What a study searches and what every trial shares. A choice of one value is fixed, not searched."""

    # The defaults find a good network on the sample (>= 92% validation in 12 trials, docs/performance.md); the
    # tutorial's Descent and lr up to 1 found 41% in a short study: most of the range collapses or crawls.
    lr_low: float = 1e-3  # learning rates from lr_low to lr_high, on a log scale
    lr_high: float = 0.032
    optimisers: tuple[str, ...] = ("ADAM", "Momentum")
    batch_sizes: tuple[int, ...] = (32,)
    epochs: tuple[int, ...] = (3,)
    sampler: str = "TPE"  # one of SAMPLERS
    dataset: str = "mnist"
    validation: float = 0.1  # share of the training set held out to select on
    seed: int = 0  # every trial starts from the same weights: differences come from the hyperparameters
    grid_per_decade: int = 1  # learning rates per decade a grid tries (1: 0.001, 0.01, 0.1, 1)
    # The network's shape: a width multiplier of the tutorial's four conv widths (2: 16,32,64,64), activations
    widths: tuple[float, ...] = (1.0,)
    activations: tuple[str, ...] = ("relu",)

    def validate(self) -> None:
        """Raise ValueError with a message a learner can act on."""
        problems = [p for v in (self.lr_low, self.lr_high) if (p := check_knob("lr", v))]
        if not problems and self.lr_low > self.lr_high:
            problems.append(_("the lowest learning rate must not be above the highest"))
        for none_chosen, values, field_name in (
            (_("choose at least one optimiser"), self.optimisers, "optimiser"),
            (_("choose at least one batch size"), self.batch_sizes, "batch_size"),
            (_("choose at least one epochs"), self.epochs, "epochs"),
            (_("choose at least one activation"), self.activations, "activation"),
        ):
            if not values:
                problems.append(none_chosen)
            problems += [p for v in values if (p := check_knob(field_name, v))]
        if not self.widths:
            problems.append(_("choose at least one width"))
        problems += [
            _("a width of {width:g} makes conv layers of {channels}; {problem}").format(
                width=w, channels=scaled_channels(w), problem=p
            )
            for w in self.widths
            if (p := check_knob("channels", scaled_channels(w)))
        ]
        if self.sampler not in SAMPLERS:
            problems.append(_("the search method must be one of {methods}").format(methods=", ".join(SAMPLERS)))
        if not 0 < self.validation <= TrainConfig.knob("validation").high:
            problems.append(
                _(
                    "a study needs a validation split (a share above 0 and at most {most:g}): it selects on it, never "
                    "on the test set"
                ).format(most=TrainConfig.knob("validation").high)
            )
        problems += [p for name in ("dataset", "seed") if (p := check_knob(name, getattr(self, name)))]
        if not 1 <= self.grid_per_decade <= 10:
            problems.append(_("a grid tries 1 to 10 learning rates per decade"))
        if problems:
            raise ValueError(problems_sentence(list(dict.fromkeys(problems))))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> SearchSpace:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        for name in ("optimisers", "batch_sizes", "epochs", "widths", "activations"):
            if name in known:
                known[name] = tuple(known[name])
        return cls(**known)

    def grid_lrs(self) -> list[float]:
        """The learning rates a grid tries: ``grid_per_decade`` per decade from lr_low to lr_high."""
        if self.lr_low == self.lr_high:
            return [self.lr_low]
        return log_values(self.lr_low, self.lr_high, self.grid_per_decade)

    def searched(self) -> dict[str, list]:
        """The searched parameters and their grid values (only those with more than one value)."""
        grid = {"lr": self.grid_lrs(), "optimiser": list(self.optimisers), "batch_size": list(self.batch_sizes)}
        grid["epochs"] = list(self.epochs)
        grid["width"], grid["activation"] = list(self.widths), list(self.activations)
        return {name: values for name, values in grid.items() if len(values) > 1}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.searched().values())

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """The trial's hyperparameters, asked of Optuna (the fixed ones are not part of the trial)."""
        params: dict[str, Any] = {}
        for name in self.searched():
            if name == "lr":
                params["lr"] = trial.suggest_float("lr", self.lr_low, self.lr_high, log=True)
            else:
                params[name] = trial.suggest_categorical(name, self.searched()[name])
        return params

    def config(self, params: dict[str, Any]) -> TrainConfig:
        """The run of a trial: its hyperparameters, the fixed ones, the study's data set, split and seed."""
        return TrainConfig(
            dataset=self.dataset,
            lr=float(params.get("lr", self.lr_low)),
            optimiser=params.get("optimiser", self.optimisers[0]),
            batch_size=int(params.get("batch_size", self.batch_sizes[0])),
            epochs=int(params.get("epochs", self.epochs[0])),
            channels=scaled_channels(float(params.get("width", self.widths[0]))),
            activation=params.get("activation", self.activations[0]),
            validation=self.validation,
            seed=self.seed,
        )


# --------------------------------------------------------------------------- storage and studies


def default_storage(root: Path | str | None = None) -> str:
    """``MNIST_TUNE_STORAGE`` (a storage other machines reach too), else SQLite in the runs folder: embedded,
    nothing to start."""
    if url := settings.get("MNIST_TUNE_STORAGE"):
        return url
    folder = runs_root(root).resolve()
    return f"sqlite:///{folder / STORAGE_FILE}"


_storage_lock = threading.Lock()


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """An Optuna storage from a URL; ``journal:PATH`` is Optuna's journal file (processes sharing a disk).
    One per URL and process: a page that redraws every second reuses its connection, and two sessions
    never create the same database's tables at once."""
    with _storage_lock:
        return _storage(url)


def forget_storages() -> None:
    """Drop the storages opened so far, as a new process starts (tests)."""
    with _storage_lock:
        _storage.cache_clear()


@functools.lru_cache(maxsize=8)
def _storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    kwargs: dict = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        kwargs = {"connect_args": {"timeout": 60}}  # other workers may hold the lock for a moment
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=kwargs,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=GRACE_S,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
        )


def make_sampler(space: SearchSpace, seed: int | None = None) -> optuna.samplers.BaseSampler:
    if space.sampler == "grid":
        return optuna.samplers.GridSampler(space.searched(), seed=seed)
    if space.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: parallel workers do not all pick the point that looks best while its trial still runs
    return optuna.samplers.TPESampler(n_startup_trials=TPE_STARTUP_TRIALS, seed=seed, constant_liar=True)


def make_pruner() -> optuna.pruners.BasePruner:
    """Median pruning on the per-epoch validation accuracy, once PRUNE_AFTER_TRIALS trials have finished."""
    return optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=0)


def study_names(storage: str | optuna.storages.BaseStorage, viewer: str | None = None) -> list[str]:
    """The studies in a storage that ``viewer`` (an owners.owner_id; None: the command line) may see, newest
    first: their own and those made outside the app (which have no owner)."""
    try:
        if isinstance(storage, str):
            storage = open_storage(storage)
        summaries = optuna.get_all_study_summaries(storage, include_best_trial=False)
    except Exception:  # an empty or missing SQLite file has no tables yet
        return []
    seen = [s for s in summaries if viewer is None or s.user_attrs.get("owner", "") in ("", viewer)]
    return [s.study_name for s in sorted(seen, key=lambda s: s._study_id, reverse=True)]


def ask(study: optuna.Study) -> optuna.Trial:
    """The next trial, after failing those whose process stopped saying it is alive (GRACE_S)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)  # we keep the heartbeat ourselves
        optuna.storages.fail_stale_trials(study)
        return study.ask()


def heartbeat(trial: optuna.Trial) -> contextlib.AbstractContextManager:
    """Say the trial is alive every HEARTBEAT_S while it trains (storages with heartbeats only). Optuna does this
    inside ``study.optimize``; trials here are asked and told by hand, so they start the same thread."""
    return get_heartbeat_thread(trial._trial_id, trial.study._storage)


def open_study(
    storage: str | optuna.storages.BaseStorage,
    name: str,
    space: SearchSpace | None = None,
    sampler_seed: int | None = None,
    owner: str | None = None,
) -> tuple[optuna.Study, SearchSpace]:
    """Create the study ``name`` searching ``space``, or join it if it exists (``space`` None: it must).

    The space is stored with the study, so a worker needs only the storage and the name. Joining with
    another space is an error: the trials would not be comparable. ``owner`` (an owners.owner_id; None: the
    command line) owns a study it creates, and may join only its own or one made outside the app.
    """
    if isinstance(storage, str):
        storage = open_storage(storage)
    if not name or len(name) > 100:
        raise ValueError(_("a study needs a name of 1 to 100 characters."))
    existing = name in study_names(storage)
    if existing and name not in study_names(storage, owner):
        raise ValueError(_("another visitor has a study of that name; choose another name."))
    if not existing:
        if space is None:
            message = _("there is no study {name} in this storage; start it with `python -m mnist_core tune`.")
            raise ValueError(message.format(name=repr(name)))
        space.validate()
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
        if "space" not in study.user_attrs:
            study.set_user_attr("space", space.to_dict())
            if owner:
                study.set_user_attr("owner", owner)
    stored = optuna.load_study(study_name=name, storage=storage).user_attrs.get("space")
    if stored is None:
        raise ValueError(
            _("the study {name} was not made by this app (it has no search space).").format(name=repr(name))
        )
    stored_space = SearchSpace.from_dict(stored)
    if space is not None and stored_space != space:
        raise ValueError(
            _(
                "the study {name} already searches another space ({space}); join it without search-space flags "
                "(tune-worker), or give a new study name."
            ).format(name=repr(name), space=describe_space(stored_space))
        )
    study = optuna.load_study(
        study_name=name, storage=storage, sampler=make_sampler(stored_space, sampler_seed), pruner=make_pruner()
    )
    return study, stored_space


def describe_space(space: SearchSpace) -> str:
    """The space in a few words: 'lr 0.001..1 (log), optimiser Descent|ADAM, batch 128, 3 epochs, TPE' (in the
    language in use)."""
    if space.lr_low == space.lr_high:
        lr = _("lr {lr:g}").format(lr=space.lr_low)
    else:
        lr = _("lr {low:g}..{high:g} (log)").format(low=space.lr_low, high=space.lr_high)
    parts = [
        lr,
        _("optimiser {optimisers}").format(optimisers="|".join(space.optimisers)),
        _("batch {sizes}").format(sizes="|".join(map(str, space.batch_sizes))),
        _("{epochs} epochs").format(epochs="|".join(map(str, space.epochs))),
    ]
    if space.widths != (1.0,) or space.activations != ("relu",):
        widths = "|".join(f"{w:g}" for w in space.widths)
        parts.append(_("width ×{widths}, {activations}").format(widths=widths, activations="|".join(space.activations)))
    return _("{parts}, {method}, validation {share:.0%}").format(
        parts=_(", ").join(parts), method=space.sampler, share=space.validation
    )


def trials_left(study: optuna.Study, space: SearchSpace, wanted: int) -> int:
    """How many of ``wanted`` trials to run: a grid runs each of its points once, whoever runs them."""
    if space.sampler != "grid":
        return wanted
    taken = sum(t.state != optuna.trial.TrialState.FAIL for t in study.get_trials(deepcopy=False))
    return max(0, min(wanted, space.grid_size() - taken))


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


# --------------------------------------------------------------------------- one trial


@dataclass
class TrialResult:
    """How one trial ended, as the study records it."""

    number: int
    params: dict[str, Any]
    state: str  # "complete", "pruned" or "failed" (a trial stopped by the user counts as failed)
    val_acc: float | None
    run: str | None  # the run folder's name, or None if nothing was saved
    epochs_done: int
    message: str = ""


def prune_now(trial: optuna.Trial, metrics: EpochMetrics, planned_epochs: int) -> bool:
    """Report an epoch's validation accuracy; True if the pruner ends the trial here (never after its last epoch)."""
    if metrics.val_acc is None:
        return False
    trial.report(metrics.val_acc, metrics.epoch)
    return metrics.epoch < planned_epochs and trial.should_prune()


def prune_reason(study_name: str, trial: int, metrics: EpochMetrics) -> str:
    """Why a trial's run stopped, as its run.json saves it: in English (N_), shown with i18n.stored()."""
    return N_(
        "Pruned by study {study} (trial {trial}): validation accuracy {accuracy:.1%} after epoch {epoch} was below the "
        "median of earlier trials"
    ).format(study=repr(study_name), trial=trial, accuracy=metrics.val_acc, epoch=metrics.epoch)


def _tell(study: optuna.Study, trial: optuna.Trial, *values: float, **state) -> None:
    """``study.tell``. A grid's last trial makes GridSampler call ``study.stop()``, which raises outside
    ``study.optimize`` after the trial is stored; here trials are asked by hand and ``trials_left`` ends a grid."""
    try:
        study.tell(trial, *values, **state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


def finish_trial(
    study: optuna.Study,
    trial: optuna.Trial,
    params: dict[str, Any],
    config: TrainConfig,
    epochs: list[EpochMetrics],
    status: str,
    run_dir: Path | None,
    pruned: bool,
    message: str = "",
    run_message: str | None = None,
) -> TrialResult:
    """Record a trial's outcome in the study (its run, its epochs and their times), tag its run (``run_message``
    replaces the run's message), tell Optuna."""
    epochs = [e for e in epochs if e.val_acc is not None]
    val_acc = epochs[-1].val_acc if epochs else None
    test_acc = None
    attrs = {
        "status": status,
        "epochs_done": len(epochs),
        "epochs_planned": config.epochs,
        "epoch_seconds": [e.seconds for e in epochs],
        "run": run_dir.name if run_dir else None,
    }
    if run_dir is not None:
        try:
            meta = tag_run(run_dir, study.study_name, trial.number, message=run_message)
            test_acc = meta.test_acc
        except (RunError, OSError) as exc:
            message = N_("{message} Its run could not be tagged with the study: {error}").format(
                message=message, error=exc
            )
            message = message.strip()
    attrs["test_acc"] = test_acc  # kept for the best trial's one report; never a selection criterion
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    state = optuna.trial.TrialState
    if pruned:
        _tell(study, trial, state=state.PRUNED)
        outcome = "pruned"
    elif status not in USER_STOPS + ("failed",) and val_acc is not None:  # finished, collapsed, diverged late
        _tell(study, trial, val_acc)
        outcome = "complete"
    else:
        _tell(study, trial, state=state.FAIL)
        outcome = "failed"
    return TrialResult(trial.number, params, outcome, val_acc, attrs["run"], len(epochs), message)


class _Pruning(Callback):
    """In-process trials: report each epoch and stop the run at the epoch's end if the pruner says so."""

    def __init__(self, study_name: str, trial: optuna.Trial, planned: int) -> None:
        self.study_name, self.trial, self.planned, self.pruned = study_name, trial, planned, False

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        if prune_now(self.trial, metrics, self.planned):
            self.pruned = True
            trainer.control.stop(Ending.STOPPED, prune_reason(self.study_name, self.trial.number, metrics))


def run_trials(
    study: optuna.Study,
    space: SearchSpace,
    dataset: Dataset,
    n_trials: int,
    root: Path | str | None = None,
    callbacks: tuple[Callback, ...] = (),
    on_trial: Callable[[TrialResult], None] | None = None,
    stop_event: threading.Event | None = None,
    threads: int | None = None,
) -> list[TrialResult]:
    """Train up to ``n_trials`` trials of ``study`` in this process (Optuna's n_trials, per process); each
    is saved as an ordinary run under ``root``, tagged with the study. ``threads``: the CPU threads the first
    trial starts with; each trial then tunes its count and the next starts where it ended (None: as set)."""
    results, tuner = [], None
    for _trial in range(trials_left(study, space, n_trials)):
        if stop_event is not None and stop_event.is_set():
            break
        trial = ask(study)
        trial.set_user_attr("worker", worker_name())
        params = space.suggest(trial)
        config = space.config(params)
        pruning = _Pruning(study.study_name, trial, config.epochs)
        tuning = [] if threads is None or fixed_threads() else [ThreadTuner(start=threads, after=tuner)]
        trainer = Trainer(config, dataset, callbacks=[pruning, *callbacks, *tuning], stop_event=stop_event)
        with heartbeat(trial):
            try:
                trainer.run()
            except KeyboardInterrupt:
                trainer.history.status, trainer.history.message = Ending.STOPPED, N_("Stopped with Ctrl-C.")
                stop_event = stop_event or threading.Event()
                stop_event.set()
            run_dir, _report, message = finish_run(trainer, dataset, root=root)
            h = trainer.history
            result = finish_trial(study, trial, params, config, h.epochs, h.status, run_dir, pruning.pruned, message)
        tuner = tuning[0] if tuning and tuning[0].active else tuner
        results.append(result)
        if on_trial is not None:
            on_trial(result)
    return results


# --------------------------------------------------------------------------- trials through the server's queue


@dataclass
class CurrentTrial:
    """What the page shows of the trial in training."""

    number: int
    params: dict[str, Any]
    job_id: str


@dataclass
class StudyDriver:
    """Runs ``n_trials`` trials of a study, one after another, through the server's job queue.

    Each trial is a job of ``owner`` (so the queue's limits apply); its per-epoch validation accuracy is
    read off the job's history and reported to Optuna, and a pruned trial is stopped with the queue's
    stop. ``stop()`` ends the study: the running trial is saved as stopped, no new one starts.
    """

    queue: JobQueue
    owner: str
    storage: str
    study_name: str
    n_trials: int
    run_owner: str = ""  # owners.owner_id of the visitor whose runs the trials are
    address: str | None = None  # the visitor's client address, where known (the queue's per-address limit)
    poll_s: float = 0.1
    results: list[TrialResult] = field(default_factory=list)
    current: CurrentTrial | None = None
    message: str = ""  # why it ended early, if it did
    stopped_trial: int | None = None  # the trial that Stop ended while it trained (saved as stopped)
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self) -> StudyDriver:
        self.thread = threading.Thread(target=self._run, name=f"mnist-study-{self.study_name}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        current = self.current
        if current is not None:
            try:
                self.queue.stop(current.job_id, self.owner)
            except QueueError:
                pass

    def _run(self) -> None:
        try:
            study, space = open_study(self.storage, self.study_name)
            for _trial in range(trials_left(study, space, self.n_trials)):
                if self.stop_event.is_set():
                    break
                self.results.append(self._trial(study, space))
            else:
                return
            # its messages are English (N_), as the queue's are: the page shows them with i18n.stored()
            if self.stopped_trial is not None:
                stopped = N_("Stopped: trial {trial} was saved as stopped, and no new trial starts.").format(
                    trial=self.stopped_trial
                )
            else:  # Stop came as one trial ended and before the next began
                stopped = N_("Stopped between two trials: none was training, and no new trial starts.")
            self.message = self.message or stopped
        except Exception as exc:  # the page shows it; the study keeps what it had
            self.message = N_("The study stopped: {error}").format(error=f"{type(exc).__name__}: {exc}")
        finally:
            self.current = None

    def _trial(self, study: optuna.Study, space: SearchSpace) -> TrialResult:
        trial = ask(study)
        with heartbeat(trial):
            return self._train(study, space, trial)

    def _train(self, study: optuna.Study, space: SearchSpace, trial: optuna.Trial) -> TrialResult:
        trial.set_user_attr("worker", f"server {worker_name()}")
        params = space.suggest(trial)
        config = space.config(params)
        try:
            job = self.queue.submit(config, owner=self.owner, run_owner=self.run_owner, address=self.address)
        except (QueueError, ValueError) as exc:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            self.message = N_("The queue refused a trial: {error}").format(error=exc)
            self.stop_event.set()
            return TrialResult(trial.number, params, "failed", None, None, 0, str(exc))
        self.current = CurrentTrial(trial.number, params, job.id)
        if self.stop_event.is_set():  # Stop pressed between ask and submit
            self.queue.stop(job.id, self.owner)
        reported, pruned_at = 0, None
        while True:
            done = job.done  # read first: the epochs below are then complete
            epochs = list(job.history.epochs) if job.history is not None else []
            for metrics in epochs[reported:]:
                if pruned_at is None and prune_now(trial, metrics, config.epochs):
                    pruned_at = metrics
                    self.queue.stop(job.id, self.owner)
            reported = len(epochs)
            if done:
                break
            self.stop_event.wait(self.poll_s)
        run_message = None
        if pruned_at is not None:  # the queue's stop says "Stopped by the user": say who stopped it and why
            h = job.history
            run_message = N_("{reason}; stopped at step {step} of {total}.").format(
                reason=prune_reason(study.study_name, trial.number, pruned_at), step=h.step, total=h.total_steps
            )
        pruned = pruned_at is not None
        if job.outcome == Ending.STOPPED and not pruned and self.stop_event.is_set():
            self.stopped_trial = trial.number
        return finish_trial(
            study, trial, params, config, epochs, job.outcome, job.run_dir, pruned, job.message, run_message
        )


_drivers: dict[str, StudyDriver] = {}
_drivers_lock = threading.Lock()


def start_study(
    queue: JobQueue,
    owner: str,
    storage: str,
    study_name: str,
    n_trials: int,
    run_owner: str = "",
    address: str | None = None,
) -> StudyDriver:
    """Start a driver for ``owner`` (one at a time); the study must exist (``open_study``)."""
    with _drivers_lock:
        old = _drivers.get(owner)
        if old is not None and old.running:
            raise QueueError(_("A study of yours is running: stop it before starting another."))
        driver = StudyDriver(queue, owner, storage, study_name, n_trials, run_owner, address)
        driver = _drivers[owner] = driver.start()
        return driver


def driver_of(owner: str) -> StudyDriver | None:
    """The latest study driver started by ``owner``, running or ended."""
    with _drivers_lock:
        return _drivers.get(owner) if owner else None


# --------------------------------------------------------------------------- what a study found

# A trial's state in trials_table: keys the page compares (English); shown with _()
STATE_WORDS = {
    "COMPLETE": N_("complete"),
    "PRUNED": N_("pruned"),
    "FAIL": N_("failed"),
    "RUNNING": N_("running"),
    "WAITING": N_("waiting"),
}
STOPPED_TRIAL = N_("stopped")  # a trial the user stopped (failed in Optuna's eyes)


# trials_table's columns besides the trial's parameters: keys the page indexes (English), shown with _()
TRIAL, STATE, VAL_ACCURACY, EPOCHS = N_("trial"), N_("state"), N_("val accuracy"), N_("epochs")
TRAINING_S, WORKER, RUN = N_("training s"), N_("worker"), N_("run")


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial, best validation accuracy first: its hyperparameters, how it ended, its run.

    The test accuracy is not here on purpose: trials are compared on the validation split only.
    """
    rows = []
    for t in study.get_trials(deepcopy=False):
        planned = t.user_attrs.get("epochs_planned")
        done = t.user_attrs.get("epochs_done", len(t.intermediate_values))
        state = STATE_WORDS.get(t.state.name, t.state.name.lower())
        if state == "failed" and t.user_attrs.get("status") in USER_STOPS:
            state = STOPPED_TRIAL  # by the user (Stop, Ctrl-C): not the trial's fault
        rows.append(
            {
                TRIAL: t.number,
                STATE: state,
                **t.params,
                VAL_ACCURACY: _number(t.value if t.value is not None else _last(t.intermediate_values)),
                EPOCHS: f"{done}/{planned}" if planned else str(done),
                TRAINING_S: sum(t.user_attrs.get("epoch_seconds", [])),
                WORKER: t.user_attrs.get("worker", ""),
                RUN: t.user_attrs.get("run") or "",
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    return table.sort_values([VAL_ACCURACY, TRIAL], ascending=[False, True], na_position="last").reset_index(drop=True)


def _last(values: dict[int, float]) -> float | None:
    return values[max(values)] if values else None


def _number(value: float | None) -> float:
    """A table cell: NaN (shown empty) where a trial has no value yet, never the word None."""
    return float("nan") if value is None else float(value)


def new_study_name(storage: str | optuna.storages.BaseStorage) -> str:
    """The first of study-1, study-2, ... that no study in ``storage`` has: a new study, not someone's old one."""
    taken, n = set(study_names(storage)), 1
    while f"study-{n}" in taken:
        n += 1
    return f"study-{n}"


@dataclass
class PruningSavings:
    pruned: int  # trials pruned
    seconds_saved: float  # training time their remaining epochs would have taken (at their own pace)
    seconds_spent: float  # training time of every trial


def pruning_savings(study: optuna.Study) -> PruningSavings:
    """How much training pruning saved: each pruned trial's missing epochs at that trial's mean epoch time."""
    pruned, saved, spent = 0, 0.0, 0.0
    for t in study.get_trials(deepcopy=False):
        seconds = t.user_attrs.get("epoch_seconds", [])
        spent += sum(seconds)
        if t.state == optuna.trial.TrialState.PRUNED:
            pruned += 1
            missing = t.user_attrs.get("epochs_planned", len(seconds)) - len(seconds)
            if seconds and missing > 0:
                saved += missing * sum(seconds) / len(seconds)
    return PruningSavings(pruned, saved, spent)


@dataclass
class BestTrial:
    number: int
    params: dict[str, Any]
    val_acc: float
    test_acc: float | None  # read once, for the chosen trial only
    run: str | None


def best_trial(study: optuna.Study) -> BestTrial | None:
    """The complete trial with the best validation accuracy, or None before one has finished."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return None
    best = max(complete, key=lambda t: (t.value, -t.number))
    return BestTrial(best.number, best.params, best.value, best.user_attrs.get("test_acc"), best.user_attrs.get("run"))


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or _("(none)")


def study_figures(study: optuna.Study) -> dict[str, Any]:
    """Optuna's plotly views of the study, by title (English, marked N_: a page shows it with _()); those that need
    more finished trials are left out. The figures' own texts are Optuna's, in English, but for the value's axis."""
    import optuna.visualization as vis

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return {}
    target = _(VAL_ACCURACY)  # the axis of the value the study maximises, in the language in use
    figures = {N_("History"): vis.plot_optimization_history(study, target_name=target)}
    params = {name for t in complete for name in t.params}
    if params:
        figures[N_("Parallel coordinates")] = vis.plot_parallel_coordinate(study, target_name=target)
        figures[N_("Slice")] = vis.plot_slice(study, target_name=target)
    if len(params) >= 2 and len(complete) >= IMPORTANCE_AFTER:
        figures[N_("Importances")] = vis.plot_param_importances(study, target_name=target)
    for figure in figures.values():
        figure.update_layout(height=380, margin={"t": 40, "b": 40, "l": 60, "r": 20})
    return figures
