"""Why the network answers as it does: a heat-map over the digit, per class, from Captum (PyTorch's attribution
library) rather than hand-written gradients.

Three methods to choose from, each asked for one class of one image:

- ``saliency``: how much a small change of each pixel would move the class's score (the gradient's size).
- ``integrated_gradients``: the score's change from a blank image to this one, shared out over the pixels (a
  blank image has no attribution at all; the pixels' shares add up to the score's change).
- ``occlusion``: how much the score drops when a 4x4 patch of the image is blanked, patch by patch.

Captum (and the matplotlib it brings) is imported on first use: a server that never explains does not load it.

And ``pixel_sum``: one output pixel of a conv layer worked out by hand, as CNN Explainer shows it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .i18n import N_
from .model import ACTIVATION_FUNCTIONS, as_input, evaluating

METHODS = {  # English, marked N_: shown with _(METHODS[method])
    "saliency": N_("Saliency (gradient)"),
    "integrated_gradients": N_("Integrated Gradients"),
    "occlusion": N_("Occlusion (4x4 patches)"),
}
IG_STEPS = 32  # points on the path from the blank image: the shares then add up to within 1% of the change
PATCH, STRIDE = 4, 2  # occlusion's blanked patch and its step, in pixels of the 28x28 input


@dataclass(frozen=True)
class Explanation:
    """One class's heat-map of one image."""

    target: int  # the class explained
    probability: float  # the model's probability for it
    heat: np.ndarray  # (28, 28) float32, positive where the pixel speaks for the class


def explain(model: torch.nn.Module, image_28: torch.Tensor | np.ndarray, target: int, method: str) -> Explanation:
    """Attribute ``model``'s score for class ``target`` to the pixels of one uint8 (28, 28) image."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    from captum.attr import IntegratedGradients, Occlusion, Saliency  # noqa: PLC0415 (heavy; see the docstring)

    device = next(model.parameters()).device
    x = as_input(torch.as_tensor(np.asarray(image_28, dtype=np.uint8)).reshape(1, 28, 28), device)
    x = x.contiguous()  # Captum perturbs the input in place; channels_last views confuse its expansions
    with evaluating(model):
        forward = model.logits
        if method == "saliency":
            heat = Saliency(forward).attribute(x.requires_grad_(), target=target, abs=True)
        elif method == "integrated_gradients":
            heat = IntegratedGradients(forward).attribute(x, torch.zeros_like(x), target=target, n_steps=IG_STEPS)
        else:
            heat = Occlusion(forward).attribute(
                x, sliding_window_shapes=(1, PATCH, PATCH), strides=(1, STRIDE, STRIDE), target=target, baselines=0
            )
        with torch.no_grad():
            probability = float(torch.softmax(forward(x), dim=1)[0, target])
    return Explanation(target, probability, heat.detach()[0, 0].float().cpu().numpy())


def top_two(model: torch.nn.Module, image_28: torch.Tensor | np.ndarray) -> tuple[int, int]:
    """The predicted class and the runner-up."""
    device = next(model.parameters()).device
    x = as_input(torch.as_tensor(np.asarray(image_28, dtype=np.uint8)).reshape(1, 28, 28), device)
    with torch.inference_mode(), evaluating(model):  # batch norm's statistics, no dropout: as Predict answers
        order = model.logits(x)[0].argsort(descending=True)
    return int(order[0]), int(order[1])


def heat_tile(image_28: np.ndarray, heat: np.ndarray, scale: int = 8) -> np.ndarray:
    """The digit in grey with the heat-map over it: red where a pixel speaks for the class, blue against it,
    each as strong as the largest absolute attribution; (28 * scale, 28 * scale, 3) uint8."""
    grey = np.asarray(image_28, dtype=np.float32) / 255 * 0.5  # the digit, faint under the colours
    top = float(np.abs(heat).max()) or 1.0
    h = np.clip(heat / top, -1, 1)
    rgb = np.stack([grey + np.clip(h, 0, 1), grey + 0.15 * np.abs(h), grey + np.clip(-h, 0, 1)], axis=-1)
    tile = (np.clip(rgb, 0, 1) * 255).astype(np.uint8)
    return np.repeat(np.repeat(tile, scale, axis=0), scale, axis=1)


def heat_png(image_28: np.ndarray, heats: list[np.ndarray], scale: int = 8) -> bytes:
    """The digit's heat-maps side by side (one per class explained), as PNG bytes."""
    tiles = [heat_tile(image_28, h, scale) for h in heats]
    gap = np.full((28 * scale, scale, 3), 255, dtype=np.uint8)
    row = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
    buffer = io.BytesIO()
    Image.fromarray(row).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class PixelSum:
    """One output pixel of a conv layer, worked out as CNN Explainer shows it: each input channel's patch times
    the filter's slice, summed, plus the bias; then batch norm (if the layer has it) and the activation."""

    layer: int  # 1-based conv layer
    channel: int  # the output feature map
    row: int
    col: int
    patch: np.ndarray  # (c_in, k, k): the layer's input under the filter, zeros where it hangs over the padding
    kernel: np.ndarray  # (c_in, k, k): the filter's weights
    partial: np.ndarray  # (c_in,): sum of patch * kernel per input channel
    bias: float
    conv: float  # partial.sum() + bias
    normed: float | None  # after batch norm (its running statistics), where the layer has it
    activation: str
    value: float  # the pixel: activation(normed or conv)
    stride: int
    pad: int

    @property
    def top(self) -> int:
        """The patch's first row in the (unpadded) input; it may be negative (the padding)."""
        return self.row * self.stride - self.pad

    @property
    def left(self) -> int:
        return self.col * self.stride - self.pad


def pixel_sum(model: torch.nn.Module, image_28: torch.Tensor | np.ndarray, layer: int, channel: int, row: int,
              col: int) -> PixelSum:  # fmt: skip
    """Work out output pixel (``row``, ``col``) of feature map ``channel`` of conv ``layer`` (1-based) for one
    uint8 (28, 28) image, from the weights and the layer's input, in float64."""
    x = as_input(torch.as_tensor(np.asarray(image_28, dtype=np.uint8)).reshape(1, 28, 28))
    convs = [m for m in model.layers if hasattr(m, "conv")]
    block = convs[layer - 1]
    with torch.inference_mode(), evaluating(model):
        for earlier in convs[: layer - 1]:
            x = earlier(x)
    conv = block.conv
    (k, _), (stride, _), (pad, _) = conv.kernel_size, conv.stride, conv.padding
    padded = torch.nn.functional.pad(x[0].double(), (pad, pad, pad, pad))
    r, c = row * stride, col * stride
    patch = padded[:, r : r + k, c : c + k].cpu().numpy()
    kernel = conv.weight.detach()[channel].double().cpu().numpy()
    partial = (patch * kernel).sum(axis=(1, 2))
    bias = float(conv.bias.detach()[channel]) if conv.bias is not None else 0.0
    total = float(partial.sum()) + bias
    normed = None
    if hasattr(block, "bn"):
        bn = block.bn
        mean, var = float(bn.running_mean[channel]), float(bn.running_var[channel])
        gamma, beta = float(bn.weight.detach()[channel]), float(bn.bias.detach()[channel])
        normed = (total - mean) / (var + bn.eps) ** 0.5 * gamma + beta
    before = torch.tensor(normed if normed is not None else total, dtype=torch.float64)
    value = float(ACTIVATION_FUNCTIONS[block.activation](before))
    return PixelSum(layer, channel, row, col, patch, kernel, partial, bias, total, normed, block.activation, value,
                    stride, pad)  # fmt: skip
