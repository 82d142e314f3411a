"""The run store: one folder per run under the runs root, written whole or not at all, read through the
schema (run_schema.py), owned, shared, named, listed and deleted.

A run folder holds ``run.json`` (a ``RunMeta``: config, status, message, data set, timings, the lr and
momentum schedules), ``batches.csv`` (the loss of every batch), ``epochs.csv`` (per-epoch metrics), optionally
``full_losses.csv`` (the tutorial's loss recorder) and ``report.json``, ``weights.safetensors``, and optionally
``snapshots.safetensors`` (float16 weights at a few saved steps, for replaying how the model changed; see
``mnist_core.watch``). What ``save_run`` writes always passes the schema (it keeps at most what it accepts).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from itertools import takewhile
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import save as save_safetensors
from safetensors.torch import save_file

from . import settings
from .config import TrainConfig
from .data import TITLES, Dataset
from .devices import device_label
from .history import EpochMetrics, History
from .i18n import DEFAULT, N_, _, using
from .model import TutorialCNN
from .outcomes import DAMAGED, Ending
from .owners import visible
from .report import Report, build_report
from .run_schema import (
    ARCHIVE_FILES,
    MAX_BATCH_LOSSES,
    MAX_FULL_LOSSES,
    MAX_LABEL,
    MAX_MESSAGE,
    MAX_NAME,
    MAX_NOTE,
    MAX_SCHEDULE,
    REQUIRED_FILES,
    VALIDATION_COLUMNS,
    RunError,
    RunMeta,
    parse_json,
    parse_report,
    parse_run,
    parse_snapshots,
)
from .train import Trainer

STUDY_STORE = "tune.db"  # the default Optuna storage in the runs folder, with SQLite's -journal, -wal, -shm beside it


def runs_root(path: Path | str | None = None) -> Path:
    """The folder that holds the runs: argument, ``MNIST_RUNS_DIR`` or ``./runs``."""
    return Path(path or settings.get("MNIST_RUNS_DIR"))


def new_run_id(config: TrainConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{config.dataset}-{config.optimiser.lower()}-lr{config.lr:g}-{secrets.token_hex(2)}"


# --------------------------------------------------------------------------- saving and loading a folder


@dataclass
class Run:
    """A saved run as read back: everything needed to report on it or to rebuild its model."""

    path: Path
    meta: RunMeta  # run.json, checked
    history: History
    report: Report | None
    model: TutorialCNN | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def config(self) -> TrainConfig:
        return self.meta.config

    @property
    def weights_finite(self) -> bool:
        """False for a diverged run's NaN weights (and for a run read without its model)."""
        return self.model is not None and all(torch.isfinite(p).all() for p in self.model.parameters())


def save_run(
    trainer: Trainer,
    report: Report | None = None,
    root: Path | str | None = None,
    run_id: str | None = None,
    status: str | None = None,
    message: str | None = None,
    snapshots: dict[str, torch.Tensor] | None = None,
    owner: str = "",
) -> Path:
    """Write ``trainer``'s run to its folder and return the folder. ``status`` and ``message`` override the
    history's (a checkpoint of a run still training is saved as "interrupted"). ``snapshots`` (keys from
    ``snapshot_key``) go to snapshots.safetensors. ``owner``: the owners.owner_id of the visitor it is for.

    It keeps what the schema accepts: the first MAX_BATCH_LOSSES batch losses, finite numbers, the first
    MAX_MESSAGE characters of the message. Weights that are no longer finite make the run "diverged".
    """
    h = trainer.history
    folder = runs_root(root) / (run_id or new_run_id(trainer.config))
    status = status or h.status
    message = h.message if message is None else message
    state = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    if status != Ending.DIVERGED and not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        status, report = Ending.DIVERGED, None  # the last update overflowed: what load_run would refuse otherwise
        # a run's messages are saved, so they are English (N_): a page shows them through i18n.stored()
        if message:
            note = N_("{message} The weights are no longer finite numbers: the learning rate is too high.")
            message = note.format(message=message).strip()
        else:
            message = N_("The weights are no longer finite numbers: the learning rate is too high.")
    finite = lambda *xs: all(math.isfinite(x) for x in xs)  # noqa: E731
    epochs = list(takewhile(lambda e: finite(e.train_loss, e.train_acc, e.test_loss, e.test_acc, e.seconds), h.epochs))
    meta = _meta_of(trainer, status, message, report.test_acc if report else None, epochs, owner)
    files = _checked_files(folder, meta, report, snapshots)
    files["batches.csv"] = list(h.batch_losses[:MAX_BATCH_LOSSES])
    files["epochs.csv"] = epochs
    files["full_losses.csv"] = [(s, v) for s, v in h.full_losses if finite(v)][:MAX_FULL_LOSSES]
    files["weights.safetensors"] = state
    _write_folder(folder, files)
    return folder


