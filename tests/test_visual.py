"""The live chart's numbers: thinning, and smoothing a growing series a chunk at a time."""

import math

import numpy as np
import pytest

from mnist_core.visual import Smoother, smooth, thin


@pytest.mark.parametrize("kind", ["noisy", "with gaps", "starting with gaps", "constant", "tiny"])
def test_a_smoother_fed_in_chunks_gives_smooth_of_the_whole_number_for_number(kind):
    rng = np.random.default_rng(len(kind))
    values = (rng.random(2_500) * 3).tolist()
    if kind == "with gaps":
        for k in rng.integers(0, len(values), 40):
            values[k] = math.nan
    elif kind == "starting with gaps":
        values[:7] = [math.nan] * 7
    elif kind == "constant":
        values = [0.693] * 2_500
    elif kind == "tiny":
        values = (rng.random(2_500) * 1e-6).tolist()
    smoother, seen = Smoother(), 0
    while seen < len(values):
        seen = min(len(values), seen + int(rng.integers(1, 120)))  # the losses that came since the last write
        got = smoother.follow(values[:seen])
        assert len(got) == seen
    assert np.array_equal(np.array(smoother.values), smooth(values), equal_nan=True)


def test_a_series_sent_again_from_a_step_is_smoothed_again_from_there():
    rng = np.random.default_rng(1)
    first, second = rng.random(300).tolist(), rng.random(300).tolist()
    smoother = Smoother(0.8)
    smoother.follow(first)
    before = smoother.values
    smoother.truncate(200)  # from step 201 the series is another one
    resent = first[:200] + second[200:]
    assert np.array_equal(np.array(smoother.follow(resent)), smooth(resent, 0.8))
    assert len(before) == 300  # a reader of the old list was not cut short under its feet
    smoother.truncate(1_000)  # beyond the end: nothing to forget
    assert len(smoother.values) == 300


def test_thin_keeps_the_last_point_and_reads_a_list_as_an_array():
    values = np.random.default_rng(2).random(5_000)
    steps, kept = thin(values, 1_000)
    assert len(steps) == 1_000 and steps[0] == 1 and steps[-1] == 5_000
    assert np.array_equal(kept, values[steps - 1])
    list_steps, list_kept = thin(values.tolist(), 1_000)
    assert np.array_equal(list_steps, steps) and np.array_equal(list_kept, kept)
    short_steps, short_kept = thin([0.5, 0.25], 1_000)
    assert short_steps.tolist() == [1, 2] and short_kept.tolist() == [0.5, 0.25]
