"""The tutorial's network (Flux's 8-layer ``Chain``) in PyTorch, and its layer-shape inspection.

    Conv((5,5), 1=>8,   pad=2, stride=2, relu)   # 28x28 => 14x14
    Conv((3,3), 8=>16,  pad=1, stride=2, relu)   # 14x14 => 7x7
    Conv((3,3), 16=>32, pad=1, stride=2, relu)   # 7x7   => 4x4
    Conv((3,3), 32=>32, pad=1, stride=2, relu)   # 4x4   => 2x2
    GlobalMeanPool(); flatten; Dense(32, 10); softmax

15,594 parameters. The model returns probabilities like the tutorial's; training uses
``logits`` with ``cross_entropy``, the numerically stable form of crossentropy(softmax(x)).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .i18n import _

INIT_STYLES = ("flux", "pytorch")
TUTORIAL_CHANNELS = (8, 16, 32, 32)  # the four conv layers' widths in the tutorial's Chain
ACTIVATION_FUNCTIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": nn.functional.gelu}
ACTIVATIONS = tuple(ACTIVATION_FUNCTIONS)


class ConvLayer(nn.Module):
    """Flux's ``Conv(..., relu)``: a convolution with its activation, one layer of the chain; with ``batch_norm``
    Flux's ``Conv(...), BatchNorm(c_out, relu)``. Without it the weights are named as they always were."""

    def __init__(
        self, c_in: int, c_out: int, kernel: int, pad: int, stride: int, activation: str = "relu", batch_norm=False
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=pad)
        if batch_norm:
            self.bn = nn.BatchNorm2d(c_out)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        if hasattr(self, "bn"):
            y = self.bn(y)
        return ACTIVATION_FUNCTIONS[self.activation](y)


