"""A user's image of a handwritten digit -> a 28x28 MNIST-style input, one visible step at a time.

MNIST was made like this: the ink is cropped to its bounding box, scaled (aspect kept, anti-aliased) so the
longer side is 20 px, and pasted into a 28x28 field so that its centre of mass lands on the centre (14, 14).
A photo first needs what MNIST's scans did not: uneven lighting evened out (a shadow across the paper must not
become ink) and a threshold between ink and paper chosen from the image's own histogram (Otsu's method).
``load_image`` opens untrusted bytes safely, ``preprocess`` repeats MNIST's steps and keeps each one for
display, ``predict_digit`` asks a model, and ``how_sure`` says when its answer deserves little trust: a low
confidence, or an input that does not look like an MNIST digit. ``Familiarity`` says when no training image is
near the input at all (an "X" scribble), where a model still answers "8, 80% sure".
Images follow the project's convention: uint8, 0 background, 255 ink.
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

from .i18n import N_, _
from .model import as_input, evaluating

# Only the everyday raster formats: Pillow's other plugins (EPS runs Ghostscript, for one) are attack surface.
FORMATS = ("PNG", "JPEG")  # what the Predict page offers; JPEG covers the MPO files of many phones
WORK_SIZE = 1024  # larger images are shrunk first: the result is 20 px tall anyway, and filters stay fast
MIN_CONTRAST = 32  # grey levels between paper and the darkest stroke below which we see no digit
INK_THRESHOLD = 0.2 * 255  # after levelling, the least that counts as ink for the bounding box (Otsu may ask more)
NOISE_FLOOR = 0.1 * 255  # after levelling, paper texture and JPEG ringing, set to clean 0 as in MNIST
STRIP_PIXELS = 1 << 20  # a big image is shrunk this many pixels at a time (4 MB in RGBA)
LIGHT_SIDE, LIGHT_FILTER = 64, 15  # the paper's light is estimated at 64 px a side, ignoring marks under 15 px
UNEVEN = 0.2  # paper whose light varies by more than this share of its brightest level is evened out first
# Below this the answer is flagged. Measured on the MNIST sample's 1,000 test digits with the tutorial's defaults
# (10 epochs, seed 0, 90.2% right): answers under 70% sure were right 61% of the time (176 digits), those at or
# above it 96.5% (824); the model's confidence is roughly honest there, so it is shown, and a low one is flagged.
LOW_CONFIDENCE = 0.7
RIGHT_BELOW_LOW = 0.61  # the share of answers under LOW_CONFIDENCE that were right, as measured above
# How an MNIST digit looks once framed, from the embedded sample's 5,000 digits (tests/test_digits.py checks
# them against the sample). Outside these the model is guessing beyond its data.
MNIST_INK_SHARE = (0.025, 0.30)  # share of the 28x28 field brighter than 127: median 0.13, all in 0.029-0.306
MNIST_WIDEST = 1.45  # the ink's width over its height: median 0.8 (taller than wide), 99.5% at most 1.43
MNIST_CENTRE_OFF = 0.5  # px between the centre of mass and the field's centre (MNIST's own rounding)
BOX, FIELD = 20, 28
# A DigitError's message is in the language in use (raised with _(...)); these are English, marked here.
NO_DIGIT = N_(
    "No digit found: the image is blank or a single colour. Draw or upload a digit, dark on light or vice versa."
)
TOO_LARGE = N_("The image is far too large to open safely. Crop or shrink it and try again.")
UNREADABLE = N_("This image could not be processed. Save it again as PNG or JPEG, or try another picture.")
OUT_OF_MEMORY = N_("The image needs more memory than this server can spare. Crop or shrink it and try again.")

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
            raise DigitError(_(OUT_OF_MEMORY)) from exc
        except Exception as exc:  # a Pillow or numpy surprise on a malformed image: plain words, never its text
            raise DigitError(_(UNREADABLE)) from exc

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
        raise DigitError(_("The file is empty: upload a PNG or JPEG image of a digit."))
    try:
        img = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
    except UnidentifiedImageError as exc:
        raise DigitError(_("This file is not an image we can read; upload a PNG or JPEG image.")) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # Pillow's own, global limit
        raise DigitError(_(TOO_LARGE)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DigitError(_("The image file is damaged or truncated; save it again and re-upload.")) from exc
    w, h = img.size
    if w * h > max_pixels:  # our own limit, checked before a single pixel is decoded
        raise DigitError(
            _(
                "The image is {width:,} x {height:,} pixels ({megapixels:.0f} megapixels); the limit is {most:g} "
                "megapixels. Crop or shrink it and try again."
            ).format(width=w, height=h, megapixels=w * h / 1e6, most=max_pixels / 1e6)
        )
    img.draft("L" if img.mode == "L" else "RGB", (2 * WORK_SIZE, 2 * WORK_SIZE))  # JPEG: decode at reduced size
    try:
        img.load()  # decode now, so a truncated or corrupt file fails here and not halfway through preprocessing
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DigitError(_(TOO_LARGE)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise DigitError(_("The image file is damaged or truncated; save it again and re-upload.")) from exc
    img = _shrink(img, WORK_SIZE)  # at once: the full-size decode is let go before any other copy is made
    try:
        img = ImageOps.exif_transpose(img)  # phone photos are stored sideways with an orientation tag
    except Exception:  # a broken EXIF block should not cost the user the picture; orientation is a nicety
        pass
    try:
        return _flatten(img)
    except ValueError as exc:  # a colour mode Pillow cannot convert
        message = _("The image's colour mode {mode} is not supported; save it as PNG or JPEG.")
        raise DigitError(message.format(mode=img.mode)) from exc


@_user_errors
def digits_from_canvas(rgba: np.ndarray, max_pixels: int = 25_000_000) -> Image.Image:
    """A drawing canvas's (H, W, 4) RGBA array (strokes on transparent) -> an "L" or "RGB" image on white paper."""
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise DigitError(f"expected an (H, W, 4) RGBA canvas, got an array of shape {a.shape}.")
    if a.shape[0] * a.shape[1] > max_pixels:
        raise DigitError(_(TOO_LARGE))
    if a.size == 0:
        raise DigitError(_(NO_DIGIT))
    if a.dtype != np.uint8:  # some canvases hand back floats, in 0-1 or 0-255
        a = np.nan_to_num(a.astype(np.float32))
        a = np.clip(np.rint(a * (255 if a.max(initial=0) <= 1 else 1)), 0, 255).astype(np.uint8)
    return _flatten(Image.fromarray(np.ascontiguousarray(a), "RGBA" if a.shape[2] == 4 else "RGB"))


