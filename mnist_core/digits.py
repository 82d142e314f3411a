"""A user's image of a handwritten digit -> a 28x28 MNIST-style input, one visible step at a time.

MNIST was made like this: the ink is cropped to its bounding box, scaled (aspect kept, anti-aliased) so the
longer side is 20 px, and pasted into a 28x28 field so that its centre of mass lands on the centre (14, 14).
``load_image`` opens untrusted bytes safely, ``preprocess`` repeats MNIST's steps and keeps each one for
display, ``predict_digit`` asks a model. Images follow the project's convention: uint8, 0 background, 255 ink.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np
import torch
from PIL import Image, ImageFilter, ImageOps, UnidentifiedImageError

from .model import as_input

# Only the everyday raster formats: Pillow's other plugins (EPS runs Ghostscript, for one) are attack surface.
FORMATS = ("PNG", "JPEG")  # what the Predict page offers; JPEG covers the MPO files of many phones
WORK_SIZE = 1024  # larger images are shrunk first: the result is 20 px tall anyway, and filters stay fast
MIN_CONTRAST = 32  # grey levels between paper and the darkest stroke below which we see no digit
INK_THRESHOLD = 0.2 * 255  # after levelling, what counts as ink for the bounding box
NOISE_FLOOR = 0.1 * 255  # after levelling, paper texture and JPEG ringing, set to clean 0 as in MNIST
STRIP_PIXELS = 1 << 20  # a big image is shrunk this many pixels at a time (4 MB in RGBA)
BOX, FIELD = 20, 28
NO_DIGIT = "No digit found: the image is blank or a single colour. Draw or upload a digit, dark on light or vice versa."
TOO_LARGE = "The image is far too large to open safely. Crop or shrink it and try again."
UNREADABLE = "This image could not be processed. Save it again as PNG or JPEG, or try another picture."
OUT_OF_MEMORY = "The image needs more memory than this server can spare. Crop or shrink it and try again."

Params = ParamSpec("Params")
Result = TypeVar("Result")


class DigitError(Exception):
    """An image could not be read or holds no digit; the message is meant for the user."""


def _user_errors(func: Callable[Params, Result]) -> Callable[Params, Result]:
    """The last line of defence of a public function: whatever goes wrong reaches the user as a ``DigitError``."""

    @functools.wraps(func)
    def wrapper(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        try:
            return func(*args, **kwargs)
        except DigitError:
            raise
        except MemoryError as exc:
            raise DigitError(OUT_OF_MEMORY) from exc
        except Exception as exc:  # a Pillow or numpy surprise on a malformed image: plain words, never its text
            raise DigitError(UNREADABLE) from exc

    return wrapper


# --------------------------------------------------------------------------- loading


def _averageable(img: Image.Image) -> str:
    """The mode in which ``img`` can be area-averaged without losing its look: palettes and bits are expanded."""
    if img.mode in ("P", "PA") or (img.mode in ("L", "RGB") and "transparency" in img.info):
        return "RGBA"  # palette indices and colour keys cannot be averaged; their colours and alpha can
    if img.mode == "1":
        return "L"
    if img.mode.startswith("I;16"):
        return "I"
    return img.mode if img.mode in ("L", "LA", "RGB", "RGBA", "I", "F") else "RGB"


def _shrink(img: Image.Image, side: int) -> Image.Image:
    """``img`` with its longer side at most ``side`` px, area-averaged; small images are returned as they are.

    The big image is averaged a strip at a time by a whole factor, so no second full-size copy is ever made
    (Pillow's own resize of an RGBA image makes two); the small result is then resized exactly.
    """
    if max(img.size) <= side:
        return img
    factor = max(1, max(img.size) // side)
    mode = _averageable(img)
    if factor > 1 or mode != img.mode:
        w, h = img.size
        rows = factor * max(1, STRIP_PIXELS // (w * factor))  # a whole number of factor-high bands
        small = Image.new(mode, (-(-w // factor), -(-h // factor)))
        for top in range(0, h, rows):
            strip = img.crop((0, top, w, min(h, top + rows))).convert(mode)  # crop keeps palette and transparency
            small.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
        small.info.update((k, v) for k, v in img.info.items() if k in ("exif", "xmp"))  # for exif_transpose
        img = small
    scale = side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BOX)


def _flatten(img: Image.Image) -> Image.Image:
    """``img`` without alpha ("L" or "RGB"): transparency is composited onto white, a see-through page is paper.

    When that leaves nothing to see (white or pale ink on a transparent page), the opaque pixels are the
    drawing: the alpha channel is taken as the ink, dark on white.
    """
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16/32-bit greyscale: Pillow's convert("L") would clip
        a = np.nan_to_num(np.asarray(img, dtype=np.float32))  # float32: half the memory of float64, ample for 16 bits
        return Image.fromarray(np.clip(a * (255 / max(float(a.max(initial=0)), 255.0)), 0, 255).astype(np.uint8))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        on_white = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
        lo, hi = on_white.convert("L").getextrema()
        alpha = rgba.getchannel("A")
        a_lo, a_hi = alpha.getextrema()
        if hi - lo < MIN_CONTRAST <= a_hi - a_lo:
            return ImageOps.invert(alpha)
        return on_white
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


@_user_errors
def load_image(data: bytes, max_pixels: int = 25_000_000) -> Image.Image:
    """Open untrusted bytes as an upright "L" or "RGB" image, or raise ``DigitError`` saying what is wrong.

    Memory stays bounded: the size is checked from the header before any pixel is decoded, JPEGs are decoded
    at reduced scale, and the image is shrunk to ``WORK_SIZE`` right after decoding.
    """
    if not data:
        raise DigitError("The file is empty: upload a PNG or JPEG image of a digit.")
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
    except UnidentifiedImageError as exc:
        raise DigitError("This file is not an image we can read; upload a PNG or JPEG image.") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # Pillow's own, global limit
        raise DigitError(TOO_LARGE) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DigitError("The image file is damaged or truncated; save it again and re-upload.") from exc
    w, h = img.size
    if w * h > max_pixels:  # our own limit, checked before a single pixel is decoded
        raise DigitError(
            f"The image is {w:,} x {h:,} pixels ({w * h / 1e6:.0f} megapixels); the limit is "
            f"{max_pixels / 1e6:g} megapixels. Crop or shrink it and try again."
        )
    img.draft("L" if img.mode == "L" else "RGB", (2 * WORK_SIZE, 2 * WORK_SIZE))  # JPEG: decode at reduced size
    try:
        img.load()  # decode now, so a truncated or corrupt file fails here and not halfway through preprocessing
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DigitError(TOO_LARGE) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DigitError("The image file is damaged or truncated; save it again and re-upload.") from exc
    img = _shrink(img, WORK_SIZE)  # at once: the full-size decode is let go before any other copy is made
    try:
        img = ImageOps.exif_transpose(img)  # phone photos are stored sideways with an orientation tag
    except Exception:  # a broken EXIF block should not cost the user the picture; orientation is a nicety
        pass
    try:
        return _flatten(img)
    except ValueError as exc:  # a colour mode Pillow cannot convert
        raise DigitError(f"The image's colour mode {img.mode} is not supported; save it as PNG or JPEG.") from exc


@_user_errors
def digits_from_canvas(rgba: np.ndarray, max_pixels: int = 25_000_000) -> Image.Image:
    """A drawing canvas's (H, W, 4) RGBA array (strokes on transparent) -> an "L" or "RGB" image on white paper."""
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise DigitError(f"expected an (H, W, 4) RGBA canvas, got an array of shape {a.shape}.")
    if a.shape[0] * a.shape[1] > max_pixels:
        raise DigitError(TOO_LARGE)
    if a.size == 0:
        raise DigitError(NO_DIGIT)
    if a.dtype != np.uint8:  # some canvases hand back floats, in 0-1 or 0-255
        a = np.nan_to_num(a.astype(np.float32))
        a = np.clip(np.rint(a * (255 if a.max(initial=0) <= 1 else 1)), 0, 255).astype(np.uint8)
    return _flatten(Image.fromarray(np.ascontiguousarray(a), "RGBA" if a.shape[2] == 4 else "RGB"))


# --------------------------------------------------------------------------- MNIST's steps


@dataclass(frozen=True)
class Preprocessed:
    """Every step from the user's image to the model's input, each a uint8 array (0 background, 255 ink)."""

    grey: np.ndarray  # the image in greyscale (shrunk to at most WORK_SIZE px a side)
    inverted: np.ndarray  # ink bright on dark, as in MNIST
    was_inverted: bool  # whether the image was dark ink on a light background
    cropped: np.ndarray  # paper removed, contrast stretched to 0-255, cropped to the ink's bounding box
    fitted: np.ndarray  # scaled so the longer side is 20 px, aspect ratio kept
    final: np.ndarray  # (28, 28): fitted, its centre of mass on the centre (14, 14)

    def steps(self) -> list[tuple[str, np.ndarray]]:
        """(title, array) of each step in order, for display."""
        return [
            ("Greyscale", self.grey),
            ("Inverted: ink bright on dark" if self.was_inverted else "Already ink bright on dark", self.inverted),
            ("Cropped to the ink", self.cropped),
            (f"Scaled to {BOX} px ({self.fitted.shape[1]}x{self.fitted.shape[0]})", self.fitted),
            (f"Centred by mass in {FIELD}x{FIELD}", self.final),
        ]

    def tensor(self) -> torch.Tensor:
        """The final image as the project holds MNIST images: uint8 (1, 28, 28)."""
        return torch.from_numpy(self.final.copy()).unsqueeze(0)


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def _crop_ink(inverted: np.ndarray) -> np.ndarray:
    """Subtract the paper's level, stretch the darkest stroke to 255 and crop to the ink's bounding box."""
    img = inverted.astype(np.float32)
    paper = float(np.median(_border(img)))
    # A 3x3 median drops lone specks (sensor noise, JPEG speckle) before we look for the ink, but it also
    # erases 1-px strokes, so a drawing made only of those is measured unfiltered. It can also invent ink
    # (a paper pixel ringed by dots): when its box holds none, the unfiltered image is measured instead.
    smooth = np.asarray(Image.fromarray(inverted).filter(ImageFilter.MedianFilter(3)), dtype=np.float32)
    for ref in (smooth, img):
        contrast = float(ref.max()) - paper
        if contrast < MIN_CONTRAST:
            continue
        ink = np.clip((img - paper) * (255 / contrast), 0, 255)
        ink[ink < NOISE_FLOOR] = 0
        mask = (ref - paper) * (255 / contrast) > INK_THRESHOLD
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        cropped = np.rint(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]).astype(np.uint8)
        if cropped.any():
            return cropped
    raise DigitError(NO_DIGIT)


