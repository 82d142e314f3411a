"""Watch one digit: small views that agree with a forward pass, and snapshots that replay what the run saw."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save as save_safetensors

from mnist_core import protocol as p
from mnist_core.config import TrainConfig
from mnist_core.model import as_input, build_model
from mnist_core.run_archive import export_run, import_run
from mnist_core.run_schema import MAX_SNAPSHOTS, RunError, snapshot_key
from mnist_core.runs import finish_run, load_run, load_snapshots
from mnist_core.train import Callback, train
from mnist_core.watch import (
    EARLY_STEPS,
    DigitWatcher,
    SnapshotRecorder,
    digit_image,
    model_at,
    quantize,
    replay,
    saved_steps,
    snapshot_epochs,
    view_digit,
)


def close_maps(a, b, rel: float = 0.0) -> None:
    """Two views' maps agree within a quantization step of each map plus ``rel`` of the layer's largest value."""
    for qa, qb in zip(a.maps, b.maps):
        step = np.maximum(qa.hi - qa.lo, qb.hi - qb.lo)[:, None, None] / 255
        scale = max(np.abs(qa.hi).max(), np.abs(qa.lo).max())
        assert np.all(np.abs(qa.values() - qb.values()) <= 1.01 * step + rel * scale + 1e-7)


def test_quantized_maps_are_small_and_close():
    maps = torch.rand(8, 14, 14, generator=torch.Generator().manual_seed(0)) * 5
    maps[3] = 2.0  # a flat map
    q = quantize(maps)
    assert q.data.dtype == np.uint8 and q.data.shape == (8, 14, 14)
    span = (maps.amax(dim=(1, 2)) - maps.amin(dim=(1, 2))).numpy()[:, None, None]
    assert np.all(np.abs(q.values() - maps.numpy()) <= span / 510 + 1e-6)
    assert np.all(q.data[3] == 0) and np.allclose(q.values()[3], 2.0)


def test_a_view_is_a_forward_pass_in_a_few_kilobytes(blobs):
    model, image = build_model(seed=3), blobs.test_images[5]
    view = view_digit(model, image, step=7)
    with torch.inference_mode():
        x = as_input(image[None])
        expected_maps, expected_probs = model.feature_maps(x), model(x)[0]
    assert view.step == 7 and view.probs.shape == (10,)
    np.testing.assert_allclose(view.probs, expected_probs.numpy(), rtol=1e-6)
    assert [m.data.shape for m in view.maps] == [(8, 14, 14), (16, 7, 7), (32, 4, 4), (32, 2, 2)]
    for q, m in zip(view.maps, expected_maps):
        span = (m[0].amax(dim=(1, 2)) - m[0].amin(dim=(1, 2))).numpy()[:, None, None]
        assert np.all(np.abs(q.values() - m[0].numpy()) <= span / 510 + 1e-6)
    assert view.nbytes < 4_000
    line = p.encode(view.to_message())
    assert len(line) < 6_000  # what travels a few times a second
    back = type(view).from_message(p.decode(line))
    assert back.step == 7 and np.array_equal(back.probs, view.probs)
    for a, b in zip(back.maps, view.maps):
        assert np.array_equal(a.data, b.data)
        np.testing.assert_allclose(a.lo, b.lo, rtol=1e-5)
        np.testing.assert_allclose(a.hi, b.hi, rtol=1e-5)


def test_a_digit_from_784_pixel_values(blobs):
    image = blobs.test_images[0]
    assert torch.equal(digit_image(image.flatten().tolist()), image)
    assert torch.equal(digit_image(image.numpy()), image)
    with pytest.raises(ValueError, match="784 pixels"):
        digit_image([0] * 100)


def test_epoch_snapshots_are_thinned_to_twenty():
    assert snapshot_epochs(10) == set(range(1, 11))
    hundred = snapshot_epochs(100)
    assert len(hundred) == 20 and 100 in hundred and 5 in hundred
    assert len(snapshot_epochs(21)) <= 21 - 10 + 1 and 21 in snapshot_epochs(21)
    assert all(len(EARLY_STEPS) + len(snapshot_epochs(e)) <= MAX_SNAPSHOTS for e in range(1, 101))


class LiveViews(Callback):
    """The digit's view from the live float32 model at every step a snapshot is taken."""

    def __init__(self, image):
        self.image, self.views = image, {}

    def on_batch_start(self, trainer, step):
        if step - 1 in EARLY_STEPS:
            self.views[step - 1] = view_digit(trainer.model, self.image, step - 1)

    def on_epoch_end(self, trainer, metrics):
        self.views[metrics.step] = view_digit(trainer.model, self.image, metrics.step)


