"""Training beside a busy neighbour: `python -m mnist_core train` alone and beside busy processes (issue 23).

Run by hand, never by the tests:  python benchmarks/bench_neighbour.py [--rounds 3] [--busy 1] [--epochs 3]

Each round trains the CLI's run (the embedded sample, offline) alone and then beside ``--busy`` processes that
spin on the CPU, once with the entry points' rule (start on the free cores, then tune) and once with every
core fixed (``MNIST_TRAIN_THREADS`` = all cores: what `train` did before). Prints the median images/s of each
and each against the same mode alone.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnist_core.threads import usable_cores  # noqa: E402

SPIN = "while True: pass"


def train(epochs: int, env: dict) -> float:
    with tempfile.TemporaryDirectory() as runs:
        out = subprocess.run(
            [sys.executable, "-m", "mnist_core", "train", "--epochs", str(epochs), "--offline", "--runs-dir", runs],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    return float(re.search(r"([\d,]+) images/s", out).group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside the run")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    modes = {
        "tuned (now)": {"MNIST_TRAIN_THREADS": "0"},
        "all cores (before)": {"MNIST_TRAIN_THREADS": str(usable_cores())},
    }
    speeds: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.rounds):
        for name, env in modes.items():
            speeds.setdefault((name, False), []).append(train(args.epochs, env))
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(args.busy)]
            try:
                speeds.setdefault((name, True), []).append(train(args.epochs, env))
            finally:
                for spinner in spinners:
                    spinner.kill()
                    spinner.wait()
    print(f"{usable_cores()} usable cores, {args.busy} busy process(es), {args.rounds} rounds, {args.epochs} epochs")
    for name in modes:
        alone, beside = (statistics.median(speeds[(name, b)]) for b in (False, True))
        print(f"{name:>20}: alone {alone:>8,.0f} images/s, beside {beside:>8,.0f} ({beside / alone:.0%} of alone)")
    now, before = (statistics.median(speeds[(name, False)]) for name in modes)
    print(f"alone, tuned against all cores: {now / before:.0%}")


if __name__ == "__main__":
    main()
