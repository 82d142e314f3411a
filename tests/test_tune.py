"""Hyperparameter studies: the search space, trials as runs, resuming, two workers, pruning, the Tune page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from helpers import blobs_dataset, wait_for, write_idx
from streamlit.testing.v1 import AppTest

from mnist_core.cli import main as cli_main
from mnist_core.jobs import JobQueue
from mnist_core.runs import load_run, runs_table
from mnist_core.tune import (
    SearchSpace,
    StudyDriver,
    best_trial,
    describe_space,
    forget_storages,
    open_storage,
    open_study,
    pruning_savings,
    run_trials,
    trials_table,
)

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "streamlit_app.py")
# Quick trials on the blobs: ADAM learns them within an epoch; the lr 1e-6 of the hopeless trial does not.
QUICK = SearchSpace(lr_low=1e-3, lr_high=0.03, optimisers=("ADAM",), batch_sizes=(32,), epochs=(2,), validation=0.2)


@pytest.fixture
def blobs_dir(tmp_path) -> Path:
    """The blobs as four IDX files: a learnable data set that trainer and worker processes can load."""
    ds = blobs_dataset(n_train=300, n_test=60)
    folder = tmp_path / "blobs"
    for name, tensor in (
        ("train-images-idx3-ubyte", ds.train_images),
        ("train-labels-idx1-ubyte", ds.train_labels),
        ("t10k-images-idx3-ubyte", ds.test_images),
        ("t10k-labels-idx1-ubyte", ds.test_labels),
    ):
        write_idx(folder / name, tensor.numpy())
    return folder


def test_search_space_from_the_pages_choices():
    space = SearchSpace(lr_low=1e-3, lr_high=1.0, optimisers=("Descent", "ADAM"), batch_sizes=(64, 128), epochs=(3,))
    assert space.searched() == {
        "lr": [0.001, 0.01, 0.1, 1.0],
        "optimiser": ["Descent", "ADAM"],
        "batch_size": [64, 128],
    }
    assert space.grid_size() == 16  # epochs has one value: fixed, not searched
    config = space.config({"lr": 0.01, "optimiser": "ADAM", "batch_size": 64})
    assert (config.lr, config.optimiser, config.batch_size, config.epochs, config.validation) == (
        0.01,
        "ADAM",
        64,
        3,
        0.1,
    )
    assert SearchSpace.from_dict(space.to_dict()) == space
    with pytest.raises(ValueError, match="choose at least one optimiser"):
        SearchSpace(optimisers=()).validate()
    with pytest.raises(ValueError, match="validation split"):
        SearchSpace(validation=0.0).validate()
    with pytest.raises(ValueError, match="must not be above"):
        SearchSpace(lr_low=0.1, lr_high=0.01).validate()


def test_trials_are_saved_as_runs_tagged_with_their_study(tmp_path, blobs):
    study, space = open_study(f"sqlite:///{tmp_path}/tune.db", "s", QUICK, sampler_seed=0)
    results = run_trials(study, space, blobs, 2, root=tmp_path)
    assert [r.number for r in results] == [0, 1]
    table = runs_table(tmp_path)
    assert sorted(table["study"]) == ["s #0", "s #1"]
    for result in results:
        run = load_run(tmp_path / result.run)
        assert (run.meta.study, run.meta.trial, run.config.validation) == ("s", result.number, 0.2)
        assert run.history.epochs[-1].val_acc == pytest.approx(result.val_acc)  # selected on validation
        assert run.config.lr == pytest.approx(result.params["lr"])
    best = best_trial(study)
    assert best.val_acc == max(r.val_acc for r in results) and best.test_acc is not None
    shown = trials_table(study)
    assert list(shown["trial"]) == [best.number, 1 - best.number] and "test accuracy" not in shown


def test_the_networks_shape_is_a_search_dimension(tmp_path, blobs):
    """Width multiplier and activation: searched like any choice, and each trial's run is its own network."""
    space = SearchSpace(
        lr_low=0.01, lr_high=0.01, optimisers=("ADAM",), batch_sizes=(32,), epochs=(1,), validation=0.2,
        widths=(0.5, 2.0), activations=("relu", "tanh"), sampler="grid",
    )  # fmt: skip
    assert space.searched() == {"width": [0.5, 2.0], "activation": ["relu", "tanh"]}
    assert space.config({"width": 2.0, "activation": "tanh"}).network()["channels"] == (16, 32, 64, 64)
    assert "width ×0.5|2, relu|tanh" in describe_space(space)
    assert SearchSpace.from_dict(space.to_dict()) == space
    with pytest.raises(ValueError, match="a width of 64 makes conv layers of 512,1024,2048,2048"):
        SearchSpace(widths=(64.0,)).validate()
    with pytest.raises(ValueError, match="choose at least one activation"):
        SearchSpace(activations=()).validate()
    study, space = open_study(f"sqlite:///{tmp_path}/tune.db", "shape", space, sampler_seed=0)
    results = run_trials(study, space, blobs, 4, root=tmp_path)
    seen = set()
    for result in results:
        run = load_run(tmp_path / result.run)
        seen.add((run.config.channels, run.config.activation))
        wanted = tuple(max(1, round(c * result.params["width"])) for c in (8, 16, 32, 32))
        assert run.config.network()["channels"] == wanted and run.config.activation == result.params["activation"]
        assert run.model.layers[0].conv.out_channels == run.config.network()["channels"][0]  # built as searched
    assert seen == {(c, a) for c in ("4,8,16,16", "16,32,64,64") for a in ("relu", "tanh")}


