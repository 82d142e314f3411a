"""Runs belong to the visitor who made them, and no visitor can take the server from the others (issue 22).

Each attack case asserts the message a visitor sees and that nothing else changed.
"""

from __future__ import annotations

import io
import json
import os
import time
import warnings
import zipfile

import optuna
import pytest
import torch
from helpers import wait_for
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from mnist_core import settings, tune
from mnist_core.config import TrainConfig, over_budget, planned_images
from mnist_core.jobs import JobQueue, QueueError
from mnist_core.owners import default_run, mark_seen, owner_id
from mnist_core.report import build_report
from mnist_core.run_archive import export_run, import_run
from mnist_core.run_schema import RunError
from mnist_core.runs import (
    delete_run,
    list_run_metas,
    list_runs,
    load_run,
    name_run,
    read_meta,
    runs_table,
    save_run,
    share_run,
)
from mnist_core.train import Budget, train

ALICE, BOB = owner_id("alice's secret"), owner_id("bob's secret")


@pytest.fixture
def alice_run(blobs, tmp_path):
    trainer = train(TrainConfig(epochs=1, batch_size=64), blobs)
    return save_run(trainer, build_report(trainer.model, blobs), root=tmp_path, owner=ALICE)


def test_the_owner_id_is_a_one_way_hash_never_the_secret():
    secret = "alice's secret"
    assert ALICE != secret and secret not in ALICE and len(ALICE) == 32
    assert owner_id(secret) == ALICE and owner_id("") == ""


def test_only_the_owner_deletes_and_shares(alice_run, tmp_path):
    before = (alice_run / "run.json").read_bytes()
    for who, words in ((BOB, "belongs to another visitor"), ("", "belongs to another visitor")):
        with pytest.raises(RunError, match=words):
            delete_run(alice_run, who, root=tmp_path)
        with pytest.raises(RunError, match=words):
            share_run(alice_run, who, shared=True)
    assert (alice_run / "run.json").read_bytes() == before  # nothing changed
    share_run(alice_run, ALICE, shared=True)
    assert read_meta(alice_run).shared is True
    with pytest.raises(RunError, match="belongs to another visitor"):  # shared is read-only to others
        delete_run(alice_run, BOB, root=tmp_path)
    delete_run(alice_run, ALICE, root=tmp_path)
    assert list_runs(tmp_path) == []


def test_only_the_owner_names_a_run_and_the_name_is_one_bounded_line(alice_run):
    before = (alice_run / "run.json").read_bytes()
    with pytest.raises(RunError, match="only its owner can name it"):
        name_run(alice_run, BOB, "mine now")
    assert (alice_run / "run.json").read_bytes() == before
    name_run(alice_run, ALICE, "  ADAM,\n  high lr " + "x" * 200, note="  lr 1 killed the ReLUs  ")
    meta = load_run(alice_run, with_model=False).meta
    assert meta.name.startswith("ADAM, high lr x") and len(meta.name) == 80 and "\n" not in meta.name
    assert meta.note == "lr 1 killed the ReLUs"
    assert runs_table(alice_run.parent, ALICE).loc[0, "name"] == meta.name


def test_a_command_line_run_is_shared_and_no_visitor_deletes_it(blobs, tmp_path):
    folder = save_run(train(TrainConfig(epochs=1, batch_size=64), blobs), root=tmp_path)
    with pytest.raises(RunError, match="shared by this server"):
        delete_run(folder, ALICE, root=tmp_path)
    assert list_runs(tmp_path) == [folder]


def test_each_visitor_sees_their_own_runs_and_the_shared_ones(alice_run, blobs, tmp_path):
    shared = save_run(train(TrainConfig(epochs=1, batch_size=64, seed=1), blobs), root=tmp_path)
    assert set(runs_table(tmp_path, viewer=BOB)["run"]) == {shared.name}
    table = runs_table(tmp_path, viewer=ALICE).set_index("run")
    assert set(table.index) == {shared.name, alice_run.name}
    assert table.loc[alice_run.name, "yours"] and not table.loc[shared.name, "yours"]
    share_run(alice_run, ALICE, shared=True)
    assert set(runs_table(tmp_path, viewer=BOB)["run"]) == {shared.name, alice_run.name}


