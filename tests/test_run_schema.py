"""Attacks on run archives: each is refused with a RunError naming the file and the field, and changes nothing.

Every case builds an archive the way an attacker would (a real run's files, tampered), imports it, and
checks the message's words and that nothing under the test's folder changed (the runs folder, the source
run, the working folder). The worst archive that is still accepted is built too, and the Report and Predict
pages render it. Memory is measured (tracemalloc), never time.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import blobs_dataset, digit_png
from safetensors.torch import save as safetensors_bytes
from streamlit.testing.v1 import AppTest

from mnist_core import runs
from mnist_core.config import TrainConfig
from mnist_core.model import build_model
from mnist_core.owners import default_run, owner_id
from mnist_core.report import build_report
from mnist_core.run_archive import import_run
from mnist_core.run_schema import (
    ARCHIVE_FILES,
    MAX_BATCH_LOSSES,
    MAX_FULL_LOSSES,
    MAX_MESSAGE,
    MAX_MISTAKES,
    MAX_SCHEDULE,
    RunError,
)
from mnist_core.runs import describe_schedule, list_run_metas, load_run, runs_table, save_run
from mnist_core.train import train

MB = 2**20
APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
MARKDOWN = "![pwned](https://evil.example/x.png) [click me](https://evil.example) <img src=x> **bold** :red[red] $x^2$"


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder``, with a hash of each file's bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in folder.rglob("*")
    }


def zip_of(files: dict[str, bytes], folder: str = "run") -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate names some cases hold on purpose
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, content in files.items():
                archive.writestr(name if "/" in name or not folder else f"{folder}/{name}", content)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def blobs_module():
    return blobs_dataset()


@pytest.fixture(scope="module")
def source(blobs_module, tmp_path_factory) -> dict[str, bytes]:
    """A real run's files (Momentum, with the loss recorder and a report), by name."""
    trainer = train(TrainConfig(epochs=2, batch_size=64, optimiser="Momentum", lr=0.05, record_every=2), blobs_module)
    folder = save_run(trainer, build_report(trainer.model, blobs_module), root=tmp_path_factory.mktemp("source"))
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture
def target(tmp_path, monkeypatch):
    """An empty runs folder inside an otherwise watched folder, and a watched working folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs"


def refused(data: bytes, runs: Path, *words: str) -> str:
    """Import ``data`` expecting a RunError with every one of ``words``; nothing may change anywhere."""
    watched = runs.parent
    before = snapshot(watched)
    with pytest.raises(RunError) as err:
        import_run(data, root=runs)
    assert snapshot(watched) == before
    assert list(runs.iterdir()) == []
    message = str(err.value)
    for word in words:
        assert word in message, message
    return message


def edit_json(files: dict[str, bytes], name: str, **changes) -> dict[str, bytes]:
    data = json.loads(files[name])
    data.update(changes)
    return {**files, name: json.dumps(data).encode()}


def edit_csv(files: dict[str, bytes], name: str, column: str, row: int, value: str) -> dict[str, bytes]:
    frame = pd.read_csv(io.BytesIO(files[name]), dtype=str)
    frame.loc[row, column] = value
    return {**files, name: frame.to_csv(index=False).encode()}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def weights(fill: float | None = None, dtype: torch.dtype = torch.float32) -> bytes:
    state = {k: v.to(dtype).contiguous() for k, v in build_model(seed=0).state_dict().items()}
    if fill is not None:
        state["layers.0.conv.weight"][0, 0, 0, 0] = fill
    return safetensors_bytes(state)


def patch_entry(data: bytes, name: str, central: int, local: int, fmt: str, value: int) -> bytes:
    """Overwrite a field of ``name``'s central directory record (and its local header) in a zip."""
    out = bytearray(data)
    at = 0
    while (at := out.find(b"PK\x01\x02", at)) >= 0:
        length = struct.unpack_from("<H", out, at + 28)[0]
        if out[at + 46 : at + 46 + length].decode() == name:
            struct.pack_into(fmt, out, at + central, value)
            struct.pack_into(fmt, out, struct.unpack_from("<I", out, at + 42)[0] + local, value)
        at += 4
    return bytes(out)


