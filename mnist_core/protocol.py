"""The messages between the job queue (the server) and a training process, as JSON lines.

Every message is a small dataclass below; its ``kind`` is its name on the wire and its fields are
its JSON keys, so each field is named once, here. ``encode`` writes one line, ``decode`` reads one
back or raises ``ProtocolError`` (a partial line, an unknown kind, a missing or unknown field).

Server -> trainer: ``Job`` (train this), ``Control`` (stop, pause, resume, step, set knobs), ``Quit``.
Trainer -> server: ``Ready`` (warm: torch imported, data loaded), then per job ``Start``, ``Batches``
(new losses every fraction of a second), ``Epoch``, ``Knobs`` (a change took effect), ``State``
(paused or running), ``Health`` (the layers' health every few batches), ``Watch`` (the watched digit's
feature maps and probabilities, a few times a second), for an lr-find job its ``LrCurve``, for a saved run
that watched a digit its ``Replay`` (the digit at every saved step, so the server replays nothing), and
finally ``Done``. Like ``Start`` and ``Batches``, these belong to the job the trainer was last given.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar

import numpy as np

from .i18n import _


class ProtocolError(ValueError):
    """A line that is not a message of this protocol."""


@dataclass
class Message:
    kind: ClassVar[str] = ""


# --------------------------------------------------------------------------- server -> trainer


@dataclass
class Job(Message):
    """Train one run and save it as ``<root>/<job_id>``."""

    kind: ClassVar[str] = "job"
    job_id: str
    config: dict  # TrainConfig.to_dict()
    root: str  # the runs folder, absolute
    data_dir: str | None = None  # else the trainer looks where load_dataset does
    allow_download: bool = True
    task: str = "train"  # one of TASKS: a run (saved), or the learning-rate range test (an LrCurve, nothing saved)
    # the digit to follow through the network (Watch messages): an index into the test set, or the 784 pixels
    # (0-255, row by row) of a 28x28 digit; None for none
    watch: int | list[int] | None = None
    owner: str = ""  # owners.owner_id of the visitor the run is saved for; "" for none (shared)


DIGIT_PIXELS = 28 * 28


def check_watch(value: object) -> str | None:
    """What is wrong with a Job's ``watch`` value, in words a user can act on, or None if it is allowed."""
    if value is None or (type(value) is int and value >= 0):
        return None
    if isinstance(value, list) and len(value) == DIGIT_PIXELS:
        if all(type(v) is int and 0 <= v <= 255 for v in value):
            return None
    return _(
        "the digit to watch must be the index of a test image (0 or more) or {pixels} pixel values (whole numbers "
        "from 0 to 255)"
    ).format(pixels=DIGIT_PIXELS)


TASKS = ("train", "lr-find")  # what a Job asks of a trainer
CONTROL_ACTIONS = ("stop", "pause", "resume", "step", "epoch", "set")


@dataclass
class Control(Message):
    """Steer the running job: stop; pause; resume; step (``batches`` more, then pause); epoch (to the end
    of this epoch, then pause); set (new ``lr`` and/or ``momentum`` from the next batch on)."""

    kind: ClassVar[str] = "control"
    action: str
    job_id: str = ""  # the job it is meant for: a control that arrives after its job ended is dropped
    batches: int = 1
    lr: float | None = None
    momentum: float | None = None


@dataclass
class Quit(Message):
    """End the warm process once the current job (if any) is done."""

    kind: ClassVar[str] = "quit"


# --------------------------------------------------------------------------- trainer -> server


@dataclass
class Ready(Message):
    """The process is warm and waits for a ``Job``."""

    kind: ClassVar[str] = "ready"
    pid: int
    datasets: list[str] = field(default_factory=list)  # data sets already in memory
    jobs_done: int = 0  # jobs this process has trained before


@dataclass
class Start(Message):
    kind: ClassVar[str] = "start"
    total_steps: int
    steps_per_epoch: int
    started_at: float
    lr: float
    momentum: float | None


@dataclass
class Batches(Message):
    """Losses of steps ``first_step``, ``first_step + 1``, ... and where the run stands."""

    kind: ClassVar[str] = "batches"
    first_step: int
    losses: list[float]
    epoch: int
    step: int
    train_seconds: float
    images_done: int
    full_losses: list[list[float]] = field(default_factory=list)  # (step, loss) pairs from the recorder


@dataclass
class Epoch(Message):
    kind: ClassVar[str] = "epoch"
    metrics: dict  # EpochMetrics as a dict


@dataclass
class Knobs(Message):
    """A knob change took effect: steps after ``step`` use ``lr`` and ``momentum``."""

    kind: ClassVar[str] = "knobs"
    step: int
    lr: float
    momentum: float | None


@dataclass
class State(Message):
    """The loop paused (waiting for resume or step) or runs again."""

    kind: ClassVar[str] = "state"
    paused: bool
    step: int


@dataclass
class LrCurve(Message):
    """The result of an "lr-find" job: the range test's curve and its suggestion."""

    kind: ClassVar[str] = "lr_curve"
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float
    ending: str


@dataclass
class Health(Message):
    """The health of each layer at measured step ``step`` (``mnist_core.health.HealthStats.to_dict``):
    {"conv 1": {"grad_norm": ..., "update_ratio": ..., "dead_share": ... or None, "weight_norm": ...}, ...}."""

    kind: ClassVar[str] = "health"
    step: int
    layers: dict


