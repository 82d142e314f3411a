"""The training engine: batches, loop styles agree, stop, NaN guard, callbacks, pause from a thread, a real run."""

from __future__ import annotations

import json
import math
import threading

import pytest
import torch
from helpers import blobs_dataset, wait_for

from mnist_core.config import TrainConfig, batch_bounds, batches_per_epoch
from mnist_core.devices import resolve_device
from mnist_core.history import plateau_warning
from mnist_core.train import STEP_LOG_ENV, Callback, RunControl, StepClock, Trainer, train


class Recorder(Callback):
    def __init__(self):
        self.batches, self.epochs, self.events = [], [], []

    def on_train_start(self, trainer):
        self.events.append("start")

    def on_batch_end(self, trainer, step, epoch, loss):
        self.batches.append((step, epoch, loss))

    def on_epoch_end(self, trainer, metrics):
        self.epochs.append(metrics)

    def on_train_end(self, trainer):
        self.events.append("end")


def _weights(trainer):
    return [p.detach().clone() for p in trainer.model.parameters()]


def _in_thread(trainer):
    """Run ``trainer`` in a thread, as the trainer process does while its reader thread steers the control."""
    thread = threading.Thread(target=trainer.run, daemon=True)
    thread.start()
    return thread


def _batch_sizes(trainer):
    """Train ``trainer`` and return the number of images of every batch its loop fed the model."""
    sizes, logits = [], trainer.model.logits
    trainer.use_graph = False  # a replayed CUDA graph runs no Python to count with (test_cuda checks it trains alike)

    def counting(x):
        if torch.is_grad_enabled():  # a training batch, not the evaluation after an epoch
            sizes.append(len(x))
        return logits(x)

    trainer.model.logits = counting
    trainer.run()
    return sizes


@pytest.mark.parametrize("n, bs", [(256, 50), (256, 32), (5000, 128), (4000, 128), (100, 128), (128, 128), (1, 1)])
def test_batches_cover_the_epoch_and_the_remainder_joins_the_last(n, bs):
    bounds = batch_bounds(n, bs)
    assert len(bounds) == batches_per_epoch(n, bs) == max(1, n // bs)
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))  # contiguous: every image once
    sizes = [stop - start for start, stop in bounds]
    assert min(sizes) >= min(bs, n) and max(sizes) < 2 * bs
    assert sizes[:-1] == [bs] * (len(sizes) - 1)


@pytest.mark.parametrize("loop", ["train!", "gradient", "manual"])
def test_every_batch_trained_has_at_least_batch_size_images(blobs, loop):
    """256 images in batches of 50: five steps per epoch, the last of 56 images, never one of 6."""
    trainer = Trainer(TrainConfig(epochs=2, batch_size=50, loop=loop), blobs)
    assert _batch_sizes(trainer) == [50, 50, 50, 50, 56] * 2
    h = trainer.history
    assert h.steps_per_epoch == 5 and h.step == h.total_steps == 10 and h.images_done == 2 * 256
    assert len(h.epochs) == 2 and h.status == "finished"


def test_a_set_smaller_than_a_batch_is_one_batch(blobs):
    trainer = Trainer(TrainConfig(epochs=3, batch_size=1024), blobs)
    assert _batch_sizes(trainer) == [256] * 3
    assert trainer.history.total_steps == 3


@pytest.mark.parametrize("batch_size", [32, 50])  # 50: each epoch's last batch holds the remainder too
def test_three_loop_styles_agree_for_descent(blobs, batch_size):
    results = [
        train(TrainConfig(epochs=2, batch_size=batch_size, loop=loop, seed=3), blobs)
        for loop in ("train!", "gradient", "manual")
    ]
    ref = _weights(results[0])
    for other in results[1:]:
        for a, b in zip(ref, _weights(other)):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
        assert other.history.batch_losses == pytest.approx(results[0].history.batch_losses, rel=1e-5)
    # and training changed the weights
    fresh = Trainer(TrainConfig(seed=3), blobs)
    assert not torch.allclose(ref[0], next(fresh.model.parameters()))


