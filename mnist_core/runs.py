"""Saving and loading runs: one folder per run under ``runs/``.

A run folder holds ``run.json`` (config, status, timings, data set), ``batches.csv`` (loss of
every batch), ``epochs.csv`` (per-epoch metrics), ``report.json`` and ``weights.safetensors``.
Weights are read with safetensors, never unpickled, and checked against the model's shapes.
"""

from __future__ import annotations

import io
import json
import math
import os
import secrets
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .data import Dataset
from .model import TutorialCNN
from .report import Report, build_report
from .train import EpochMetrics, History, TrainConfig, Trainer, device_label

FORMAT_VERSION = 1


class RunError(Exception):
    """A run folder is missing or damaged; the message names the file and the problem."""


def runs_root(path: Path | str | None = None) -> Path:
    """The folder that holds the runs: argument, ``MNIST_RUNS_DIR`` or ``./runs``."""
    return Path(path or os.environ.get("MNIST_RUNS_DIR") or "runs")


def new_run_id(config: TrainConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{config.dataset}-{config.optimiser.lower()}-lr{config.lr:g}-{secrets.token_hex(2)}"


@dataclass
class Run:
    """A saved run as read back: everything needed to report on it or to rebuild its model."""

    path: Path
    config: TrainConfig
    meta: dict  # status, message, device, data set, timings
    history: History
    report: Report | None
    model: TutorialCNN | None = field(default=None, repr=False)

    @property
    def run_id(self) -> str:
        return self.path.name


def save_run(
    trainer: Trainer,
    report: Report | None = None,
    root: Path | str | None = None,
    run_id: str | None = None,
    status: str | None = None,
    message: str | None = None,
) -> Path:
    """Write ``trainer``'s run to its folder and return the folder. ``status`` and ``message`` override the
    history's (a checkpoint of a run still training is saved as "interrupted")."""
    h = trainer.history
    folder = runs_root(root) / (run_id or new_run_id(trainer.config))
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    meta = {
        "format": FORMAT_VERSION,
        "config": trainer.config.to_dict(),
        "status": status or h.status,
        "message": h.message if message is None else message,
        "device": device_label(trainer.device),
        "dataset_title": trainer.dataset.title,
        "dataset_source": trainer.dataset.source,
        "n_train": trainer.dataset.n_train,
        "n_test": trainer.dataset.n_test,
        "steps": h.step,
        "total_steps": h.total_steps,
        "steps_per_epoch": h.steps_per_epoch,
        "train_seconds": h.train_seconds,
        "images_per_sec": h.images_per_sec,
        "images_done": h.images_done,
        "started_at": h.started_at,
        "saved_at": time.time(),
        "test_acc": report.test_acc if report else (h.epochs[-1].test_acc if h.epochs else None),
        "lr_schedule": [list(x) for x in h.lr_schedule],
        "momentum_schedule": [list(x) for x in h.momentum_schedule],
    }
    (tmp / "run.json").write_text(json.dumps(meta, indent=2))
    pd.DataFrame({"step": range(1, len(h.batch_losses) + 1), "loss": list(h.batch_losses)}).to_csv(
        tmp / "batches.csv", index=False
    )
    pd.DataFrame([asdict(e) for e in h.epochs], columns=list(EpochMetrics.__dataclass_fields__)).to_csv(
        tmp / "epochs.csv", index=False
    )
    if h.full_losses:
        pd.DataFrame(h.full_losses, columns=["step", "loss"]).to_csv(tmp / "full_losses.csv", index=False)
    if report is not None:
        (tmp / "report.json").write_text(json.dumps(report.to_dict()))
    state = {k: v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()}
    save_file(state, str(tmp / "weights.safetensors"))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)  # the folder appears whole or not at all
    return folder


def finish_run(
    trainer: Trainer, dataset: Dataset, root: Path | str | None = None, run_id: str | None = None
) -> tuple[Path | None, Report | None, str]:
    """Report on an ended run and save it; returns (folder or None, report or None, the run's message).

    A diverged model holds NaN weights, so it gets no report; if the report fails the run is
    still saved without one; if saving fails the message says so.
    """
    message = trainer.history.message
    report = None
    if trainer.history.status in ("finished", "stopped"):
        try:
            report = build_report(trainer.model, dataset)
        except Exception as exc:
            message += f" The report could not be computed: {exc}"
    try:
        return save_run(trainer, report, root=root, run_id=run_id), report, message
    except Exception as exc:
        return None, report, message + f" The run could not be saved: {exc}"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise RunError(f"{path}: missing; this is not a complete run folder.") from exc
    except (OSError, ValueError) as exc:
        raise RunError(f"{path}: cannot be read as JSON ({exc}).") from exc