# --------------------------------------------------------------------------- MNIST's steps


@dataclass(frozen=True)
class Preprocessed:
    """Every step from the user's image to the model's input, each a uint8 array (0 background, 255 ink)."""

    grey: np.ndarray  # the image in greyscale (shrunk to at most WORK_SIZE px a side)
    inverted: np.ndarray  # ink bright on dark, as in MNIST; uneven lighting evened out first where there was any
    was_inverted: bool  # whether the image was dark ink on a light background
    evened: bool  # whether the paper's light was uneven (a shadow, a lamp to one side) and was evened out
    threshold: int  # the grey level of ``inverted`` above which a pixel counts as ink (Otsu's, or the floor)
    ink: np.ndarray  # ``inverted`` thresholded: 255 where ink was found, 0 elsewhere
    cropped: np.ndarray  # paper removed, contrast stretched to 0-255, cropped to the ink's bounding box
    fitted: np.ndarray  # scaled so the longer side is 20 px, aspect ratio kept
    final: np.ndarray  # (28, 28): fitted, its centre of mass on the centre (14, 14)

    def steps(self) -> list[tuple[str, np.ndarray]]:
        """(title, array) of each step in order, for display."""
        inverted = {
            (True, False): _("Inverted: ink bright on dark"),
            (True, True): _("Inverted: ink bright on dark, shadow evened out"),
            (False, False): _("Already ink bright on dark"),
            (False, True): _("Already ink bright on dark, shadow evened out"),
        }[self.was_inverted, self.evened]
        height, width = self.fitted.shape
        return [
            (_("Greyscale"), self.grey),
            (inverted, self.inverted),
            (_("Ink: brighter than {threshold} (Otsu)").format(threshold=self.threshold), self.ink),
            (_("Cropped to the ink"), self.cropped),
            (_("Scaled to {box} px ({width}x{height})").format(box=BOX, width=width, height=height), self.fitted),
            (_("Centred by mass in {field}x{field}").format(field=FIELD), self.final),
        ]

    def tensor(self) -> torch.Tensor:
        """The final image as the project holds MNIST images: uint8 (1, 28, 28)."""
        return torch.from_numpy(self.final.copy()).unsqueeze(0)