# --------------------------------------------------------------------------- the cases of the issue, and more

CASES = {
    # sizes, checked before anything is parsed
    "report.json with 150,000 mistakes": (
        lambda f: edit_json(
            f, "report.json", mistakes=[{"index": 1, "true": 1, "predicted": 2, "probability": 0.5}] * 150_000
        ),
        ["report.json is", "more than a run's 64,000"],
    ),
    "a 50 MB batches.csv": (
        lambda f: {**f, "batches.csv": b"step,loss\n" + b"1,0.5\n" * 8_500_000},
        ["batches.csv is", "more than a run's"],
    ),
    "run.json nested 100,000 deep": (
        lambda f: {**f, "run.json": nested(100_000).encode()},
        ["run.json is 200,000 bytes", "more than a run's"],
    ),
    "run.json nested 10,000 deep (within its size)": (
        lambda f: {**f, "run.json": f["run.json"][:-1] + b', "x": ' + nested(10_000).encode() + b"}"},
        ["run.json: nested 10,001 deep"],
    ),
    "report.json nested 20 deep": (
        lambda f: edit_json(f, "report.json", mistakes=json.loads(nested(20))),
        ["report.json: nested 21 deep"],
    ),
    # run.json: types, finite numbers, ranges, fields that must agree
    'n_test "1000"': (lambda f: edit_json(f, "run.json", n_test="1000"), ["run.json: n_test must be a whole number"]),
    'test_acc "0.5"': (lambda f: edit_json(f, "run.json", test_acc="0.5"), ["run.json: test_acc must be a number"]),
    "total_steps Infinity": (
        lambda f: edit_json(f, "run.json", total_steps=math.inf),
        ["run.json: total_steps must be a whole number, not inf"],
    ),
    "steps 1e400": (
        lambda f: {**f, "run.json": f["run.json"].replace(b'"steps": ', b'"steps": 1e400, "was": ')},
        ["run.json: steps must be a whole number, not inf"],
    ),
    "a 5,000-digit number": (
        lambda f: {**f, "run.json": f["run.json"].replace(b'"n_test": ', b'"n_test": ' + b"9" * 5_000 + b', "x": ')},
        ["run.json: cannot be read as JSON", "limit"],
    ),
    "status that is not a run's": (
        lambda f: edit_json(f, "run.json", status="hacked"),
        ["run.json: status must be one of finished, stopped"],
    ),
    "steps_per_epoch that does not fit": (
        lambda f: edit_json(f, "run.json", steps_per_epoch=1),
        ["run.json: steps_per_epoch must be 4 (256 images in batches of 64)"],
    ),
    "more steps than the run has": (
        lambda f: edit_json(f, "run.json", steps=10**6),
        ["run.json: steps must be between 0 and 8"],
    ),
    "n_train 0": (lambda f: edit_json(f, "run.json", n_train=0), ["run.json: n_train must be between 1"]),
    "a message of 3,000 characters": (
        lambda f: edit_json(f, "run.json", message="x" * 3_000),
        ["run.json: message must be at most 2,000 characters"],
    ),
    "a config field of the wrong type": (
        lambda f: edit_json(f, "run.json", config={**json.loads(f["run.json"])["config"], "epochs": "10"}),
        ["run.json: the config is damaged (config.epochs must be a whole number, not '10')"],
    ),
    "a learning rate of 10**400": (
        lambda f: edit_json(f, "run.json", config={**json.loads(f["run.json"])["config"], "lr": 10**400}),
        ["run.json: the config is damaged (config.lr must be a finite number"],
    ),
    "1,000 lr changes": (
        lambda f: edit_json(f, "run.json", lr_schedule=[[0, 0.1]] * 1_000),
        ["run.json: lr_schedule must be a list of at most 200"],
    ),
    "an lr of 1e300 in the schedule": (
        lambda f: edit_json(f, "run.json", lr_schedule=[[0, 0.1], [3, 1e300]]),
        ["run.json: lr_schedule must be between"],
    ),
    "schedule steps that go back": (
        lambda f: edit_json(f, "run.json", lr_schedule=[[0, 0.1], [5, 0.2], [2, 0.3]]),
        ["run.json: lr_schedule steps must rise and stay within the run's 8 steps, not 2"],
    ),
    "a schedule pair that is not a pair": (
        lambda f: edit_json(f, "run.json", momentum_schedule=[[0, 0.9, 1]]),
        ["run.json: momentum_schedule must hold [step, value] pairs"],
    ),
    "imported given as a string": (
        lambda f: edit_json(f, "run.json", imported="no"),
        ["run.json: imported must be true or false"],
    ),
    "run.json that is a list": (lambda f: {**f, "run.json": b"[1, 2]"}, ["run.json: must hold a JSON object"]),
    "run.json that is not UTF-8": (lambda f: {**f, "run.json": b"{\xff\xfe}"}, ["run.json: cannot be read as JSON"]),
    # the CSV files
    "a non-numeric train_loss in epochs.csv": (
        lambda f: edit_csv(f, "epochs.csv", "train_loss", 0, "low"),
        ["epochs.csv: train_loss must hold numbers only"],
    ),
    "1e400 in full_losses.csv": (
        lambda f: edit_csv(f, "full_losses.csv", "loss", 0, "1e400"),
        ["full_losses.csv: loss must hold finite numbers (row 1"],
    ),
    "1e400 as a step in full_losses.csv": (
        lambda f: edit_csv(f, "full_losses.csv", "step", 0, "1e400"),
        ["full_losses.csv: step must hold finite numbers"],
    ),
    "full losses out of order": (
        lambda f: {**f, "full_losses.csv": b"step,loss\n4,1.0\n2,1.0\n"},
        ["full_losses.csv: step must rise"],
    ),
    "more batch losses than steps": (
        lambda f: {**f, "batches.csv": b"step,loss\n" + b"".join(b"%d,0.5\n" % i for i in range(1, 10))},
        ["batches.csv: 9 batch losses for a run of 8 steps"],
    ),
    "batch steps that do not count": (
        lambda f: edit_csv(f, "batches.csv", "step", 2, "7"),
        ["batches.csv: step must count 1, 2, 3"],
    ),
    "a negative loss": (lambda f: edit_csv(f, "batches.csv", "loss", 0, "-1"), ["batches.csv: loss must be 0 or more"]),
    "a header of 1,000,000 columns": (
        lambda f: {**f, "batches.csv": b"step,loss" + b",x" * 1_000_000 + b"\n"},
        ["batches.csv: the columns must be step,loss"],
    ),
    "a row with a missing field": (
        lambda f: {**f, "batches.csv": b"step,loss\n1,0.5\n2\n"},
        ["batches.csv: loss must hold finite numbers (row 2"],
    ),
    "a later row with an extra field": (
        lambda f: {**f, "batches.csv": b"step,loss\n1,0.5\n2,0.5,9\n"},
        ["batches.csv: cannot be read as CSV", "Expected 2 fields in line 3"],
    ),
    "a row with an extra field": (
        lambda f: {**f, "batches.csv": b"step,loss\n1,0.5,9\n"},
        ["batches.csv: every row must hold exactly 2 fields"],
    ),
    "more epochs than the config trains": (
        lambda f: {**f, "epochs.csv": f["epochs.csv"] + f["epochs.csv"].split(b"\n", 1)[1] * 2},
        ["epochs.csv: more than 2 rows"],
    ),
    "epochs numbered wrong": (lambda f: edit_csv(f, "epochs.csv", "epoch", 1, "5"), ["epochs.csv: epoch must count"]),
    "an accuracy of 2": (lambda f: edit_csv(f, "epochs.csv", "test_acc", 0, "2"), ["epochs.csv: test_acc must lie"]),
    # report.json
    'a mistake "high" sure': (
        lambda f: edit_json(
            f, "report.json", mistakes=[{"index": 1, "true": 1, "predicted": 2, "probability": "high"}]
        ),
        ["report.json: mistakes[0].probability must be a number"],
    ),
    "two classes": (
        lambda f: edit_json(f, "report.json", classes=["cat", "dog"]),
        ["report.json: classes must be mnist's 10 classes"],
    ),
    "classes with markdown": (
        lambda f: edit_json(f, "report.json", classes=[MARKDOWN] * 10),
        ["report.json: classes must be"],
    ),
    "a mistake outside the test set": (
        lambda f: edit_json(f, "report.json", mistakes=[{"index": 10**9, "true": 1, "predicted": 2, "probability": 1}]),
        ["report.json: mistakes[0].index points outside the test set of 64 images"],
    ),
    "a mistake that is right": (
        lambda f: edit_json(f, "report.json", mistakes=[{"index": 1, "true": 3, "predicted": 3, "probability": 1}]),
        ["report.json: mistakes[0] is not a mistake"],
    ),
    f"{MAX_MISTAKES + 1} mistakes": (
        lambda f: edit_json(
            f, "report.json", mistakes=[{"index": 1, "true": 1, "predicted": 2, "probability": 0.5}] * 257
        ),
        ["report.json: mistakes must be a list of at most 256"],
    ),
    "a confusion matrix that does not count the test set": (
        lambda f: edit_json(f, "report.json", confusion=[[1] * 10 for _ in range(10)]),
        ["report.json: confusion does not count the 64 test images"],
    ),
    "a 2x2 confusion matrix": (
        lambda f: edit_json(f, "report.json", confusion=[[1, 2], [3, 4]]),
        ["report.json: confusion must be 10 rows of 10 counts"],
    ),
    "test_loss NaN": (
        lambda f: edit_json(f, "report.json", test_loss=math.nan),
        ["report.json: test_loss must be a finite number"],
    ),
    "a report on a diverged run": (
        lambda f: edit_json(f, "run.json", status="diverged"),
        ["report.json: a diverged run has no report"],
    ),
    # weights
    "NaN weights in a finished run": (
        lambda f: {**f, "weights.safetensors": weights(math.nan)},
        ["weights.safetensors: the weights hold NaN or infinite numbers", "status is finished"],
    ),
    "float64 weights that overflow float32": (
        lambda f: {**f, "weights.safetensors": weights(1e300, torch.float64)},
        ["weights.safetensors: the weights hold NaN or infinite numbers"],
    ),
    "a pickle instead of weights": (
        lambda f: {**f, "weights.safetensors": b"\x80\x04\x95" + b"\x00" * 100},
        ["weights.safetensors: not a valid safetensors file"],
    ),
    "weights of another shape": (
        lambda f: {**f, "weights.safetensors": safetensors_bytes({"layers.6.weight": torch.zeros(10, 64)})},
        ["weights.safetensors: weights do not fit the run's network"],
    ),
    # the zip itself
    "run.json twice": (lambda f: {**f, "run/sub/run.json": f["run.json"]}, ["run.json is in the archive twice"]),
    "files in two folders": (
        lambda f: {("other/" + k if k == "epochs.csv" else k): v for k, v in f.items()},
        ["in different folders"],
    ),
    "a path outside the folder": (lambda f: {**f, "run/../../evil.py": b"import os"}, ["unexpected file"]),
    "no weights": (lambda f: {k: v for k, v in f.items() if k != "weights.safetensors"}, ["lacks weights"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_attack_is_refused_and_changes_nothing(case, source, target):
    tamper, words = CASES[case]
    refused(zip_of(tamper(dict(source))), target, *words)


def test_the_unchanged_source_is_accepted(source, target):
    """The cases above are refusals of one thing each: the run they start from is fine."""
    added = import_run(zip_of(source), root=target)
    assert load_run(added).meta.imported


def test_a_small_archive_of_a_huge_file_is_refused_before_unpacking(source, target):
    data = zip_of({**source, "batches.csv": b"step,loss\n" + b"1,0.5\n" * 8_500_000})
    assert len(data) < 200_000  # 50 MB in the archive's directory, 0.2 MB on the wire
    tracemalloc.start()
    refused(data, target, "batches.csv is 51,000,010 bytes")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5 * MB, f"{peak / MB:.1f} MB"  # the archive is never inflated


def test_a_file_larger_than_its_header_says(source, target):
    data = zip_of({**source, "report.json": b" " * 1_000_000 + source["report.json"]})
    lying = patch_entry(data, "run/report.json", 24, 22, "<I", 1_000)  # says 1,000 bytes
    refused(lying, target, "report.json")


@pytest.mark.parametrize(
    "field, central, local, value, words",
    [
        ("flags", 8, 6, 0x1, "cannot be unpacked"),  # encrypted: zipfile wants a password
        ("method", 10, 8, 99, "cannot be unpacked"),  # a compression method nobody knows
    ],
)
def test_zip_entries_that_cannot_be_unpacked(source, target, field, central, local, value, words):
    refused(patch_entry(zip_of(source), "run/run.json", central, local, "<H", value), target, words)


def test_a_corrupt_deflate_stream(source, target):
    data = bytearray(zip_of(source))
    at = data.find(b"run/batches.csv") + len(b"run/batches.csv")  # the local header's name; the data follows
    data[at + 2 : at + 40] = b"\xff" * 38
    refused(bytes(data), target, "damaged")


def test_half_a_million_entries_are_refused_before_zipfile_reads_them(target):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(20_000):
            archive.writestr(f"run/{i}", b"")
    refused(buffer.getvalue(), target, "20,000 entries", "at most 7 files")


def test_an_end_record_that_understates_the_entries(target):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(2_000):
            archive.writestr(f"run/{i}", b"")
    data = bytearray(buffer.getvalue())
    struct.pack_into("<HH", data, len(data) - 22 + 8, 5, 5)  # "5 entries", but the directory is 100 kB
    refused(bytes(data), target, "5 entries", "bytes); a run has at most 7 files")


def test_zip64_is_refused(source, target):
    data = zip_of(source)
    end = data.rfind(b"PK\x05\x06")
    refused(data[:end] + b"PK\x06\x07" + bytes(16) + data[end:], target, "zip64")


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "not a zip archive"),
        (b"PK not really", "not a zip archive"),
        (b"\x00" * 1000, "not a zip archive"),
        (b"PK\x05\x06" + bytes(18), "the archive lacks run.json"),  # an empty zip
    ],
)
def test_not_a_zip(data, words, target):
    refused(data, target, words)