def load_weights(path: Path, model: TutorialCNN | None = None) -> TutorialCNN:
    """Load safetensors weights into a fresh model, checking every name and shape first."""
    model = model or TutorialCNN()
    try:
        state = load_file(str(path))
    except FileNotFoundError as exc:
        raise RunError(f"{path}: missing; the run has no weights.") from exc
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(f"{path}: not a valid safetensors file ({exc}).") from exc
    expected = model.state_dict()
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise RunError(f"{path}: weights do not fit the tutorial's model (missing {missing}, unexpected {extra}).")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape or not tensor.is_floating_point():
            raise RunError(
                f"{path}: {name} has shape {tuple(tensor.shape)} {tensor.dtype}, "
                f"expected {tuple(expected[name].shape)} floats."
            )
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(memory_format=torch.channels_last)  # as trained: oneDNN's faster kernels


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError as exc:
        raise RunError(f"{path}: missing; this is not a complete run folder.") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise RunError(f"{path}: cannot be read as CSV ({exc}).") from exc


def load_run(path: Path | str, with_model: bool = True) -> Run:
    """Read a run folder back; ``with_model`` also rebuilds the model from its weights (on the CPU)."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run folder.")
    meta = _read_json(path / "run.json")
    try:
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise TypeError("run.json must hold an object with a config object")
        config = TrainConfig.from_dict(meta["config"])
        config.validate()
    except (KeyError, TypeError, ValueError) as exc:
        raise RunError(f"{path / 'run.json'}: the config is damaged ({exc}).") from exc
    batches = _read_csv(path / "batches.csv")
    epochs = _read_csv(path / "epochs.csv")
    try:
        history = History(
            total_steps=int(meta.get("total_steps", 0)),
            steps_per_epoch=int(meta.get("steps_per_epoch", 0)),
            step=int(meta.get("steps", len(batches))),
            epoch=len(epochs),
            batch_losses=[float(v) for v in batches["loss"]],
            epochs=[
                EpochMetrics(**{k: row[k] for k in EpochMetrics.__dataclass_fields__}) for _, row in epochs.iterrows()
            ],
            status=str(meta.get("status", "finished")),
            message=str(meta.get("message", "")),
            train_seconds=float(meta.get("train_seconds", 0.0)),
            started_at=float(meta.get("started_at", 0.0)),
            images_done=int(meta.get("images_done", 0)),
            lr_schedule=_schedule(meta.get("lr_schedule"), config.lr),
            momentum_schedule=_schedule(
                meta.get("momentum_schedule"), config.momentum if config.optimiser != "Descent" else None
            ),
        )
        full = path / "full_losses.csv"
        if full.exists():
            pairs = _read_csv(full)[["step", "loss"]].itertuples(index=False)
            history.full_losses = [(int(s), float(v)) for s, v in pairs]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RunError(f"{path}: the metrics files are damaged ({exc}).") from exc
    report = None
    if (path / "report.json").exists():
        try:
            report = Report.from_dict(_read_json(path / "report.json"))
            _check_report(report, int(meta.get("n_test", 0)))
        except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as exc:
            raise RunError(f"{path / 'report.json'}: damaged ({exc}).") from exc
    model = load_weights(path / "weights.safetensors") if with_model else None
    return Run(path=path, config=config, meta=meta, history=history, report=report, model=model)


def _schedule(pairs: object, first: float | None) -> list[tuple[int, float]]:
    """A saved (step, value) schedule, checked; a run saved before schedules existed used its config's value."""
    if pairs is None:
        return [] if first is None else [(0, float(first))]
    if not isinstance(pairs, list) or len(pairs) > 100_000:
        raise ValueError("a schedule must be a list of (step, value) pairs")
    out = []
    for pair in pairs:
        step, value = pair  # raises on anything that is not a pair
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ValueError(f"a schedule step must be a whole number >= 0, not {step!r}")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"a schedule value must be a finite number, not {value!r}")
        out.append((step, value))
    return out


def _check_report(report: Report, n_test: int) -> None:
    """Raise ValueError unless a report read from disk is what ``build_report`` makes."""
    k = len(report.classes)
    if not 2 <= k <= 100 or tuple(report.confusion.shape) != (k, k) or len(report.per_class) != k:
        raise ValueError("the confusion matrix and the classes do not fit together")
    for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
        float(getattr(report, name))  # raises on anything that is not a number
    if (report.confusion < 0).any() or int(report.confusion.sum()) != n_test:
        raise ValueError(f"the confusion matrix does not count the {n_test:,} test images")
    m = report.mistakes
    if len(m) and (m["index"].min() < 0 or m["index"].max() >= n_test or m[["true", "predicted"]].max().max() >= k):
        raise ValueError("a mistake points outside the test set or the classes")


def list_runs(root: Path | str | None = None) -> list[Path]:
    """Run folders under ``root``, newest first (folders being written are skipped)."""
    root = runs_root(root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and (p / "run.json").is_file() and not p.name.endswith(".partial")]
    return sorted(runs, key=lambda p: p.name, reverse=True)


# --------------------------------------------------------------------------- comparing and sharing runs

