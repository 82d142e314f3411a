"""Saving and reloading runs, and damaged run folders."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import torch
from safetensors.torch import save_file

from mnist_core.config import TrainConfig
from mnist_core.outcomes import ENDINGS, OUTCOMES, judge_ending, near_chance, outcome, top_answer_share
from mnist_core.report import build_report, predict
from mnist_core.run_archive import export_run, export_runs, import_run
from mnist_core.run_schema import RunError
from mnist_core.runs import delete_run, differing_labels, finish_run, list_runs, load_run, runs_table, save_run
from mnist_core.train import Callback, train


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
    assert [s for s, _ in run.history.full_losses] == [s for s, _ in trainer.history.full_losses]
    assert [v for _, v in run.history.full_losses] == pytest.approx([v for _, v in trainer.history.full_losses])
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
    state = {k: v.contiguous() for k, v in load_run(folder).model.state_dict().items()}
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


# ----------------------------------------------------------------------------- table, archives, delete


def test_runs_table_and_differing_labels(saved, blobs, tmp_path):
    trainer, _, folder = saved
    other = train(TrainConfig(epochs=1, batch_size=64, lr=0.05, optimiser="Momentum"), blobs)
    save_run(other, root=tmp_path)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "run.json").write_text("{")
    table = runs_table(tmp_path)
    assert len(table) == 3
    row = table[table["run"] == folder.name].iloc[0]
    assert (row["optimiser"], row["lr"], row["epochs"], row["status"]) == ("Descent", 0.1, 2, "finished")
    assert row["images/s"] > 0 and 0 <= row["test accuracy"] <= 1
    assert table[table["run"] == "broken"].iloc[0]["status"] == "damaged"
    assert list(table.columns[:4]) == ["name", "status", "test accuracy", "data set"]  # what a learner compares first
    assert row["data set"] == "MNIST"  # the run's saved title: the sample would say "MNIST sample (5,000 digits)"
    labels = differing_labels([trainer.config, other.config])
    assert labels == [
        "lr=0.1, epochs=2, optimiser=Descent, record_every=2",
        "lr=0.05, epochs=1, optimiser=Momentum, record_every=0",
    ]


def test_archive_round_trip(saved, tmp_path):
    trainer, _, folder = saved
    data = export_run(folder)
    other_root = tmp_path / "elsewhere"
    added = import_run(data, root=other_root)
    assert added.name.startswith(folder.name + "-i")  # a new id: an import never takes a run's place
    run = load_run(added)
    for name, tensor in trainer.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], tensor.cpu())
    again = import_run(data, root=other_root)  # the same archive twice: a second folder, nothing overwritten
    assert again != added and len(list_runs(other_root)) == 2


def test_several_runs_download_as_one_zip_of_archives(saved, blobs, tmp_path):
    _, _, folder = saved
    other = save_run(train(TrainConfig(epochs=1, batch_size=64, seed=1), blobs), root=tmp_path)
    with zipfile.ZipFile(io.BytesIO(export_runs([folder, other]))) as bundle:
        assert sorted(bundle.namelist()) == sorted([f"{folder.name}.zip", f"{other.name}.zip"])
        archives = [bundle.read(name) for name in bundle.namelist()]
    target = tmp_path / "elsewhere"
    added = [import_run(data, root=target) for data in archives]  # each one adds back as it is
    assert sorted(p.name.rsplit("-i", 1)[0] for p in added) == sorted([folder.name, other.name])


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _archive_files(folder) -> dict[str, bytes]:
    return {f"run/{p.name}": p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize(
    "tamper, words",
    [
        (lambda f: {"x.txt": b"hello"}, "unexpected file"),
        (lambda f: {**f, "run/../../evil.py": b"import os"}, "unexpected file"),
        (lambda f: {k: v for k, v in f.items() if not k.endswith("weights.safetensors")}, "lacks weights"),
        (lambda f: {**f, "run/weights.safetensors": b"\x00" * 100}, "not a valid safetensors"),
        (lambda f: {**f, "run/weights.safetensors": _pickled_weights()}, "not a valid safetensors"),
        (lambda f: {**f, "run/run.json": b"{]"}, "run.json"),
        (lambda f: {**f, "run/weights.safetensors": b"\x00" * 2_000_000}, "more than"),
    ],
)
def test_bad_archives_change_nothing(saved, tmp_path, tamper, words):
    _, _, folder = saved
    root = tmp_path / "target"
    root.mkdir()
    with pytest.raises(RunError, match=words):
        import_run(_zip(tamper(_archive_files(folder))), root=root)
    assert list(root.iterdir()) == []


def _pickled_weights() -> bytes:
    buffer = io.BytesIO()
    torch.save({"layers.0.conv.weight": torch.zeros(8, 1, 5, 5)}, buffer)  # a pickle, never loaded
    return buffer.getvalue()


def test_not_a_zip(tmp_path):
    with pytest.raises(RunError, match="not a zip"):
        import_run(b"PK not really", root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_delete_run(saved, tmp_path):
    _, _, folder = saved
    with pytest.raises(RunError, match="not a run folder"):
        delete_run(tmp_path.parent, None, root=tmp_path)
    delete_run(folder, None, root=tmp_path)  # the command line may delete any run
    assert list_runs(tmp_path) == []


@pytest.mark.parametrize(
    "tamper, words",
    [
        (lambda meta, report: ({**meta, "config": [1, 2]}, report), "config is damaged"),
        (lambda meta, report: (meta, {**report, "test_acc": "high"}), "report.json"),
        (lambda meta, report: (meta, {**report, "confusion": [[1, 2], [3, 4]]}), "report.json"),
        (
            lambda meta, report: (
                meta,
                {**report, "mistakes": [{"index": 10**9, "true": 1, "predicted": 2, "probability": 0.9}]},
            ),
            "outside the test set",
        ),
    ],
)
def test_archives_with_bad_contents_are_refused(saved, tmp_path, tamper, words):
    _, _, folder = saved
    files = _archive_files(folder)
    meta, report = tamper(json.loads(files["run/run.json"]), json.loads(files["run/report.json"]))
    files["run/run.json"], files["run/report.json"] = json.dumps(meta).encode(), json.dumps(report).encode()
    root = tmp_path / "target"
    root.mkdir()
    with pytest.raises(RunError, match=words):
        import_run(_zip(files), root=root)
    assert list(root.iterdir()) == []


def test_full_losses_without_columns_is_damage(saved):
    _, _, folder = saved
    (folder / "full_losses.csv").write_text("a,b\n1,2\n")
    with pytest.raises(RunError, match="full_losses.csv: the columns must be step,loss"):
        load_run(folder)


def test_finish_run_reports_a_save_failure(blobs, tmp_path):
    trainer = train(TrainConfig(epochs=1, batch_size=64), blobs)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the runs folder should be")
    folder, report, message = finish_run(trainer, blobs, root=blocker)
    assert folder is None and report is not None
    assert "could not be saved" in message


def test_a_failed_save_leaves_nothing_half_written(blobs, tmp_path, monkeypatch):
    import mnist_core.runs as runs_module

    trainer = train(TrainConfig(epochs=1, batch_size=64), blobs)
    first = save_run(trainer, root=tmp_path, run_id="r", status="interrupted", message="a checkpoint")

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs_module, "save_file", disk_full)
    with pytest.raises(OSError, match="No space"):
        save_run(trainer, root=tmp_path, run_id="r")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]  # no r.partial
    assert load_run(first).meta["status"] == "interrupted"  # the checkpoint before it is intact
    monkeypatch.undo()
    assert load_run(save_run(trainer, root=tmp_path, run_id="r")).meta["status"] == "finished"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


# ----------------------------------------------------------------------------- outcomes


def test_a_collapsed_run_is_judged_and_saved_as_collapsed(blobs, tmp_path):
    """ADAM at lr 1 kills every ReLU: it finishes at chance with one answer for every image."""
    trainer = train(TrainConfig(epochs=3, batch_size=32, optimiser="ADAM", lr=1.0), blobs)
    h = trainer.history
    assert h.status == "collapsed", h.message
    assert near_chance(h.epochs[-1].test_acc, 10) and "chance level" in h.message and "10x lower" in h.message
    folder, report, _ = finish_run(trainer, blobs, root=tmp_path)
    assert report is not None  # its weights are finite: it has a report, which shows the one answer
    assert report.confusion.sum(0).max() == report.confusion.sum()  # every test image in one predicted column
    run = load_run(folder)
    assert run.meta.status == "collapsed" and run.report.test_acc == pytest.approx(h.epochs[-1].test_acc)
    assert runs_table(tmp_path).iloc[0]["status"] == "collapsed"


def test_a_healthy_run_stays_finished(blobs):
    h = train(TrainConfig(epochs=3, batch_size=32, optimiser="ADAM", lr=0.01), blobs).history
    assert h.status == "finished" and h.epochs[-1].test_acc > 0.5 and "chance" not in h.message


def test_judge_ending():
    assert judge_ending("finished", 0.10, 1.0, 10) == "collapsed"
    assert judge_ending("finished", 0.1135, 1.0, 10) == "collapsed"  # MNIST's 1s: the best a single answer scores
    assert judge_ending("finished", 0.10, 0.6, 10) == "finished"  # near chance but still answering: barely trained
    assert judge_ending("finished", 0.40, 1.0, 10) == "finished"  # one answer, but a 40% class: not chance
    assert judge_ending("stopped", 0.10, 1.0, 10) == "stopped"  # only a finished run is judged
    assert judge_ending("finished", None, 1.0, 10) == "finished"
    assert top_answer_share(torch.tensor([3, 3, 3, 1])) == 0.75 and top_answer_share(torch.tensor([])) == 0.0


def test_every_ending_has_a_label_and_colour():
    assert set(OUTCOMES) == set(ENDINGS)
    assert outcome("collapsed").colour == "orange" and "chance" in outcome("collapsed").label
    assert outcome("finished").colour == "green" and outcome("diverged").colour == "red"
    assert outcome("damaged").label == "damaged"  # a word from elsewhere is shown as it is
