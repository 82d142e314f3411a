"""Training health: the numbers against values computed by hand, and each flag on a run that has its trouble."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from mnist_core.config import TrainConfig
from mnist_core.health import HealthMonitor, HealthStats, LayerHealth, health_every, health_flags, health_layers
from mnist_core.model import build_model
from mnist_core.train import train

NAMES = ["conv 1", "conv 2", "conv 3", "conv 4", "dense"]


def measured_step(optimiser: str, lr: float, kill: dict[int, int] | None = None) -> tuple:
    """One step of a fresh model on 8 random images, measured by the monitor: (stats, weights before, grads).

    ``kill`` maps a conv layer's index to how many of its first channels get a bias of -1000 (dead)."""
    model = build_model(seed=0)
    with torch.no_grad():
        for index, channels in (kill or {}).items():
            model.layers[index].conv.bias[:channels] = -1000.0
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 1, 28, 28, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    weights = [layer.conv.weight if hasattr(layer, "conv") else layer.weight for _, layer in health_layers(model)]
    before = [w.detach().clone() for w in weights]
    # the gradient and the channels that never fire, computed apart from the monitor
    with torch.no_grad():
        dead = [1 - (m.amax(dim=(0, 2, 3)) > 0).float().mean().item() for m in model.feature_maps(x)] + [None]
    grads = torch.autograd.grad(F.cross_entropy(model.logits(x), y), weights)
    opt = (torch.optim.Adam if optimiser == "ADAM" else torch.optim.SGD)(model.parameters(), lr=lr)
    got: list[HealthStats] = []
    monitor = HealthMonitor(every=1, on_stats=got.append)
    trainer = SimpleNamespace(model=model)
    monitor.on_batch_start(trainer, 1)
    opt.zero_grad()
    F.cross_entropy(model.logits(x), y).backward()
    opt.step()
    monitor.on_train_end(trainer)
    assert len(got) == 1 and got[0].step == 1 and monitor.latest is got[0]
    return got[0], before, grads, weights, dead


def test_names_are_read_off_the_model():
    assert [name for name, _ in health_layers(build_model())] == NAMES


def test_descent_numbers_match_a_hand_computation():
    stats, before, grads, weights, dead = measured_step("Descent", 0.1)
    assert list(stats.layers) == NAMES
    for name, w0, g, w, d in zip(NAMES, before, grads, weights, dead):
        layer = stats.layers[name]
        assert layer.grad_norm == pytest.approx(g.norm().item(), rel=1e-5)
        # plain Descent: the update is lr * g, so the ratio is lr * ||g|| / ||W||
        assert layer.update_ratio == pytest.approx(0.1 * g.norm().item() / w0.norm().item(), rel=1e-4)
        assert layer.weight_norm == pytest.approx(w.detach().norm().item(), rel=1e-6)
        assert layer.dead_share == d


def test_adam_update_ratio_is_measured_not_assumed():
    """ADAM's first step moves every weight with a gradient by lr (its moments cancel the gradient's size):
    ||dW|| = lr * sqrt(number of nonzero gradients), which lr * ||g|| / ||W|| would get wrong."""
    stats, before, grads, *_ = measured_step("ADAM", 0.01)
    for name, w0, g in zip(NAMES, before, grads):
        expected = 0.01 * math.sqrt((g != 0).sum().item()) / w0.norm().item()
        assert stats.layers[name].update_ratio == pytest.approx(expected, rel=1e-3)
        assert stats.layers[name].update_ratio != pytest.approx(0.01 * g.norm().item() / w0.norm().item(), rel=0.5)


def test_dead_share_counts_channels_that_never_fire():
    stats, *_, dead = measured_step("Descent", 0.1, kill={1: 4, 2: 32})  # 4 of conv 2's 16 channels, all of conv 3
    assert stats.layers["conv 1"].dead_share == dead[0] == 0.0
    assert stats.layers["conv 2"].dead_share == dead[1] == 0.25
    assert stats.layers["conv 3"].dead_share == 1.0
    assert stats.layers["conv 3"].grad_norm == 0.0  # no gradient flows into a dead layer
    assert health_flags(stats)[0].startswith("every ReLU in conv 3")  # and conv 4, which now sees only zeros