def test_a_new_visitors_default_is_the_best_finished_shared_run(blobs, tmp_path):
    def saved(seed: int, status: str, acc: float, owner: str = "") -> str:
        trainer = train(TrainConfig(epochs=1, batch_size=64, seed=seed), blobs)
        folder = save_run(trainer, root=tmp_path, owner=owner, status=status)
        meta = json.loads((folder / "run.json").read_text())
        meta["test_acc"] = acc
        (folder / "run.json").write_text(json.dumps(meta))
        return folder.name

    good = saved(0, "finished", 0.90)
    saved(1, "collapsed", 0.99)  # a collapsed run never is, whatever it claims
    saved(2, "stopped", 0.95)
    saved(3, "finished", 0.97, owner=BOB)  # Bob's own: not shared
    runs = list_run_metas(tmp_path)
    assert default_run(runs, ALICE, "mnist") == good
    assert default_run(runs, ALICE, "fashion-mnist") is None
    bobs = default_run(runs, BOB, "mnist")
    assert read_meta(tmp_path / bobs).owner == BOB  # a visitor with runs starts on their newest


def test_an_import_is_its_importers_never_takes_a_runs_place(alice_run, tmp_path):
    archive = export_run(alice_run)
    delete_run(alice_run, ALICE, root=tmp_path)  # the id is free now: an import must still not take it
    added = [import_run(archive, root=tmp_path, owner=BOB) for _ in range(50)]
    assert len({p.name for p in added}) == 50 and all(p.name != alice_run.name for p in added)
    meta = read_meta(added[0])
    assert meta.owner == BOB and meta.imported and not meta.shared


def test_an_archive_named_like_the_study_store_is_refused(alice_run, tmp_path):
    data = export_run(alice_run)
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        files = {name.split("/", 1)[1]: src.read(name) for name in src.namelist()}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(f"tune.db-journal/{name}", content)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RunError, match="like this app's study store"):
        import_run(buffer.getvalue(), root=tmp_path, owner=BOB)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_rows_ended_by_a_lone_carriage_return_count_against_the_cap(alice_run, monkeypatch):
    """pandas ends a row at a lone \\r too: counting only \\n let 2.5 M losses through a cap of 750,000."""
    monkeypatch.setattr("mnist_core.run_schema.MAX_BATCH_LOSSES", 2)
    steps = read_meta(alice_run).steps  # 4
    lines = "\r".join(f"{i},0.5" for i in range(1, steps + 1))
    (alice_run / "batches.csv").write_bytes(f"step,loss\n{lines}\n".encode())  # two \n, four rows
    with pytest.raises(RunError, match="more than 2 rows"):
        load_run(alice_run)


def test_float8_weights_are_a_run_error(alice_run):
    state = load_safetensors((alice_run / "weights.safetensors").read_bytes())
    odd = {k: v.to(torch.float8_e4m3fn) for k, v in state.items()}
    (alice_run / "weights.safetensors").write_bytes(save_safetensors(odd))
    with pytest.raises(RunError, match="float16, bfloat16, float32 or float64"):
        load_run(alice_run)


# --------------------------------------------------------------------------- disk


def test_a_visitors_quota_counts_imports(alice_run, tmp_path, monkeypatch):
    size = sum(f.stat().st_size for f in alice_run.iterdir())
    monkeypatch.setenv("MNIST_OWNER_DISK_MB", str(2.5 * size / 1e6))  # room for two runs
    archive = export_run(alice_run)
    import_run(archive, root=tmp_path, owner=ALICE)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(RunError, match="Your runs use .* each visitor may keep"):
        import_run(archive, root=tmp_path, owner=ALICE)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    import_run(archive, root=tmp_path, owner=BOB)  # Bob has his own quota


