"""Why the network answers as it does: a heat-map over the digit, per class, from Captum (PyTorch's attribution
library) rather than hand-written gradients.

Three methods to choose from, each asked for one class of one image:

- ``saliency``: how much a small change of each pixel would move the class's score (the gradient's size).
- ``integrated_gradients``: the score's change from a blank image to this one, shared out over the pixels (a
  blank image has no attribution at all; the pixels' shares add up to the score's change).
- ``occlusion``: how much the score drops when a 4x4 patch of the image is blanked, patch by patch.

Captum (and the matplotlib it brings) is imported on first use: a server that never explains does not load it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from .model import as_input, evaluating

METHODS = {
    "saliency": "Saliency (gradient)",
    "integrated_gradients": "Integrated Gradients",
    "occlusion": "Occlusion (4x4 patches)",
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
