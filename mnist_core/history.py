"""A run's history: its batch losses, per-epoch metrics and knob changes, as the trainer records them and every
reader (the queue's mirror, the live feed, the run folder, the pages) reads them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .i18n import _
from .outcomes import RUNNING


@dataclass
class EpochMetrics:
    """Measured after each epoch. Train figures are running means over the epoch's batches."""

    epoch: int
    step: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float  # training time of this epoch, evaluation excluded
    val_loss: float | None = None  # on the held-out validation split; None without one
    val_acc: float | None = None


@dataclass
class History:
    """What a run has done so far; written by the training thread, safe to read from another."""

    total_steps: int = 0
    steps_per_epoch: int = 0
    step: int = 0
    epoch: int = 0
    batch_losses: list[float] = field(default_factory=list)  # one per batch, in order
    epochs: list[EpochMetrics] = field(default_factory=list)
    full_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, loss) from the recorder
    # (step, value): from step+1 on the run used this learning rate / momentum; the first pair is (0, the config's)
    lr_schedule: list[tuple[int, float]] = field(default_factory=list)
    momentum_schedule: list[tuple[int, float]] = field(default_factory=list)  # empty for Descent
    paused: bool = False  # waiting for resume or step
    status: str = "pending"
    message: str = ""
    train_seconds: float = 0.0  # time spent in training steps
    started_at: float = 0.0  # time.time() at start

    images_done: int = 0  # training images processed so far

    def record_knobs(self, step: int, lr: float, momentum: float | None) -> None:
        """After ``step`` steps the run trains with ``lr`` (and ``momentum``): extend the schedules if they moved."""
        for schedule, value in ((self.lr_schedule, lr), (self.momentum_schedule, momentum)):
            if value is None or (schedule and value == schedule[-1][1]):
                continue
            if schedule and schedule[-1][0] == step:  # changed again before any batch used the last value
                schedule[-1] = (step, value)
            else:
                schedule.append((step, value))

    def apply(self, event) -> None:
        """The reducer: fold one event of a run into this history. Events are the trainer's messages
        (mnist_core.protocol: start, batches, epoch, knobs, state, done, told apart by ``kind``); the queue's
        mirror of a run in another process is built by it alone."""
        kind = event.kind
        if kind == "start":
            self.total_steps, self.steps_per_epoch = event.total_steps, event.steps_per_epoch
            self.started_at = event.started_at
            self.record_knobs(0, event.lr, event.momentum)
        elif kind == "batches":
            del self.batch_losses[event.first_step - 1 :]  # normally a no-op; keeps the order exact
            self.batch_losses.extend(event.losses)
            self.full_losses.extend((int(s), v) for s, v in event.full_losses)
            self.epoch, self.step = event.epoch, event.step
            self.train_seconds, self.images_done = event.train_seconds, event.images_done
        elif kind == "epoch":
            self.epochs.append(EpochMetrics(**event.metrics))
        elif kind == "knobs":
            self.record_knobs(event.step, event.lr, event.momentum)
        elif kind == "state":
            self.paused = event.paused
        elif kind == "done":
            self.status, self.message, self.paused = event.status, event.message, False

    @property
    def images_per_sec(self) -> float:
        return self.images_done / self.train_seconds if self.train_seconds > 0 else 0.0

    @property
    def seconds_left(self) -> float | None:
        """Estimated training seconds to the end, from the pace so far; None before the first batch."""
        if self.step == 0 or self.status != RUNNING:
            return None
        return self.train_seconds / self.step * (self.total_steps - self.step)

    def progress(self, epochs: int) -> tuple[float, str]:
        """(share done, the line under the live chart): epoch, step, speed and, while it runs, the time left."""
        left = self.seconds_left
        values = {"epoch": self.epoch, "epochs": epochs, "step": self.step, "total": self.total_steps}
        values["speed"] = self.images_per_sec
        if self.paused:
            text = _("epoch {epoch}/{epochs} · paused at step {step} · {speed:,.0f} images/s").format(**values)
        elif left is None:
            text = _("epoch {epoch}/{epochs} · step {step}/{total} · {speed:,.0f} images/s").format(**values)
        else:
            text = _("epoch {epoch}/{epochs} · step {step}/{total} · {speed:,.0f} images/s · about {left:.0f} s left")
            text = text.format(**values, left=left)
        return min(self.step / max(self.total_steps, 1), 1.0), text


def epoch_line(e: EpochMetrics) -> str:
    """The line under the live chart after an epoch."""
    return _("after epoch {epoch}: test accuracy {accuracy:.2%}, train loss {loss:.4f}").format(
        epoch=e.epoch, accuracy=e.test_acc, loss=e.train_loss
    )


def plateau_warning(epochs: list[EpochMetrics], classes: int = 10) -> str | None:
    """A message when the loss still sits at chance level after an epoch, else None.

    With a learning rate that is too high the ReLUs can all die: the network then gives the
    same answer for every image and the loss stays at ln(10) or above without ever becoming NaN. With
    the tutorial's Descent(0.1) the same numbers mean the run is still on the initial plateau.
    """
    if not epochs:
        return None
    last = epochs[-1]
    chance = 1.5 / classes
    if last.train_loss > math.log(classes) - 0.05 and last.test_acc < chance and last.train_acc < chance:
        return _(
            "After {epochs} epoch(s) the loss is {loss:.3f}, no better than the ln({classes}) = {chance_loss:.3f} of "
            "a blind guess, and test accuracy {accuracy:.0%} is chance level. Either the run is still on the initial "
            "plateau (the tutorial notes this for Descent at lr 0.1: give it more epochs), or the learning rate is so "
            "high that every ReLU has died and nothing can be learned any more: try a lower learning rate."
        ).format(
            epochs=last.epoch,
            loss=last.train_loss,
            classes=classes,
            chance_loss=math.log(classes),
            accuracy=last.test_acc,
        )
    return None
