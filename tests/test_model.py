"""The tutorial's network: parameter count, layer table, initialisation, probabilities."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mnist_core.model import (
    LAYER_KINDS,
    TutorialCNN,
    build_model,
    count_parameters,
    first_prediction,
    layer_kind,
    layer_table,
)


def test_parameter_count_matches_tutorial():
    assert count_parameters(TutorialCNN()) == 15_594


def test_layer_table_matches_tutorial():
    rows = layer_table(batch=3)
    assert len(rows) == 8
    assert [r.params for r in rows] == [208, 1_168, 4_640, 9_248, 0, 0, 330, 0]
    assert sum(r.macs for r in rows) == 206_560
    assert [r.shape_nchw for r in rows[:4]] == [(3, 8, 14, 14), (3, 16, 7, 7), (3, 32, 4, 4), (3, 32, 2, 2)]
    assert rows[0].shape_whcn == (14, 14, 8, 3)
    assert rows[5].shape_nchw == (3, 32) and rows[5].shape_whcn == (32, 3)
    assert [r.spatial for r in rows[:4]] == ["28x28 => 14x14", "14x14 => 7x7", "7x7 => 4x4", "4x4 => 2x2"]
    assert rows[0].flux == "Conv((5,5), 1=>8, pad=2, stride=2, relu)"
    assert rows[4].flux == "GlobalMeanPool()" and rows[7].flux == "softmax"
    assert rows[6].pytorch == "nn.Linear(32, 10)"
    assert rows[0].pytorch == "Conv2d(1, 8, kernel_size=5, stride=2, padding=2) + ReLU"
    assert [r.pytorch for r in rows[4:6]] == ["x.mean(dim=(2, 3), keepdim=True)", "nn.Flatten()"]
    assert rows[7].pytorch == "torch.softmax(x, dim=1)"


def test_one_table_entry_per_layer_kind():
    kinds = {type(layer) for layer in TutorialCNN(dropout=0.5).layers}
    assert kinds == set(LAYER_KINDS)  # every kind any network can hold is named once, and nothing else
    with pytest.raises(TypeError, match="Identity"):  # a new kind of layer must be added, not shown as a blank
        layer_kind(nn.Identity())


def test_the_tutorial_network_is_unchanged_and_other_shapes_are_knobs():
    """The default config builds the tutorial's Chain weight for weight (same names, same seeded values)."""
    from mnist_core.config import TrainConfig

    default = build_model("flux", seed=3, **TrainConfig().network())
    plain = build_model("flux", seed=3)
    assert list(default.state_dict()) == [f"layers.{i}.{p}" for i in range(4) for p in ("conv.weight", "conv.bias")] + [
        "layers.6.weight",
        "layers.6.bias",
    ]
    assert all(torch.equal(a, b) for a, b in zip(default.state_dict().values(), plain.state_dict().values()))
    assert count_parameters(default) == 15_594
    wide = TrainConfig(channels="16,32,64,64", activation="tanh")
    assert count_parameters(build_model(**wide.network())) == 61_130  # the figure
    for bad in ("8,16,32", "8,16,32,0", "a,b,c,d", "8,16,32,999"):
        with pytest.raises(ValueError, match="conv widths"):
            TrainConfig(channels=bad).validate()
    with pytest.raises(ValueError, match="batch norm must be true or false"):
        TrainConfig(batch_norm="yes").validate()


def test_flux_init_is_glorot_uniform_with_zero_bias():
    model = build_model("flux", seed=1)
    conv = model.layers[1].conv
    fan_in, fan_out = 8 * 9, 16 * 9
    limit = math.sqrt(6 / (fan_in + fan_out))
    assert conv.weight.abs().max() <= limit
    assert conv.weight.abs().max() > 0.9 * limit  # uniform over the whole range
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in (model.layers[0].conv, model.layers[6]))
    assert float(build_model("pytorch", seed=1).layers[6].bias.detach().abs().sum()) > 0


def test_seeded_models_are_equal_and_leave_global_rng_alone():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = build_model(seed=5), build_model(seed=5)
    assert torch.equal(torch.rand(1), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_outputs_are_probabilities():
    model = build_model(seed=0)
    x = torch.rand(5, 1, 28, 28)
    probs = model(x)
    assert probs.shape == (5, 10)
    assert torch.allclose(probs.sum(1), torch.ones(5), atol=1e-6)
    assert torch.allclose(probs, torch.softmax(model.logits(x), 1))


def test_feature_maps_and_filters():
    model = build_model(seed=0)
    maps = model.feature_maps(torch.rand(2, 1, 28, 28))
    assert [tuple(m.shape) for m in maps] == [(2, 8, 14, 14), (2, 16, 7, 7), (2, 32, 4, 4), (2, 32, 2, 2)]
    assert all(float(m.detach().min()) >= 0 for m in maps)  # after ReLU
    assert model.first_filters().shape == (8, 5, 5)


def test_first_prediction_is_a_class():
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    model = build_model(seed=0)
    guess, probs = first_prediction(model, images)
    expected = model(images[:1, None].float() / 255)[0].detach()  # by hand: add the channel, scale to [0, 1]
    assert torch.allclose(probs, expected, atol=1e-6)
    assert guess == int(expected.argmax())
