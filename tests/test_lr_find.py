"""The learning-rate range test: the suggestion rule on a known curve, a real test on a small data set, the CLI."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from test_cli import cli

from mnist_core.config import TrainConfig
from mnist_core.lr_find import lr_find, lr_schedule, suggest_lr
from mnist_core.visual import smooth


def synthetic_curve(n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Flat at ln 10, falling steepest at lr 1e-2, lowest near 1e-1, then exploding (the last points inf)."""
    lrs = np.logspace(-6, 1, n)
    x = np.log10(lrs)
    losses = 2.3 - 2.0 / (1 + np.exp(-3 * (x + 2))) + 0.05 * np.exp(4 * (x + 1))
    losses[x > 0.8] = np.inf  # the blow-up: suggest_lr must ignore it
    return lrs, losses


def test_suggestion_on_a_synthetic_curve_is_near_its_steep_fall():
    lrs, losses = synthetic_curve()
    lowest = lrs[np.argmin(losses)]
    assert 0.05 < lowest < 0.2  # the curve is what the test means it to be
    assert 5e-3 < suggest_lr(lrs, losses) < 2e-2
    assert suggest_lr(lrs, losses) == pytest.approx(lowest / 10)


def test_suggestion_edge_cases():
    lrs = np.logspace(-3, 0, 20)
    assert suggest_lr(lrs, np.linspace(2.3, 5.0, 20)) == lrs[0]  # never fell: the lowest lr tried
    assert suggest_lr(lrs, np.r_[np.linspace(2.3, 1.0, 10), [np.nan] * 10]) == pytest.approx(lrs[9] / 10)
    with pytest.raises(ValueError, match="increasing"):
        suggest_lr(lrs[::-1], np.ones(20))
    with pytest.raises(ValueError, match="same length"):
        suggest_lr(lrs, np.ones(19))
    with pytest.raises(ValueError, match="first loss is not finite"):
        suggest_lr(lrs, np.full(20, np.inf))


def test_schedule_is_exponential_from_start_to_end():
    lrs = lr_schedule(1e-6, 10.0, 8)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(10.0)
    assert np.allclose(np.diff(np.log10(lrs)), 1.0)


def test_lr_find_on_a_learnable_set_stops_when_the_loss_explodes(blobs):
    config = TrainConfig(optimiser="ADAM", batch_size=32, seed=3)
    rng_before = torch.random.get_rng_state()
    result = lr_find(config, blobs, start_lr=1e-5, end_lr=10.0, steps=120)
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # seeded by the config alone

    n = len(result.lrs)
    assert result.ending in ("exploded", "diverged") and 10 < n < 120
    assert len(result.losses) == len(result.smoothed) == n
    assert result.lrs == lr_schedule(1e-5, 10.0, 120)[:n]
    assert np.allclose(result.smoothed, smooth(result.losses))
    assert all(math.isfinite(v) for v in result.losses)
    # The lr really moved: nothing learned at the start, a lot before the blow-up.
    assert result.losses[0] == pytest.approx(math.log(10), abs=0.1)
    assert min(result.smoothed) < 1.0
    assert 1e-5 <= result.suggested_lr <= 10.0
    assert result.suggested_lr == pytest.approx(suggest_lr(result.lrs, result.smoothed))

    again = lr_find(config, blobs, start_lr=1e-5, end_lr=10.0, steps=120)
    assert again.losses == result.losses  # same seed, same curve


def test_lr_find_runs_to_the_end_when_the_range_is_safe(blobs):
    result = lr_find(TrainConfig(optimiser="Descent", batch_size=64), blobs, start_lr=1e-4, end_lr=1e-2, steps=12)
    assert result.ending == "end" and len(result.lrs) == 12
    assert result.lrs[-1] == pytest.approx(1e-2)
    assert 1e-4 <= result.suggested_lr <= 1e-2


def test_lr_find_batches_like_a_run_across_epochs(blobs):
    """256 images in batches of 50: 5 steps an epoch (the 6 left over join the fifth), so 12 steps take 3 epochs."""
    result = lr_find(TrainConfig(batch_size=50), blobs, start_lr=1e-4, end_lr=1e-2, steps=12)
    assert result.ending == "end" and len(result.losses) == 12 and result.config.epochs == 3


def test_lr_find_rejects_bad_ranges(blobs):
    with pytest.raises(ValueError, match="must be lower than the end lr"):
        lr_find(TrainConfig(), blobs, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="learning rate must be between"):
        lr_find(TrainConfig(), blobs, start_lr=-1.0)
    with pytest.raises(ValueError, match="steps"):
        lr_find(TrainConfig(), blobs, steps=2)


def test_cli_lr_find_ends_with_the_suggestion():
    out = cli("lr-find", "--offline", "--optimiser", "ADAM", "--steps", "60", "--start-lr", "1e-5")
    assert out.returncode == 0, out.stderr
    last = out.stdout.rstrip("\n").splitlines()[-1]
    match = re.fullmatch(r"suggested lr: (\S+)", last)
    assert match, last
    assert 1e-5 <= float(match.group(1)) <= 10
    assert "lowest smoothed loss" in out.stdout
    bad = cli("lr-find", "--offline", "--start-lr", "1", "--end-lr", "0.1")
    assert bad.returncode == 2 and "must be lower than the end lr" in bad.stderr