def test_an_archive_over_the_total_limit(target):
    refused(b"\x00" * (sum(ARCHIVE_FILES.values()) + 100_000), target, "the limit is")


# --------------------------------------------------------------------------- accepted, with care


def test_imported_flag_cannot_be_faked(source, target):
    files = edit_json(dict(source), "run.json", imported=False, owner=owner_id("forger"), shared=True)
    added = import_run(zip_of(files), root=target, owner=owner_id("importer"))
    assert load_run(added).meta.imported is True
    stored = json.loads((added / "run.json").read_text())
    assert stored["imported"] is True and stored["owner"] == owner_id("importer") and stored["shared"] is False
    assert default_run(list_run_metas(target), owner_id("someone else"), "mnist") is None  # nobody else's default


@pytest.mark.parametrize("folder", ["zzzz ![x](https://evil.example)", "ｚｚｚｚ", "..", ".hidden", "a" * 200, ""])
def test_unsafe_folder_names_become_a_plain_id(source, target, folder):
    files = {f"{folder}/{k}" if folder else k: v for k, v in source.items()}
    added = import_run(zip_of(files, folder=""), root=target)
    assert added.name.startswith("imported-i") and set(added.name) <= set("imported-0123456789abcdef")
    assert added.parent == target


def test_nan_weights_are_kept_for_a_diverged_run(source, target):
    files = edit_json({k: v for k, v in source.items() if k != "report.json"}, "run.json", status="diverged")
    added = import_run(zip_of({**files, "weights.safetensors": weights(math.nan)}), root=target)
    run = load_run(added)
    assert run.meta.status == "diverged" and not run.weights_finite and run.report is None


