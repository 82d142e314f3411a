"""Numbers the pages draw: smoothed and thinned loss curves, image grids, class counts, tensor shapes."""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from .data import Dataset
from .history import EpochMetrics
from .i18n import N_, _, pgettext
from .model import LayerRow

LIVE_POINTS = 1000  # per curve of the live chart: it is repainted several times a second; the shape needs no more


def smooth(values: list[float] | np.ndarray, weight: float = 0.9) -> np.ndarray:
    """TensorBoard's smoothing: an exponential moving average, debiased so it starts at the data."""
    # pandas' adjusted EWM is exactly the debiased average: sum(w^i x[t-i]) / sum(w^i).
    return pd.Series(np.asarray(values, dtype=np.float64)).ewm(alpha=1 - weight, adjust=True).mean().to_numpy()


def thin(values: list[float] | np.ndarray, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) with at most ``max_points`` evenly spaced points, the last one kept; steps are 1-based.
    Only the kept values are read: a long run's list is not converted whole (225,000 losses took 2.7 ms)."""
    n = len(values)
    if n <= max_points:
        idx = np.arange(n)
    else:
        idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(int))
    if isinstance(values, np.ndarray):
        return idx + 1, values[idx].astype(np.float64)
    return idx + 1, np.array([values[i] for i in idx.tolist()], dtype=np.float64)


class Smoother:
    """``smooth`` of a series that only grows (a run's batch losses), extended by its new values alone, with
    pandas' own recursion for ``ewm(alpha, adjust=True)``: its ``values`` equal ``smooth(series)`` number for
    number. A live feed is written five times a second: smoothing (and converting) every loss again made a
    write cost 9.2 ms at 225,000 losses (batch 8, 30 epochs of Fashion-MNIST), 1.5 ms this way. Safe to use
    from several threads."""

    def __init__(self, weight: float = 0.9) -> None:
        com = 1 / (1 - weight) - 1  # as pandas turns an alpha into a centre of mass, and back
        self._factor = 1 - 1 / (1 + com)
        self._lock = threading.Lock()
        # arrays of doubles, 16 bytes a step (Python floats in lists took 64): a run of 750,000 steps keeps 12 MB
        self.values = array("d")  # smoothed, one per value of the series seen so far
        self._weights = array("d")  # pandas' old_wt after each value: the state to go on from

    def follow(self, series: Sequence[float]) -> array:
        """Smooth the values of ``series`` beyond those already seen; returns ``values`` (len(series) of them)."""
        with self._lock:
            n = len(self.values)
            weighted = self.values[-1] if n else math.nan
            old_wt = self._weights[-1] if n else 1.0
            for cur in series[n:]:
                if weighted == weighted:  # not NaN
                    old_wt *= self._factor
                    if cur == cur:
                        if weighted != cur:
                            weighted = (old_wt * weighted + cur) / (old_wt + 1.0)
                        old_wt += 1.0
                elif cur == cur:
                    weighted = cur
                self.values.append(weighted)
                self._weights.append(old_wt)
            return self.values

    def truncate(self, n: int) -> None:
        """Forget the values from index ``n`` on: the series is sent again from there. New arrays, so that a
        reader of ``values`` from before reads on undisturbed (``follow`` only appends)."""
        with self._lock:
            if n < len(self.values):
                self.values, self._weights = self.values[:n], self._weights[:n]