TABLE_FIELDS = ("dataset", "optimiser", "lr", "epochs", "batch_size", "loop", "seed", "init")
ARCHIVE_FILES = {  # the only names an archive may hold, with a size limit each (bytes)
    "run.json": 1_000_000,
    "batches.csv": 50_000_000,
    "epochs.csv": 1_000_000,
    "full_losses.csv": 10_000_000,
    "report.json": 10_000_000,
    "weights.safetensors": 1_000_000,  # 15,594 float32 weights are about 63 kB
}
MAX_ARCHIVE_BYTES = 60_000_000


def runs_table(root: Path | str | None = None) -> pd.DataFrame:
    """One row per saved run (damaged ones included, marked so): hyperparameters, status and speed."""
    rows = []
    for path in list_runs(root):
        try:
            meta = json.loads((path / "run.json").read_text())
            cfg = meta["config"]
        except (OSError, ValueError, KeyError):
            rows.append({"run": path.name, "status": "damaged"})
            continue
        rows.append(
            {
                "run": path.name,
                **{k: cfg.get(k) for k in TABLE_FIELDS},
                "device": meta.get("device"),
                "status": meta.get("status"),
                "test accuracy": meta.get("test_acc"),
                "training s": meta.get("train_seconds"),
                "images/s": meta.get("images_per_sec"),
                "steps": meta.get("steps"),
            }
        )
    return pd.DataFrame(
        rows, columns=["run", *TABLE_FIELDS, "device", "status", "test accuracy", "training s", "images/s", "steps"]
    )


def differing_labels(configs: list[TrainConfig]) -> list[str]:
    """A short label per config naming only the hyperparameters that differ between them."""
    if not configs:
        return []
    dicts = [c.to_dict() for c in configs]
    keys = [k for k in dicts[0] if len({repr(d[k]) for d in dicts}) > 1]
    if not keys:
        return [f"run {i + 1}" for i in range(len(configs))]
    return [", ".join(f"{k}={d[k]:g}" if isinstance(d[k], float) else f"{k}={d[k]}" for k in keys) for d in dicts]


def export_run(path: Path | str) -> bytes:
    """The run folder as one zip archive: config, metrics CSVs, report and weights."""
    path = Path(path)
    load_run(path, with_model=True)  # refuse to share a damaged run
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ARCHIVE_FILES:
            if (path / name).is_file():
                archive.write(path / name, arcname=f"{path.name}/{name}")
    return buffer.getvalue()


def import_run(data: bytes, root: Path | str | None = None) -> Path:
    """Add a run from an archive made by ``export_run``. Untrusted: everything is checked first,
    weights are read with safetensors (never unpickled), and a bad archive changes nothing on disk."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise RunError(f"the archive is {len(data):,} bytes; the limit is {MAX_ARCHIVE_BYTES:,}.")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise RunError(f"not a zip archive of a run ({exc}).") from exc
    files: dict[str, zipfile.ZipInfo] = {}
    for info in members:
        if info.is_dir():
            continue
        name = PurePosixPath(info.filename).name
        if name not in ARCHIVE_FILES:
            raise RunError(
                f"unexpected file {info.filename!r} in the archive; a run holds only {', '.join(ARCHIVE_FILES)}."
            )
        if info.file_size > ARCHIVE_FILES[name]:
            raise RunError(f"{name} is {info.file_size:,} bytes, more than a run's {ARCHIVE_FILES[name]:,}.")
        files[name] = info
    missing = [n for n in ("run.json", "batches.csv", "epochs.csv", "weights.safetensors") if n not in files]
    if missing:
        raise RunError(f"the archive lacks {', '.join(missing)}.")
    run_id = PurePosixPath(files["run.json"].filename).parent.name
    safe = all(c.isalnum() or c in "-._" for c in run_id) and not run_id.startswith(".")
    if not run_id or not safe or len(run_id) > 100 or run_id.endswith(".partial"):
        run_id = "imported-" + secrets.token_hex(4)
    root = runs_root(root)
    tmp = root / f".import-{secrets.token_hex(4)}.partial"
    tmp.mkdir(parents=True)
    try:
        for name, info in files.items():
            with archive.open(info) as src:
                content = src.read(ARCHIVE_FILES[name] + 1)
            if len(content) > ARCHIVE_FILES[name]:
                raise RunError(f"{name} is larger than it claims.")
            (tmp / name).write_bytes(content)
        load_run(tmp, with_model=True)  # the same checks as any run folder: config, metrics, names, shapes
        target = root / run_id
        if target.exists():
            target = root / f"{run_id}-imported-{secrets.token_hex(2)}"
        tmp.rename(target)
        return target
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise RunError(f"the archive is damaged or cannot be unpacked ({exc}).") from exc
    finally:
        archive.close()
        shutil.rmtree(tmp, ignore_errors=True)


def delete_run(path: Path | str, root: Path | str | None = None) -> None:
    """Delete one run folder; only folders directly under the runs root."""
    path = Path(path).resolve()
    if path.parent != runs_root(root).resolve() or not (path / "run.json").exists():
        raise RunError(f"{path} is not a run folder under {runs_root(root)}.")
    shutil.rmtree(path)
