"""Numbers the pages draw: smoothed and thinned loss curves, image grids, class counts, tensor shapes."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from torchvision.utils import make_grid

from .data import Dataset
from .model import LayerRow
from .train import EpochMetrics

LIVE_POINTS = 1000  # per curve of the live chart: it is repainted several times a second; the shape needs no more


def smooth(values: list[float] | np.ndarray, weight: float = 0.9) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased so it starts at the data."""
    # pandas' adjusted EWM is exactly the debiased average: sum(w^i x[t-i]) / sum(w^i).
    return pd.Series(np.asarray(values, dtype=np.float64)).ewm(alpha=1 - weight, adjust=True).mean().to_numpy()


def thin(values: list[float] | np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) with at most ``max_points`` evenly spaced points, the last one kept; steps are 1-based."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n <= max_points:
        idx = np.arange(n)
    else:
        idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    return idx + 1, values[idx]


def upscale(image: np.ndarray | torch.Tensor, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 28x28 pixels stay crisp squares in the browser."""
    array = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return array.repeat(factor, axis=0).repeat(factor, axis=1)


def map_grid(maps: torch.Tensor, columns: int = 8, cell: int = 56, pad: int = 2) -> np.ndarray:
    """(C, H, W) feature maps or filters -> one uint8 greyscale mosaic, each map scaled to its own range."""
    maps = maps.detach().float().cpu()
    factor = max(1, cell // maps.shape[-1])
    big = maps.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2).unsqueeze(1)  # (C, 1, h, w)
    grid = make_grid(big, nrow=columns, padding=pad, normalize=True, scale_each=True, pad_value=1.0)
    return (grid[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def class_counts(dataset: Dataset) -> pd.DataFrame:
    """Images per class in each split: columns class, split, count."""
    rows = []
    for split, labels in (("train", dataset.train_labels), ("test", dataset.test_labels)):
        counts = torch.bincount(labels, minlength=len(dataset.classes)).tolist()
        rows += [{"class": c, "split": split, "count": n} for c, n in zip(dataset.classes, counts)]
    return pd.DataFrame(rows)


def batch_shapes(dataset: Dataset, batch: int = 128) -> pd.DataFrame:
    """The tutorial's data steps on a real batch: the shapes in PyTorch's and Flux's order."""
    x = dataset.train_images[:batch]  # (N, 28, 28) uint8
    y = dataset.train_labels[:batch]
    n = len(x)
    with_channel = x.unsqueeze(1)  # (N, 1, 28, 28): NCHW
    one_hot = torch.nn.functional.one_hot(y, len(dataset.classes))
    return pd.DataFrame(
        [
            ["images as loaded", str(tuple(x.shape)), str((28, 28, n)), "x_train[:, :, 1:N] in Flux"],
            [
                "add channel dimension",
                str(tuple(with_channel.shape)),
                str((28, 28, 1, n)),
                "Flux.unsqueeze(x, 3)  <->  x.unsqueeze(1)",
            ],
            ["labels", str(tuple(y.shape)), str((n,)), "integers 0-9"],
            ["one-hot labels", str(tuple(one_hot.shape)), str((len(dataset.classes), n)), "onehotbatch(y, 0:9)"],
        ],
        columns=["step", "PyTorch (NCHW)", "Flux (WHCN)", "code"],
    )


def layer_dataframe(rows: list[LayerRow]) -> pd.DataFrame:
    """The layer-shape table as a DataFrame for display."""
    return pd.DataFrame(
        {
            "#": [r.index for r in rows],
            "Flux layer": [r.flux for r in rows],
            "PyTorch": [r.pytorch for r in rows],
            "output NCHW": [str(r.shape_nchw) for r in rows],
            "output WHCN": [str(r.shape_whcn) for r in rows],
            "spatial": [r.spatial for r in rows],
            "parameters": [r.params for r in rows],
            "multiply-adds": [r.macs for r in rows],
        }
    )


def square_tile(image: np.ndarray, size: int = 140) -> np.ndarray:
    """Pad an image to a square with its own corner colour, then scale it to ``size`` pixels a side.

    Small images are enlarged with crisp pixels, large ones shrunk smoothly, so every step of the
    digit preprocessing shows at the same size without being stretched.
    """
    from PIL import Image

    h, w = image.shape
    side = max(h, w)
    canvas = np.full((side, side), image[0, 0], dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    canvas[top : top + h, left : left + w] = image
    resample = Image.NEAREST if side <= size else Image.LANCZOS
    return np.asarray(Image.fromarray(canvas).resize((size, size), resample))


def _numbers(values: np.ndarray | list[float], digits: int = 5) -> list[float | None]:
    """JSON-safe: rounded, and None (a gap) for a NaN or infinite loss."""
    return [round(v, digits) if math.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).tolist()]


def live_chart_data(
    batch_losses: list[float],
    epochs: list[EpochMetrics],
    full_losses: list[tuple[int, float]],
    total_steps: int,
    lr_schedule: list[tuple[int, float]],
) -> dict:
    """What the canvas draws: thinned batch losses and their smoothed line, test accuracy per epoch,
    the whole-train-set loss the recorder took, and the learning-rate changes (the first entry is the
    run's own lr, not a change)."""
    steps, raw = thin(batch_losses, LIVE_POINTS) if batch_losses else (np.array([]), np.array([]))
    smoothed = smooth(batch_losses)[steps - 1] if batch_losses else np.array([])
    return {
        "total": int(total_steps),
        "steps": steps.tolist(),
        "raw": _numbers(raw),
        "smooth": _numbers(smoothed),
        "accSteps": [e.step for e in epochs],
        "acc": _numbers([e.test_acc for e in epochs]),
        "fullSteps": [s for s, _ in full_losses],
        "full": _numbers([v for _, v in full_losses]),
        "lr": [[step, f"{lr:g}"] for step, lr in lr_schedule[1:]],
    }