def _meta_of(
    trainer: Trainer, status: str, message: str, test_acc: float | None, epochs: list[EpochMetrics], owner: str
) -> RunMeta:
    """run.json of ``trainer``'s run as it is now."""
    h = trainer.history
    with using(DEFAULT):  # saved in English, as every text of run.json
        device = device_label(trainer.device)
    return RunMeta(
        config=trainer.config,
        status=status,
        message=message[:MAX_MESSAGE],
        n_train=trainer.dataset.n_train,
        n_test=trainer.dataset.n_test,
        steps=h.step,
        total_steps=h.total_steps,
        steps_per_epoch=h.steps_per_epoch,
        lr_schedule=list(h.lr_schedule[:MAX_SCHEDULE]),
        momentum_schedule=list(h.momentum_schedule[:MAX_SCHEDULE]),
        device=device[:MAX_LABEL],
        dataset_title=trainer.dataset.title[:MAX_LABEL],
        dataset_source=trainer.dataset.source[:MAX_LABEL],
        train_seconds=h.train_seconds,
        images_per_sec=h.images_per_sec,
        images_done=h.images_done,
        started_at=h.started_at,
        saved_at=time.time(),
        test_acc=test_acc if test_acc is not None else (epochs[-1].test_acc if epochs else None),
        owner=owner,
    )


def _checked_files(
    folder: Path, meta: RunMeta, report: Report | None, snapshots: dict[str, torch.Tensor] | None
) -> dict[str, Any]:
    """run.json, report.json and snapshots.safetensors as bytes, each checked as load_run will check it. A report
    or snapshots that fail are left out, and the run's message says so."""
    RunMeta.from_dict(json.loads(json.dumps(meta.to_dict())), str(folder / "run.json"))
    files: dict[str, Any] = {}
    if report is not None:
        raw = json.dumps(report.to_dict()).encode()  # per_class may hold NaN; it is rebuilt on load
        try:
            parse_report(parse_json(raw, "report.json"), "report.json", meta)
            files["report.json"] = raw
        except RunError as exc:
            message = N_("{message} The report could not be kept: {error}").format(message=meta.message, error=exc)
            meta.message = message[:MAX_MESSAGE]
    if snapshots:
        raw = save_safetensors({k: v.detach().cpu().contiguous() for k, v in snapshots.items()})
        try:
            if len(raw) > ARCHIVE_FILES["snapshots.safetensors"]:
                raise RunError(N_("{n:,} bytes").format(n=len(raw)))
            parse_snapshots(raw, "snapshots.safetensors", meta)
            files["snapshots.safetensors"] = raw
        except RunError as exc:
            message = N_("{message} The weight snapshots could not be kept: {error}")
            meta.message = message.format(message=meta.message, error=exc)[:MAX_MESSAGE]
    files["run.json"] = json.dumps(meta.to_dict(), indent=2).encode()  # with the message as it ends up
    return files