def _fit(cropped: np.ndarray) -> np.ndarray:
    """Longer side to 20 px: area-averaging when shrinking (MNIST's anti-aliasing), Lanczos when growing."""
    h, w = cropped.shape
    scale = BOX / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    fitted = np.asarray(Image.fromarray(cropped).resize(size, Image.BOX if scale < 1 else Image.LANCZOS))
    peak = int(fitted.max())
    # A thin pen on a big page comes out faint after shrinking; MNIST's strokes reach full ink.
    return np.clip(fitted.astype(np.float32) * (255 / peak), 0, 255).round().astype(np.uint8) if peak else fitted


def _centre(fitted: np.ndarray) -> np.ndarray:
    """Paste ``fitted`` into a 28x28 field so that its centre of mass lands on (14, 14), as MNIST did."""
    weights = fitted.astype(np.float64)
    rows, cols = np.indices(fitted.shape)
    total = weights.sum()
    if not total > 0:  # no ink left to weigh (also catches NaN): there is no centre of mass to use
        raise DigitError(NO_DIGIT)
    cy, cx = (weights * rows).sum() / total, (weights * cols).sum() / total
    h, w = fitted.shape
    top = min(max(int(np.floor(FIELD / 2 - cy + 0.5)), 0), FIELD - h)  # floor(x + .5): no banker's rounding
    left = min(max(int(np.floor(FIELD / 2 - cx + 0.5)), 0), FIELD - w)
    final = np.zeros((FIELD, FIELD), dtype=np.uint8)
    final[top : top + h, left : left + w] = fitted
    return final