def test_save_keeps_what_load_accepts(blobs, tmp_path, monkeypatch):
    """A run past the schema's bounds is saved trimmed, never refused: the first losses, a shortened message."""
    monkeypatch.setattr(runs, "MAX_BATCH_LOSSES", 100)  # instead of training 750,000 steps
    trainer = train(TrainConfig(epochs=1, batch_size=1), blobs)  # 256 steps
    h = trainer.history
    h.message = "m" * (MAX_MESSAGE + 500)
    h.lr_schedule = [(0, 0.1)] + [(i, 0.1 + i / 1000) for i in range(1, MAX_SCHEDULE + 50)]
    h.full_losses = [(1, 1.0), (2, math.nan)]
    run = load_run(save_run(trainer, root=tmp_path))
    assert len(run.history.batch_losses) == 100 and run.meta.steps == 256
    assert list(run.history.batch_losses) == pytest.approx(h.batch_losses[:100])
    assert len(run.meta.message) == MAX_MESSAGE and run.meta.lr_schedule == h.lr_schedule[:MAX_SCHEDULE]
    assert run.history.full_losses == [(1, 1.0)]


def test_save_marks_a_run_with_non_finite_weights_diverged(blobs, tmp_path):
    trainer = train(TrainConfig(epochs=1, batch_size=64), blobs)
    report = build_report(trainer.model, blobs)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(math.inf)
    run = load_run(save_run(trainer, report, root=tmp_path))
    assert run.meta.status == "diverged" and run.report is None and "no longer finite" in run.meta.message