def _write_folder(folder: Path, files: dict[str, Any]) -> None:
    """Write a run's files (bytes, or the losses, epochs and weights to encode) into ``folder``, whole or not at
    all: into a *.partial folder first, then renamed into place."""
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        losses, epochs, full_losses = files.pop("batches.csv"), files.pop("epochs.csv"), files.pop("full_losses.csv")
        pd.DataFrame({"step": range(1, len(losses) + 1), "loss": losses}).to_csv(tmp / "batches.csv", index=False)
        columns = list(EpochMetrics.__dataclass_fields__)
        if not epochs or any(e.val_acc is None or e.val_loss is None for e in epochs):  # no validation split
            columns = [c for c in columns if c not in VALIDATION_COLUMNS]
        pd.DataFrame([asdict(e) for e in epochs], columns=columns).to_csv(tmp / "epochs.csv", index=False)
        if full_losses:
            pd.DataFrame(full_losses, columns=["step", "loss"]).to_csv(tmp / "full_losses.csv", index=False)
        save_file(files.pop("weights.safetensors"), str(tmp / "weights.safetensors"))
        for name, raw in files.items():
            (tmp / name).write_bytes(raw)
        # Replace an earlier save (a checkpoint) by renames only: the run is never missing for longer than
        # between two renames, and a kill at any point leaves at worst a *.partial folder the next save clears.
        old = folder.with_name(folder.name + ".old.partial")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)  # the folder appears whole or not at all
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a failed save leaves nothing half-written behind
        raise


def finish_run(
    trainer: Trainer,
    dataset: Dataset,
    root: Path | str | None = None,
    run_id: str | None = None,
    snapshots: dict[str, torch.Tensor] | None = None,
    owner: str = "",
) -> tuple[Path | None, Report | None, str]:
    """Report on an ended run and save it; returns (folder or None, report or None, the run's message).

    A diverged model holds NaN weights, so it gets no report; if the report fails the run is
    still saved without one; if saving fails the message says so.
    """
    message = trainer.history.message
    report = None
    if trainer.history.status in (Ending.FINISHED, Ending.COLLAPSED, Ending.STOPPED):
        try:
            report = build_report(trainer.model, dataset)
        except Exception as exc:
            message = N_("{message} The report could not be computed: {error}").format(message=message, error=exc)
    try:
        folder = save_run(trainer, report, root=root, run_id=run_id, snapshots=snapshots, owner=owner)
        return folder, report, message
    except Exception as exc:
        return None, report, N_("{message} The run could not be saved: {error}").format(message=message, error=exc)


def _read_bounded(path: Path, limit: int) -> bytes:
    """A file of a run folder, refused before it is read if it is larger than a run's file can be."""
    try:
        with path.open("rb") as file:
            content = file.read(limit + 1)
    except FileNotFoundError as exc:
        raise RunError(_("{path}: missing; this is not a complete run folder.").format(path=path)) from exc
    except OSError as exc:
        raise RunError(_("{path}: cannot be read ({error}).").format(path=path, error=exc)) from exc
    if len(content) > limit:
        raise RunError(_("{path}: more than a run's {most:,} bytes.").format(path=path, most=limit))
    return content


def read_meta(path: Path | str) -> RunMeta:
    """Only run.json of a run folder, checked: enough for a table of runs."""
    path = Path(path) / "run.json"
    return RunMeta.from_dict(parse_json(_read_bounded(path, ARCHIVE_FILES["run.json"]), str(path)), str(path))


