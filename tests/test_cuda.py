"""The GPU's fast path: the "train!" step captured as a CUDA graph (``StepGraph``) trains as the eager loop does.

These run where CUDA is present (the device machine, ``benchmarks/bench_device.py`` runs them too); on a CPU
there is no graph to test and they are skipped, the eager loop being the one every other test checks.
"""

from __future__ import annotations

import pytest
import torch
from helpers import blobs_dataset
from test_train import SetAt

from mnist_core.config import TrainConfig
from mnist_core.health import HealthMonitor
from mnist_core.train import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run(config: TrainConfig, graph: bool, callbacks=()) -> Trainer:
    trainer = Trainer(config, blobs_dataset(n_train=1000), callbacks=list(callbacks))
    trainer.use_graph = graph
    trainer.run()
    return trainer


@pytest.fixture
def deterministic(monkeypatch):
    """cuDNN's fastest backward kernels may add in any order, and on this sharp problem a difference in the
    last bit grows to 1e-3 within ten steps. Deterministic kernels make eager and graph comparable number
    for number."""
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)


@pytest.mark.parametrize("optimiser,lr", [("Descent", 0.1), ("Momentum", 0.05), ("ADAM", 0.01)])
def test_graph_replays_train_as_the_eager_loop_does(deterministic, optimiser, lr):
    config = TrainConfig(epochs=3, batch_size=64, optimiser=optimiser, lr=lr, device="cuda", seed=2)
    eager = run(config, graph=False, callbacks=[SetAt(20, lr=lr / 2)])
    fast = run(config, graph=True, callbacks=[SetAt(20, lr=lr / 2)])
    assert fast._graph.replays > 30 and fast._graph.captures == 2  # captured, then again after the lr change
    # on a GPU losses reach callbacks in chunks, so the change lands at a chunk's end: the same in both
    assert fast.history.lr_schedule == eager.history.lr_schedule
    assert [value for _, value in eager.history.lr_schedule] == [lr, lr / 2]
    assert fast.history.batch_losses == pytest.approx(eager.history.batch_losses, rel=1e-4, abs=1e-5)
    for a, b in zip(eager.history.epochs, fast.history.epochs):
        assert b.train_loss == pytest.approx(a.train_loss, rel=1e-3) and b.test_acc == pytest.approx(
            a.test_acc, abs=0.02
        )
    for a, b in zip(eager.model.parameters(), fast.model.parameters()):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_measured_steps_run_eager_between_replays():
    stats = []
    config = TrainConfig(epochs=2, batch_size=64, device="cuda")
    trainer = run(config, graph=True, callbacks=[HealthMonitor(every=5, on_stats=stats.append)])
    assert trainer._graph.replays > 0
    assert [s.step for s in stats][:4] == [1, 5, 10, 15]
    for s in stats:  # the hooks fired: real gradient norms and dead-channel shares, not NaN
        assert all(layer.grad_norm > 0 for layer in s.layers.values())