def test_describe_schedule():
    assert describe_schedule("lr", [(0, 0.1), (120, 0.01)]) == "lr 0.1 → 0.01 from step 121"
    long = describe_schedule("lr", [(i, 1.0 + i) for i in range(20)])
    assert long.startswith("lr 1 → 2 from step 2") and "… 12 more changes …" in long and long.endswith("step 20")
    assert long.count("→") == 8


def test_runs_table_shows_lr_changes_and_marks_imports(source, target):
    files = edit_json(dict(source), "run.json", lr_schedule=[[0, 0.05], [3, 0.5], [6, 0.01]])
    import_run(zip_of(files), root=target)
    row = runs_table(target).iloc[0]
    assert (row["final lr"], row["lr changes"], row["imported"]) == (0.01, 2, True)


# --------------------------------------------------------------------------- the worst accepted archive


def worst_files(rng_seed: int = 0) -> dict[str, bytes]:
    """The largest run the schema accepts, in every file at once, on the embedded sample's 1,000 test images."""
    rng = np.random.default_rng(rng_seed)
    epochs, per_epoch = 100, 7_500  # 60,000 images in batches of 8
    steps = epochs * per_epoch
    assert steps == MAX_BATCH_LOSSES
    lr = [[0, 0.1]] + [[int(s), 0.001 * (1 + i % 9)] for i, s in enumerate(np.linspace(1, steps, MAX_SCHEDULE - 1))]
    momentum = [[0, 0.9]] + [[s, 0.5 + (i % 4) / 10] for i, (s, _) in enumerate(lr[1:])]
    meta = {
        "format": 1,
        "config": TrainConfig(epochs=epochs, batch_size=8, optimiser="Momentum", record_every=75).to_dict(),
        "status": "stopped",
        "message": (MARKDOWN * 100)[:MAX_MESSAGE],
        "device": (MARKDOWN * 20)[:1_000],
        "dataset_title": (MARKDOWN * 20)[:1_000],
        "dataset_source": (MARKDOWN * 20)[:1_000],
        "n_train": 60_000,
        "n_test": 1_000,
        "steps": steps,
        "total_steps": steps,
        "steps_per_epoch": per_epoch,
        "train_seconds": 1e6,
        "images_per_sec": 480.0,
        "images_done": steps * 8,
        "started_at": 1.7e9,
        "saved_at": 1.7e9,
        "test_acc": 0.9,
        "lr_schedule": lr,
        "momentum_schedule": momentum,
    }
    losses = np.exp(rng.uniform(-14, 1, steps)) + 1.2345678901234567e-05  # long reprs: 1.2345678901234567e-05
    confusion = [[90 if i == j else (10 if j == (i + 1) % 10 else 0) for j in range(10)] for i in range(10)]
    mistakes = [
        {"index": int(i), "true": int(t), "predicted": int((t + 1) % 10), "probability": 0.9999998807907104}
        for i, t in zip(rng.integers(0, 1000, MAX_MISTAKES), rng.integers(0, 10, MAX_MISTAKES))
    ]
    report = {
        "train_loss": 0.25,
        "train_acc": 0.9,
        "test_loss": 0.3,
        "test_acc": 0.9,
        "confusion": confusion,
        "per_class": [],
        "mistakes": mistakes,
        "classes": [str(k) for k in range(10)],
    }
    epoch_rows = pd.DataFrame(
        {
            "epoch": range(1, epochs + 1),
            "step": [e * per_epoch for e in range(1, epochs + 1)],
            "train_loss": rng.uniform(0, 3, epochs),
            "train_acc": rng.uniform(0, 1, epochs),
            "test_loss": rng.uniform(0, 3, epochs),
            "test_acc": rng.uniform(0, 1, epochs),
            "seconds": rng.uniform(0, 1e4, epochs),
        }
    )
    full = pd.DataFrame({"step": np.arange(1, MAX_FULL_LOSSES + 1) * 75, "loss": rng.uniform(0, 3, MAX_FULL_LOSSES)})
    files = {
        "run.json": json.dumps(meta, indent=2).encode(),
        "batches.csv": pd.DataFrame({"step": np.arange(1, steps + 1), "loss": losses}).to_csv(index=False).encode(),
        "epochs.csv": epoch_rows.to_csv(index=False).encode(),
        "full_losses.csv": full.to_csv(index=False).encode(),
        "report.json": json.dumps(report).encode(),
        "weights.safetensors": weights(),
    }
    for name, content in files.items():
        assert len(content) <= ARCHIVE_FILES[name], (name, len(content))
    return files