def load_run(path: Path | str, with_model: bool = True) -> Run:
    """Read a run folder back; ``with_model`` also rebuilds the model from its weights (on the CPU)."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(_("{path}: no such run folder.").format(path=path))
    names = [n for n in ARCHIVE_FILES if n in REQUIRED_FILES or (path / n).exists()]
    if not with_model:
        names.remove("weights.safetensors")
    files = {name: _read_bounded(path / name, ARCHIVE_FILES[name]) for name in names}
    meta, history, report, model = parse_run(files, lambda name: str(path / name), with_model)
    return Run(path=path, meta=meta, history=history, report=report, model=model)


def load_snapshots(path: Path | str) -> dict[int, dict[str, torch.Tensor]]:
    """A run folder's weight snapshots, checked: {step: state_dict (float32)}, steps in order; {} for a run
    saved without them."""
    path = Path(path)
    if not (path / "snapshots.safetensors").exists():
        return {}
    raw = _read_bounded(path / "snapshots.safetensors", ARCHIVE_FILES["snapshots.safetensors"])
    return parse_snapshots(raw, str(path / "snapshots.safetensors"), read_meta(path))


def tag_run(path: Path | str, study: str, trial: int, message: str | None = None) -> RunMeta:
    """Mark a saved run as trial ``trial`` of ``study`` (``message``, if given, replaces its message)."""
    meta = read_meta(path)
    meta.study, meta.trial = study[:MAX_LABEL], int(trial)
    if message is not None:
        meta.message = message[:MAX_MESSAGE]
    return _rewrite_meta(Path(path), meta)


def share_run(path: Path | str, viewer: str, shared: bool) -> RunMeta:
    """Show the run to every visitor (read-only), or to its owner only again; only its owner may."""
    meta = read_meta(path)
    _check_owner(Path(path), meta, viewer, "share")
    meta.shared = bool(shared)
    return _rewrite_meta(Path(path), meta)


def name_run(path: Path | str, viewer: str | None, name: str, note: str | None = None) -> RunMeta:
    """Give the run a name (and a note, if given); only its owner may. Longer texts are cut to the limits."""
    meta = read_meta(path)
    _check_owner(Path(path), meta, viewer, "name")
    meta.name = " ".join(str(name).split())[:MAX_NAME]  # one line: a name sits in tables and pickers
    if note is not None:
        meta.note = str(note).strip()[:MAX_NOTE]
    return _rewrite_meta(Path(path), meta)


def _check_owner(path: Path, meta: RunMeta, viewer: str | None, verb: str) -> None:
    """RunError unless ``viewer`` owns the run (None: the command line, which may do anything)."""
    if viewer is None or (viewer and meta.owner == viewer):
        return
    shared = {  # one sentence per case: words and their order differ between languages
        "share": _("{run} is shared by this server; only its owner can share it."),
        "name": _("{run} is shared by this server; only its owner can name it."),
        "delete": _("{run} is shared by this server; only its owner can delete it."),
    }
    others = {
        "share": _("{run} belongs to another visitor; only its owner can share it."),
        "name": _("{run} belongs to another visitor; only its owner can name it."),
        "delete": _("{run} belongs to another visitor; only its owner can delete it."),
    }
    raise RunError((others if meta.owner else shared)[verb].format(run=path.name))


def _rewrite_meta(path: Path, meta: RunMeta) -> RunMeta:
    """run.json replaced by a rename, so a reader sees the old file or the new one, never half of one."""
    raw = json.dumps(meta.to_dict(), indent=2).encode()
    RunMeta.from_dict(json.loads(raw), str(path / "run.json"))  # what load_run will check, checked now
    tmp = path / f".run.json.{secrets.token_hex(4)}.partial"
    tmp.write_bytes(raw)
    os.replace(tmp, path / "run.json")
    return meta


def list_runs(root: Path | str | None = None) -> list[Path]:
    """Run folders under ``root``, newest first (folders being written are skipped)."""
    root = runs_root(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and (p / "run.json").is_file() and not p.name.endswith(".partial")]
    return sorted(runs, key=lambda p: p.name, reverse=True)


def list_run_metas(root: Path | str | None = None) -> list[tuple[Path, RunMeta | None]]:
    """Every run folder (as ``list_runs``) with its run.json, or None where that is damaged."""
    out = []
    for path in list_runs(root):
        try:
            out.append((path, read_meta(path)))
        except RunError:
            out.append((path, None))
    return out


def describe_schedule(name: str, schedule: list[tuple[int, float]], most: int = 8) -> str:
    """'lr 0.1 → 0.01 from step 121': a schedule in words (steps are 1-based); long ones lose their middle."""
    if not schedule:
        return ""
    changes = [_("{value:g} from step {step}").format(value=value, step=step + 1) for step, value in schedule[1:]]
    if len(changes) > most:
        hidden = len(changes) - most + 1
        more = _("… {n} more changes …").format(n=hidden)
        changes = [*changes[: most // 2], more, *changes[-(most - most // 2 - 1) :]]
    return " → ".join([f"{name} {schedule[0][1]:g}", *changes])


# --------------------------------------------------------------------------- comparing and sharing runs

TABLE_FIELDS = ("optimiser", "lr", "epochs", "batch_size", "loop", "channels", "activation", "seed", "init")
# What a learner compares first comes first: how it ended and how well it does. The columns are keys (English);
# a page shows them with _(), the config's field names (TABLE_FIELDS) as they are.
TABLE_COLUMNS = (
    N_("name"),
    N_("status"),
    N_("test accuracy"),
    N_("data set"),
    *TABLE_FIELDS,
    N_("final lr"),
    N_("lr changes"),
    N_("training s"),
    N_("images/s"),
    N_("steps"),
    N_("device"),
    N_("imported"),
    N_("study"),
    N_("yours"),
    N_("shared"),
    N_("started"),
    N_("run"),
)


def runs_table(root: Path | str | None = None, viewer: str | None = None) -> pd.DataFrame:
    """One row per saved run ``viewer`` may see (None: every run, damaged ones included and marked so):
    hyperparameters, status and speed; ``yours`` marks the viewer's own."""
    rows = []
    for path, meta in list_run_metas(root):
        if not visible(meta, viewer):
            continue
        if meta is None:
            rows.append({"run": path.name, "status": DAMAGED, "yours": False, "shared": False})
            continue
        cfg = meta.config
        rows.append(
            {
                "run": path.name,
                "name": meta.name,
                "data set": meta.dataset_title or TITLES.get(cfg.dataset, cfg.dataset),  # "MNIST sample (5,000 digits)"
                **{k: getattr(cfg, k) for k in TABLE_FIELDS},
                "final lr": meta.lr_schedule[-1][1] if meta.lr_schedule else cfg.lr,
                "lr changes": max(len(meta.lr_schedule) - 1, 0),
                "device": meta.device,
                "status": meta.status,
                "test accuracy": meta.test_acc,
                "training s": meta.train_seconds,
                "images/s": meta.images_per_sec,
                "steps": meta.steps,
                "imported": meta.imported,
                "study": f"{meta.study} #{meta.trial}" if meta.study else "",
                "yours": bool(viewer) and meta.owner == viewer,
                "shared": meta.shared,
                "started": meta.started_at or None,  # time.time(); a page writes it in the reader's language
            }
        )
    return pd.DataFrame(rows, columns=list(TABLE_COLUMNS))