def upscale(image: np.ndarray | torch.Tensor, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement, so 28x28 pixels stay crisp squares in the browser."""
    pixels = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return pixels.repeat(factor, axis=0).repeat(factor, axis=1)


def map_grid(maps: torch.Tensor, columns: int = 8, cell: int = 56, pad: int = 2) -> np.ndarray:
    """(C, H, W) feature maps or filters -> one uint8 greyscale mosaic, each map scaled to its own range."""
    maps = maps.detach().float().cpu()
    factor = max(1, cell // maps.shape[-1])
    big = maps.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2)  # (C, h, w)
    # torchvision's make_grid(normalize=True, scale_each=True, pad_value=1), written out: importing torchvision
    # costs each process 170 MB (PSS), and a server and its trainer would both pay it for this one mosaic
    low = big.amin(dim=(1, 2), keepdim=True)
    high = big.amax(dim=(1, 2), keepdim=True)
    big = (big - low) / (high - low).clamp_min(1e-5)
    n, h, w = big.shape
    if n == 1:  # one map: no frame, as make_grid
        return (big[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    columns = min(columns, n)
    rows = -(-n // columns)
    grid = torch.ones(rows * (h + pad) + pad, columns * (w + pad) + pad)
    for i in range(n):
        top, left = (i // columns) * (h + pad) + pad, (i % columns) * (w + pad) + pad
        grid[top : top + h, left : left + w] = big[i]
    return (grid.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def class_counts(dataset: Dataset) -> pd.DataFrame:
    """Images per class in each split: columns class, split, count."""
    rows = []
    for split, labels in (("train", dataset.train_labels), ("test", dataset.test_labels)):
        counts = torch.bincount(labels, minlength=len(dataset.classes)).tolist()
        rows += [{"class": c, "split": split, "count": n} for c, n in zip(dataset.classes, counts)]
    return pd.DataFrame(rows)


def batch_shapes(dataset: Dataset, batch: int = 128) -> pd.DataFrame:
    """The tutorial's data steps on a real batch: the shapes in PyTorch's and Flux's order, in the language in use
    (no code reads its columns: they are headers)."""
    x = dataset.train_images[:batch]  # (N, 28, 28) uint8
    y = dataset.train_labels[:batch]
    n = len(x)
    with_channel = x.unsqueeze(1)  # (N, 1, 28, 28): NCHW
    one_hot = torch.nn.functional.one_hot(y, len(dataset.classes))
    return pd.DataFrame(
        [
            [
                _("images as loaded"),
                str(tuple(x.shape)),
                str((28, 28, n)),
                _("{code} in Flux").format(code="x_train[:, :, 1:N]"),
            ],
            [
                _("add channel dimension"),
                str(tuple(with_channel.shape)),
                str((28, 28, 1, n)),
                "Flux.unsqueeze(x, 3)  <->  x.unsqueeze(1)",
            ],
            [_("labels"), str(tuple(y.shape)), str((n,)), _("integers 0-9")],
            [_("one-hot labels"), str(tuple(one_hot.shape)), str((len(dataset.classes), n)), "onehotbatch(y, 0:9)"],
        ],
        columns=[pgettext("a step of the tutorial", "step"), "PyTorch (NCHW)", "Flux (WHCN)", _("code")],
    )


# The columns of the layer tables: keys (English), shown with _()
FLUX_LAYER, OUTPUT_NCHW, OUTPUT_WHCN = N_("Flux layer"), N_("output NCHW"), N_("output WHCN")
SPATIAL, PARAMETERS, MULTIPLY_ADDS = N_("spatial"), N_("parameters"), N_("multiply-adds")
LAYER, OUTPUT = N_("layer"), N_("output")


def layer_dataframe(rows: list[LayerRow]) -> pd.DataFrame:
    """The layer-shape table as a DataFrame for display."""
    return pd.DataFrame(
        {
            "#": [r.index for r in rows],
            FLUX_LAYER: [r.flux for r in rows],
            "PyTorch": [r.pytorch for r in rows],
            OUTPUT_NCHW: [str(r.shape_nchw) for r in rows],
            OUTPUT_WHCN: [str(r.shape_whcn) for r in rows],
            SPATIAL: [r.spatial for r in rows],
            PARAMETERS: [r.params for r in rows],
            MULTIPLY_ADDS: [r.macs for r in rows],
        }
    )


def duration(seconds: float) -> str:
    """A time as a reader wants it: 0.15 s, 12 s, 3.5 min, 1.2 h (in the language in use)."""
    if seconds < 10:
        return _("{seconds:.2g} s").format(seconds=seconds)
    if seconds < 120:
        return _("{seconds:.0f} s").format(seconds=seconds)
    if seconds < 7200:
        return _("{minutes:.1f} min").format(minutes=seconds / 60)
    return _("{hours:.1f} h").format(hours=seconds / 3600)


def network_brief(rows: list[LayerRow]) -> pd.DataFrame:
    """The layer table in three narrow columns, for a sidebar-wide column: each layer's kind, output, parameters."""
    return pd.DataFrame(
        {
            LAYER: [r.flux.split("(")[0] for r in rows],
            OUTPUT: [" × ".join(map(str, r.shape_nchw[1:])) for r in rows],
            PARAMETERS: [r.params for r in rows],
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


SPIKE_FACTOR = 20  # a loss axis whose top is this many times the typical loss would flatten the curve


def needs_log_scale(values) -> bool:
    """True when the largest value is over SPIKE_FACTOR times the median: a spike (a 600,000 loss among
    losses of 2) that a linear axis would draw as one line at the top and a flat one at the bottom."""
    v = np.asarray(list(values), dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return len(v) > 1 and v.max() > SPIKE_FACTOR * np.median(v)


def live_chart_data(
    batch_losses: list[float],
    epochs: list[EpochMetrics],
    full_losses: list[tuple[int, float]],
    total_steps: int,
    lr_schedule: list[tuple[int, float]],
    smoothed: Sequence[float] | None = None,
) -> dict:
    """What the canvas draws: thinned batch losses and their smoothed line, test accuracy per epoch,
    the whole-train-set loss the recorder took, and the learning-rate changes (the first entry is the
    run's own lr, not a change). ``smoothed``: the batch losses already smoothed (a job's ``Smoother``), at
    least as many; else they are smoothed here."""
    steps, raw = thin(batch_losses, LIVE_POINTS) if batch_losses else (np.array([], dtype=int), np.array([]))
    if smoothed is None:
        smoothed = smooth(batch_losses)[steps - 1] if batch_losses else np.array([])
    else:
        smoothed = np.array([smoothed[i] for i in (steps - 1).tolist()], dtype=np.float64)
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
        "lrStart": f"{lr_schedule[0][1]:g}" if lr_schedule else None,
        "spike": bool(needs_log_scale(raw)),  # the chart's "auto" axis is then a log one
    }