class GlobalMeanPool(nn.Module):
    """Mean of each feature map, keeping the singleton dims as Flux does: (N, C, H, W) -> (N, C, 1, 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class Softmax(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)


class TutorialCNN(nn.Module):
    """The tutorial's chain. ``forward`` gives probabilities (N, 10); ``logits`` the scores before softmax."""

    def __init__(
        self,
        init: str = "flux",
        channels: tuple[int, ...] = TUTORIAL_CHANNELS,
        activation: str = "relu",
        batch_norm: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if init not in INIT_STYLES:
            raise ValueError(f"init must be one of {INIT_STYLES}, not {init!r}")
        a, b, c, d = channels
        style = {"activation": activation, "batch_norm": batch_norm}
        self.layers = nn.Sequential(
            ConvLayer(1, a, kernel=5, pad=2, stride=2, **style),  # (N, 8, 14, 14) in the tutorial
            ConvLayer(a, b, kernel=3, pad=1, stride=2, **style),  # (N, 16, 7, 7)
            ConvLayer(b, c, kernel=3, pad=1, stride=2, **style),  # (N, 32, 4, 4)
            ConvLayer(c, d, kernel=3, pad=1, stride=2, **style),  # (N, 32, 2, 2)
            GlobalMeanPool(),  # (N, 32, 1, 1)
            nn.Flatten(),  # (N, 32)
            *([nn.Dropout(dropout)] if dropout > 0 else []),  # not in the tutorial: the layers keep their numbers
            nn.Linear(d, 10),  # (N, 10)
            Softmax(),  # (N, 10), rows sum to 1
        )
        if init == "flux":
            self.reset_flux()

    def reset_flux(self) -> None:
        """Flux's defaults: Glorot-uniform weights, zero biases (PyTorch's Kaiming-uniform differs)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) floats in [0, 1] -> (N, 10) unnormalised scores."""
        return self.layers[:-1](x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=1)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each of the four conv layers for ``x``: [(N, 8, 14, 14), ..., (N, 32, 2, 2)]."""
        maps = []
        for layer in self.layers:
            if not isinstance(layer, ConvLayer):
                break
            x = layer(x)
            maps.append(x)
        return maps

    def first_filters(self) -> torch.Tensor:
        """The first layer's 8 learned 5x5 filters, (8, 5, 5)."""
        return self.layers[0].conv.weight.detach()[:, 0]


def as_input(images: torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 images (N, 28, 28) -> the model's input: floats in [0, 1], (N, 1, 28, 28), on ``device``.

    The added channel dimension is the tutorial's ``Flux.unsqueeze(x, 3)``; channels_last lets
    oneDNN and cuDNN pick their fastest kernels for these small convolutions.
    """
    x = images.to(device).unsqueeze(1).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last)


def build_model(init: str = "flux", seed: int | None = None, **network) -> TutorialCNN:
    """A fresh model; with ``seed`` its initial weights are reproducible. ``network``: TutorialCNN's shape
    arguments (channels, activation, batch_norm, dropout); none gives the tutorial's Chain."""
    if seed is None:
        return TutorialCNN(init, **network)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TutorialCNN(init, **network)


@contextmanager
def evaluating(model: nn.Module):
    """The model in eval mode for a measurement (batch norm's running statistics, no dropout), then back."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- inspection


@dataclass(frozen=True)
class LayerRow:
    """One layer of the chain as the shape table shows it."""

    index: int
    flux: str  # the layer in the tutorial's Flux words
    pytorch: str  # the same layer in PyTorch's words
    shape_nchw: tuple[int, ...]  # output shape, PyTorch order, batch first
    shape_whcn: tuple[int, ...]  # output shape, Flux order, batch last
    spatial: str  # e.g. "28x28 => 14x14"
    params: int
    macs: int  # multiply-adds per image


def _whcn(shape: tuple[int, ...]) -> tuple[int, ...]:
    """NCHW -> WHCN (Flux is column-major: width first, batch last); (N, F) -> (F, N)."""
    if len(shape) == 4:
        n, c, h, w = shape
        return (w, h, c, n)
    return tuple(reversed(shape))


def _spatial(before: tuple[int, ...], after: tuple[int, ...]) -> str:
    def fmt(shape: tuple[int, ...]) -> str:
        return f"{shape[2]}x{shape[3]}" if len(shape) == 4 else f"{shape[1]}"

    a, b = fmt(before), fmt(after)
    return a if a == b and len(before) == len(after) else f"{a} => {b}"


@dataclass(frozen=True)
class LayerKind:
    """How the shape table names and counts one kind of layer."""

    flux: Callable[[Any], str]  # the layer in the tutorial's Flux words
    pytorch: Callable[[Any], str]  # the same layer in PyTorch's words
    macs: Callable[[Any, tuple[int, ...]], int]  # multiply-adds per image, given the output shape (N, C, H, W)


def _conv_flux(layer: ConvLayer) -> str:
    c = layer.conv
    k, p, s = c.kernel_size[0], c.padding[0], c.stride[0]
    conv = f"Conv(({k},{k}), {c.in_channels}=>{c.out_channels}, pad={p}, stride={s}"
    if hasattr(layer, "bn"):  # Flux puts the activation in the BatchNorm after the convolution
        return f"{conv}), BatchNorm({c.out_channels}, {layer.activation})"
    return f"{conv}, {layer.activation})"


def _conv_torch(layer: ConvLayer) -> str:
    c = layer.conv
    bn = f" + BatchNorm2d({c.out_channels})" if hasattr(layer, "bn") else ""
    return (
        f"Conv2d({c.in_channels}, {c.out_channels}, kernel_size={c.kernel_size[0]}, "
        f"stride={c.stride[0]}, padding={c.padding[0]}){bn} + {TORCH_NAMES[layer.activation]}"
    )


TORCH_NAMES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU"}


def _conv_macs(layer: ConvLayer, out: tuple[int, ...]) -> int:
    c = layer.conv
    return c.in_channels * c.kernel_size[0] * c.kernel_size[1] * out[1] * out[2] * out[3]  # per output value


def _free(_layer: nn.Module, _out: tuple[int, ...]) -> int:
    return 0


# One row per kind of layer in the chain: a new kind of layer is one new row here.
LAYER_KINDS: dict[type[nn.Module], LayerKind] = {
    ConvLayer: LayerKind(_conv_flux, _conv_torch, _conv_macs),
    nn.Dropout: LayerKind(lambda d: f"Dropout({d.p:g})", lambda d: f"nn.Dropout(p={d.p:g})", _free),
    GlobalMeanPool: LayerKind(lambda _: "GlobalMeanPool()", lambda _: "x.mean(dim=(2, 3), keepdim=True)", _free),
    nn.Flatten: LayerKind(lambda _: "flatten", lambda _: "nn.Flatten()", _free),
    nn.Linear: LayerKind(
        lambda d: f"Dense({d.in_features}, {d.out_features})",
        lambda d: f"nn.Linear({d.in_features}, {d.out_features})",
        lambda d, _: d.in_features * d.out_features,
    ),
    Softmax: LayerKind(lambda _: "softmax", lambda _: "torch.softmax(x, dim=1)", _free),
}


def layer_kind(layer: nn.Module) -> LayerKind:
    """The table's entry for ``layer``; a layer of a kind it does not know is an error, not a blank row."""
    kind = LAYER_KINDS.get(type(layer))
    if kind is None:
        raise TypeError(f"the layer table does not know {type(layer).__name__}: add it to LAYER_KINDS")
    return kind


def layer_table(model: TutorialCNN | None = None, batch: int = 1) -> list[LayerRow]:
    """Shapes, parameters and multiply-adds of each layer, read off a real forward pass."""
    model = model if model is not None else TutorialCNN()
    device = next(model.parameters()).device
    x = torch.zeros(batch, 1, 28, 28, device=device)
    rows = []
    with torch.inference_mode():
        for i, layer in enumerate(model.layers):
            y = layer(x)
            before, after = tuple(x.shape), tuple(y.shape)
            kind = layer_kind(layer)
            rows.append(
                LayerRow(
                    index=i + 1,
                    flux=kind.flux(layer),
                    pytorch=kind.pytorch(layer),
                    shape_nchw=after,
                    shape_whcn=_whcn(after),
                    spatial=_spatial(before, after),
                    params=count_parameters(layer),
                    macs=kind.macs(layer, after),
                )
            )
            x = y
    return rows


def _cell(text: str, width: int, right: bool = False) -> str:
    """``text`` padded to ``width`` terminal columns: a CJK character takes two."""
    used = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)
    pad = " " * max(0, width - used)
    return pad + text if right else text + pad


def format_layer_table(rows: list[LayerRow]) -> str:
    """The layer table as fixed-width text for the command line, its headings in the language in use."""
    flux, spatial, params, macs = _("Flux layer"), _("spatial"), _("params"), _("MACs")  # outside the f-string:
    # Babel's extractor does not look inside one
    header = (
        f"{'#':>2}  {_cell(flux, 44)} {'NCHW':<16} {'WHCN':<16} {_cell(spatial, 16)} "
        f"{_cell(params, 7, right=True)} {_cell(macs, 8, right=True)}"
    )
    lines, total = [header, "-" * len(header)], _("total")
    for r in rows:
        lines.append(
            f"{r.index:>2}  {r.flux:<44} {str(r.shape_nchw):<16} {str(r.shape_whcn):<16} "
            f"{r.spatial:<16} {r.params:>7,} {r.macs:>8,}"
        )
    lines.append(
        f"{'':>2}  {_cell(total, 44)} {'':<16} {'':<16} {'':<16} "
        f"{sum(r.params for r in rows):>7,} {sum(r.macs for r in rows):>8,}"
    )
    return "\n".join(lines)


def first_prediction(model: TutorialCNN, images: torch.Tensor) -> tuple[int, torch.Tensor]:
    """The tutorial's first check: ``onecold(model(x))`` for the first image; (class, probabilities)."""
    x = as_input(images[:1], next(model.parameters()).device)  # (1, 1, 28, 28)
    with torch.inference_mode(), evaluating(model):
        probs = model(x)[0].cpu()
    return int(probs.argmax()), probs