def _border(a: np.ndarray) -> np.ndarray:
    return np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])


def otsu_threshold(image: np.ndarray) -> int:
    """Otsu's threshold of a uint8 image: the level t that best splits its histogram into two classes
    (<= t and > t) by maximising the variance between them; 0 for an image of one grey."""
    hist = np.bincount(np.asarray(image, dtype=np.uint8).ravel(), minlength=256).astype(np.float64)
    levels = np.arange(256)
    below, mass = np.cumsum(hist), np.cumsum(hist * levels)  # pixels and grey-sum at or below each level
    above = below[-1] - below
    with np.errstate(divide="ignore", invalid="ignore"):
        between = below * above * (mass / below - (mass[-1] - mass) / above) ** 2
    between = np.nan_to_num(between[:-1], nan=-1.0)  # the last level leaves nothing above it
    return int(np.argmax(between)) if between.max() > 0 else 0


def _even_lighting(grey: np.ndarray, dark_ink: bool) -> tuple[np.ndarray, bool] | None:
    """(``grey`` with the paper's uneven light taken out, whether the ink is dark), or None when the light
    is even enough to leave the image as it is (``dark_ink`` then stands, as the border's tone said).

    The paper's level under each pixel is estimated at ``LIGHT_SIDE`` px: a grey closing (for dark ink) or
    opening (for light ink) ``LIGHT_FILTER`` px wide wipes out strokes narrower than that (about a fifth of
    the image), leaving the paper with its shadows, which is then smoothed and scaled back up. Dividing by it
    is what a shadow did: it multiplied the light reaching paper and ink alike. With a shadow across the border, the
    border's tone cannot say which is ink, so the side that stands out more from its local paper is the ink.
    """
    img = Image.fromarray(grey)
    scale = LIGHT_SIDE / max(img.size)
    if scale >= 1:
        return None  # too small an image to tell a shadow from a stroke
    small = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BOX)
    wide = (ImageFilter.MaxFilter(LIGHT_FILTER), ImageFilter.MinFilter(LIGHT_FILTER))
    closing = small.filter(wide[0]).filter(wide[1])  # the paper under dark strokes
    opening = small.filter(wide[1]).filter(wide[0])  # the board under light strokes
    paper = np.asarray(closing if dark_ink else opening, dtype=np.float32)
    low, high = np.percentile(paper, [2, 98])
    if high - low <= UNEVEN * max(high, 1.0):
        return None
    at = np.asarray(small, dtype=np.float32)
    dark_ink = bool((np.asarray(closing, np.float32) - at).sum() > (at - np.asarray(opening, np.float32)).sum())
    light = (closing if dark_ink else opening).filter(ImageFilter.BoxBlur(2)).resize(img.size, Image.BILINEAR)
    light = np.asarray(light, dtype=np.float32)
    if dark_ink:  # paper to 255 everywhere, ink in proportion
        return np.clip(grey * (255 / np.maximum(light, 1.0)), 0, 255).astype(np.uint8), True
    return np.clip(grey - light + float(np.percentile(light, 2)), 0, 255).astype(np.uint8), False  # the board evened


