"""A run's config: every knob the tutorial turns, with its one definition (label, help, range, the values the page
offers, whether it may change mid-run), and what follows from a config: batches, the validation split, the images
a run will read. The CLI flags, the Train page, the run folder and the trainer all read it here."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from .data import DATASETS
from .model import ACTIVATIONS, INIT_STYLES, TUTORIAL_CHANNELS

MAX_WIDTH = 256  # channels of one conv layer: 256,256,256,256 is 1.5 M parameters, still trainable on a CPU


def parse_channels(text: str) -> tuple[int, ...]:
    """ "8,16,32,32" -> (8, 16, 32, 32); ValueError unless four whole numbers from 1 to MAX_WIDTH."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4 or not all(p.isdigit() and 1 <= int(p) <= MAX_WIDTH for p in parts):
        raise ValueError(f"conv widths must be four whole numbers from 1 to {MAX_WIDTH}, like 8,16,32,32")
    return tuple(int(p) for p in parts)


def _channels_problem(value: Any) -> str | None:
    try:
        parse_channels(value)
    except ValueError as exc:
        return str(exc)
    return None


OPTIMISERS = ("Descent", "Momentum", "ADAM")  # as the tutorial names them
LOOP_STYLES = {
    "train!": "High level: Flux.train!(loss, ps, data, opt)",
    "gradient": "Hand-written loop: gradient(), then update!(opt, ps, gs)",
    "manual": "Update by hand: p .-= lr .* gs[p] (Descent only)",
}
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Knob:
    """One definition of a config field for every place that offers it: the CLI flags, the Train page."""

    label: str  # what the page calls it
    help: str  # one line for --help and the widget's tooltip
    choices: tuple | None = None  # allowed values, in the order offered
    low: float | None = None  # inclusive range of a number
    high: float | None = None
    log: bool = False  # a number best chosen on a log scale (the page offers 10 values per decade)
    offer: tuple | None = None  # the values the page's slider offers, where not every allowed value is useful
    live: bool = False  # may change while the run trains (Control "set")
    check: Callable[[Any], str | None] | None = None  # for a text knob: what is wrong with a value, or None


def log_values(low: float, high: float, per_decade: int = 10) -> list[float]:
    """Rounded values from ``low`` to ``high`` evenly spaced on a log scale: what a log slider offers."""
    n = round(math.log10(high / low) * per_decade) + 1
    return sorted({float(f"{low * (high / low) ** (i / (n - 1)):.2g}") for i in range(n)})


def knob(default: Any, **spec: Any) -> Any:
    return field(default=default, metadata={"knob": Knob(**spec)})