def differing_labels(configs: list[TrainConfig]) -> list[str]:
    """A short label per config naming only the hyperparameters that differ between them."""
    if not configs:
        return []
    dicts = [c.to_dict() for c in configs]
    keys = [k for k in dicts[0] if len({repr(d[k]) for d in dicts}) > 1]
    if not keys:
        return [_("run {n}").format(n=i + 1) for i in range(len(configs))]
    return [", ".join(f"{k}={d[k]:g}" if isinstance(d[k], float) else f"{k}={d[k]}" for k in keys) for d in dicts]


def delete_run(path: Path | str, viewer: str | None, root: Path | str | None = None) -> None:
    """Delete one run folder directly under the runs root; a visitor (``viewer``, an owner id) only their own,
    the command line (None) any."""
    path = Path(path).resolve()
    if path.parent != runs_root(root).resolve() or not (path / "run.json").exists():
        raise RunError(_("{run} is not a run folder here.").format(run=path.name))
    try:
        meta = read_meta(path)
    except RunError:
        if viewer is not None:  # whose it is cannot be read: only the command line may remove it
            message = _("{run} is damaged, so whose it is cannot be read; it was not deleted.")
            raise RunError(message.format(run=path.name)) from None
    else:
        _check_owner(path, meta, viewer, "delete")
    shutil.rmtree(path)
