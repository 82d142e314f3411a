"""The messages between the job queue (the server) and a training process, as JSON lines.

Every message is a small dataclass below; its ``kind`` is its name on the wire and its fields are
its JSON keys, so each field is named once, here. ``encode`` writes one line, ``decode`` reads one
back or raises ``ProtocolError`` (a partial line, an unknown kind, a missing or unknown field).

Server -> trainer: ``Job`` (train this), ``Control`` (stop, pause, resume, step, set knobs), ``Quit``.
Trainer -> server: ``Ready`` (warm: torch imported, data loaded), then per job ``Start``, ``Batches``
(new losses every fraction of a second), ``Epoch``, ``Knobs`` (a change took effect), ``State``
(paused or running), for an lr-find job its ``LrCurve``, and finally ``Done``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import ClassVar


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
class Done(Message):
    kind: ClassVar[str] = "done"
    status: str
    message: str
    run_dir: str | None


KINDS: dict[str, type[Message]] = {
    cls.kind: cls for cls in (Job, Control, Quit, Ready, Start, Batches, Epoch, Knobs, State, LrCurve, Done)
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
    return message