def run_flags(sample, every: int = 1, **config) -> tuple[list[HealthStats], list[list[str]]]:
    stats: list[HealthStats] = []
    train(TrainConfig(**config), sample, [HealthMonitor(every, on_stats=stats.append)])
    return stats, [health_flags(s) for s in stats]


def test_no_flag_on_the_tutorials_defaults(sample):
    stats, flags = run_flags(sample, epochs=2)  # Descent 0.1, batch 128, every step measured
    assert len(stats) == 62 and [s.step for s in stats] == list(range(1, 63))
    assert flags == [[]] * len(stats)


def test_adam_at_lr_1_kills_the_relus(sample):
    _, flags = run_flags(sample, epochs=1, optimiser="ADAM", lr=1.0)
    assert "more than their own size" in " ".join(flags[0])  # the first step moves the weights 10x their size
    assert any("every ReLU in" in f and "is dead" in f for f in flags[-1])


def test_lr_1e_5_stalls(sample):
    _, flags = run_flags(sample, every=5, epochs=1, lr=1e-5)
    assert all(any("learning is stalled" in f for f in fl) for fl in flags)
    assert "updates are 1e-07 of the weights" in flags[0][0]


def test_exploding_gradients_before_the_relus_die(sample):
    stats, flags = run_flags(sample, epochs=1, optimiser="ADAM", lr=0.1)
    assert any("gradients are exploding" in f for fl in flags for f in fl)


def test_a_blown_up_step_says_so():
    broken = LayerHealth(grad_norm=float("nan"), update_ratio=float("nan"), dead_share=0.0, weight_norm=float("inf"))
    healthy = LayerHealth(grad_norm=0.5, update_ratio=1e-3, dead_share=0.0, weight_norm=3.0)
    flags = health_flags(HealthStats(step=7, layers={"conv 1": healthy, "conv 2": broken}))
    assert len(flags) == 1 and "conv 2" in flags[0] and "no longer finite" in flags[0]


def test_stats_round_trip_through_plain_dicts():
    stats, *_ = measured_step("Descent", 0.1)
    assert HealthStats.from_dict(stats.step, stats.to_dict()) == stats


def test_small_batches_and_gpus_are_measured_less_often(blobs):
    assert health_every(128) == 20 and health_every(2048) == 20 and health_every(8) == 320
    assert health_every(128, "cuda") == 60
    stats: list[HealthStats] = []
    train(TrainConfig(epochs=3, batch_size=8, device="cpu"), blobs, [HealthMonitor(on_stats=stats.append)])
    assert [s.step for s in stats] == [1]  # 96 steps, measured every 320


def test_a_converged_run_is_not_called_stalled_and_a_healthy_one_is_told_its_own_numbers():
    from mnist_core.health import health_summary

    tiny = LayerHealth(grad_norm=1e-6, update_ratio=1e-7, dead_share=0.0, weight_norm=3.0)
    converged = HealthStats(step=900, layers={"conv 1": tiny, "conv 2": tiny})
    assert any("stalled" in f for f in health_flags(converged))  # with no loss known, small steps are a stall
    assert health_flags(converged, loss=0.0002) == []  # at a loss of 0.0002, they are the run having learnt
    assert "fits its training batches" in health_summary(converged, loss=0.0002)
    healthy = HealthStats(
        step=50,
        layers={
            "conv 1": LayerHealth(grad_norm=0.5, update_ratio=1.2e-2, dead_share=0.0, weight_norm=3.0),
            "conv 2": LayerHealth(grad_norm=0.5, update_ratio=1.5e-2, dead_share=0.0, weight_norm=3.0),
        },
    )
    assert health_flags(healthy, loss=0.6) == []
    assert "1.2e-02 to 1.5e-02" in health_summary(healthy, loss=0.6)  # the table's numbers, not a rule of thumb