@dataclass
class TrainConfig:
    """Every knob the tutorial turns, with the tutorial's defaults; each field's ``Knob`` says how it may be set."""

    dataset: str = knob("mnist", label="Data set", help="data set to train on", choices=tuple(DATASETS))
    lr: float = knob(
        0.1,
        label="Learning rate (log scale)",
        help="learning rate; the tutorial uses Descent(0.1)",
        low=1e-7,
        high=1e9,  # the page offers 1e-5 ... 10; beyond, only the CLI (a learner can still make the loss NaN)
        log=True,
        offer=tuple(log_values(1e-5, 10.0)),
        live=True,
    )
    epochs: int = knob(
        10, label="Epochs", help="passes over the training set (the tutorial's @epochs 10)", low=1, high=100
    )
    batch_size: int = knob(
        128,
        label="Batch size",
        help="images per batch (the tutorial's DataLoader batchsize 128)",
        low=1,
        high=4096,
        offer=(8, 16, 32, 64, 128, 256, 512, 1024, 2048),
    )
    optimiser: str = knob(
        "Descent",
        label="Optimiser",
        help="Descent is plain gradient descent; the article names Momentum and ADAM as better",
        choices=OPTIMISERS,
    )
    momentum: float = knob(
        0.9,
        label="Momentum",
        help="Momentum's rho and ADAM's beta1 (how much of the last update carries on); Descent has none",
        low=0.0,
        high=0.99,
        live=True,
    )
    loop: str = knob(
        "train!",
        label="Loop style",
        help="train! (high level), gradient (hand-written loop) or manual (p -= lr * grad, Descent only)",
        choices=tuple(LOOP_STYLES),
    )
    seed: int = knob(0, label="Seed", help="seed of the initial weights and batch order", low=0, high=2**31 - 1)
    device: str = knob("auto", label="Device", help="auto picks CUDA, then MPS, then CPU", choices=DEVICES)
    init: str = knob(
        "flux",
        label="Initial weights",
        help="flux (Glorot-uniform, zero bias) or pytorch (its defaults)",
        choices=INIT_STYLES,
    )
    channels: str = knob(
        ",".join(map(str, TUTORIAL_CHANNELS)),
        label="Conv widths",
        help="output channels of the four conv layers, comma-separated; the tutorial's Chain has 8,16,32,32",
        check=_channels_problem,
    )
    activation: str = knob(
        "relu", label="Activation", help="the conv layers' activation; the tutorial's is relu", choices=ACTIVATIONS
    )
    batch_norm: bool = knob(
        False, label="Batch norm", help="batch normalisation after each convolution (not in the tutorial)"
    )
    dropout: float = knob(
        0.0, label="Dropout", help="share of the dense layer's inputs dropped while training (0 = none)", low=0.0,
        high=0.9,
    )  # fmt: skip
    record_every: int = knob(
        0,
        label="Loss on the whole train set every N batches (0 = off)",
        help="the tutorial's callback: loss over the whole train set every N batches (0 = off); costly",
        low=0,
        high=100_000,
    )
    validation: float = knob(
        0.0,
        label="Validation share",
        help="share of the training set held out (the same images for every seed) to choose hyperparameters on, "
        "never on the test set; 0 = none",
        low=0.0,
        high=0.5,
    )

    @staticmethod
    def knob(name: str) -> Knob:
        return CONFIG_FIELDS[name].metadata["knob"]

    def validate(self) -> None:
        """Raise ValueError with a message a user can act on."""
        problems = [p for f in fields(self) if (p := check_knob(f.name, getattr(self, f.name)))]
        if self.loop == "manual" and self.optimiser != "Descent":
            problems.append("the update by hand (p .-= lr .* grad) is plain Descent; choose Descent or another loop")
        if problems:
            raise ValueError("; ".join(problems) + ".")

    def network(self) -> dict:
        """The network's shape, as ``model.build_model`` takes it."""
        return {
            "channels": parse_channels(self.channels),
            "activation": self.activation,
            "batch_norm": self.batch_norm,
            "dropout": self.dropout,
        }

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a dict, ignoring unknown keys (older or newer run folders)."""
        return cls(**{k: v for k, v in data.items() if k in CONFIG_FIELDS})


CONFIG_FIELDS = {f.name: f for f in fields(TrainConfig)}
NETWORK_KNOBS = ("channels", "activation", "batch_norm", "dropout")  # the network's shape; the rest is training


def check_knob(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the config field ``name``, or None if it is allowed."""
    k = TrainConfig.knob(name)
    default = CONFIG_FIELDS[name].default
    name = k.label.split(" (")[0].lower()  # "learning rate", "batch size": the words the learner sees
    if k.choices is not None:
        return None if value in k.choices else f"{name} must be one of {', '.join(map(str, k.choices))}"
    if k.check is not None:
        return k.check(value)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"{name} must be true or false"
    if isinstance(default, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return f"{name} must be a number"
        if isinstance(default, int) and number != int(number):
            return f"{name} must be a whole number"
        if not (math.isfinite(number) and k.low <= number <= k.high):
            return f"{name} must be between {k.low:g} and {k.high:g}"
        return None
    return f"{name} has the wrong type"


def nearest_offer(name: str, value: float) -> float:
    """The value the page's slider offers for field ``name`` that is closest to ``value`` (on a log scale
    for a log knob): where a suggested learning rate lands on the slider."""
    k = TrainConfig.knob(name)
    measure = math.log if k.log else float
    return min(k.offer, key=lambda v: abs(measure(v) - measure(value)))


def batches_per_epoch(n_train: int, batch_size: int) -> int:
    """Steps in one pass over ``n_train`` images: ``n_train // batch_size``, at least 1 (see ``batch_bounds``)."""
    return max(1, n_train // batch_size) if n_train > 0 else 0


def planned_images(config: TrainConfig, n_train: int, n_test: int) -> dict[str, int]:
    """Images a run processes if it runs to the end, by what processes them: training, each epoch's test (and
    validation) pass, the loss recorder's passes over the training set, and the report's final pass."""
    n_val = held_out(n_train, config.validation)
    n_fit = n_train - n_val
    steps = batches_per_epoch(n_fit, config.batch_size) * config.epochs
    return {
        "training": n_fit * config.epochs,
        "evaluation": (n_test + n_val) * config.epochs + n_train + n_test,
        "recorder": (steps // config.record_every) * n_fit if config.record_every else 0,
    }


def over_budget(config: TrainConfig, n_train: int, n_test: int, most: int) -> str | None:
    """Why a run is more work than this server allows one run (``most`` images), with what to change; or None."""
    parts = planned_images(config, n_train, n_test)
    total = sum(parts.values())
    if total <= most:
        return None
    if parts["recorder"] > parts["training"]:
        fix = "record the whole-train-set loss less often (a larger N), or turn it off"
    else:
        fix = "train fewer epochs"
    return (
        f"This run would process {total:,} images ({parts['recorder']:,} of them for the loss recorder); "
        f"this server allows {most:,} per run so that every visitor gets a turn: {fix}."
    )


def batch_bounds(n_train: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch of an epoch, in order: the remainder joins the last batch.

    With 5,000 images and batch 128 the epoch has 39 batches, the last of 128 + 8 = 136 images,
    never a batch of 8: a step on 8 images at the full learning rate is a noisy one (its gradient's
    noise is 4x that of a full batch) taken right before the epoch's test: it sent the tutorial's defaults
    on 5,000 real MNIST digits anywhere from 18% to 92% by seed, and on 5,000 Fashion-MNIST images to
    51-71%, where merging gives 70-76% (``benchmarks/bench_remainder.py``).
    Scaling that step by 8/128 would also work for Descent, but not for ADAM, whose step size does not
    follow the gradient's; merging works for every optimiser and still shows each image once an epoch.
    Fewer images than ``batch_size`` make one batch of all of them.
    """
    steps = batches_per_epoch(n_train, batch_size)
    return [(i * batch_size, (i + 1) * batch_size if i < steps - 1 else n_train) for i in range(steps)]


VALIDATION_SEED = 20_240_601  # one fixed split: every run of a study is selected on the same held-out images


def held_out(n_train: int, share: float) -> int:
    """How many of ``n_train`` training images a validation ``share`` holds out (none if the share is 0)."""
    return min(round(n_train * share), n_train - 1) if share > 0 else 0


def validation_split(n_train: int, share: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(trained-on, held-out) indices of the training set, each in the data set's order; the split is fixed."""
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    n_val = held_out(n_train, share)
    return perm[n_val:].sort().values, perm[:n_val].sort().values