def test_same_seed_same_run_different_seed_different(blobs):
    a = train(TrainConfig(epochs=1, batch_size=64, seed=1), blobs).history.batch_losses
    b = train(TrainConfig(epochs=1, batch_size=64, seed=1), blobs).history.batch_losses
    c = train(TrainConfig(epochs=1, batch_size=64, seed=2), blobs).history.batch_losses
    assert a == b and a != c


def test_callbacks_get_every_batch_in_order_and_epochs(blobs):
    rec = Recorder()
    trainer = train(TrainConfig(epochs=3, batch_size=50), blobs, callbacks=[rec])
    steps_per_epoch = 5  # 256 // 50: the remainder of 6 joins the fifth batch
    assert [s for s, _, _ in rec.batches] == list(range(1, 3 * steps_per_epoch + 1))
    assert [e for _, e, _ in rec.batches] == [1] * 5 + [2] * 5 + [3] * 5
    assert [m.epoch for m in rec.epochs] == [1, 2, 3]
    assert rec.events == ["start", "end"]
    h = trainer.history
    assert h.status == "finished" and h.step == h.total_steps == 15
    assert [loss for _, _, loss in rec.batches] == h.batch_losses
    assert h.images_done == 3 * 256 and h.images_per_sec > 0
    assert 0 <= h.epochs[-1].test_acc <= 1


def test_chunked_delivery_keeps_order(blobs):
    """On a GPU losses are delivered every few dozen steps; the result must be the same."""
    base = train(TrainConfig(epochs=2, batch_size=32), blobs).history.batch_losses
    trainer = Trainer(TrainConfig(epochs=2, batch_size=32), blobs, callbacks=[rec := Recorder()])
    trainer.flush_every = 5
    trainer.run()
    assert trainer.history.batch_losses == base
    assert [s for s, _, _ in rec.batches] == list(range(1, 17))


def test_stop_within_one_batch_keeps_partial_run(blobs):
    class StopAt(Callback):
        def on_batch_end(self, trainer, step, epoch, loss):
            if step == 3:
                trainer.stop()

    trainer = train(TrainConfig(epochs=5, batch_size=16), blobs, callbacks=[StopAt()])
    h = trainer.history
    assert h.status == "stopped"
    assert h.step == 3 and len(h.batch_losses) == 3
    assert "step 3" in h.message
    assert h.epochs == []  # a partial epoch is not reported as an epoch
    assert not torch.allclose(_weights(trainer)[0], _weights(Trainer(TrainConfig(), blobs))[0])


def test_nan_loss_stops_with_message(blobs):
    trainer = train(TrainConfig(epochs=3, batch_size=16, lr=1e9), blobs)
    h = trainer.history
    assert h.status == "diverged"
    assert "lower" in h.message and f"step {h.step + 1}" in h.message
    assert all(torch.isfinite(torch.tensor(h.batch_losses)))
    assert h.step < h.total_steps


def test_loss_recorder_every_n_batches(blobs):
    trainer = train(TrainConfig(epochs=2, batch_size=32, record_every=4), blobs)
    steps = [s for s, _ in trainer.history.full_losses]
    assert steps == [4, 8, 12, 16]
    assert all(loss > 0 for _, loss in trainer.history.full_losses)