def _crop_ink(inverted: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Subtract the paper's level, stretch the darkest stroke to 255 and crop to the ink's bounding box.

    Ink is what lies above Otsu's threshold of the image, and at least ``INK_THRESHOLD`` of the stroke's
    contrast above the paper. Returns (cropped, threshold, ink mask as 0/255).
    """
    img = inverted.astype(np.float32)
    paper = float(np.median(_border(img)))
    # A 3x3 median drops lone specks (sensor noise, JPEG speckle) before we look for the ink, but it also
    # erases 1-px strokes, so a drawing made only of those is measured unfiltered. It can also invent ink
    # (a paper pixel ringed by dots): when its box holds none, the unfiltered image is measured instead.
    smooth = np.asarray(Image.fromarray(inverted).filter(ImageFilter.MedianFilter(3)), dtype=np.uint8)
    for ref in (smooth, inverted):
        contrast = float(ref.max()) - paper
        if contrast < MIN_CONTRAST:
            continue
        ink = np.clip((img - paper) * (255 / contrast), 0, 255)
        ink[ink < NOISE_FLOOR] = 0
        threshold = max(otsu_threshold(ref), int(paper + INK_THRESHOLD * contrast / 255))
        mask = ref > threshold
        if not mask.any():
            continue
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        cropped = np.rint(ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]).astype(np.uint8)
        if cropped.any():
            return cropped, threshold, mask.astype(np.uint8) * 255
    raise DigitError(_(NO_DIGIT))


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
        raise DigitError(_(NO_DIGIT))
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
        raise DigitError(_(NO_DIGIT))
    img = _flatten(_shrink(image, WORK_SIZE)).convert("L")
    grey = np.asarray(img, dtype=np.uint8)
    # Ink is whatever lies further from the paper's tone: dark ink on light (even dim grey) paper is inverted,
    # because MNIST wants the ink bright.
    paper = float(np.median(_border(grey)))
    was_inverted = bool(paper - grey.min() > grey.max() - paper)
    evened = _even_lighting(grey, dark_ink=was_inverted)
    level = grey
    if evened is not None:
        level, was_inverted = evened
    inverted = 255 - level if was_inverted else level.copy()
    cropped, threshold, ink = _crop_ink(inverted)
    fitted = _fit(cropped)
    return Preprocessed(
        grey, inverted, was_inverted, evened is not None, threshold, ink, cropped, fitted, _centre(fitted)
    )


def predict_digit(model: torch.nn.Module, image_28: torch.Tensor) -> torch.Tensor:
    """The 10 class probabilities (float, CPU) of ``model`` for one uint8 (28, 28) or (1, 28, 28) image."""
    if tuple(image_28.shape) not in ((28, 28), (1, 28, 28)):
        raise ValueError(f"expected one (28, 28) or (1, 28, 28) image, got shape {tuple(image_28.shape)}")
    x = as_input(image_28.reshape(1, 28, 28), next(model.parameters()).device)
    with torch.inference_mode(), evaluating(model):
        return torch.softmax(model.logits(x), dim=1)[0].float().cpu()


def look_of(final: np.ndarray) -> tuple[float, float, float]:
    """(ink share, width / height of the ink, distance in px of the centre of mass from (14, 14)) of a framed
    28x28 image: what ``how_sure`` compares with MNIST's digits."""
    ink = final > 127
    share = float(ink.mean())
    on = final > 0
    rows, cols = np.flatnonzero(on.any(axis=1)), np.flatnonzero(on.any(axis=0))
    if len(rows) == 0:
        return 0.0, 0.0, 0.0
    aspect = (cols[-1] - cols[0] + 1) / (rows[-1] - rows[0] + 1)
    weights = final.astype(np.float64)
    r, c = np.indices(final.shape)
    cy, cx = (weights * r).sum() / weights.sum(), (weights * c).sum() / weights.sum()
    return share, float(aspect), float(np.hypot(cy - FIELD / 2, cx - FIELD / 2))


def how_sure(probs: np.ndarray | torch.Tensor, final: np.ndarray, classes: list[str] | tuple[str, ...]) -> list[str]:
    """Warnings about one prediction, for the user: a low confidence, and an input unlike MNIST's digits
    (where even a confident answer is a guess). Empty when neither applies."""
    return [w for w in (confidence_warning(probs, classes), look_warning(final)) if w]


def confidence_warning(probs: np.ndarray | torch.Tensor, classes: list[str] | tuple[str, ...]) -> str | None:
    """A message when the model's answer is under LOW_CONFIDENCE sure, else None."""
    p = np.asarray(probs, dtype=np.float64)
    best = int(p.argmax())
    if p[best] >= LOW_CONFIDENCE:
        return None
    runner_up = int(np.argsort(p)[-2])
    return _(
        "Not sure: {best:.0%} for {best_class}, {second:.0%} for {second_class}. On MNIST's own test digits, answers "
        "under {low:.0%} sure were right only {right:.0%} of the time."
    ).format(
        best=p[best],
        best_class=_(classes[best]),
        second=p[runner_up],
        second_class=_(classes[runner_up]),
        low=LOW_CONFIDENCE,
        right=RIGHT_BELOW_LOW,
    )


def look_warning(final: np.ndarray) -> str | None:
    """A message saying how a framed image differs from MNIST's digits (ink, shape, centre), else None."""
    share, aspect, off = look_of(final)
    low, high = MNIST_INK_SHARE
    looks = []
    if share > high:
        looks.append(
            _(
                "it has more ink ({share:.0%} of the field) than almost any MNIST digit (at most {most:.0%}): a thick "
                "pen, a filled shape, or a shadow or paper edge taken for ink"
            ).format(share=share, most=high)
        )
    elif share < low:
        looks.append(
            _(
                "it has less ink ({share:.1%} of the field) than almost any MNIST digit (at least {least:.1%}): a thin "
                "pen, or a faint stroke; write bolder"
            ).format(share=share, least=low)
        )
    if aspect > MNIST_WIDEST:
        looks.append(
            _(
                "it is {aspect:.1f}x as wide as tall, wider than MNIST's digits (at most {most}x): two digits, or one "
                "lying on its side"
            ).format(aspect=aspect, most=MNIST_WIDEST)
        )
    if off > 1.0:
        looks.append(
            _("its centre of mass sits {off:.1f} px off the centre, where MNIST's sit within {most} px").format(
                off=off, most=MNIST_CENTRE_OFF
            )
        )
    if not looks:
        return None
    return _(
        "This does not look like an MNIST digit, so the answer may be a guess however sure it seems: {looks}."
    ).format(looks=_("; ").join(looks))


# A drawing is "unfamiliar" when its NEAREST_K-th nearest training image (pixels, Euclidean) is farther than it is
# for FAMILIAR_SHARE of real held-out digits. Measured on the sample with the tutorial's run: an X, a #, a star, a
# square and a triangle were all beyond the 95th percentile (8.0-11.4 against 7.7), drawn 7, 1 and 0 within it
# (2.9-6.7), and the model called the star "4, 93% sure". The network's own features separated them worse.
NEAREST_K = 5
FAMILIAR_SHARE = 0.975
HELD_OUT = 500  # test images that set the limit: enough for a 97.5th percentile, quick on 60,000 training images
_CHUNK = 8_192  # training images compared at once: 25 MB of floats, whatever the data set's size


@dataclass(frozen=True)
class Familiarity:
    """How near a drawing is to the training images, against how near real held-out digits are."""

    train: torch.Tensor  # (N, 784) uint8, the data set's own training images (not copied)
    norms: torch.Tensor  # (N,) their squared lengths, as floats in [0, 1] pixels
    limit: float  # the NEAREST_K-th neighbour's distance that FAMILIAR_SHARE of held-out digits stay within

    @classmethod
    def of(cls, train_images: torch.Tensor, test_images: torch.Tensor) -> Familiarity:
        train = train_images.reshape(len(train_images), -1)
        norms = torch.cat([(c.float() / 255).square().sum(1) for c in train.split(_CHUNK)])
        held = test_images[torch.linspace(0, len(test_images) - 1, min(HELD_OUT, len(test_images))).long()]
        distances = _kth_nearest(held.reshape(len(held), -1), train, norms)
        return cls(train, norms, float(torch.quantile(distances, FAMILIAR_SHARE)))

    def distance(self, image_28: np.ndarray | torch.Tensor) -> float:
        """The distance from one framed 28x28 uint8 image to its NEAREST_K-th nearest training image."""
        x = torch.as_tensor(np.asarray(image_28, dtype=np.uint8)).reshape(1, -1)
        return float(_kth_nearest(x, self.train, self.norms)[0])

    def warning(self, image_28: np.ndarray | torch.Tensor) -> str | None:
        """A message when the image is unlike every training image, else None."""
        d = self.distance(image_28)
        if d <= self.limit:
            return None
        return _(
            "This does not look like anything the network learned from: no training image is near it (distance "
            "{distance:.1f}, where {share:.1%} of real test images are within {limit:.1f}). The network must still "
            "pick one of its classes, so its answer is a guess however sure it looks."
        ).format(distance=d, share=FAMILIAR_SHARE, limit=self.limit)


def _kth_nearest(queries: torch.Tensor, train: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """The Euclidean distance (pixels in [0, 1]) from each uint8 query row to its NEAREST_K-th nearest row of
    ``train``, in chunks: ||q||^2 + ||t||^2 - 2 q.t, without a float copy of the whole training set."""
    q = queries.float() / 255
    q_norms = q.square().sum(1, keepdim=True)
    best = []
    for start in range(0, len(train), _CHUNK):
        t = train[start : start + _CHUNK].float() / 255
        d2 = q_norms + norms[start : start + _CHUNK] - 2 * q @ t.T
        best.append(d2.topk(min(NEAREST_K, d2.shape[1]), dim=1, largest=False).values)
    d2 = torch.cat(best, dim=1).topk(NEAREST_K, dim=1, largest=False).values[:, -1]
    return d2.clamp_min(0).sqrt()
