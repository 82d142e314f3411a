"""Watch one digit: its feature maps and class probabilities, live while a run trains and replayed after it.

``view_digit`` runs one 28x28 digit through a model and keeps what a page draws as SMALL arrays: each conv
layer's maps quantized to bytes (each map scaled from its own min to its own max, so a faint map keeps its
shape), about 3 kB for the tutorial's four layers, and the 10 probabilities. ``DigitWatcher`` sends such a
view from the training loop a few times a second.

A run also keeps weight snapshots (``SnapshotRecorder``): the model before training (step 0), after steps 1,
10 and 50, and at every epoch end (at most 20 of them, evenly thinned), in float16, in one file of the run
folder, ``snapshots.safetensors`` (schema and checks in ``runs.py``). ``replay(run_dir, digit)`` gives the
digit's view at each snapshot and at the run's last step (its float32 weights), so a page can scrub back
through training after the run ends; ``model_at`` rebuilds the model at any saved step.

Why float16 and why this set: one snapshot of the 15,594 weights is 32 kB in float16 (31,188 bytes of weights,
about 950 of header), half of weights.safetensors. A tutorial run on the embedded sample (10 epochs, 310
steps) is 75 kB today; its 14 snapshots (steps 0, 1, 10, 50 and 10 epoch ends) add 450 kB, six times as much
(``benchmarks/bench_watch.py``). The 5% the issue hoped for is 3.7 kB: an eighth of one snapshot, so no set
of snapshots of this network meets it. Deltas do not help (float16 deltas are as large as the weights; int8
ones would halve the size at best and break the agreement with a live forward pass). What is kept is bounded
instead: at most 25 snapshots, 800 kB, against the 24 MB a run's batches.csv may hold. The early steps are
where a digit's maps change most; the epoch ends are what the curves show.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import protocol as p
from .config import TrainConfig
from .history import EpochMetrics
from .i18n import _
from .model import TutorialCNN, as_input, evaluating
from .run_schema import MAX_SNAPSHOTS, network_of, snapshot_key
from .runs import load_run, load_snapshots, read_meta
from .train import Callback, Trainer

EARLY_STEPS = (0, 1, 10, 50)  # snapshots of the first steps, where a digit's maps change the most
MAX_EPOCH_SNAPSHOTS = MAX_SNAPSHOTS - len(EARLY_STEPS) - 1  # 20: the last epoch may come on top of a thinned set
WATCH_EVERY_S = 0.3  # a view of the watched digit at most this often: about 3 a second


@dataclass
class QuantizedMaps:
    """One conv layer's feature maps for one digit, as bytes: ``data[c]`` spans ``lo[c]`` (0) to ``hi[c]`` (255)."""

    data: np.ndarray  # uint8 (C, H, W)
    lo: np.ndarray  # float32 (C,)
    hi: np.ndarray  # float32 (C,)

    def values(self) -> np.ndarray:
        """The maps back as floats (C, H, W), within (hi - lo) / 510 of the originals."""
        scale = (self.hi - self.lo) / 255
        return self.lo[:, None, None] + self.data.astype(np.float32) * scale[:, None, None]


def quantize(maps: torch.Tensor) -> QuantizedMaps:
    """(C, H, W) floats -> bytes, each map scaled from its own min to its own max (a flat map is all 0)."""
    x = maps.detach().float().cpu()
    lo, hi = x.amin(dim=(1, 2)), x.amax(dim=(1, 2))
    span = torch.where(hi > lo, hi - lo, torch.ones_like(hi))
    data = ((x - lo[:, None, None]) / span[:, None, None] * 255).round().clamp(0, 255).to(torch.uint8)
    return QuantizedMaps(data.numpy(), lo.numpy(), hi.numpy())