def test_tutorial_defaults_beat_chance_on_sample(sample):
    """Momentum at the tutorial's lr learns the real digits quickly; chance is 10%."""
    trainer = train(TrainConfig(epochs=3, optimiser="Momentum", lr=0.05), sample)
    assert trainer.history.status == "finished"
    assert trainer.history.epochs[-1].test_acc > 0.7


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"lr": 0}, "learning rate"),
        ({"lr": float("nan")}, "learning rate"),
        ({"optimiser": "SGD"}, "optimiser"),
        ({"loop": "manual", "optimiser": "ADAM"}, "Descent"),
        ({"epochs": 0}, "epochs"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_config_validation(kwargs, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**kwargs).validate()


def test_resolve_device():
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_config_round_trip():
    config = TrainConfig(lr=0.01, optimiser="ADAM", epochs=4)
    assert TrainConfig.from_dict({**config.to_dict(), "unknown": 1}) == config


def test_dead_network_is_explained(sample):
    """ADAM at lr 1.0 does not give NaN with this model: every ReLU dies and the loss sticks at ln(10)."""
    trainer = train(TrainConfig(epochs=2, optimiser="ADAM", lr=1.0), sample)
    h = trainer.history
    assert h.status == "collapsed"  # finished, but one answer for every image: mnist_core.outcomes
    assert h.epochs[-1].train_loss > math.log(10) - 0.05 and h.epochs[-1].test_acc < 0.15
    warning = plateau_warning(h.epochs)
    assert warning is not None and "lower learning rate" in warning
    healthy = train(TrainConfig(epochs=1, optimiser="ADAM", lr=0.01), sample)
    assert plateau_warning(healthy.history.epochs) is None


# --------------------------------------------------------------------------- pause, step, live knobs


class SetAt(Callback):
    """Changes the knobs through the run's control after batch ``step``, as the queue does from another thread."""

    def __init__(self, step, **knobs):
        self.step, self.knobs = step, knobs

    def on_batch_end(self, trainer, step, epoch, loss):
        if step == self.step:
            trainer.control.set_knobs(**self.knobs)


def test_three_loop_styles_agree_with_an_lr_change_mid_run(blobs):
    runs = [
        train(TrainConfig(epochs=2, batch_size=32, loop=loop, seed=3), blobs, callbacks=[SetAt(5, lr=0.02)])
        for loop in ("train!", "gradient", "manual")
    ]
    for run in runs:
        assert run.history.lr_schedule == [(0, 0.1), (5, 0.02)] and run.lr == 0.02
    for other in runs[1:]:
        for a, b in zip(_weights(runs[0]), _weights(other)):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-5)
    # and the change mattered: the same run without it ends elsewhere
    plain = train(TrainConfig(epochs=2, batch_size=32, seed=3), blobs)
    assert plain.history.batch_losses[:6] == runs[0].history.batch_losses[:6]
    assert plain.history.batch_losses[6:] != pytest.approx(runs[0].history.batch_losses[6:], rel=1e-4)


def test_an_lr_change_takes_effect_at_the_next_batch(blobs):
    seen = []

    class Rate(Callback):
        def on_batch_end(self, trainer, step, epoch, loss):
            seen.append(trainer.lr)

    train(TrainConfig(epochs=1, batch_size=32, seed=1), blobs, callbacks=[SetAt(3, lr=0.5), Rate()])
    assert seen[:3] == [0.1, 0.1, 0.1] and set(seen[3:]) == {0.5}


def test_momentum_change_is_recorded_and_used(blobs):
    trainer = Trainer(
        TrainConfig(epochs=1, batch_size=32, optimiser="Momentum"), blobs, callbacks=[SetAt(2, momentum=0.5)]
    )
    trainer.run()
    assert trainer.history.momentum_schedule == [(0, 0.9), (2, 0.5)]
    assert trainer.history.lr_schedule == [(0, 0.1)]
    adam = train(
        TrainConfig(epochs=1, batch_size=32, optimiser="ADAM", lr=0.01), blobs, callbacks=[SetAt(1, momentum=0.8)]
    )
    assert adam.history.momentum_schedule == [(0, 0.9), (1, 0.8)]
    assert train(TrainConfig(epochs=1, batch_size=64), blobs).history.momentum_schedule == []  # Descent has none


def test_bad_live_knobs_are_refused(blobs):
    trainer = Trainer(TrainConfig(epochs=1), blobs)
    with pytest.raises(ValueError, match="learning rate"):
        trainer.control.set_knobs(lr=-1)
    with pytest.raises(ValueError, match="momentum"):
        trainer.control.set_knobs(momentum=1.5)


