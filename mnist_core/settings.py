"""Every environment setting the app reads, in one table: its name, default, lower bound and what it does.

``get(name)`` is the only reader of ``os.environ`` for the app's own settings. A value that is not a number
where a number is wanted, or is below its bound, falls back to the default (a typo never takes a server
down). README's settings table lists the same names (a test keeps them equal).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: int | float | str  # its type is the setting's type; "" for a text setting that is unset
    help: str
    low: float | None = None  # numbers below are ignored (the default is used)
    first: tuple[str, ...] = ()  # variables read before ``name``, the first one set wins (as gettext reads LANG)


SETTINGS = {
    s.name: s
    for s in (
        # where things are
        Setting("MNIST_RUNS_DIR", "runs", "folder of saved runs (and the default study store)"),
        Setting("MNIST_DATA_DIR", "", "folder of the four MNIST IDX files (else download, else the sample)"),
        Setting("FASHION_MNIST_DATA_DIR", "", "folder of Fashion-MNIST's IDX files"),
        Setting("MNIST_TUNE_STORAGE", "", "Optuna storage URL shared by tune workers (else SQLite in runs/)"),
        # the trainers
        Setting("MNIST_MAX_JOBS", 1, "trainers training at once", low=1),
        Setting("MNIST_TRAIN_THREADS", 0, "CPU threads per trainer; 0 = tune the count while training", low=0),
        Setting("MNIST_TRAIN_NICE", 19, "niceness a trainer adds to yield the CPU to the server", low=0),
        Setting("MNIST_STEP_LOG", "", "folder where runs log each step's time (benchmarks only)"),
        # what one visitor may use
        Setting("MNIST_MAX_QUEUE", 20, "runs waiting for a trainer, all visitors together", low=1),
        Setting("MNIST_MAX_JOBS_PER_ADDRESS", 3, "runs training or waiting per client address (where known)", low=1),
        Setting("MNIST_MAX_JOB_IMAGES", 8_000_000, "images one run may process, evaluations included", low=1),
        Setting("MNIST_MAX_JOB_S", 900.0, "seconds one run may take, pauses included", low=1),
        Setting("MNIST_MAX_PAUSE_S", 600.0, "seconds a run may stay paused before it is stopped and saved", low=1),
        Setting("MNIST_OWNER_DISK_MB", 200.0, "disk one visitor's runs may use (imports included)", low=0),
        Setting("MNIST_RUNS_DISK_MB", 2000.0, "disk all visitors' runs may use together", low=0),
        Setting("MNIST_IDLE_OWNER_S", 86400.0, "a visitor unseen this long may lose old runs when disk is full", low=0),
        # the command line
        Setting(
            "LANG",
            "",
            "the command line's language (zh_CN.UTF-8: Simplified Chinese; else English); LANGUAGE, LC_ALL, "
            "LC_MESSAGES come first where set",
            first=("LANGUAGE", "LC_ALL", "LC_MESSAGES"),
        ),
    )
}


def get(name: str) -> int | float | str:
    """The setting's value now: the environment's if it is valid, else the default."""
    spec = SETTINGS[name]
    raw = next((v for n in (*spec.first, name) if (v := os.environ.get(n, "").strip())), "")
    if not raw or isinstance(spec.default, str):
        return raw or spec.default
    try:
        value = type(spec.default)(float(raw)) if isinstance(spec.default, int) else float(raw)
    except (ValueError, OverflowError):
        return spec.default
    if spec.low is not None and value < spec.low:
        return spec.default
    return value


def child_env(package_root: str) -> dict[str, str]:
    """The environment a trainer process starts with: this one's, with ``package_root`` first on PYTHONPATH."""
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}