def test_a_full_server_frees_the_oldest_runs_of_idle_owners_first(alice_run, blobs, tmp_path, monkeypatch):
    archive = export_run(alice_run)
    size = sum(f.stat().st_size for f in alice_run.iterdir())
    shared = save_run(train(TrainConfig(epochs=1, batch_size=64), blobs), root=tmp_path)
    bobs = import_run(archive, root=tmp_path, owner=BOB)
    mark_seen(ALICE, tmp_path)
    monkeypatch.setenv("MNIST_RUNS_DISK_MB", str(4.5 * size / 1e6))  # room for four runs
    monkeypatch.setenv("MNIST_IDLE_OWNER_S", "3600")
    old = time.time() - 7200
    os.utime(tmp_path / ".owners" / ALICE, (old, old))  # Alice has been away two hours; Bob never came back
    carol = owner_id("carol")
    import_run(archive, root=tmp_path, owner=carol)  # fits: four runs
    import_run(archive, root=tmp_path, owner=carol)  # the oldest run of an idle owner goes: Alice's
    assert not alice_run.exists() and bobs.exists() and shared.exists()
    mark_seen(BOB, tmp_path)  # Bob is back: nothing of an idle owner is left, and shared runs are never deleted
    with pytest.raises(RunError, match="disk for runs is full"):
        import_run(archive, root=tmp_path, owner=carol)
    assert bobs.exists() and shared.exists()


# --------------------------------------------------------------------------- budgets


def test_a_run_over_the_work_budget_says_what_to_change():
    record_everything = TrainConfig(epochs=100, batch_size=8, record_every=1)
    problem = over_budget(record_everything, 4000, 1000, 8_000_000)
    assert "loss recorder" in problem and "less often" in problem and "8,000,000" in problem
    parts = planned_images(record_everything, 4000, 1000)
    assert parts["recorder"] == 100 * 500 * 4000  # every batch, the whole training set
    assert "fewer epochs" in over_budget(TrainConfig(epochs=100), 60_000, 10_000, 5_000_000)
    assert over_budget(TrainConfig(), 60_000, 10_000, 8_000_000) is None  # the tutorial's run on full MNIST


def test_the_budget_stops_a_run_and_says_why(blobs):
    trainer = train(TrainConfig(epochs=5, batch_size=16), blobs, callbacks=[Budget(1_000, 1e9)])
    h = trainer.history
    assert h.status == "stopped" and "limit of 1,000 images per run" in h.message
    assert h.images_done <= 1_000 + 16 and h.step < h.total_steps
    timed = train(TrainConfig(epochs=5, batch_size=16), blobs, callbacks=[Budget(10**9, 0.0)])
    assert "minutes per run" in timed.history.message and timed.history.step == 1


