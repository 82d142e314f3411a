"""The learning-rate range test (Leslie Smith 2015; fastai's ``lr_find``) for the tutorial's model.

Train the model exactly as a run would, but raise the learning rate exponentially from
``start_lr`` to ``end_lr``, one step per batch, record each batch's loss, and stop once the loss
explodes. The curve shows where the loss starts to fall and where it blows up; ``suggest_lr``
reads one learning rate off it. Nothing new is trained by hand here: a ``Trainer`` runs its own
loop (model, optimiser, seeded batch order, loop style, stop and divergence checks) and a callback
moves its learning rate through the same live-knob path the Train page uses.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from .config import TrainConfig, batches_per_epoch, check_knob, problems_sentence
from .data import Dataset
from .i18n import N_, _
from .outcomes import Ending
from .train import Callback, RunControl, Trainer
from .visual import smooth

SMOOTHING = 0.9  # the EWM weight of visual.smooth: about a 10-batch window
SUGGESTION_RULE = N_("a tenth of the lr of the lowest smoothed loss")  # what suggest_lr does, in words (English)
MAX_EPOCHS = int(
    TrainConfig.knob("epochs").high
)  # a run's longest allowed: the test cycles the data at most this often


@dataclass
class LrFindResult:
    """The curve of one range test: per batch the learning rate used, its loss, the smoothed loss."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested_lr: float
    ending: str  # "exploded" (smoothed loss past stop_factor x best), "diverged" (non-finite), "end", "stopped"
    seconds: float  # wall time of the test, data to device included
    config: TrainConfig


def lr_schedule(start_lr: float, end_lr: float, steps: int) -> list[float]:
    """``steps`` learning rates from ``start_lr`` to ``end_lr`` (both included), evenly spaced on a log scale."""
    if steps == 1:
        return [float(start_lr)]
    ratio = end_lr / start_lr
    return [float(start_lr * ratio ** (i / (steps - 1))) for i in range(steps)]


def suggest_lr(lrs: list[float] | np.ndarray, smoothed_losses: list[float] | np.ndarray) -> float:
    """The learning rate of the lowest smoothed loss, divided by 10 (never below the first lr tried).

    Why this rule and not the other usual one, the lr where the smoothed loss falls steepest
    against log(lr): for Descent from the tutorial's initial weights the loss sits on its plateau
    (ln 10) for most of the test and only falls in the last half decade before it blows up, so
    the steepest point lies right next to the blow-up (about lr 1.3 on the MNIST sample), and
    10 epochs there ended at chance level for 2 of 3 seeds. A tenth of the minimum keeps a
    decade away from the edge and matched or beat the tutorial's lr 0.1 for Descent and ADAM
    (``benchmarks/bench_lr_find.py`` trains with both rules and prints the table).
    Points after the first non-finite loss are ignored; if the loss never fell, the first lr is returned.
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(smoothed_losses, dtype=np.float64)
    if lrs.shape != losses.shape or lrs.ndim != 1 or len(lrs) == 0:
        raise ValueError(_("lrs and smoothed losses must be two non-empty lists of the same length."))
    if not (np.all(lrs > 0) and np.all(np.diff(lrs) > 0)):
        raise ValueError(_("the learning rates must be positive and increasing."))
    finite = np.isfinite(losses)
    usable = len(losses) if finite.all() else int(np.argmin(finite))  # up to the first non-finite point
    if usable == 0:
        raise ValueError(_("the first loss is not finite: start the test with a lower learning rate."))
    best = int(np.argmin(losses[:usable]))
    return float(max(lrs[best] / 10, lrs[0]))


class _RangeTest(Callback):
    """Moves the learning rate after every batch and stops the run when the test is over."""

    def __init__(self, lrs: list[float], stop_factor: float) -> None:
        self.lrs, self.stop_factor = lrs, stop_factor
        self.losses: list[float] = []
        self.ending: str | None = None  # why this callback stopped the run

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        self.losses.append(loss)
        smoothed = smooth(self.losses, SMOOTHING)
        if smoothed[-1] > self.stop_factor * smoothed.min():
            self._stop(trainer, "exploded")
        elif len(self.losses) == len(self.lrs):
            self._stop(trainer, "end")
        else:
            trainer.control.set_knobs(lr=self.lrs[len(self.losses)])  # applies from the next batch

    def _stop(self, trainer: Trainer, ending: str) -> None:
        self.ending = ending
        trainer.control.stop(Ending.STOPPED, N_("Learning-rate range test over ({ending})").format(ending=ending))


def lr_find(
    config: TrainConfig,
    dataset: Dataset,
    start_lr: float = 1e-6,
    end_lr: float = 10.0,
    steps: int = 200,
    stop_factor: float = 4.0,
    control: RunControl | None = None,
) -> LrFindResult:
    """Run the range test with ``config``'s model, optimiser, batch size, seed and device.

    The learning rate of batch i is ``start_lr * (end_lr / start_lr) ** (i / (steps - 1))``; the
    batches are the run's own seeded shuffles of the training set, one epoch after another. The
    test stops early when the smoothed loss exceeds ``stop_factor`` times its best so far or a
    loss is not finite. ``config.lr``, ``epochs`` and ``record_every`` are ignored; the global RNG
    is never touched. A small data set is cycled at most a run's longest (100 epochs): past that
    the test takes fewer steps, still from ``start_lr`` to ``end_lr``. ``control`` can stop it.
    """
    config.validate()
    problems = [p for v in (start_lr, end_lr) if (p := check_knob("lr", v))]
    if not problems and start_lr >= end_lr:
        problems.append(
            _("the start lr ({start:g}) must be lower than the end lr ({end:g})").format(start=start_lr, end=end_lr)
        )
    if not (isinstance(steps, int) and steps >= 3):
        problems.append(_("steps must be a whole number of at least 3"))
    if not (isinstance(stop_factor, (int, float)) and stop_factor > 1):
        problems.append(_("stop factor must be a number above 1"))
    if problems:
        raise ValueError(problems_sentence(problems))
    steps_per_epoch = batches_per_epoch(dataset.n_train, config.batch_size)
    steps = min(steps, steps_per_epoch * MAX_EPOCHS)
    epochs = math.ceil(steps / steps_per_epoch)
    config = replace(config, lr=start_lr, epochs=epochs, record_every=0)
    lrs = lr_schedule(start_lr, end_lr, steps)
    test = _RangeTest(lrs, stop_factor)
    t0 = time.perf_counter()
    trainer = Trainer(config, dataset, callbacks=[test], control=control)
    trainer.flush_every = 1  # a GPU would otherwise hand over losses 32 at a time: the lr must move every batch
    h = trainer.run()
    seconds = time.perf_counter() - t0
    if h.status == Ending.FAILED:
        raise RuntimeError(h.message)
    ending = "diverged" if h.status == Ending.DIVERGED else test.ending or "stopped"
    n = len(test.losses)
    if n < 3:
        raise ValueError(
            _(
                "the range test ended after {n} batch(es) ({ending}): too few for a suggestion; start with a lower lr "
                "or use more steps."
            ).format(n=n, ending=ending)
        )
    smoothed = smooth(test.losses, SMOOTHING)
    return LrFindResult(
        lrs=lrs[:n],
        losses=list(test.losses),
        smoothed=smoothed.tolist(),
        suggested_lr=suggest_lr(lrs[:n], smoothed),
        ending=ending,
        seconds=seconds,
        config=config,
    )