@dataclass
class DigitView:
    """One digit seen by the model after ``step`` steps: the maps of every conv layer and the probabilities."""

    step: int
    maps: list[QuantizedMaps]  # one per conv layer: (8, 14, 14), (16, 7, 7), (32, 4, 4), (32, 2, 2)
    probs: np.ndarray  # float32 (10,), sums to 1

    @property
    def nbytes(self) -> int:
        return sum(m.data.nbytes + m.lo.nbytes + m.hi.nbytes for m in self.maps) + self.probs.nbytes

    def to_message(self) -> p.Watch:
        return p.Watch(
            step=self.step,
            probs=[float(v) for v in self.probs],
            maps=p.pack_maps([(m.data, m.lo, m.hi) for m in self.maps]),
        )

    def drawn(self) -> dict:
        """What the page's digit panel draws of this view (ui/digit_view.js): the step, each layer's maps as
        base64 bytes, the probabilities. The Train page's live feed carries it too (mnist_core.feed)."""
        return {
            "step": self.step,
            "layers": [
                {"name": f"conv {i}", "c": c, "h": h, "w": w, "data": b64_bytes(m.data)}
                for i, m in enumerate(self.maps, start=1)
                for c, h, w in [m.data.shape]
            ],
            "probs": [round(float(v), 4) for v in self.probs],
        }

    @classmethod
    def from_message(cls, message: p.Watch) -> DigitView:
        maps = [QuantizedMaps(*arrays) for arrays in p.unpack_maps(message.maps)]
        return cls(step=message.step, maps=maps, probs=np.asarray(message.probs, dtype=np.float32))


def b64_bytes(array: np.ndarray) -> str:
    """An array's bytes (as uint8) in base64: how the pages' canvases receive images and maps."""
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode()