def test_pause_step_epoch_resume(blobs):
    events = []

    class Watch(Callback):
        def on_pause(self, trainer, paused):
            events.append((paused, trainer.history.step))

    trainer = Trainer(TrainConfig(epochs=4, batch_size=16), blobs, callbacks=[Watch()])  # 16 steps per epoch
    control = trainer.control
    control.pause()  # paused before the first batch
    thread = _in_thread(trainer)
    h = trainer.history
    wait_for(lambda: h.paused)
    assert h.step == 0 and events == [(True, 0)]
    control.step()
    wait_for(lambda: h.step == 1 and h.paused)
    assert events == [(True, 0), (False, 0), (True, 1)]  # the page sees it run, then pause again
    control.step(3)
    wait_for(lambda: h.step == 4 and h.paused)
    assert len(h.batch_losses) == 4
    control.step_epoch()  # to the end of epoch 1
    wait_for(lambda: h.step == 16 and h.paused)
    assert len(h.epochs) == 1
    control.step_epoch()  # at an epoch boundary: one whole epoch
    wait_for(lambda: h.step == 32 and h.paused)
    train_seconds = h.train_seconds
    control.resume()
    thread.join(60)
    assert h.status == "finished" and h.step == 64 and not h.paused
    assert events[-1] == (False, 32)
    assert h.train_seconds >= train_seconds
    assert sum(e.seconds for e in h.epochs) == pytest.approx(h.train_seconds, rel=0.05)


def test_stop_while_paused_and_interrupted_status(blobs):
    trainer = Trainer(TrainConfig(epochs=4, batch_size=16), blobs)
    trainer.control.pause()
    thread = _in_thread(trainer)
    wait_for(lambda: trainer.history.paused)
    trainer.control.stop("interrupted", "The web server went away; training ended")
    thread.join(60)
    assert trainer.history.status == "interrupted"
    assert trainer.history.message.startswith("The web server went away; training ended at step 0")


def test_a_pause_that_races_the_loop_is_still_reported(blobs):
    """Pause pressed at any moment: the loop either trains the batch or reports the pause, never waits silently."""
    for _ in range(5):
        trainer = Trainer(TrainConfig(epochs=50, batch_size=16), blobs)
        thread = _in_thread(trainer)
        h = trainer.history
        wait_for(lambda h=h: h.step > 0)
        trainer.control.pause()
        wait_for(lambda h=h: h.paused)  # would time out if the pause slipped between two checks
        trainer.control.stop()
        thread.join(60)


def test_a_pause_longer_than_the_limit_stops_and_frees_the_trainer(blobs):
    trainer = Trainer(TrainConfig(epochs=4, batch_size=16), blobs, control=RunControl(max_pause_s=0.2))
    trainer.control.pause()
    trainer.run()  # returns by itself: the pause ran out
    assert trainer.history.status == "stopped" and "Paused for over" in trainer.history.message


def test_a_knob_moved_before_any_batch_replaces_the_starting_value(blobs):
    trainer = Trainer(TrainConfig(epochs=1, batch_size=64), blobs)
    trainer.control.set_knobs(lr=0.05)
    trainer.control.set_knobs(lr=0.03)
    trainer.run()
    assert trainer.history.lr_schedule == [(0, 0.03)]


def test_a_step_clock_logs_when_each_step_ended_where_the_env_says(tmp_path, monkeypatch):
    monkeypatch.delenv(STEP_LOG_ENV, raising=False)
    assert StepClock.from_env("cli") is None  # off unless asked for
    monkeypatch.setenv(STEP_LOG_ENV, str(tmp_path / "steps"))
    clock = StepClock.from_env("cli")
    trainer = train(TrainConfig(epochs=2, batch_size=64, device="cpu"), blobs_dataset(), callbacks=[clock])
    (path,) = (tmp_path / "steps").glob("cli-*.json")
    record = json.loads(path.read_text())
    h = trainer.history
    assert record["label"] == "cli" and record["steps"] == record["total_steps"] == h.step == 8
    assert len(record["seconds"]) == 8 and record["seconds"] == sorted(record["seconds"])
    assert 0 < record["seconds"][0] <= record["seconds"][-1] <= h.train_seconds  # training time: no evaluation