@dataclass
class Watch(Message):
    """The watched digit after ``step`` steps: its 10 class probabilities and, per conv layer, its feature maps
    quantized to bytes (``pack_maps``; about 4 kB of JSON in all)."""

    kind: ClassVar[str] = "watch"
    step: int
    probs: list[float]
    maps: list[
        dict
    ]  # per layer {"shape": [C, H, W], "lo": [C floats], "hi": [C floats], "data": base64 of C*H*W bytes}


MAX_WATCH_BYTES = 64_000  # all the maps of one Watch: the tutorial's four layers hold 2,992 values


def pack_maps(maps: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> list[dict]:
    """(uint8 (C, H, W), lo (C,), hi (C,)) per layer -> what ``Watch.maps`` carries."""
    return [
        {
            "shape": [int(n) for n in data.shape],
            "lo": [float(f"{v:.6g}") for v in lo],  # 6 digits: far finer than the 1/255 steps of the data
            "hi": [float(f"{v:.6g}") for v in hi],
            "data": base64.b64encode(np.ascontiguousarray(data, dtype=np.uint8).tobytes()).decode("ascii"),
        }
        for data, lo, hi in maps
    ]


def unpack_maps(maps: list[dict]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``Watch.maps`` -> (uint8 (C, H, W), lo float32 (C,), hi float32 (C,)) per layer; ProtocolError if damaged."""
    out, total = [], 0
    try:
        for layer in maps:
            shape = layer["shape"]
            if not (isinstance(shape, list) and len(shape) == 3 and all(type(n) is int and n > 0 for n in shape)):
                raise ValueError(f"shape must be 3 positive whole numbers, not {shape!r:.40}")
            channels, size = shape[0], shape[0] * shape[1] * shape[2]
            total += size
            if total > MAX_WATCH_BYTES:
                raise ValueError(f"more than {MAX_WATCH_BYTES:,} map values")
            data = np.frombuffer(base64.b64decode(layer["data"], validate=True), dtype=np.uint8)
            lo, hi = (np.asarray(layer[k], dtype=np.float32) for k in ("lo", "hi"))
            if data.size != size or lo.shape != (channels,) or hi.shape != (channels,):
                raise ValueError(f"a layer of shape {shape} with {data.size} values and {lo.size}/{hi.size} bounds")
            out.append((data.reshape(shape), lo, hi))
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise ProtocolError(f"watch: damaged maps ({exc})") from None
    return out


@dataclass
class Replay(Message):
    """The watched digit at every saved step of the run just saved (``watch.replay``), sent before ``Done``:
    each view is a ``Watch`` message's fields. The trainer has the weights at hand; the server, serving many
    pages in one Python, need not run the model for each run that ends."""

    kind: ClassVar[str] = "replay"
    views: list[dict]  # [{"step": ..., "probs": [...], "maps": [...]}, ...]: Watch's fields


MAX_REPLAY_VIEWS = 64  # a run keeps at most 25 snapshots (runs.MAX_SNAPSHOTS) and its last step


@dataclass
class Done(Message):
    kind: ClassVar[str] = "done"
    status: str
    message: str
    run_dir: str | None


KINDS: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (Job, Control, Quit, Ready, Start, Batches, Epoch, Knobs, State, Health, Watch, LrCurve, Replay, Done)
}


def encode(message: Message) -> str:
    """One JSON line, newline included."""
    return json.dumps({"kind": message.kind, **asdict(message)}, allow_nan=True) + "\n"


def decode(line: str) -> Message:
    """The message on ``line``, or ProtocolError if it is not one."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not a JSON line ({exc}): {line[:80]!r}") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"not a JSON object: {line[:80]!r}")
    return _message(data, line)


def _message(data: dict, line: str) -> Message:
    """The message a decoded JSON object describes (``line``: where it came from, for the error)."""
    cls = KINDS.get(data.pop("kind", None))
    if cls is None:
        raise ProtocolError(f"unknown message kind in {line[:80]!r}")
    names = {f.name for f in fields(cls)}
    if set(data) - names:
        raise ProtocolError(f"{cls.kind}: unknown fields {sorted(set(data) - names)}")
    try:
        message = cls(**data)
    except TypeError as exc:
        raise ProtocolError(f"{cls.kind}: {exc}") from exc
    if isinstance(message, Control) and message.action not in CONTROL_ACTIONS:
        raise ProtocolError(f"control: unknown action {message.action!r}")
    if isinstance(message, Job) and (problem := check_watch(message.watch)):
        raise ProtocolError(f"job: {problem}")
    if isinstance(message, Watch):
        if not isinstance(message.maps, list):
            raise ProtocolError("watch: maps must be a list")
        unpack_maps(message.maps)
    if isinstance(message, Replay):
        if not isinstance(message.views, list) or len(message.views) > MAX_REPLAY_VIEWS:
            raise ProtocolError(f"replay: views must be a list of at most {MAX_REPLAY_VIEWS}")
        for view in message.views:  # each checked as a Watch message is
            if not isinstance(view, dict):
                raise ProtocolError("replay: a view must be an object")
            _message({**view, "kind": Watch.kind}, line)
    return message
