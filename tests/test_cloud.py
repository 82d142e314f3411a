"""At home on Community Cloud and shared machines (issue 23): one queue whatever Streamlit re-imports, and
training that starts from the cores it may really use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import wait_for

from mnist_core import threads


def trainers() -> list[int]:
    """Pids of this process's warm trainers (children running mnist_core.worker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and b"mnist_core.worker" in cmdline:
            found.append(int(entry.name))
    return found


def reimport() -> object:
    """What Streamlit does to changed modules (runOnSave, a push on Community Cloud): import them anew."""
    for name in [m for m in sys.modules if m == "ui" or m.startswith(("ui.", "mnist_core"))]:
        del sys.modules[name]
    import ui.state

    return ui.state


@pytest.fixture
def fresh_modules(runs_dir):
    """Restores the modules as they were, so later tests keep one set of classes."""
    saved = {name: module for name, module in sys.modules.items() if name.startswith(("ui", "mnist_core"))}
    yield
    reimport().close_job_queue()
    for name in [m for m in sys.modules if m == "ui" or m.startswith(("ui.", "mnist_core"))]:
        del sys.modules[name]
    sys.modules.update(saved)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts trainers in /proc (Linux)")
def test_a_reimport_keeps_one_queue_and_one_trainer(fresh_modules):
    state = reimport()
    first = state.job_queue()
    assert first.wait_warm(timeout=300)
    for _ in range(2):  # two pushes that change a page, not the queue's code
        state = reimport()
        assert state.job_queue() is first
    assert len(trainers()) == 1 and first.started_processes == 1


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts trainers in /proc (Linux)")
def test_new_queue_code_replaces_the_queue_and_its_trainer(fresh_modules, monkeypatch):
    state = reimport()
    first = state.job_queue()
    assert first.wait_warm(timeout=300)
    (old_trainer,) = trainers()
    monkeypatch.setattr(state, "code_version", lambda: "a push changed mnist_core")
    second = state.job_queue()
    assert second is not first and first.closed
    assert second.wait_warm(timeout=300)
    assert trainers() == [t for t in trainers() if t != old_trainer] and len(trainers()) == 1


def test_cgroup_quotas_v1_and_v2(tmp_path):
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert threads.quota_cores(str(v2)) == 1.5
    (v2 / "cpu.max").write_text("max 100000\n")
    assert threads.quota_cores(str(v2)) is None
    v1 = tmp_path / "v1" / "cpu"
    v1.mkdir(parents=True)
    (v1 / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.quota_cores(str(tmp_path / "v1")) == 0.5
    (v1 / "cpu.cfs_quota_us").write_text("-1\n")
    assert threads.quota_cores(str(tmp_path / "v1")) is None


@pytest.mark.skipif(not Path("/proc/stat").exists() or threads.usable_cores() < 2, reason="needs /proc and 2 cores")
def test_a_run_starts_on_the_cores_a_busy_neighbour_leaves(monkeypatch):
    monkeypatch.delenv("MNIST_TRAIN_THREADS", raising=False)
    assert threads.starting_threads(threads.CpuLoad()) == threads.usable_cores()  # nothing measured yet
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        load = threads.CpuLoad()
        wait_for(lambda: load.others() > 0.8, timeout=60, every=0.05)
        assert threads.starting_threads(load) == threads.usable_cores() - 1
    finally:
        spinner.kill()
        spinner.wait()
    monkeypatch.setenv("MNIST_TRAIN_THREADS", "3")
    assert threads.starting_threads(load) == 3 and threads.run_threads(load) == []  # fixed: nothing tuned


@pytest.mark.parametrize(("channels", "size"), [(16, 14), (8, 28), (5, 7), (1, 2), (32, 4)])
def test_the_feature_map_mosaic_matches_torchvisions_make_grid(channels, size):
    """map_grid writes make_grid out so that no process imports torchvision (170 MB each) for it."""
    import torch
    from torchvision.utils import make_grid

    from mnist_core.visual import map_grid

    maps = torch.randn(channels, size, size, generator=torch.Generator().manual_seed(channels))
    maps[0] = 3.0  # a constant map
    factor = max(1, 56 // size)
    big = maps.repeat_interleave(factor, dim=1).repeat_interleave(factor, dim=2).unsqueeze(1)
    expected = make_grid(big, nrow=8, padding=2, normalize=True, scale_each=True, pad_value=1.0)
    expected = (expected[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    assert (map_grid(maps) == expected).all()


def test_a_trainer_imports_no_torchvision():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, mnist_core.worker, mnist_core.jobs; print('torchvision' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False"
