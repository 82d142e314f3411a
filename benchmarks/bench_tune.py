"""Hyperparameter studies on the embedded MNIST sample, measured by hand (never by the tests).

1. A 12-trial TPE study over lr (1e-3 .. 1, log) and optimiser (Descent, ADAM), 3 epochs each, 10% of
   the training set held out for validation, trained in this process as `python -m mnist_core tune`
   does: wall time, best validation and test accuracy, trials pruned and the training time pruning
   saved. One study per sampler seed (--seeds).
2. `tune-worker` processes on one storage (SQLite, then a journal file): 12 trials by one worker (one
   thread, then every core), then 6 + 6 by two workers of one thread each. Checks that no trial ran twice
   and none was lost, counts trials per worker, and gives the wall time of each.

    python benchmarks/bench_tune.py [--seeds 0 1 2] [--threads 1] [--skip-workers]

Run it on an idle machine: other work on the same cores changes every figure, and a trainer with two
OpenMP threads stalls whenever another process wants a core (see README, "Speed and accuracy").
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mnist_core.data import load_sample  # noqa: E402
from mnist_core.tune import (  # noqa: E402
    SearchSpace,
    best_trial,
    forget_storages,
    open_storage,
    open_study,
    pruning_savings,
    run_trials,
)

SPACE = SearchSpace(lr_low=1e-3, lr_high=1.0, optimisers=("Descent", "ADAM"), epochs=(3,), batch_sizes=(128,))


def one_study(seed: int, folder: Path) -> dict:
    study, space = open_study(f"sqlite:///{folder}/tune.db", f"bench-{seed}", SPACE, sampler_seed=seed)
    dataset = load_sample()
    start = time.perf_counter()
    run_trials(study, space, dataset, 12, root=folder)
    wall = time.perf_counter() - start
    best, savings = best_trial(study), pruning_savings(study)
    return {
        "seed": seed,
        "wall_s": wall,
        "best": best.params,
        "val": best.val_acc,
        "test": best.test_acc,
        "pruned": savings.pruned,
        "saved_s": savings.seconds_saved,
        "trained_s": savings.seconds_spent,
    }


def workers(url: str, folder: Path, n_workers: int, trials_each: int, threads: int) -> dict:
    open_study(url, "workers", SPACE)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MNIST_TRAIN_THREADS": str(threads)}
    command = [sys.executable, "-m", "mnist_core", "tune-worker", "--storage", url, "--study", "workers"]
    command += ["--trials", str(trials_each), "--runs-dir", str(folder / "runs"), "--offline"]
    start = time.perf_counter()
    procs = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL) for _ in range(n_workers)]
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - start
    forget_storages()
    import optuna

    study = optuna.load_study(study_name="workers", storage=open_storage(url))
    numbers = [t.number for t in study.trials]
    return {
        "codes": codes,
        "wall_s": wall,
        "trials": len(numbers),
        "distinct": len(set(numbers)),
        "states": dict(Counter(t.state.name for t in study.trials)),
        "per_worker": sorted(Counter(t.user_attrs.get("worker") for t in study.trials).values()),
        "trained_s": sum(sum(t.user_attrs.get("epoch_seconds", [])) for t in study.trials),
        "epochs": sum(t.user_attrs.get("epochs_done", 0) for t in study.trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="training threads of the in-process studies")
    parser.add_argument("--skip-workers", action="store_true")
    parser.add_argument("--skip-studies", action="store_true")
    parser.add_argument("--storages", nargs="+", default=["sqlite", "journal"], choices=["sqlite", "journal"])
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"CPU cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; studies with {args.threads} thread(s)")

    results = []
    for seed in [] if args.skip_studies else args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            r = one_study(seed, Path(tmp))
        results.append(r)
        print(
            f"TPE seed {seed}: {r['wall_s']:.1f} s wall, best {r['best']} val {r['val']:.4f} test {r['test']:.4f}, "
            f"{r['pruned']} of 12 pruned, pruning saved {r['saved_s']:.1f} s of {r['trained_s'] + r['saved_s']:.1f} s"
        )
    if len(results) > 1:
        print(
            f"median of {len(results)}: wall {statistics.median(r['wall_s'] for r in results):.1f} s, "
            f"val {statistics.median(r['val'] for r in results):.4f}, "
            f"test {statistics.median(r['test'] for r in results):.4f}, "
            f"pruned {statistics.median(r['pruned'] for r in results)}"
        )
    if args.skip_workers:
        return
    for kind in args.storages:
        for n_workers, threads in ((1, 1), (1, os.cpu_count() or 1), (2, 1)):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                url = f"sqlite:///{folder}/tune.db" if kind == "sqlite" else f"journal:{folder}/tune.journal"
                r = workers(url, folder, n_workers, 12 // n_workers, threads)
            ok = r["trials"] == r["distinct"] == 12 and r["codes"] == [0] * n_workers
            print(
                f"{kind}, {n_workers} worker(s) x {threads} thread(s): {r['wall_s']:.1f} s wall, {r['trials']} trials "
                f"({r['distinct']} distinct, {r['states']}), per worker {r['per_worker']}, "
                f"{r['epochs']} epochs trained ({r['wall_s'] / max(r['epochs'], 1):.2f} s wall each), "
                f"{r['trained_s']:.1f} s training, load average {os.getloadavg()[0]:.1f}{'' if ok else '  <-- PROBLEM'}"
            )


if __name__ == "__main__":
    main()
