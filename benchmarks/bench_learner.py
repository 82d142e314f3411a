"""What a learner meets first, measured: the presets, the default Tune search, and Predict's "no training image is
near this drawing" check.

Run by hand, never by the tests:
    python benchmarks/bench_learner.py [--seeds 1,2,3] [--trials 12] [--before] [--data-dir FOLDER]

Prints, on the embedded MNIST sample: the time to explain one digit (mnist_core.explain); each preset's
ending, test accuracy, largest batch loss and training time; the familiarity check's build and query times, its
limit, an X scribble's distance and the share of real test digits it flags; the default search's best validation
accuracy for each sampler seed. With --data-dir (four IDX files, read as Fashion-MNIST), the check's build and query
times on 60,000 training images too.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from PIL import Image, ImageDraw  # noqa: E402

from mnist_core.data import load_idx_folder, load_sample  # noqa: E402
from mnist_core.digits import Familiarity, preprocess  # noqa: E402
from mnist_core.presets import PRESETS  # noqa: E402
from mnist_core.train import train  # noqa: E402
from mnist_core.tune import SearchSpace, best_trial, open_study, run_trials  # noqa: E402


def presets(sample) -> None:
    for preset in PRESETS:
        t0 = time.perf_counter()
        h = train(preset.config(), sample).history
        acc = h.epochs[-1].test_acc if h.epochs else float("nan")
        print(
            f"preset {preset.name!r}: {h.status}, test {acc:.2%}, largest batch loss {max(h.batch_losses):,.1f}, "
            f"{time.perf_counter() - t0:.1f} s"
        )


# The default search before 2026-12-06: the tutorial's Descent beside ADAM, lr up to 1, batch 128.
BEFORE = SearchSpace(lr_low=1e-3, lr_high=1.0, optimisers=("Descent", "ADAM"), batch_sizes=(128,))


def default_search(sample, seeds: list[int], trials: int, before: bool = False) -> None:
    for seed in seeds:
        with tempfile.TemporaryDirectory() as root:
            chosen = BEFORE if before else SearchSpace()
            study, space = open_study(f"sqlite:///{root}/tune.db", "default", chosen, sampler_seed=seed)
            run_trials(study, space, sample, trials, root=root)
            best = best_trial(study)
            which = "old default" if before else "default"
            print(f"{which} search, sampler seed {seed}, {trials} trials: best val {best.val_acc:.2%} ({best.params})")


def scribble() -> Image.Image:
    img = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(img)
    pen.line((60, 60, 220, 220), fill=0, width=18)
    pen.line((220, 60, 60, 220), fill=0, width=18)
    return img


def familiarity(dataset, name: str) -> None:
    t0 = time.perf_counter()
    known = Familiarity.of(dataset.train_images, dataset.test_images)
    built = time.perf_counter() - t0
    x = preprocess(scribble()).final
    t0 = time.perf_counter()
    distance = known.distance(x)
    query = time.perf_counter() - t0
    others = dataset.test_images[1::2][:500]
    flagged = sum(known.warning(image.numpy()) is not None for image in others)
    print(
        f"familiarity on {name} ({len(dataset.train_images):,} training images): built in {built * 1000:.0f} ms, "
        f"one query {query * 1000:.0f} ms, limit {known.limit:.2f}, X scribble {distance:.2f}, "
        f"real test images flagged {flagged}/{len(others)}"
    )


def explain_times(sample) -> None:
    """Seconds to explain one test digit on this machine's CPU, per method: the first call (Captum's import
    included) and the median of 20 more."""
    import statistics

    from mnist_core.config import TrainConfig
    from mnist_core.explain import METHODS, explain, top_two

    model = train(TrainConfig(optimiser="ADAM", lr=0.005, epochs=3, batch_size=32), sample).model.cpu()
    for method in METHODS:
        times = []
        for i in range(21):
            image = sample.test_images[i].numpy()
            t0 = time.perf_counter()
            explain(model, image, top_two(model, image)[0], method)
            times.append(time.perf_counter() - t0)
        print(f"explain one digit, {method}: first {times[0] * 1000:.0f} ms, then median "
              f"{statistics.median(times[1:]) * 1000:.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="sampler seeds of the default search")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--before", action="store_true", help="the default search before 2026-12-06 too")
    parser.add_argument("--data-dir", type=Path, help="a folder of four IDX files (Fashion-MNIST) for the check")
    args = parser.parse_args()
    sample = load_sample()
    explain_times(sample)
    presets(sample)
    familiarity(sample, "the MNIST sample")
    if args.data_dir:
        familiarity(load_idx_folder(args.data_dir, "fashion-mnist"), str(args.data_dir))
    seeds = [int(s) for s in args.seeds.split(",")]
    default_search(sample, seeds, args.trials)
    if args.before:
        default_search(sample, seeds, args.trials, before=True)


if __name__ == "__main__":
    main()
