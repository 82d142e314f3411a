"""Watch one digit: a canvas component that draws a digit's feature maps and probabilities (mnist_core.watch).

The trainer sends a view of the watched digit about three times a second (about 3 kB of bytes); the page
passes those bytes on, base64-encoded, and the browser paints them, so no image is encoded on the server.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import streamlit as st

from mnist_core.watch import DigitView

_component = st.components.v2.component(
    "mnist.digit_view",
    js=(Path(__file__).with_name("digit_view.js")).read_text(),
    css=".digit-view canvas { width: 100%; display: block; }",
    isolate_styles=False,  # in the page's own DOM: the browser tests read the canvas's data-*
)


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.uint8).tobytes()).decode()


def digit_view_data(view: DigitView, digit: np.ndarray, label: int | None, classes: tuple[str, ...]) -> dict:
    """What the canvas draws: the digit (uint8 28x28), its true ``label`` (None for a drawn one), and the view."""
    return {
        "digit": _b64(digit),
        "label": label,
        "classes": list(classes),
        "step": view.step,
        "layers": [
            {"name": f"conv {i}", "c": c, "h": h, "w": w, "data": _b64(m.data)}
            for i, m in enumerate(view.maps, start=1)
            for c, h, w in [m.data.shape]
        ],
        "probs": [round(float(v), 4) for v in view.probs],
    }


def digit_view(data: dict, key: str) -> None:
    """Draw (or repaint) one digit's view."""
    _component(data=data, key=key)