@pytest.fixture(scope="module")
def worst_archive() -> bytes:
    return zip_of(worst_files(), folder="worst-run")


def test_the_worst_accepted_archive_costs_bounded_memory(worst_archive, target):
    tracemalloc.start()
    added = import_run(worst_archive, root=target)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    run = load_run(added)
    assert len(run.history.batch_losses) == MAX_BATCH_LOSSES and run.meta.imported
    assert len(run.report.mistakes) == MAX_MISTAKES
    assert peak < 150 * MB, f"{peak / MB:.0f} MB"  # measured: 52 MB


# --------------------------------------------------------------------------- the pages (AppTest)


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def rendered_markup(at: AppTest) -> str:
    """Everything the page rendered as markdown (alerts, captions, markdown, titles)."""
    parts = [
        e.value for kind in ("markdown", "caption", "error", "warning", "info", "success") for e in getattr(at, kind)
    ]
    return " ".join(str(p) for p in parts + [s.value for s in at.subheader] + [t.value for t in at.title])


def test_report_and_predict_render_the_worst_accepted_run(runs_dir, worst_archive, sample):
    name = import_run(worst_archive, root=runs_dir).name  # from the command line: shared
    at = open_page("app_pages/4_Report.py")
    assert f"{name} (shared)" in at.selectbox(key="run_picker").options
    at.selectbox(key="run_picker").set_value(name).run()
    assert not at.exception, at.exception
    assert any(m.label == "Test accuracy" for m in at.metric)
    assert any("lr 0.1 → 0.001 from step 2 → 0.002" in c.value for c in at.caption)
    assert any(MARKDOWN in t.value for t in at.text)  # the message, device and title: as text
    assert "evil.example" not in rendered_markup(at)

    at.switch_page("app_pages/6_Predict.py").run()
    at.selectbox(key="predict_run").set_value(name).run()
    assert not at.exception, at.exception
    at.file_uploader[0].set_value(("digit.png", digit_png(sample.test_images[0].numpy()), "image/png")).run()
    assert not at.exception and any(s.value.startswith("Prediction: ") for s in at.subheader)
    assert "evil.example" not in rendered_markup(at)


