"""A run's config: every knob the tutorial turns, with its one definition (label, help, range, the values the page
offers, whether it may change mid-run), and what follows from a config: batches, the validation split, the images
a run will read. The CLI flags, the Train page, the run folder and the trainer all read it here."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from .data import DATASETS
from .i18n import N_, _
from .model import ACTIVATIONS, INIT_STYLES, TUTORIAL_CHANNELS

MAX_WIDTH = 256  # channels of one conv layer: 256,256,256,256 is 1.5 M parameters, still trainable on a CPU


def parse_channels(text: str) -> tuple[int, ...]:
    """ "8,16,32,32" -> (8, 16, 32, 32); ValueError unless four whole numbers from 1 to MAX_WIDTH."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 4 or not all(p.isdigit() and 1 <= int(p) <= MAX_WIDTH for p in parts):
        raise ValueError(
            _("conv widths must be four whole numbers from 1 to {most}, like 8,16,32,32").format(most=MAX_WIDTH)
        )
    return tuple(int(p) for p in parts)


def _channels_problem(value: Any) -> str | None:
    try:
        parse_channels(value)
    except ValueError as exc:
        return str(exc)
    return None


OPTIMISERS = ("Descent", "Momentum", "ADAM")  # as the tutorial names them
LOOP_STYLES = {  # shown with _(): LOOP_STYLES[style] is English
    "train!": N_("High level: Flux.train!(loss, ps, data, opt)"),
    "gradient": N_("Hand-written loop: gradient(), then update!(opt, ps, gs)"),
    "manual": N_("Update by hand: p .-= lr .* gs[p] (Descent only)"),
}
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class Knob:
    """One definition of a config field for every place that offers it: the CLI flags, the Train page."""

    label: str  # what the page calls it (English, marked N_: shown with _())
    help: str  # one line for --help and the widget's tooltip (the same)
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

    dataset: str = knob("mnist", label=N_("Data set"), help=N_("data set to train on"), choices=tuple(DATASETS))
    lr: float = knob(
        0.1,
        label=N_("Learning rate (log scale)"),
        help=N_("learning rate; the tutorial uses Descent(0.1)"),
        low=1e-7,
        high=1e9,  # the page offers 1e-5 ... 10; beyond, only the CLI (a learner can still make the loss NaN)
        log=True,
        offer=tuple(log_values(1e-5, 10.0)),
        live=True,
    )
    epochs: int = knob(
        10, label=N_("Epochs"), help=N_("passes over the training set (the tutorial's @epochs 10)"), low=1, high=100
    )
    batch_size: int = knob(
        128,
        label=N_("Batch size"),
        help=N_("images per batch (the tutorial's DataLoader batchsize 128)"),
        low=1,
        high=4096,
        offer=(8, 16, 32, 64, 128, 256, 512, 1024, 2048),
    )
    optimiser: str = knob(
        "Descent",
        label=N_("Optimiser"),
        help=N_("Descent is plain gradient descent; the article names Momentum and ADAM as better"),
        choices=OPTIMISERS,
    )
    momentum: float = knob(
        0.9,
        label=N_("Momentum"),
        help=N_("Momentum's rho and ADAM's beta1 (how much of the last update carries on); Descent has none"),
        low=0.0,
        high=0.99,
        live=True,
    )
    loop: str = knob(
        "train!",
        label=N_("Loop style"),
        help=N_("train! (high level), gradient (hand-written loop) or manual (p -= lr * grad, Descent only)"),
        choices=tuple(LOOP_STYLES),
    )
    seed: int = knob(0, label=N_("Seed"), help=N_("seed of the initial weights and batch order"), low=0, high=2**31 - 1)
    device: str = knob("auto", label=N_("Device"), help=N_("auto picks CUDA, then MPS, then CPU"), choices=DEVICES)
    init: str = knob(
        "flux",
        label=N_("Initial weights"),
        help=N_("flux (Glorot-uniform, zero bias) or pytorch (its defaults)"),
        choices=INIT_STYLES,
    )
    channels: str = knob(
        ",".join(map(str, TUTORIAL_CHANNELS)),
        label=N_("Conv widths"),
        help=N_("output channels of the four conv layers, comma-separated; the tutorial's Chain has 8,16,32,32"),
        check=_channels_problem,
    )
    activation: str = knob(
        "relu",
        label=N_("Activation"),
        help=N_("the conv layers' activation; the tutorial's is relu"),
        choices=ACTIVATIONS,
    )
    batch_norm: bool = knob(
        False, label=N_("Batch norm"), help=N_("batch normalisation after each convolution (not in the tutorial)")
    )
    dropout: float = knob(
        0.0,
        label=N_("Dropout"),
        help=N_("share of the dense layer's inputs dropped while training (0 = none)"),
        low=0.0,
        high=0.9,
    )
    record_every: int = knob(
        0,
        label=N_("Loss on the whole train set every N batches (0 = off)"),
        help=N_("the tutorial's callback: loss over the whole train set every N batches (0 = off); costly"),
        low=0,
        high=100_000,
    )
    validation: float = knob(
        0.0,
        label=N_("Validation share"),
        help=N_(
            "share of the training set held out (the same images for every seed) to choose hyperparameters on, "
            "never on the test set; 0 = none"
        ),
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
            problems.append(_("the update by hand (p .-= lr .* grad) is plain Descent; choose Descent or another loop"))
        if problems:
            raise ValueError(problems_sentence(problems))

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


def problems_sentence(problems: list[str]) -> str:
    """Problems as one sentence, in the language in use: "a; b." in English."""
    return _("{problems}.").format(problems=_("; ").join(problems))


def check_knob(name: str, value: Any) -> str | None:
    """What is wrong with ``value`` for the config field ``name``, or None if it is allowed."""
    k = TrainConfig.knob(name)
    default = CONFIG_FIELDS[name].default
    # "learning rate", "batch size": the words the learner sees (a translation's brackets may be full-width, and
    # its case is its own)
    label = _(k.label)
    name = re.split(r" \(|（", label)[0]
    name = name.lower() if label == k.label else name
    if k.choices is not None:
        if value in k.choices:
            return None
        return _("{name} must be one of {choices}").format(name=name, choices=", ".join(map(str, k.choices)))
    if k.check is not None:
        return k.check(value)
    if isinstance(default, bool):
        return None if isinstance(value, bool) else _("{name} must be true or false").format(name=name)
    if isinstance(default, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return _("{name} must be a number").format(name=name)
        if isinstance(default, int) and number != int(number):
            return _("{name} must be a whole number").format(name=name)
        if not (math.isfinite(number) and k.low <= number <= k.high):
            return _("{name} must be between {low:g} and {high:g}").format(name=name, low=k.low, high=k.high)
        return None
    return _("{name} has the wrong type").format(name=name)


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
        message = _(
            "This run would process {total:,} images ({recorder:,} of them for the loss recorder); this server allows "
            "{most:,} per run so that every visitor gets a turn: record the whole-train-set loss less often (a larger "
            "N), or turn it off."
        )
    else:
        message = _(
            "This run would process {total:,} images ({recorder:,} of them for the loss recorder); this server allows "
            "{most:,} per run so that every visitor gets a turn: train fewer epochs."
        )
    return message.format(total=total, recorder=parts["recorder"], most=most)


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
