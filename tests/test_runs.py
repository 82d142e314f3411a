"""Saving and reloading runs, and damaged run folders."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from mnist_core.report import build_report, predict
from mnist_core.runs import RunError, list_runs, load_run, save_run
from mnist_core.train import Callback, TrainConfig, train


@pytest.fixture
def saved(blobs, tmp_path):
    trainer = train(TrainConfig(epochs=2, batch_size=64, record_every=2), blobs)
    report = build_report(trainer.model, blobs)
    return trainer, report, save_run(trainer, report, root=tmp_path)


def test_save_and_reload_rebuilds_model_exactly(saved, blobs):
    trainer, report, folder = saved
    run = load_run(folder)
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], tensor.cpu())
    # same weights; the trainer ran channels_last, so kernels (and last bits) may differ
    assert torch.allclose(predict(run.model, blobs.test_images), predict(trainer.model, blobs.test_images), atol=1e-5)
    assert run.config == trainer.config
    assert run.history.batch_losses == pytest.approx(trainer.history.batch_losses)
    assert [e.test_acc for e in run.history.epochs] == pytest.approx([e.test_acc for e in trainer.history.epochs])
    assert run.history.full_losses == pytest.approx(trainer.history.full_losses)
    assert run.report.test_acc == report.test_acc
    assert run.meta["status"] == "finished"
    assert list_runs(folder.parent) == [folder]


def test_stopped_run_is_saved_too(blobs, tmp_path):
    class StopAt(Callback):
        def on_batch_end(self, trainer, step, epoch, loss):
            if step == 2:
                trainer.stop()

    trainer = train(TrainConfig(epochs=3, batch_size=32), blobs, callbacks=[StopAt()])
    run = load_run(save_run(trainer, root=tmp_path))
    assert run.meta["status"] == "stopped" and len(run.history.batch_losses) == 2
    assert run.report is None and run.model is not None


def test_missing_folder_and_files(saved, tmp_path):
    _, _, folder = saved
    with pytest.raises(RunError, match="no such run folder"):
        load_run(tmp_path / "nope")
    (folder / "batches.csv").unlink()
    with pytest.raises(RunError, match="batches.csv: missing"):
        load_run(folder)


def test_damaged_json(saved):
    _, _, folder = saved
    (folder / "run.json").write_text("{not json")
    with pytest.raises(RunError, match="run.json"):
        load_run(folder)


def test_damaged_weights(saved):
    _, _, folder = saved
    (folder / "weights.safetensors").write_bytes(b"\x00" * 50)
    with pytest.raises(RunError, match="not a valid safetensors"):
        load_run(folder)


def test_weights_with_wrong_shape(saved):
    _, _, folder = saved
    state = {k: v.clone() for k, v in load_run(folder).model.state_dict().items()}
    state["layers.6.weight"] = torch.zeros(10, 64)
    save_file(state, str(folder / "weights.safetensors"))
    with pytest.raises(RunError, match="layers.6.weight has shape"):
        load_run(folder)


def test_weights_with_missing_tensor(saved):
    _, _, folder = saved
    state = dict(load_run(folder).model.state_dict())
    state.pop("layers.0.conv.bias")
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "weights.safetensors"))
    with pytest.raises(RunError, match="missing"):
        load_run(folder)


def test_damaged_config(saved):
    _, _, folder = saved
    meta = json.loads((folder / "run.json").read_text())
    meta["config"]["optimiser"] = "Magic"
    (folder / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match="config is damaged"):
        load_run(folder)
