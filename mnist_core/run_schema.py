"""A run on disk, as a typed schema that save, load and import share: the files a run holds and the most bytes
each may have, ``RunMeta`` (run.json), and the checks every file passes before it is trusted.

A folder written here and an archive from a stranger pass the same checks: every file is bounded in size
before it is parsed (JSON in nesting depth too), then checked field by field: types, finite numbers, ranges,
lengths, and that the fields fit together. Anything else is a ``RunError`` naming the file and the field.
Weights are read with safetensors, never unpickled, and checked against the model's shapes.
"""

from __future__ import annotations

import io
import json
import math
import re
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from .config import CONFIG_FIELDS, TrainConfig, batches_per_epoch, held_out
from .data import DATASETS
from .history import EpochMetrics, History
from .i18n import _
from .model import TutorialCNN
from .outcomes import ENDINGS, Ending
from .owners import OWNER_ID
from .report import Report, per_class_table

# 3: the network's shape is in the config (channels, activation, batch_norm, dropout; older runs have the
# tutorial's); 2: an epoch's remainder joins its last batch (config.batch_bounds); 1: a last, smaller batch held it.
FORMAT_VERSION = 3
VALIDATION_COLUMNS = ("val_loss", "val_acc")  # the last columns of epochs.csv, only in a run with a validation split

# What one run can hold. Each bound is what a real run needs, so one run costs a page a bounded amount.
MAX_IMAGES = 1_000_000  # per split: more than the largest IDX file the loader accepts (256 MB, 342,000 images)
MAX_BATCH_LOSSES = 750_000  # 100 epochs of 60,000 images at batch 8, the smallest batch the Train page offers
MAX_FULL_LOSSES = 10_000  # each one evaluates the whole training set: 100 epochs of batch 128, every 5 batches
MAX_SCHEDULE = 200  # lr (or momentum) settings in one run, the config's own included
MAX_MISTAKES = 256  # build_report keeps 16
MAX_MESSAGE = 2_000  # characters; save keeps the first ones
MAX_LABEL = 1_000  # characters of the device, the data set's title and its source (a folder path)
MAX_NAME = 80  # characters of a run's name, its owner's words
MAX_NOTE = 1_000  # characters of a run's note
MAX_JSON_DEPTH = 5  # run.json and report.json nest 3 deep
# Weight snapshots (mnist_core.watch): a few early steps and at most 20 epoch ends, each the model's 15,594
# weights in float16 (31,188 bytes) under keys "step_000050/layers.0.conv.weight" (about 700 bytes of header).
MAX_SNAPSHOTS = 25
SNAPSHOT_KEY = re.compile(r"step_(\d{6})/(.+)")
_BATCH_LINE = 32  # the longest line of batches.csv: a 6-digit step, a comma, a float's repr (<= 24), a newline
ARCHIVE_FILES = {  # the only names a run (folder or archive) holds, with the most bytes each may have
    "run.json": 100_000,  # about 20 kB with full schedules and the longest message
    "batches.csv": 16 + MAX_BATCH_LOSSES * _BATCH_LINE,  # 24 MB
    "epochs.csv": 64_000,  # 100 rows of 7 numbers
    "full_losses.csv": 16 + MAX_FULL_LOSSES * 40,
    "report.json": 64_000,  # 256 mistakes are about 20 kB
    "weights.safetensors": 256_000,  # 15,594 float32 weights are about 63 kB (float64: 125 kB)
    "snapshots.safetensors": MAX_SNAPSHOTS * 33_000,  # about 32 kB a snapshot
}
REQUIRED_FILES = ("run.json", "batches.csv", "epochs.csv", "weights.safetensors")
# float8 and other exotic floats cannot be converted on every machine: a run's weights are one of these
WEIGHT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class RunError(Exception):
    """A run folder or archive is missing, damaged or not to be trusted; the message names the file and the field."""


# --------------------------------------------------------------------------- checking values