def test_predict_refuses_a_diverged_run(runs_dir, source):
    files = edit_json({k: v for k, v in source.items() if k != "report.json"}, "run.json", status="diverged")
    name = import_run(zip_of({**files, "weights.safetensors": weights(math.nan)}), root=runs_dir).name
    at = open_page("app_pages/6_Predict.py")
    at.selectbox(key="predict_run").set_value(name).run()
    assert not at.exception
    assert any("diverged" in w.value and "Choose another run" in w.value for w in at.warning)
    assert not at.file_uploader


def test_another_visitors_zzzz_import_is_not_seen_by_a_new_visitor(runs_dir, source, blobs):
    trainer = train(TrainConfig(epochs=1, batch_size=64), blobs)
    shared = save_run(trainer, build_report(trainer.model, blobs), root=runs_dir).name  # the command line's
    zzzz = import_run(zip_of(source, folder="zzzz-look-at-me"), root=runs_dir, owner=owner_id("another")).name
    assert zzzz.startswith("zzzz-look-at-me-i") and sorted([shared, zzzz])[-1] == zzzz  # it would sort first
    for page, key in (("app_pages/4_Report.py", "run_picker"), ("app_pages/6_Predict.py", "predict_run")):
        at = open_page(page)
        assert at.selectbox(key=key).options == [f"{shared} (shared)"]
        assert at.selectbox(key=key).value == shared

    # the session that imports it sees it
    at = open_page("app_pages/5_Runs.py")
    at.file_uploader[0].set_value(("z.zip", zip_of(source, folder="zzzz-mine"), "application/zip")).run()
    assert not at.exception and any("zzzz-mine" in s.value for s in at.success)
    at.switch_page("app_pages/4_Report.py").run()
    assert at.selectbox(key="run_picker").value.startswith("zzzz-mine-i")


def test_only_a_stopped_shared_run_means_no_default(runs_dir, source):
    import_run(zip_of(edit_json(dict(source), "run.json", status="stopped"), folder="zzzz"), root=runs_dir)
    at = open_page("app_pages/4_Report.py")
    assert not at.error and at.selectbox(key="run_picker").value is None
    assert any("Choose a run above" in i.value for i in at.info)


def test_archive_text_is_shown_as_text_on_the_runs_page(runs_dir, source):
    files = edit_json(dict(source), "run.json", message=MARKDOWN)
    at = open_page("app_pages/5_Runs.py")
    at.file_uploader[0].set_value(("x.zip", zip_of(files), "application/zip")).run()
    bad = zip_of({**files, f"run/{MARKDOWN}.txt": b"x"})
    at.file_uploader[0].set_value(("y.zip", bad, "application/zip")).run()
    assert not at.exception
    assert any("nothing changed" in e.value for e in at.error)
    assert any(
        "unexpected file 'run/![pwned](https://evil.example" in t.value for t in at.text
    )  # the refusal quotes it: as text
    assert "evil.example" not in rendered_markup(at)
