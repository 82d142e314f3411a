"""Each preset does on the embedded sample what the Train page says it will."""

from __future__ import annotations

import math

from mnist_core.config import TrainConfig
from mnist_core.health import HealthMonitor
from mnist_core.presets import PRESET_KNOBS, PRESETS, matching
from mnist_core.train import train
from mnist_core.visual import needs_log_scale

BY_NAME = {p.name: p for p in PRESETS}


def run(name: str, sample, callbacks=()):
    return train(BY_NAME[name].config(), sample, callbacks).history


def test_every_preset_is_a_valid_config_whose_knobs_the_page_offers():
    for preset in PRESETS:
        config = preset.config()
        assert set(preset.knobs) <= set(PRESET_KNOBS)
        assert config.lr in TrainConfig.knob("lr").offer and config.batch_size in TrainConfig.knob("batch_size").offer
        assert matching(preset.values()) is preset
    assert matching({**PRESETS[0].values(), "lr": 0.01}) is None  # moved a knob: no longer the preset
    assert matching({**PRESETS[0].values(), "momentum": 0.5}) is PRESETS[0]  # Descent has no momentum


def test_the_tutorial_and_fast_and_good_learn(sample):
    tutorial, fast = run("The tutorial's settings", sample), run("Fast and good", sample)
    assert tutorial.status == fast.status == "finished"
    assert tutorial.epochs[-1].test_acc >= 0.85
    assert fast.epochs[-1].test_acc >= 0.9 and fast.epochs[-1].test_acc > tutorial.epochs[-1].test_acc
    assert len(fast.epochs) < len(tutorial.epochs)


def test_watch_it_diverge_spikes_then_collapses(sample):
    h = run("Watch it diverge", sample)
    assert h.status == "collapsed"
    assert max(h.batch_losses) > 1_000 and needs_log_scale(h.batch_losses)  # the chart's auto axis turns to log
    assert abs(h.batch_losses[-1] - math.log(10)) < 0.2


def test_dead_relus_die_without_a_spike(sample):
    stats = []
    h = run("Dead ReLUs", sample, [HealthMonitor(every=10, on_stats=stats.append)])
    assert h.status == "collapsed"
    assert not needs_log_scale(h.batch_losses) and max(h.batch_losses) < 5
    tail = h.batch_losses[len(h.batch_losses) // 2 :]
    assert all(abs(v - math.log(10)) < 0.1 for v in tail)
    dead = [layer.dead_share for layer in stats[-1].layers.values() if layer.dead_share is not None]
    assert dead and max(dead) == 1.0  # the health tab shows a layer wholly dead