def test_a_hopeless_trial_is_pruned(tmp_path, blobs):
    space = SearchSpace(lr_low=1e-6, lr_high=0.03, optimisers=("ADAM",), batch_sizes=(32,), epochs=(4,), validation=0.2)
    study, space = open_study(f"sqlite:///{tmp_path}/tune.db", "p", space)
    for lr in (0.01, 0.02, 1e-6):
        study.enqueue_trial({"lr": lr})
    results = run_trials(study, space, blobs, 3, root=tmp_path)
    assert [r.state for r in results] == ["complete", "complete", "pruned"]
    hopeless = load_run(tmp_path / results[2].run)
    assert hopeless.meta.status == "stopped" and len(hopeless.history.epochs) == 1 < 4
    assert hopeless.meta.message.startswith("Pruned by study 'p'")
    savings = pruning_savings(study)
    assert savings.pruned == 1
    assert savings.seconds_saved == pytest.approx(3 * hopeless.history.epochs[0].seconds)


def test_a_study_resumed_after_a_restart_continues_its_trial_count(tmp_path, blobs_dir, capsys):
    threads = torch.get_num_threads()  # the CLI sets this process's threads: give them back afterwards
    args = ["--runs-dir", str(tmp_path), "--data-dir", str(blobs_dir), "--study", "r", "--lr-high", "0.03"]
    args += ["--optimisers", "ADAM", "--epochs", "1", "--batch-sizes", "32", "--offline"]
    assert cli_main(["tune", "--trials", "2", *args]) == 0
    forget_storages()  # as a new process would
    assert cli_main(["tune", "--trials", "1", *args]) == 0
    out = capsys.readouterr().out
    assert "2 trial(s) so far" in out and "1 trial(s) here, 3 in the study" in out
    assert re.search(r"^best: lr=\S+ val 0\.\d{4} test 0\.\d{4}$", out.strip().splitlines()[-1])
    study = optuna.load_study(study_name="r", storage=f"sqlite:///{tmp_path}/tune.db")
    assert [t.number for t in study.trials] == [0, 1, 2]
    # Joining with another search space is refused: the trials would not be comparable.
    assert cli_main(["tune", "--trials", "1", *args, "--lr-low", "0.0001"]) == 2
    assert "already searches another space" in capsys.readouterr().err
    torch.set_num_threads(threads)


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_two_workers_share_one_study(tmp_path, blobs_dir, storage):
    url = f"sqlite:///{tmp_path}/tune.db" if storage == "sqlite" else f"journal:{tmp_path}/tune.journal"
    space = SearchSpace(lr_low=1e-3, lr_high=0.03, optimisers=("ADAM", "Descent"), epochs=(1,), batch_sizes=(32,))
    open_study(url, "w", space)
    common = ["--storage", url, "--study", "w", "--runs-dir", str(tmp_path / "runs"), "--data-dir", str(blobs_dir)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "mnist_core", "tune-worker", "--trials", "3", "--offline", *common],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT), "MNIST_TRAIN_THREADS": "1"},
        )
        for _ in range(2)
    ]
    outputs = [w.communicate()[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    forget_storages()
    study = optuna.load_study(study_name="w", storage=open_storage(url))
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(6))  # six trials, none run twice, none lost
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    per_worker = {}
    for t in study.trials:
        per_worker[t.user_attrs["worker"]] = per_worker.get(t.user_attrs["worker"], 0) + 1
    assert sorted(per_worker.values()) == [3, 3]
    assert sorted(runs_table(tmp_path / "runs")["study"]) == [f"w #{n}" for n in range(6)]


def test_the_queue_driver_prunes_and_tags_runs(tmp_path, blobs_dir):
    """Through the server's queue: per-epoch validation from the job's history, a pruned trial stopped there."""
    space = SearchSpace(lr_low=1e-6, lr_high=0.03, optimisers=("ADAM",), batch_sizes=(8,), epochs=(20,), validation=0.2)
    url = f"sqlite:///{tmp_path}/tune.db"
    study, _ = open_study(url, "q", space)
    for lr in (0.01, 0.02, 1e-6):
        study.enqueue_trial({"lr": lr})
    queue = JobQueue(root=tmp_path, data_dir=blobs_dir, preload=("mnist",), allow_download=False)
    try:
        driver = StudyDriver(queue, "owner-secret", url, "q", 3).start()
        wait_for(lambda: not driver.running, timeout=600, every=0.1)
    finally:
        queue.close()
    assert [r.state for r in driver.results] == ["complete", "complete", "pruned"], driver.message
    pruned = load_run(tmp_path / driver.results[2].run)
    assert pruned.meta.study == "q" and pruned.meta.trial == 2 and pruned.meta.status == "stopped"
    assert pruned.meta.message.startswith("Pruned by study 'q'") and len(pruned.history.epochs) < 20


def test_stop_says_whether_it_ended_a_training_trial(tmp_path, blobs_dir):
    """Stop while a trial trains: that trial is saved as stopped and named. Stop as a trial ends: no trial is
    said to be stopped (the page once claimed one was)."""
    space = SearchSpace(lr_low=0.01, lr_high=0.01, optimisers=("ADAM",), batch_sizes=(8,), epochs=(50,), validation=0.2)
    url = f"sqlite:///{tmp_path}/tune.db"
    open_study(url, "s", space)
    queue = JobQueue(root=tmp_path, data_dir=blobs_dir, preload=("mnist",), allow_download=False)
    try:
        driver = StudyDriver(queue, "owner-secret", url, "s", 5).start()
        wait_for(
            lambda: (
                driver.current is not None
                and (job := queue.get(driver.current.job_id)) is not None
                and job.history is not None
                and job.history.step > 0
            ),
            timeout=300,
        )
        driver.stop()
        wait_for(lambda: not driver.running, timeout=300, every=0.1)
        assert driver.message == "Stopped: trial 0 was saved as stopped, and no new trial starts."
        assert [r.state for r in driver.results] == ["failed"] and load_run(
            tmp_path / driver.results[0].run
        ).meta.status == "stopped"

        between = StudyDriver(queue, "owner-secret", url, "s", 5)
        between.stop()  # before its first trial, as between two
        between.start()
        wait_for(lambda: not between.running, timeout=60, every=0.1)
        assert between.message == "Stopped between two trials: none was training, and no new trial starts."
        assert between.results == []
    finally:
        queue.close()


def test_the_tune_page_runs_a_study(runs_dir):
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("app_pages/7_Tune.py").run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Tune"
    assert any("never used to choose" in c.value for c in at.caption)
    at.text_input(key="keep_tune_study").set_value("page")
    at.multiselect(key="keep_tune_optimisers").set_value(["ADAM"])
    at.multiselect(key="keep_tune_epochs").set_value([1])
    at.multiselect(key="keep_tune_batch_sizes").set_value([512])
    at.radio(key="keep_tune_method").set_value("random")
    at.number_input(key="keep_tune_trials").set_value(1)
    next(b for b in at.button if b.label == "Start the study").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]

    def finished() -> bool:
        at.run()
        return any("Best so far" in s.value for s in at.success)

    wait_for(finished, timeout=300, every=0.5)
    study = optuna.load_study(study_name="page", storage=f"sqlite:///{runs_dir}/tune.db")
    assert SearchSpace.from_dict(study.user_attrs["space"]).optimisers == ("ADAM",)
    assert len(study.trials) == 1 and study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert list(runs_table(runs_dir)["study"]) == ["page #0"]


def test_the_default_search_finds_a_good_network_on_the_sample(sample, tmp_path):
    """The page's default study (SearchSpace's defaults), 8 trials: at least 90% validation accuracy."""
    study, space = open_study(f"sqlite:///{tmp_path}/tune.db", "default", SearchSpace(), sampler_seed=0)
    run_trials(study, space, sample, 8, root=tmp_path)
    best = best_trial(study)
    assert best is not None and best.val_acc >= 0.9, best