def test_the_queue_caps_jobs_per_address_and_refuses_work_over_budget(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_JOBS_PER_ADDRESS", "2")
    queue = JobQueue(root=tmp_path / "runs", data_dir=data_dir)
    try:
        long = TrainConfig(epochs=100, batch_size=16)
        first = queue.submit(long, owner="cookie-1", address="10.0.0.7")
        queue.submit(long, owner="cookie-2", address="10.0.0.7")
        with pytest.raises(QueueError, match="2 runs from your network"):
            queue.submit(long, owner="cookie-3", address="10.0.0.7")  # a new cookie does not make a new visitor
        assert queue.busy()[0] + queue.busy()[1] == 2
        queue.submit(TrainConfig(epochs=1), owner="cookie-4", address="10.0.0.8")  # another address may
        with pytest.raises(QueueError, match="loss recorder"):
            queue.submit(TrainConfig(epochs=100, batch_size=8, record_every=1), owner="o5", sizes=(4000, 1000))
        assert queue.busy()[0] + queue.busy()[1] == 3
        wait_for(lambda: first.history is not None and first.history.step > 0)
        for job in queue.active():
            queue.stop(job.id, job.owner)
        assert queue.wait_idle(timeout=120)
        assert read_meta(first.run_dir).owner == owner_id("cookie-1")  # the trainer saved it for its owner
    finally:
        queue.close()


def test_the_trainer_stops_a_job_at_the_servers_limit(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_MAX_JOB_IMAGES", "600")  # read by the trainer process when the job starts
    queue = JobQueue(root=tmp_path / "runs", data_dir=data_dir)
    try:
        job = queue.submit(TrainConfig(epochs=50, batch_size=16), owner="o")
        assert queue.wait_idle(timeout=120)
        assert job.outcome == "stopped" and "limit of 600 images per run" in job.message
        assert load_run(job.run_dir).meta.steps < 50
    finally:
        queue.close()


# --------------------------------------------------------------------------- Tune


def test_studies_are_their_owners(tmp_path):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    space = tune.SearchSpace(optimisers=("ADAM",), epochs=(1,))
    tune.open_study(storage, "alice's study", space, owner=ALICE)
    tune.open_study(storage, "from the command line", space)
    assert tune.study_names(storage, BOB) == ["from the command line"]
    assert set(tune.study_names(storage, ALICE)) == {"alice's study", "from the command line"}
    with pytest.raises(ValueError, match="another visitor has a study of that name"):
        tune.open_study(storage, "alice's study", space, owner=BOB)


def test_a_dead_workers_trial_is_failed_and_tried_again(tmp_path, monkeypatch):
    storage = f"sqlite:///{tmp_path / 'tune.db'}"
    monkeypatch.setattr(tune, "GRACE_S", 1)
    monkeypatch.setattr(tune, "HEARTBEAT_S", 1)
    tune.forget_storages()  # storages made from now on use the short grace period
    try:
        study, _ = tune.open_study(storage, "grid", tune.SearchSpace(optimisers=("ADAM",), epochs=(1,)))
        dead = tune.ask(study)  # a worker asked for it, said once that it was alive, and was killed
        study._storage.record_heartbeat(dead._trial_id)

        def failed() -> bool:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optuna.storages.fail_stale_trials(study)  # what tune.ask does before each trial
            return study._storage.get_trial(dead._trial_id).state == optuna.trial.TrialState.FAIL

        wait_for(failed, timeout=60, every=0.2)
        again = tune.ask(study)
        assert again.params == dead.params and again.number > dead.number  # the same point, trained again
    finally:
        tune.forget_storages()


def test_uploads_are_capped_at_the_largest_archive_a_run_can_be():
    import tomllib
    from pathlib import Path

    from mnist_core.run_archive import MAX_ARCHIVE_BYTES

    config = tomllib.loads((Path(__file__).parents[1] / ".streamlit" / "config.toml").read_text())
    limit_mb = config["server"]["maxUploadSize"]  # Streamlit's megabytes are MiB
    assert MAX_ARCHIVE_BYTES <= limit_mb * 2**20 < MAX_ARCHIVE_BYTES + 2**20


def test_every_setting_is_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Settings", 1)[1].split("\n## ", 1)[0]
    assert [name for name in settings.SETTINGS if f"| `{name}` |" not in section] == []


def test_a_study_name_from_storage_is_shown_as_text_and_the_storage_never(runs_dir):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    evil = "x` [Log in to keep your runs](https://evil.example/login) ![](http://host/p.png) `"
    storage = tune.default_storage()
    tune.open_study(storage, evil, tune.SearchSpace(optimisers=("ADAM",), epochs=(1,)))  # the command line's: shared
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "streamlit_app.py"), default_timeout=120)
    at.run()
    at.switch_page("app_pages/7_Tune.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="tune_view").value == evil  # a select box shows its options as text
    markup = [
        e.value for kind in ("markdown", "caption", "error", "warning", "info", "success") for e in getattr(at, kind)
    ]
    assert not any("](https://evil.example" in str(m) or "![](" in str(m) for m in markup)
    assert not any(str(runs_dir) in str(m) or "sqlite" in str(m) for m in markup)  # no storage location


def test_a_held_arrow_key_on_the_live_lr_is_one_change(tmp_path, data_dir):
    queue = JobQueue(root=tmp_path / "runs", data_dir=data_dir)
    try:
        job = queue.submit(TrainConfig(epochs=100, batch_size=16), owner="o")
        wait_for(lambda: job.history is not None and job.history.step > 0)
        for lr in (0.09, 0.08, 0.07, 0.06, 0.05):  # five key presses in a row
            queue.control(job.id, "o", "set", lr=lr)
        wait_for(lambda: len(job.history.lr_schedule) > 1)
        step = job.history.step
        wait_for(lambda: job.history.step > step + 20)  # well past the settling time
        assert [lr for _, lr in job.history.lr_schedule] == [0.1, 0.05]
        queue.stop(job.id, "o")
        assert queue.wait_idle(timeout=120)
        assert [lr for _, lr in load_run(job.run_dir).meta.lr_schedule] == [0.1, 0.05]
    finally:
        queue.close()