def test_another_network_trains_saves_loads_and_replays(sample, tmp_path):
    """The network as knobs: wider, tanh, batch norm and dropout train, save (format 3), load and replay."""
    from mnist_core.health import HealthMonitor
    from mnist_core.report import build_report
    from mnist_core.runs import load_run, save_run
    from mnist_core.watch import DigitWatcher, SnapshotRecorder, replay

    config = TrainConfig(
        epochs=2, optimiser="ADAM", lr=0.005, batch_size=64, channels="16,32,64,64", activation="tanh",
        batch_norm=True, dropout=0.2,
    )  # fmt: skip
    snaps, stats, views = SnapshotRecorder(), [], []
    watcher = DigitWatcher(sample.test_images[0], views.append, every_s=0.0)
    trainer = train(config, sample, [snaps, HealthMonitor(every=5, on_stats=stats.append), watcher])
    assert trainer.history.status == "finished" and trainer.history.epochs[-1].test_acc > 0.8
    assert trainer.model.training  # the watched digit's views put it in eval mode only while they look
    assert stats and all(h.dead_share is None for h in stats[-1].layers.values())  # tanh: no dead ReLUs to count
    assert views and len(views[-1].maps) == 4
    folder = save_run(trainer, build_report(trainer.model, sample), root=tmp_path, snapshots=snaps.tensors())
    run = load_run(folder)
    assert run.config.network() == config.network() and run.meta.format == 3
    assert any(k.endswith("bn.running_mean") for k in run.model.state_dict())
    # the loaded model answers as the trained one did (batch norm's running statistics came along)
    assert build_report(run.model, sample).test_acc == pytest.approx(run.report.test_acc)
    views = replay(folder, sample.test_images[0])
    assert len(views) >= 2 and views[-1].step == trainer.history.step


def test_the_tutorials_default_trains_number_for_number_as_before_the_network_knobs(sample):
    """Issue 26: the network became knobs; the default must train exactly as the fixed Chain did. The figures
    were printed by the same run at 62d72aa (before the knobs), on one thread so that sums add in one order."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        trainer = train(TrainConfig(epochs=3), sample, [])
    finally:
        torch.set_num_threads(threads)
    h = trainer.history
    assert len(h.batch_losses) == 93
    before = [2.3030057, 2.3022888, 2.2997324, 2.2981918, 2.2961888, 2.2918887, 2.278244]
    assert h.batch_losses[::15] == pytest.approx(before, rel=1e-6)
    assert [e.train_loss for e in h.epochs] == pytest.approx([2.302055, 2.297876, 2.289790], rel=1e-6)
    assert [e.test_acc for e in h.epochs] == [0.133, 0.174, 0.303]
    weights = sum(float(p.detach().double().sum()) for p in trainer.model.parameters())
    assert weights == pytest.approx(19.5481394086446, rel=1e-9)


def test_an_epochs_time_is_estimated_from_a_few_real_steps():
    """The Train page's estimate: the fastest of a few real steps (the first, warm-up, left out) times the epoch's
    batches, and fewer steps once they pass the time budget. A counting clock makes the figures exact."""
    from mnist_core.train import estimate_epoch_seconds

    def clock(step_s: float, calls: list):
        return lambda: calls.append(1) or len(calls) * step_s

    calls: list = []
    assert estimate_epoch_seconds(TrainConfig(), 128 * 100, clock=clock(0.01, calls)) == pytest.approx(1.0)
    assert len(calls) == 10  # 8 steps, and the 2 of warm-up
    calls = []
    slow = estimate_epoch_seconds(TrainConfig(channels="16,32,64,64"), 64 * 50, clock=clock(0.2, calls))
    assert len(calls) == 4 and slow == pytest.approx(0.2 * 25)  # 0.6 s past the 0.5 s budget after 4 steps
    assert estimate_epoch_seconds(TrainConfig(), n_fit=0) == 0