def shown(value: object) -> str:
    """A value quoted in a message: short, whatever an archive put there."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _whole(value: object, low: int, high: int) -> int:
    """``value`` if it is a JSON whole number in [low, high], else ValueError saying what is wrong."""
    if type(value) is not int:
        raise ValueError(_("must be a whole number, not {value}").format(value=shown(value)))
    if not low <= value <= high:
        raise ValueError(
            _("must be between {low:,} and {high:,}, not {value}").format(low=low, high=high, value=shown(value))
        )
    return value


def _format(value: object) -> int:
    """run.json's format, 1 to FORMAT_VERSION; a newer one says the app must be updated, not that the file is bad."""
    version = _whole(value, 1, 1_000_000)
    if version > FORMAT_VERSION:
        raise ValueError(
            _(
                "is {version}: the run was saved by a newer version of this app, and this one reads formats 1 to "
                "{latest}; update the app to open it"
            ).format(version=version, latest=FORMAT_VERSION)
        )
    return version


def _real(value: object, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` as a float if it is a finite JSON number in [low, high], else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(_("must be a number, not {value}").format(value=shown(value)))
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(_("must be a finite number, not {value}").format(value=shown(value)))
    if not low <= number <= high:
        raise ValueError(
            _("must be between {low:g} and {high:g}, not {number:g}").format(low=low, high=high, number=number)
        )
    return number


def _text(value: object, most: int) -> str:
    if not isinstance(value, str):
        raise ValueError(_("must be text, not {value}").format(value=shown(value)))
    if len(value) > most:
        raise ValueError(_("must be at most {most:,} characters, not {n:,}").format(most=most, n=len(value)))
    return value


_REQUIRED = object()


def _field(data: dict, key: str, where: str, check: Callable[[Any], Any], default: Any = _REQUIRED) -> Any:
    """``check(data[key])``, or ``default`` if the key is absent; a RunError names the file and the field."""
    if key not in data:
        if default is _REQUIRED:
            raise RunError(_("{where}: {key} is missing.").format(where=where, key=key))
        return default
    try:
        return check(data[key])
    except ValueError as exc:
        problem = str(exc)
        # Short placeholder names on purpose: i18n.stored() tries the longest messages first, and one this general
        # (a file, a colon, words, a full stop) must come after the specific ones it would otherwise swallow.
        message = _("{w}: {k}{p}.") if problem.startswith("[") else _("{w}: {k} {p}.")
        raise RunError(message.format(w=where, k=key, p=problem)) from None


def _item(data: dict, key: str, check: Callable[[Any], Any]) -> Any:
    """``check(data[key])`` for an object inside a list; a ValueError names the key."""
    if key not in data:
        raise ValueError(_("lacks {key}").format(key=key))
    try:
        return check(data[key])
    except ValueError as exc:
        raise ValueError(f"{key} {exc}") from None


def _exactly(expected: int, why: str) -> Callable[[Any], int]:
    """A checker of a whole number that follows from other fields."""

    def check(value: object) -> int:
        if _whole(value, 0, 2**63) != expected:
            raise ValueError(
                _("must be {expected:,} ({why}), not {value:,}").format(expected=expected, why=why, value=value)
            )
        return value

    return check


# --------------------------------------------------------------------------- reading bounded files

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def parse_json(raw: bytes, where: str) -> Any:
    """Parse JSON whose size was bounded already; nesting is measured first, so the parser never recurses deep."""
    brackets = np.frombuffer(_JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKET), np.uint8)
    if len(brackets):
        depth = np.cumsum(np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1)).max()
        if depth > MAX_JSON_DEPTH:
            message = _("{where}: nested {depth:,} deep; a run's JSON nests at most {most} deep.")
            raise RunError(message.format(where=where, depth=depth, most=MAX_JSON_DEPTH))
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise RunError(
            _("{where}: cannot be read as JSON ({error}).").format(where=where, error=str(exc)[:200])
        ) from None


def _table(raw: bytes, where: str, columns: tuple[str, ...], most: int) -> dict[str, np.ndarray]:
    """A CSV file as one float64 array per column: exactly ``columns``, at most ``most`` rows, finite numbers."""
    header = raw.split(b"\n", 1)[0].rstrip(b"\r").removeprefix(b"\xef\xbb\xbf")
    if header != ",".join(columns).encode():
        found = header[:60].decode("utf-8", "replace")
        message = _("{where}: the columns must be {columns}, not {found}.")
        raise RunError(message.format(where=where, columns=",".join(columns), found=repr(found)))
    ends = raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n")  # pandas ends a row at each of \n, \r\n, \r
    if ends > most + 1:  # counted before parsing: the header, then one line per row
        raise RunError(_("{where}: more than {most:,} rows.").format(where=where, most=most))
    try:
        frame = pd.read_csv(io.BytesIO(raw), engine="c")
    except (ValueError, OverflowError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
        message = _("{where}: cannot be read as CSV ({error}).")
        raise RunError(message.format(where=where, error=str(exc).strip()[:200])) from None
    if not isinstance(frame.index, pd.RangeIndex) or list(frame.columns) != list(columns):
        message = _("{where}: every row must hold exactly {n} fields ({columns}).")
        raise RunError(message.format(where=where, n=len(columns), columns=",".join(columns)))
    out = {}
    for name in columns:
        column = frame[name]
        if len(column) and column.dtype.kind not in "iuf":
            raise RunError(_("{where}: {name} must hold numbers only.").format(where=where, name=name))
        values = column.to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            message = _("{where}: {name} must hold finite numbers (row {row} does not).")
            raise RunError(message.format(where=where, name=name, row=bad[0] + 1))
        out[name] = values
    return out


def _check_column(values: np.ndarray, where: str, name: str, low: float, high: float, whole: bool = False) -> None:
    if len(values) == 0:
        return
    if whole and (values != np.floor(values)).any():
        raise RunError(_("{where}: {name} must hold whole numbers.").format(where=where, name=name))
    if values.min() < low or values.max() > high:
        if high == math.inf:
            message = _("{where}: {name} must be {low:g} or more.")
        else:
            message = _("{where}: {name} must lie between {low:g} and {high:g}.")
        raise RunError(message.format(where=where, name=name, low=low, high=high))


# --------------------------------------------------------------------------- the schema


def _config(value: object, where: str) -> TrainConfig:
    """The config object of run.json: each field of the type of its default, then ``TrainConfig.validate``."""
    if not isinstance(value, dict):
        message = _("{where}: the config is damaged (config must be an object, not {value}).")
        raise RunError(message.format(where=where, value=shown(value)))
    for name, spec in CONFIG_FIELDS.items():
        if name not in value:
            continue  # an older run: the default
        v, kind = value[name], type(spec.default)
        try:  # the type of the default here; TrainConfig.validate says which values are allowed
            if kind is bool:
                _bool(v)
            elif kind is str:
                _text(v, MAX_LABEL)
            elif kind is int:
                _whole(v, -(2**63), 2**63)
            else:
                _real(v)
        except ValueError as exc:
            message = _("{where}: the config is damaged (config.{name} {problem}).")
            raise RunError(message.format(where=where, name=name, problem=exc)) from None
    config = TrainConfig.from_dict(value)
    try:
        config.validate()
    except ValueError as exc:
        raise RunError(_("{where}: the config is damaged ({problem})").format(where=where, problem=exc)) from None
    for name, spec in CONFIG_FIELDS.items():
        if isinstance(spec.default, float):
            setattr(config, name, float(getattr(config, name)))
    return config


def _schedule(knob: str, steps: int) -> Callable[[object], list[tuple[int, float]]]:
    """A checker of a (step, value) schedule: at most MAX_SCHEDULE pairs, steps rising within the run."""
    spec = TrainConfig.knob(knob)

    def check(value: object) -> list[tuple[int, float]]:
        if not isinstance(value, list) or len(value) > MAX_SCHEDULE:
            raise ValueError(_("must be a list of at most {most} [step, value] pairs").format(most=MAX_SCHEDULE))
        out: list[tuple[int, float]] = []
        for pair in value:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError(_("must hold [step, value] pairs, not {value}").format(value=shown(pair)))
            first = out[-1][0] if out else 0
            if type(pair[0]) is int and not first <= pair[0] <= steps:
                message = _("steps must rise and stay within the run's {steps:,} steps, not {step}")
                raise ValueError(message.format(steps=steps, step=pair[0]))
            step = _whole(pair[0], first, steps)
            out.append((step, _real(pair[1], spec.low, spec.high)))
        return out

    return check


def _checked(default: Any, check: Callable[[Any], Any]) -> Any:
    """A run.json field that is checked on its own: its default and its check, declared with it."""
    return field(default=default, metadata={"check": check})


def _bool(value: object) -> bool:
    return value if isinstance(value, bool) else _fail(_("must be true or false"), value)


@dataclass
class RunMeta:
    """run.json: everything about a run but its curves, report and weights."""

    config: TrainConfig
    status: str  # one of outcomes.ENDINGS
    message: str  # what happened, for the learner; from an archive: show it as text, never as markdown
    n_train: int  # images in the data set's splits
    n_test: int
    steps: int  # batches trained
    total_steps: int  # steps_per_epoch * epochs
    steps_per_epoch: int
    lr_schedule: list[tuple[int, float]]  # (step, lr): from step+1 on; the first is (0, the config's lr)
    momentum_schedule: list[tuple[int, float]]  # the same for momentum; empty for Descent
    # The fields below stand alone: each declares its check here, and from_dict applies them in one loop.
    device: str = _checked("", lambda v: _text(v, MAX_LABEL))
    dataset_title: str = _checked("", lambda v: _text(v, MAX_LABEL))
    dataset_source: str = _checked("", lambda v: _text(v, MAX_LABEL))
    train_seconds: float = _checked(0.0, lambda v: _real(v, 0, 1e9))
    images_per_sec: float = _checked(0.0, lambda v: _real(v, 0, 1e12))
    images_done: int = 0  # checked against the steps and batch size in from_dict
    started_at: float = _checked(0.0, lambda v: _real(v, 0, 1e11))  # time.time()
    saved_at: float = _checked(0.0, lambda v: _real(v, 0, 1e11))
    test_acc: float | None = _checked(None, lambda v: None if v is None else _real(v, 0, 1))
    imported: bool = _checked(False, _bool)  # added from an archive: import_run sets it, whatever the archive said
    study: str = _checked("", lambda v: _text(v, MAX_LABEL))  # the Tune study that ran it as a trial; "" for none
    trial: int | None = _checked(None, lambda v: None if v is None else _whole(v, 0, 10_000_000))  # in that study
    # owners.owner_id of the browser that made it; "" for the CLI and tune workers (shared)
    owner: str = _checked("", lambda v: v if v == "" or OWNER_ID.fullmatch(str(v)) else _fail(_("must be an id"), v))
    shared: bool = _checked(False, _bool)  # its owner shows it to every visitor (read-only)
    name: str = _checked("", lambda v: _text(v, MAX_NAME))  # what its owner calls it; shown as text, never markdown
    note: str = _checked("", lambda v: _text(v, MAX_NOTE))  # its owner's note: what was tried, what was seen
    format: int = FORMAT_VERSION

    def to_dict(self) -> dict:
        """What run.json holds."""
        return asdict(self)

    def __getitem__(self, key: str) -> Any:
        """``meta["status"]``: run.meta was a dict, and some readers still read it so."""
        if key not in self.__dataclass_fields__:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.__dataclass_fields__ else default

    @classmethod
    def from_dict(cls, data: object, where: str) -> RunMeta:
        """Check run.json's parsed contents field by field; ``where`` names the file in messages."""
        if not isinstance(data, dict):
            message = _("{where}: must hold a JSON object, not {type}.")
            raise RunError(message.format(where=where, type=type(data).__name__))
        f = lambda key, check, default=_REQUIRED: _field(data, key, where, check, default)  # noqa: E731
        config = _config(data.get("config"), where)
        fmt = f("format", _format, 1)  # run.json without a format is from before formats were written
        one_of = _("must be one of {choices}").format(choices=", ".join(ENDINGS))
        status = f("status", lambda v: v if v in ENDINGS else _fail(one_of, v))
        n_train = f("n_train", lambda v: _whole(v, 1, MAX_IMAGES))
        n_test = f("n_test", lambda v: _whole(v, 1, MAX_IMAGES))
        bs, epochs = config.batch_size, config.epochs
        n_fit = n_train - held_out(n_train, config.validation)  # a validation split is not trained on
        # format 1 kept a last, smaller batch of the remainder; from format 2 it joins the last batch
        per_epoch = batches_per_epoch(n_fit, bs) if fmt >= 2 else math.ceil(n_fit / bs)
        why = _("{n:,} images in batches of {batch}").format(n=n_fit, batch=bs)
        steps_per_epoch = f("steps_per_epoch", _exactly(per_epoch, why))
        why = _("{epochs} epochs of {steps:,} steps").format(epochs=epochs, steps=per_epoch)
        total_steps = f("total_steps", _exactly(per_epoch * epochs, why))
        steps = f("steps", lambda v: _whole(v, 0, total_steps))
        descent = config.optimiser == "Descent"
        return cls(
            config=config,
            status=status,
            message=f("message", lambda v: _text(v, MAX_MESSAGE), ""),
            n_train=n_train,
            n_test=n_test,
            steps=steps,
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            # a run saved before schedules existed trained with its config's values throughout
            lr_schedule=f("lr_schedule", _schedule("lr", total_steps), [(0, config.lr)]),
            momentum_schedule=f(
                "momentum_schedule",
                _schedule("momentum", total_steps) if not descent else _nothing(_("Descent has no momentum")),
                [] if descent else [(0, config.momentum)],
            ),
            images_done=f("images_done", lambda v: _whole(v, 0, max(total_steps * bs, n_fit * epochs)), 0),
            **{k.name: f(k.name, k.metadata["check"], k.default) for k in fields(cls) if "check" in k.metadata},
            format=fmt,
        )


def _fail(problem: str, value: object) -> Any:
    raise ValueError(_("{problem}, not {value}").format(problem=problem, value=shown(value)))


def _nothing(why: str) -> Callable[[object], list]:
    return lambda value: [] if value == [] else _fail(_("must be empty ({why})").format(why=why), value)


def _history(meta: RunMeta, files: dict[str, bytes], where: Callable[[str], str]) -> History:
    """The curves of a run from its CSV files, checked against its run.json."""
    batches = _table(files["batches.csv"], where("batches.csv"), ("step", "loss"), MAX_BATCH_LOSSES)
    n = len(batches["loss"])
    if n > meta.steps:
        message = _("{where}: {n:,} batch losses for a run of {steps:,} steps.")
        raise RunError(message.format(where=where("batches.csv"), n=n, steps=meta.steps))
    if not np.array_equal(batches["step"], np.arange(1, n + 1)):
        message = _("{where}: step must count 1, 2, 3, ... one row per batch.")
        raise RunError(message.format(where=where("batches.csv")))
    _check_column(batches["loss"], where("batches.csv"), "loss", 0, math.inf)

    columns = tuple(EpochMetrics.__dataclass_fields__)
    if not files["epochs.csv"].startswith(",".join(columns).encode()):  # no validation split (or an older run)
        columns = tuple(c for c in columns if c not in VALIDATION_COLUMNS)
    table = _table(files["epochs.csv"], where("epochs.csv"), columns, meta.config.epochs)
    n_epochs = len(table["epoch"])
    if not np.array_equal(table["epoch"], np.arange(1, n_epochs + 1)):
        message = _("{where}: epoch must count 1, 2, 3, ... one row per epoch.")
        raise RunError(message.format(where=where("epochs.csv")))
    _check_column(table["step"], where("epochs.csv"), "step", 1, meta.steps, whole=True)
    for name in ("train_acc", "test_acc", "val_acc"):
        if name in table:
            _check_column(table[name], where("epochs.csv"), name, 0, 1)
    for name in ("train_loss", "test_loss", "seconds", "val_loss"):
        if name in table:
            _check_column(table[name], where("epochs.csv"), name, 0, math.inf)
    epochs = [
        EpochMetrics(**{k: int(v) if k in ("epoch", "step") else float(v) for k, v in zip(columns, row)})
        for row in zip(*(table[k] for k in columns))
    ]

    full_losses: list[tuple[int, float]] = []
    if "full_losses.csv" in files:
        full = _table(files["full_losses.csv"], where("full_losses.csv"), ("step", "loss"), MAX_FULL_LOSSES)
        _check_column(full["step"], where("full_losses.csv"), "step", 1, meta.steps, whole=True)
        if (np.diff(full["step"]) <= 0).any():
            raise RunError(_("{where}: step must rise from row to row.").format(where=where("full_losses.csv")))
        _check_column(full["loss"], where("full_losses.csv"), "loss", 0, math.inf)
        full_losses = [(int(s), float(v)) for s, v in zip(full["step"], full["loss"])]

    losses = array("d")  # a quarter of a list's memory: a cached run holds up to 750,000 of them
    losses.frombytes(batches["loss"].tobytes())
    return History(
        total_steps=meta.total_steps,
        steps_per_epoch=meta.steps_per_epoch,
        step=meta.steps,
        epoch=n_epochs,
        batch_losses=losses,
        epochs=epochs,
        full_losses=full_losses,
        lr_schedule=list(meta.lr_schedule),
        momentum_schedule=list(meta.momentum_schedule),
        status=meta.status,
        message=meta.message,
        train_seconds=meta.train_seconds,
        started_at=meta.started_at,
        images_done=meta.images_done,
    )


def parse_report(data: object, where: str, meta: RunMeta) -> Report:
    """report.json, checked against the run: the data set's classes, a confusion matrix of its test images."""
    if not isinstance(data, dict):
        message = _("{where}: must hold a JSON object, not {type}.")
        raise RunError(message.format(where=where, type=type(data).__name__))
    if meta.status == Ending.DIVERGED:
        message = _("{where}: a diverged run has no report (its weights are not finite numbers).")
        raise RunError(message.format(where=where))
    f = lambda key, check: _field(data, key, where, check)  # noqa: E731
    classes = DATASETS[meta.config.dataset]
    k, n_test = len(classes), meta.n_test
    their_classes = _("must be {dataset}'s {k} classes").format(dataset=meta.config.dataset, k=k)
    f("classes", lambda v: v if v == list(classes) else _fail(their_classes, v))

    def confusion(value: object) -> torch.Tensor:
        if not isinstance(value, list) or len(value) != k or any(not isinstance(r, list) or len(r) != k for r in value):
            raise ValueError(
                _("must be {k} rows of {k} counts: the confusion matrix and the classes do not fit").format(k=k)
            )
        counts = [_whole(c, 0, n_test) for row in value for c in row]
        if sum(counts) != n_test:
            raise ValueError(_("does not count the {n:,} test images").format(n=n_test))
        return torch.tensor(counts, dtype=torch.int64).reshape(k, k)

    def image(value: object) -> int:
        if type(value) is int and not 0 <= value < n_test:
            raise ValueError(
                _("points outside the test set of {n:,} images: {value}").format(n=n_test, value=shown(value))
            )
        return _whole(value, 0, n_test - 1)

    def mistakes(value: object) -> pd.DataFrame:
        if not isinstance(value, list) or len(value) > MAX_MISTAKES:
            raise ValueError(_("must be a list of at most {most} mistakes").format(most=MAX_MISTAKES))
        rows = []
        for i, m in enumerate(value):
            try:
                if not isinstance(m, dict):
                    raise ValueError(_("must be an object, not {value}").format(value=shown(m)))
                index = _item(m, "index", image)
                true, said = (_item(m, key, lambda v: _whole(v, 0, k - 1)) for key in ("true", "predicted"))
                probability = _item(m, "probability", lambda v: _real(v, 0, 1))
            except ValueError as exc:
                raise ValueError(f"[{i}].{exc}") from None
            if true == said:
                raise ValueError(_("[{i}] is not a mistake: true and predicted are both {true}").format(i=i, true=true))
            rows.append((index, true, said, probability))
        return pd.DataFrame(rows, columns=["index", "true", "predicted", "probability"]).astype(
            {"index": "int64", "true": "int64", "predicted": "int64", "probability": "float64"}
        )

    cm = f("confusion", confusion)
    return Report(
        train_loss=f("train_loss", lambda v: _real(v, 0, 1e9)),
        train_acc=f("train_acc", lambda v: _real(v, 0, 1)),
        test_loss=f("test_loss", lambda v: _real(v, 0, 1e9)),
        test_acc=f("test_acc", lambda v: _real(v, 0, 1)),
        confusion=cm,
        per_class=per_class_table(cm, classes),  # derived from the matrix, never read
        mistakes=f("mistakes", mistakes),
        classes=classes,
    )


def network_of(config: TrainConfig) -> TutorialCNN:
    """A fresh model of the run's network (the tutorial's Chain unless its config says otherwise)."""
    return TutorialCNN(config.init, **config.network())


def _fits(tensor: torch.Tensor, expected: torch.Tensor) -> bool:
    """A saved tensor of the expected shape: floats for weights, the same integers for batch norm's counter."""
    if not expected.is_floating_point():
        return tensor.dtype == expected.dtype and tensor.shape == expected.shape
    return tensor.shape == expected.shape and tensor.dtype in WEIGHT_DTYPES


def _weights(raw: bytes, where: str, status: str, config: TrainConfig) -> TutorialCNN:
    """Safetensors weights into a fresh model, every name and shape checked first; NaN only in a diverged run."""
    model = network_of(config)
    try:
        state = load_safetensors(raw)
    except (SafetensorError, ValueError, OSError, RuntimeError, TypeError) as exc:
        message = _("{where}: not a valid safetensors file ({error}).")
        raise RunError(message.format(where=where, error=str(exc)[:200])) from None
    expected = model.state_dict()
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        message = _("{where}: weights do not fit the run's network (missing {missing}, unexpected {extra}).")
        raise RunError(message.format(where=where, missing=missing, extra=shown(extra)))
    for name, tensor in state.items():
        if not _fits(tensor, expected[name]):
            raise RunError(_shape_problem(where, name, tensor, expected[name]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    if status != Ending.DIVERGED and not all(torch.isfinite(v).all() for v in state.values()):
        raise RunError(
            _(
                "{where}: the weights hold NaN or infinite numbers, which only a diverged run may have (this run's "
                "status is {status})."
            ).format(where=where, status=status)
        )
    model.load_state_dict(state)
    return model.to(memory_format=torch.channels_last)  # as trained: oneDNN's faster kernels


def _shape_problem(where: str, name: str, tensor: torch.Tensor, expected: torch.Tensor) -> str:
    return _(
        "{where}: {name} has shape {shape} {dtype}, expected {expected} floats (float16, bfloat16, float32 or float64)."
    ).format(where=where, name=name, shape=tuple(tensor.shape), dtype=tensor.dtype, expected=tuple(expected.shape))


def snapshot_key(step: int, name: str) -> str:
    """The key of weight ``name`` (a state_dict name) at ``step`` in snapshots.safetensors."""
    return f"step_{step:06d}/{name}"


def parse_snapshots(raw: bytes, where: str, meta: RunMeta) -> dict[int, dict[str, torch.Tensor]]:
    """snapshots.safetensors checked: whole models of the tutorial's shapes, finite floats, at most
    MAX_SNAPSHOTS of them, each at a step the run reached; {step: state_dict (float32)}, steps in order."""
    try:
        tensors = load_safetensors(raw)
    except (SafetensorError, ValueError, OSError, RuntimeError, TypeError) as exc:
        message = _("{where}: not a valid safetensors file ({error}).")
        raise RunError(message.format(where=where, error=str(exc)[:200])) from None
    expected = network_of(meta.config).state_dict()
    steps: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = SNAPSHOT_KEY.fullmatch(key)
        if match is None or match[2] not in expected:
            message = _("{where}: unexpected tensor {key}; keys are step_NNNNNN/<weight name>.")
            raise RunError(message.format(where=where, key=shown(key)))
        step, name = int(match[1]), match[2]
        if step > meta.steps:
            message = _("{where}: a snapshot at step {step:,} of a run of {steps:,} steps.")
            raise RunError(message.format(where=where, step=step, steps=meta.steps))
        if not _fits(tensor, expected[name]):
            raise RunError(_shape_problem(where, key, tensor, expected[name]))
        if not torch.isfinite(tensor).all():
            raise RunError(_("{where}: {key} holds NaN or infinite numbers.").format(where=where, key=key))
        steps.setdefault(step, {})[name] = tensor.float() if tensor.is_floating_point() else tensor
    if len(steps) > MAX_SNAPSHOTS:
        message = _("{where}: {n:,} snapshots; a run keeps at most {most}.")
        raise RunError(message.format(where=where, n=len(steps), most=MAX_SNAPSHOTS))
    for step, state in steps.items():
        if set(state) != set(expected):
            message = _("{where}: the snapshot at step {step:,} lacks {missing}.")
            raise RunError(message.format(where=where, step=step, missing=sorted(set(expected) - set(state))))
    return dict(sorted(steps.items()))


def parse_run(
    files: dict[str, bytes], where: Callable[[str], str], with_model: bool
) -> tuple[RunMeta, History, Report | None, TutorialCNN | None]:
    """A run's files (bytes, sizes already bounded) checked and read: the one path of load and import."""
    meta = RunMeta.from_dict(parse_json(files["run.json"], where("run.json")), where("run.json"))
    history = _history(meta, files, where)
    report = None
    if "report.json" in files:
        report = parse_report(parse_json(files["report.json"], where("report.json")), where("report.json"), meta)
    model = None
    if with_model:
        model = _weights(files["weights.safetensors"], where("weights.safetensors"), meta.status, meta.config)
    if with_model and "snapshots.safetensors" in files:
        parse_snapshots(files["snapshots.safetensors"], where("snapshots.safetensors"), meta)
    return meta, history, report, model