def digit_image(digit: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
    """A digit as uint8 (28, 28): from a (28, 28) array or tensor, or 784 pixel values (0-255, row by row)."""
    # a copy of an array: a read-only one (np.frombuffer) makes torch warn
    image = digit if isinstance(digit, torch.Tensor) else torch.as_tensor(np.array(digit))
    if image.numel() != p.DIGIT_PIXELS:
        raise ValueError(
            _("a digit has {pixels} pixels (28x28), not {n}").format(pixels=p.DIGIT_PIXELS, n=image.numel())
        )
    return image.reshape(28, 28).round().clamp(0, 255).to(torch.uint8)


def view_digit(model: TutorialCNN, image: torch.Tensor, step: int = 0) -> DigitView:
    """Run ``image`` (uint8 (28, 28), see ``digit_image``) through ``model`` on the model's device."""
    x = as_input(image[None], next(model.parameters()).device)  # (1, 1, 28, 28)
    with torch.inference_mode(), evaluating(model):
        maps = model.feature_maps(x)  # [(1, 8, 14, 14), ..., (1, 32, 2, 2)]
        logits = model.layers[len(maps) :][:-1](maps[-1])  # pool, flatten, dense: (1, 10)
        probs = torch.softmax(logits.float(), dim=1)[0].cpu().numpy()
    return DigitView(step=step, maps=[quantize(m[0]) for m in maps], probs=probs)


class DigitWatcher(Callback):
    """Hands ``on_view`` a ``DigitView`` of ``image`` before the first step, at most every ``every_s`` seconds
    while training, when the run pauses (and at each step while paused) and at the end."""

    def __init__(self, image: torch.Tensor, on_view: Callable[[DigitView], None], every_s: float = WATCH_EVERY_S):
        self.image = image
        self.on_view = on_view
        self.every_s = every_s
        self.last = -math.inf
        self.sent_step = -1

    def send(self, trainer: Trainer) -> None:
        step = trainer.history.step
        self.on_view(view_digit(trainer.model, self.image, step))
        self.sent_step, self.last = step, time.monotonic()

    def on_train_start(self, trainer: Trainer) -> None:
        self.send(trainer)

    def on_batch_end(self, trainer: Trainer, step: int, epoch: int, loss: float) -> None:
        if time.monotonic() - self.last >= self.every_s:
            self.send(trainer)

    def on_pause(self, trainer: Trainer, paused: bool) -> None:
        if paused and trainer.history.step != self.sent_step:
            self.send(trainer)

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.history.step != self.sent_step and trainer.history.status != "diverged":
            self.send(trainer)


def snapshot_epochs(epochs: int) -> set[int]:
    """The epoch ends that get a snapshot: all of them up to MAX_EPOCH_SNAPSHOTS, else every k-th and the last."""
    stride = math.ceil(epochs / MAX_EPOCH_SNAPSHOTS)
    return {e for e in range(1, epochs + 1) if e % stride == 0 or e == epochs}


class SnapshotRecorder(Callback):
    """Keeps float16 copies of the weights at EARLY_STEPS and at the epoch ends of ``snapshot_epochs``.

    ``tensors()`` is what ``save_run(..., snapshots=...)`` writes. Weights that are no longer finite (a run
    blowing up) are not kept.
    """

    def __init__(self) -> None:
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.epochs: set[int] = set()

    def take(self, trainer: Trainer, step: int) -> None:
        if step in self.snapshots or len(self.snapshots) >= MAX_SNAPSHOTS:
            return
        full = trainer.model.state_dict()
        state = {k: v for k, v in full.items() if v.is_floating_point()}  # batch norm's counter is kept as it is
        # one copy to the CPU for the whole model: on a GPU, one sync instead of one per tensor
        flat = torch.cat([v.detach().reshape(-1) for v in state.values()]).to("cpu", torch.float16)
        if torch.isfinite(flat).all():
            parts = flat.split([v.numel() for v in state.values()])
            kept = {k: part.reshape(v.shape) for (k, v), part in zip(state.items(), parts)}
            self.snapshots[step] = {k: kept[k] if k in kept else v.detach().cpu().clone() for k, v in full.items()}

    def on_train_start(self, trainer: Trainer) -> None:
        self.epochs = snapshot_epochs(trainer.config.epochs)

    def on_batch_start(self, trainer: Trainer, step: int) -> None:
        if step - 1 in EARLY_STEPS:  # the weights now are those after step - 1
            self.take(trainer, step - 1)

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        if metrics.epoch in self.epochs:
            self.take(trainer, metrics.step)

    def on_train_end(self, trainer: Trainer) -> None:
        if trainer.history.step in EARLY_STEPS:  # a run that ended right at an early step
            self.take(trainer, trainer.history.step)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every snapshot under its key in snapshots.safetensors (``runs.snapshot_key``)."""
        return {snapshot_key(step, name): t for step, state in self.snapshots.items() for name, t in state.items()}


def _model(state: dict[str, torch.Tensor], config: TrainConfig) -> TutorialCNN:
    model = network_of(config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.to(memory_format=torch.channels_last)


def saved_steps(run_dir: Path | str) -> list[int]:
    """The steps ``replay`` and ``model_at`` can show: each snapshot's, then the run's last step."""
    steps = list(load_snapshots(run_dir))
    run = load_run(run_dir, with_model=False)
    if run.meta.steps not in steps and run.meta.status != "diverged":
        steps.append(run.meta.steps)
    return steps


def model_at(run_dir: Path | str, step: int) -> TutorialCNN:
    """The model of a saved run as it was after ``step`` steps (one of ``saved_steps``), on the CPU."""
    snapshots = load_snapshots(run_dir)
    if step in snapshots:
        return _model(snapshots[step], read_meta(run_dir).config)
    run = load_run(run_dir)
    if step == run.meta.steps and run.weights_finite:
        return run.model
    raise ValueError(
        _("the run kept no weights of step {step}; it has {steps}").format(step=step, steps=saved_steps(run_dir))
    )


def replay(run_dir: Path | str, digit: torch.Tensor | np.ndarray | Sequence[int]) -> list[DigitView]:
    """The digit's view at every saved step of a run, in order: each snapshot (float16 weights), then the
    run's last step (its float32 weights) unless a snapshot is of that step or the run diverged."""
    image = digit_image(digit)
    snapshots = load_snapshots(run_dir)
    config = read_meta(run_dir).config
    views = [view_digit(_model(state, config), image, step) for step, state in snapshots.items()]
    if read_meta(run_dir).steps not in snapshots:  # a run that ends at an epoch's end has a snapshot there
        run = load_run(run_dir)  # its weights: half the time of a replay, so only when they are needed
        if run.weights_finite:
            views.append(view_digit(run.model, image, run.meta.steps))
    return views
