"""Why a saved run answers as it does: the attribution method's choice and heat-maps, for Predict and Report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from mnist_core.explain import METHODS, explain, heat_png
from mnist_core.i18n import N_, _
from mnist_core.runs import Run

HOW_TO_READ = N_(  # shown with _(HOW_TO_READ)
    "Captum's attributions. Integrated Gradients shares the score's change from a blank image out over the pixels; "
    "Saliency shows where a small change would move the score most; Occlusion, how much the score drops when each "
    "4x4 patch is blanked."
)


def method_choice(key: str) -> str:
    """The attribution method, Integrated Gradients first: it is signed, so it shows what speaks against too."""
    return st.radio(
        _("Attribution method"),
        list(METHODS),
        index=list(METHODS).index("integrated_gradients"),
        format_func=lambda method: _(METHODS[method]),
        horizontal=True,
        key=key,
    )


@st.cache_data(max_entries=16, show_spinner=False)  # its spinner is drawn by the caller, in the language in use
def _mistake_maps(path: str, saved_at: float, method: str, _run: Run, _digits: tuple[np.ndarray, ...],
                  pairs: tuple[tuple[int, int], ...]) -> list[bytes]:  # fmt: skip
    return [
        heat_png(d, [explain(_run.model, d, said, method).heat, explain(_run.model, d, true, method).heat], scale=4)
        for d, (said, true) in zip(_digits, pairs)
    ]


def mistake_maps(run: Run, images, mistakes: pd.DataFrame, classes: list[str]) -> None:
    """For each of the run's confident mistakes: what spoke for the wrong answer, and for the right one."""
    method = method_choice(f"why_mistakes_{run.run_id}")
    digits = tuple(images[int(i)].numpy() for i in mistakes["index"])
    pairs = tuple((int(p), int(t)) for t, p in mistakes[["true", "predicted"]].itertuples(index=False))
    saved_at = run.path.joinpath("run.json").stat().st_mtime
    with st.spinner(_("Explaining the mistakes...")):
        maps = _mistake_maps(str(run.path), saved_at, method, run, digits, pairs)
    st.image(
        maps,
        caption=[
            _("#{index}: for {said} | for {true}").format(index=int(i), said=classes[p], true=classes[t])
            for i, (p, t) in zip(mistakes["index"], pairs)
        ],
        width=228,
    )
    st.caption(_("Left, what made it say the wrong class; right, what spoke for the true one.") + " " + _(HOW_TO_READ))