@_user_errors
def preprocess(image: Image.Image) -> Preprocessed:
    """MNIST's framing of ``image``: greyscale, ink bright, cropped, 20 px, centred by mass in 28x28."""
    if min(image.size) < 1:
        raise DigitError(NO_DIGIT)
    img = _flatten(_shrink(image, WORK_SIZE)).convert("L")
    grey = np.asarray(img, dtype=np.uint8)
    # Ink is whatever lies further from the paper's tone: dark ink on light (even dim grey) paper is inverted,
    # because MNIST wants the ink bright.
    paper = float(np.median(_border(grey)))
    was_inverted = bool(paper - grey.min() > grey.max() - paper)
    inverted = 255 - grey if was_inverted else grey.copy()
    cropped = _crop_ink(inverted)
    fitted = _fit(cropped)
    return Preprocessed(grey, inverted, was_inverted, cropped, fitted, _centre(fitted))


def predict_digit(model: torch.nn.Module, image_28: torch.Tensor) -> torch.Tensor:
    """The 10 class probabilities (float, CPU) of ``model`` for one uint8 (28, 28) or (1, 28, 28) image."""
    if tuple(image_28.shape) not in ((28, 28), (1, 28, 28)):
        raise ValueError(f"expected one (28, 28) or (1, 28, 28) image, got shape {tuple(image_28.shape)}")
    x = as_input(image_28.reshape(1, 28, 28), next(model.parameters()).device)
    with torch.inference_mode():
        return torch.softmax(model.logits(x), dim=1)[0].float().cpu()
