"""Watch one digit: a canvas component that draws a digit's feature maps and probabilities (mnist_core.watch).

The trainer sends a view of the watched digit about three times a second (about 3 kB of bytes); the page
passes those bytes on, base64-encoded, and the browser paints them, so no image is encoded on the server.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from mnist_core.i18n import _
from mnist_core.watch import DigitView, b64_bytes

_component = st.components.v2.component(
    "mnist.digit_view",
    js=(Path(__file__).with_name("digit_view.js")).read_text(),
    css=".digit-view canvas { width: 100%; display: block; }",  # untranslated: CSS
    isolate_styles=False,  # in the page's own DOM: the browser tests read the canvas's data-*
)


def digit_view_data(
    view: DigitView, digit: np.ndarray, label: int | None, classes: tuple[str, ...], feed: str | None = None
) -> dict:
    """What the canvas draws: the digit (uint8 28x28), its true ``label`` (None for a drawn one), and the view.
    With a ``feed`` address the panel follows the newer views the Train page's chart reads from it."""
    strings = {  # the canvas's words in the visitor's language (digit_view.js fills in the {name}s)
        "drawn": _("your digit"),
        "test": _("a test {digit}"),
        "step": _("after step {step}"),
        "probabilities": _("probabilities"),
        "maps": _("{layer}: {count} maps of {h}x{w}"),
        "conv": _("conv {index}"),  # the layers' names, "conv 1" ... (digit_view.js)
        "canvas": _("one digit's feature maps and probabilities"),
    }
    shown = [_(c) for c in classes]  # a data set's class names ("Trouser"), translated where the catalog has them
    drawn = {"digit": b64_bytes(digit), "label": label, "classes": shown, "feed": feed, "strings": strings}
    return drawn | view.drawn()


def digit_view(data: dict, key: str) -> None:
    """Draw (or repaint) one digit's view."""
    _component(data=data, key=key)
