"""Command-line smoke runs, in a subprocess as a user would type them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MNIST_DATA_DIR", "MNIST_RUNS_DIR")} | extra_env
    return subprocess.run(
        [sys.executable, "-m", "mnist_core", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )


def test_inspect_prints_layer_table():
    out = cli("inspect")
    assert out.returncode == 0
    assert "Conv((5,5), 1=>8, pad=2, stride=2, relu)" in out.stdout
    assert "15,594" in out.stdout and "206,560" in out.stdout


def test_train_then_evaluate(tmp_path):
    steps = tmp_path / "steps"  # MNIST_STEP_LOG: each step's time logged (mnist_core.train.StepClock)
    out = cli(
        "train",
        "--epochs",
        "1",
        "--optimiser",
        "ADAM",
        "--lr",
        "0.003",
        "--offline",
        "--runs-dir",
        str(tmp_path / "runs"),
        MNIST_STEP_LOG=str(steps),
    )
    assert out.returncode == 0, out.stderr
    assert "MNIST sample (5,000 digits)" in out.stdout
    assert "Prediction of first image" in out.stdout
    assert "test accuracy" in out.stdout
    assert "epoch   1:" in out.stderr  # the progress bar's epoch line
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and f"run saved to {runs[0]}" in out.stdout
    (log,) = steps.glob("cli-*.json")
    assert len(json.loads(log.read_text())["seconds"]) == 31  # the sample's 4,000 digits in batches of 128
    ev = cli("evaluate", str(runs[0]), "--offline")
    assert ev.returncode == 0, ev.stderr
    assert "test accuracy" in ev.stdout and "finished" in ev.stdout


def test_bad_arguments_give_clear_errors(tmp_path):
    out = cli("train", "--lr", "-1", "--offline", "--runs-dir", str(tmp_path))
    assert out.returncode == 2 and "learning rate must be between" in out.stderr
    out = cli("evaluate", str(tmp_path / "missing"))
    assert out.returncode == 2 and "no such run folder" in out.stderr
    assert list(tmp_path.iterdir()) == []
