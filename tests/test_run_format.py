"""run.json's format: a newer one asks for an update; a format-1 run (a last, smaller batch) still loads."""

from __future__ import annotations

import pytest

from mnist_core.config import TrainConfig
from mnist_core.run_schema import FORMAT_VERSION, RunError, RunMeta


def run_json(n_train: int = 4000, batch_size: int = 128, epochs: int = 2, **fields) -> dict:
    per_epoch = n_train // batch_size
    return {
        "format": FORMAT_VERSION,
        "config": TrainConfig(epochs=epochs, batch_size=batch_size).to_dict(),
        "status": "finished",
        "n_train": n_train,
        "n_test": 1000,
        "steps": per_epoch * epochs,
        "total_steps": per_epoch * epochs,
        "steps_per_epoch": per_epoch,
        **fields,
    }


def test_the_current_format_loads_and_is_kept():
    meta = RunMeta.from_dict(run_json(), "run.json")
    assert meta.format == FORMAT_VERSION and meta.steps_per_epoch == 31  # 4,000 // 128: the 32 left join the last


def test_a_newer_format_asks_for_an_update():
    with pytest.raises(RunError, match=r"run.json: format is \d+: the run was saved by a newer version") as err:
        RunMeta.from_dict(run_json(format=FORMAT_VERSION + 1), "run.json")
    assert "update the app" in str(err.value)


@pytest.mark.parametrize("bad", [0, -1, "2", 1.5, None])
def test_a_format_that_is_no_version_is_refused(bad):
    with pytest.raises(RunError, match="format must be"):
        RunMeta.from_dict(run_json(format=bad), "run.json")


def test_a_format_1_run_kept_its_last_smaller_batch():
    """Runs saved before the remainder policy counted ceil(4,000 / 128) = 32 steps an epoch, and still load."""
    old = run_json(format=1, steps_per_epoch=32, total_steps=64, steps=64)
    meta = RunMeta.from_dict(old, "run.json")
    assert (meta.format, meta.steps_per_epoch, meta.total_steps) == (1, 32, 64)
    no_format = {k: v for k, v in old.items() if k != "format"}  # written before formats existed: format 1
    assert RunMeta.from_dict(no_format, "run.json").format == 1
    with pytest.raises(RunError, match="steps_per_epoch"):  # the old count is no longer right for format 2
        RunMeta.from_dict({**old, "format": 2}, "run.json")
