"""Predict on photos of real MNIST digits: accuracy and the confidence shown, before and after the lighting fix.

Run by hand, never by the tests:  PYTHONPATH=. python benchmarks/bench_predict.py [--digits 20] [--before REV]

A model is trained with the tutorial's defaults (Descent 0.1, batch 128, 10 epochs, seed 0) on the embedded
MNIST sample's 4,000 training digits. The first ``--digits`` of its 1,000 test digits (never trained on) are
made into "photos": upscaled 10x (bicubic), printed as dark ink (grey 35) on light paper (grey 225), blurred
slightly (Gaussian, radius 1.5), with sensor noise (sd 6 grey levels), saved as JPEG (quality 85), and lit
three ways: evenly; with a gradient across the paper (full light on the left, 35% on the right); and with a
cast shadow (the right 55% of the page at 40% light, a soft 20 px edge). Each photo goes through
``load_image`` -> ``preprocess`` -> ``predict_digit`` of this checkout ("after") and of ``mnist_core/digits.py``
at ``--before`` ("before": the preprocessing without evening or Otsu, read from git, no checkout needed).
Printed: accuracy, mean confidence shown, mean confidence of the wrong answers, and (after) how many answers
``how_sure`` flags, of them how many were wrong. The model on the 28x28 originals is the ceiling.

Measured on the project's 2-core CPU machine:

The model on the 28x28 originals: 19/20 right (95%), mean confidence 88%. On the photos:

| lighting | preprocessing | right | mean confidence shown | mean confidence when wrong | flagged (of them wrong) |
|---|---|---|---|---|---|
| even | before | 19/20 | 88% | 28% | - |
| even | after | 19/20 | 89% | 41% | 2 (1) |
| gradient | before | 5/20 | 62% | 61% | - |
| gradient | after | 18/20 | 90% | 59% | 2 (2) |
| shadow | before | 1/20 | 78% | 78% | - |
| shadow | after | 18/20 | 88% | 50% | 3 (2) |

Before, a shadow became ink (the crop took in the shadowed paper) and the model answered wrongly at 61-78%
confidence; after, the photos read almost as well as the originals (18-19 of 20), and all 5 wrong answers
were flagged by ``how_sure`` (low confidence or an un-MNIST look), along with 2 right ones.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/...`: the project's packages

from mnist_core import digits  # noqa: E402
from mnist_core.config import TrainConfig
from mnist_core.data import load_sample  # noqa: E402
from mnist_core.train import train

ROOT = Path(__file__).resolve().parents[1]
BEFORE = "2c4c417b29871c1759889df99b17bf87bcb4d3e5"  # the last digits.py without evening or Otsu


def old_digits(rev: str):
    """``mnist_core/digits.py`` as it was at ``rev``, imported as a module of this checkout's package."""
    source = subprocess.run(
        ["git", "show", f"{rev}:mnist_core/digits.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / "digits_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("mnist_core.digits_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def photo(digit: np.ndarray, lighting: str, rng: np.random.Generator) -> bytes:
    """A 28x28 MNIST digit as a JPEG photo of dark ink on light paper, lit ``even``, ``gradient`` or ``shadow``."""
    ink = np.asarray(Image.fromarray(digit).resize((280, 280), Image.BICUBIC), dtype=np.float32) / 255
    grey = 225 - ink * (225 - 35)
    grey = np.asarray(Image.fromarray(grey.astype(np.uint8)).filter(ImageFilter.GaussianBlur(1.5)), np.float32)
    cols = np.arange(280, dtype=np.float32)[None, :]
    if lighting == "gradient":
        grey = grey * (1 - 0.65 * cols / 279)
    elif lighting == "shadow":
        edge = 280 * 0.45
        grey = grey * (1 - 0.6 / (1 + np.exp(-(cols - edge) / 5)))  # 40% light right of the edge, ~20 px soft
    grey = np.clip(grey + rng.normal(0, 6, grey.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.broadcast_to(grey, (280, 280)).copy()).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=20)
    parser.add_argument("--before", default=BEFORE, help="git revision of the old digits.py")
    parser.add_argument("--save", type=Path, help="a folder to write the photos to, to look at")
    args = parser.parse_args()
    sample = load_sample()
    model = train(TrainConfig(seed=0), sample).model.eval()
    classes = list(sample.classes)
    images, labels = sample.test_images[: args.digits].numpy(), sample.test_labels[: args.digits].numpy()
    before = old_digits(args.before)
    rng = np.random.default_rng(0)
    ceiling = [digits.predict_digit(model, torch.from_numpy(d)).numpy() for d in images]
    ceiling_right = np.mean([p.argmax() == y for p, y in zip(ceiling, labels)])
    print(
        f"the model on the 28x28 originals: {ceiling_right:.0%} right, mean confidence "
        f"{np.mean([p.max() for p in ceiling]):.0%}"
    )
    rows = [
        "| lighting | preprocessing | right | mean confidence shown | mean confidence when wrong | flagged (wrong) |",
        "|---" * 6 + "|",
    ]
    for lighting in ("even", "gradient", "shadow"):
        photos = [photo(d, lighting, rng) for d in images]
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            for i, data in enumerate(photos[:4]):
                (args.save / f"{lighting}_{i}_{labels[i]}.jpg").write_bytes(data)
        for name, module in (("before", before), ("after", digits)):
            probs, flagged, flagged_wrong = [], 0, 0
            for data, label in zip(photos, labels):
                try:
                    prepared = module.preprocess(module.load_image(data))
                    p = module.predict_digit(model, prepared.tensor()).numpy()
                except module.DigitError:
                    p = np.full(10, 0.1)  # no digit found: counted wrong at chance confidence
                    prepared = None
                probs.append(p)
                if name == "after" and prepared is not None and digits.how_sure(p, prepared.final, classes):
                    flagged += 1
                    flagged_wrong += int(p.argmax() != label)
            right = np.array([p.argmax() == y for p, y in zip(probs, labels)])
            conf = np.array([p.max() for p in probs])
            wrong_conf = f"{conf[~right].mean():.0%}" if (~right).any() else "-"
            flags = f"{flagged} ({flagged_wrong})" if name == "after" else "-"
            rows.append(
                f"| {lighting} | {name} | {right.sum()}/{len(right)} | {conf.mean():.0%} | {wrong_conf} | {flags} |"
            )
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