@pytest.fixture
def watched_run(tmp_path, blobs):
    """A real run with snapshots (8 epochs of 8 steps, so step 50 is reached), and the live views it saw."""
    image = blobs.test_images[3]
    recorder, live, sent = SnapshotRecorder(), LiveViews(image), []
    trainer = train(
        TrainConfig(epochs=8, batch_size=32, optimiser="ADAM", lr=0.01),
        blobs,
        [recorder, live, DigitWatcher(image, sent.append, every_s=0.0)],
    )
    run_dir, _, message = finish_run(trainer, blobs, root=tmp_path / "runs", snapshots=recorder.tensors())
    assert run_dir is not None, message
    return run_dir, image, live.views, sent, trainer


def test_replay_gives_what_the_live_model_gave(watched_run):
    run_dir, image, live, sent, trainer = watched_run
    steps = [0, 1, 8, 10, 16, 24, 32, 40, 48, 50, 56, 64]
    assert sorted(load_snapshots(run_dir)) == steps == saved_steps(run_dir)
    views = replay(run_dir, image)
    assert [v.step for v in views] == steps
    for view in views:
        expected = live[view.step]
        np.testing.assert_allclose(view.probs, expected.probs, atol=2e-3)  # float16 weights
        close_maps(view, expected, rel=5e-3)
    # the watcher saw the start, every step and the end; its last view is the saved model's
    assert [v.step for v in sent] == list(range(0, 65))
    final = view_digit(load_run(run_dir).model, image, 64)
    np.testing.assert_allclose(sent[-1].probs, final.probs, rtol=1e-5)
    x = as_input(image[None])
    with torch.inference_mode():
        assert torch.allclose(model_at(run_dir, 64).logits(x), trainer.model.logits(x), atol=1e-2)


def test_snapshots_travel_in_archives_and_damage_is_refused(tmp_path, watched_run):
    run_dir, image, *_ = watched_run
    archive = export_run(run_dir)
    back = import_run(archive, root=tmp_path / "elsewhere")
    assert sorted(load_snapshots(back)) == sorted(load_snapshots(run_dir))

    def with_snapshots(tensors: dict) -> bytes:
        buffer = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(archive)) as src, zipfile.ZipFile(buffer, "w") as dst:
            for info in src.infolist():
                data = src.read(info)
                if info.filename.endswith("snapshots.safetensors"):
                    data = save_safetensors(tensors)
                dst.writestr(info, data)
        return buffer.getvalue()

    state = {k: v.half() for k, v in build_model().state_dict().items()}
    good = {snapshot_key(0, k): v for k, v in state.items()}
    late = {snapshot_key(65, k): v for k, v in state.items()}
    wrong = {**good, snapshot_key(0, "layers.0.conv.weight"): torch.zeros(8, 1, 3, 3, dtype=torch.float16)}
    missing = dict(list(good.items())[:-1])
    nan = {**good, snapshot_key(0, "layers.6.bias"): torch.full((10,), float("nan"), dtype=torch.float16)}
    odd = {**good, "pickle/evil": torch.zeros(1)}
    for tensors, words in [
        (late, "step 65 of a run of 64 steps"),
        (wrong, "has shape (8, 1, 3, 3)"),
        (missing, "lacks ['layers.6.bias']"),
        (nan, "NaN"),
        (odd, "unexpected tensor 'pickle/evil'"),
    ]:
        with pytest.raises(RunError, match="snapshots.safetensors") as err:
            import_run(with_snapshots(tensors), root=tmp_path / "refused")
        assert words in str(err.value)
    assert not (tmp_path / "refused").exists() or list((tmp_path / "refused").iterdir()) == []
    (run_dir / "snapshots.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(RunError, match="not a valid safetensors file"):
        load_snapshots(run_dir)


def test_a_run_without_snapshots_replays_its_last_step(tmp_path, blobs):
    trainer = train(TrainConfig(epochs=1, batch_size=64), blobs)
    run_dir, _, _ = finish_run(trainer, blobs, root=tmp_path)  # as every run saved before snapshots
    assert not (run_dir / "snapshots.safetensors").exists() and load_snapshots(run_dir) == {}
    views = replay(run_dir, blobs.test_images[0])
    assert [v.step for v in views] == [4] == saved_steps(run_dir)
    with pytest.raises(ValueError, match="kept no weights of step 2"):
        model_at(run_dir, 2)
