"""Attributions (mnist_core.explain): sanity checks that an explanation depends on the model and on the ink."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import trained_run
from PIL import Image

from mnist_core.explain import METHODS, explain, top_two
from mnist_core.runs import load_run


@pytest.fixture(scope="module")
def run(sample, tmp_path_factory):
    return load_run(trained_run(tmp_path_factory.mktemp("runs"), sample, epochs=3))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("method", list(METHODS))
def test_randomised_weights_change_the_heat_map(run, sample, method):
    """Adebayo et al.'s model-randomisation check: a map that survives random weights explains nothing."""
    image = sample.test_images[0].numpy()
    target = top_two(run.model, image)[0]
    trained = explain(run.model, image, target, method).heat
    again = explain(run.model, image, target, method).heat
    assert np.allclose(trained, again, atol=1e-6)  # deterministic, so the comparison below means something
    torch.manual_seed(1)
    random = type(run.model)()
    shuffled = explain(random, image, target, method).heat
    ink = image > 0  # every method is near zero off the ink, for any weights: compare where it can differ
    assert correlation(trained[ink], shuffled[ink]) < 0.5


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion"])
def test_a_digit_with_its_ink_removed_loses_its_attribution(run, sample, method):
    image = sample.test_images[0].numpy()
    target = top_two(run.model, image)[0]
    heat = explain(run.model, image, target, method).heat
    assert np.abs(heat).sum() > 0
    if method == "integrated_gradients":  # occlusion's patches spill 2 px past the ink
        assert np.abs(heat[image > 0]).sum() == pytest.approx(np.abs(heat).sum())
    blank = explain(run.model, np.zeros_like(image), target, method).heat
    assert np.abs(blank).max() == 0


def test_integrated_gradients_add_up_to_the_change_of_the_score(run, sample):
    """Completeness: the pixels' shares sum to the score's change from the blank image."""
    image = sample.test_images[3].numpy()
    target = top_two(run.model, image)[0]
    heat = explain(run.model, image, target, "integrated_gradients").heat
    with torch.no_grad():
        x = torch.from_numpy(image).reshape(1, 1, 28, 28).float() / 255
        change = float(run.model.logits(x)[0, target] - run.model.logits(torch.zeros_like(x))[0, target])
    assert heat.sum() == pytest.approx(change, rel=0.02, abs=0.02)


def test_the_explain_command_writes_the_heat_maps_and_says_what_it_predicted(run, tmp_path):
    out = tmp_path / "why.png"
    done = subprocess.run(
        [sys.executable, "-m", "mnist_core", "explain", str(run.path), "--index", "5", "--out", str(out), "--offline"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("predicted ") and "runner-up" in last
    assert Image.open(out).size == (2 * 28 * 8 + 8, 28 * 8)
    bad = subprocess.run(
        [sys.executable, "-m", "mnist_core", "explain", str(run.path), "--index", "99999", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "--index must be between 0 and" in bad.stderr


@pytest.mark.parametrize("network", [{}, {"channels": (16, 32, 64, 64), "activation": "tanh", "batch_norm": True}])
def test_an_output_pixel_worked_out_by_hand_is_the_feature_maps_value(sample, network):
    """The Model page's arithmetic of one output pixel agrees with the network's own forward pass, at the
    corners (where the filter hangs over the padding) and inside, in every conv layer."""
    from mnist_core.explain import pixel_sum
    from mnist_core.model import as_input, build_model, evaluating

    model = build_model(seed=1, **network)
    with torch.no_grad():  # batch norm: running statistics of real digits, not the initial 0 and 1
        model(as_input(sample.train_images[:256]))
    image = sample.test_images[3]
    with torch.inference_mode(), evaluating(model):
        maps = [m[0] for m in model.feature_maps(as_input(image[None]))]
    for layer, fmap in enumerate(maps, start=1):
        c, h, w = fmap.shape
        for channel, row, col in ((0, 0, 0), (c - 1, h - 1, w - 1), (c // 2, h // 2, w // 3)):
            found = pixel_sum(model, image, layer, channel, row, col)
            assert found.value == pytest.approx(float(fmap[channel, row, col]), abs=1e-5)
            assert found.conv == pytest.approx(found.partial.sum() + found.bias)
            assert (found.normed is not None) == bool(network)
    corner = pixel_sum(model, image, 1, 0, 0, 0)
    assert (corner.top, corner.left) == (-2, -2) and not corner.patch[0, :2].any()  # two rows of padding
