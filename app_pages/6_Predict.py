"""Predict: upload or draw a digit, see it prepared the way MNIST was made, and ask a trained run."""

import numpy as np
import streamlit as st

from mnist_core.data import DATASETS
from mnist_core.digits import (
    DigitError,
    confidence_warning,
    digits_from_canvas,
    load_image,
    look_warning,
    predict_digit,
    preprocess,
)
from mnist_core.explain import explain, heat_tile, top_two
from mnist_core.i18n import _
from mnist_core.outcomes import Ending
from mnist_core.visual import square_tile
from ui.charts import probability_figure
from ui.common import familiarity, next_step
from ui.inside import DRAWN_KEY
from ui.state import chosen_run
from ui.why import HOW_TO_READ, method_choice

st.title(_("Predict your own digit"))
run = chosen_run(
    _("Model (a saved run)"),
    key="predict_run",
    empty=_("There is no trained run yet. Train one on the **Train** page, then come back to try your handwriting."),
)
if run.meta.status == Ending.DIVERGED or not run.weights_finite:
    st.warning(
        _(
            "This run diverged: its weights are not finite numbers (NaN), so its answers would mean nothing. "
            "Choose another run."
        )
    )
    st.stop()
if run.config.dataset != "mnist":
    st.info(
        _("This run was trained on {dataset}: it will answer with clothing classes, not digits.").format(
            dataset=run.config.dataset
        )
    )

try:
    from streamlit_drawable_canvas import st_canvas
except Exception:  # optional, and it must not take the page down if it fails to load: upload always works
    st_canvas = None

SOURCES = {"upload": _("Upload an image"), "draw": _("Draw it")}
source = st.radio(
    _("Digit from"),
    list(SOURCES) if st_canvas else ["upload"],
    horizontal=True,
    format_func=SOURCES.get,
    key="predict_source",
)
image = None
# load_image, digits_from_canvas and preprocess raise nothing but DigitError, whose message is for the user.
try:
    if source == "draw":
        drawn = st_canvas(
            stroke_width=18,
            stroke_color="#000000",
            background_color="#FFFFFF",
            height=280,
            width=280,
            drawing_mode="freedraw",
            return_image_data=True,
            key="canvas",
        )
        pixels = drawn.image_data
        # nothing drawn yet, or the pad reset (it is then white, not transparent): ask, do not call it an error
        if pixels is None or pixels[..., 3].max() == 0 or pixels[..., :3].min() >= 250:
            st.info(_("Draw a digit in the box with the mouse or a finger."))
        else:
            image = digits_from_canvas(drawn.image_data)
    else:
        upload = st.file_uploader(
            _("A photo or scan of one digit (PNG or JPEG)"), type=["png", "jpg", "jpeg"], key="predict_upload"
        )
        if upload is None:
            st.info(
                _(
                    "Upload a picture of a single handwritten digit: any size, any colours, dark on light or "
                    "light on dark."
                )
            )
        else:
            image = load_image(upload.getvalue())
    if image is None:
        st.stop()
    prepared = preprocess(image)
except DigitError as exc:
    st.error(str(exc))
    st.stop()

st.subheader(_("Prepared the way MNIST was made"))
st.caption(
    _(
        "Where the paper's light is uneven (a shadow across it), it is evened out first; then ink is told from "
        "paper by a threshold chosen from this image's own histogram (Otsu's method): the third step."
    )
)
st.session_state[DRAWN_KEY] = prepared.final.astype(np.uint8).tobytes()  # the Train page can follow it
steps = prepared.steps()
for column, (title, array) in zip(st.columns(len(steps)), steps):
    column.image(square_tile(array), caption=title)  # in the visitor's language

probs = predict_digit(run.model, prepared.tensor()).numpy()
classes = list(DATASETS[run.config.dataset])
names = [_(c) for c in classes]  # Fashion-MNIST's class names in the visitor's language; digits stay digits
best = int(probs.argmax())
st.subheader(_("Prediction: {label} ({sure:.0%} sure)").format(label=names[best], sure=probs[best]))
# How far to trust it: a low confidence; then how the drawing differs from MNIST's digits (measured on digits,
# so said only of digit models), else whether anything the run learned from is near it at all (an "X")
known = familiarity(run.config.dataset)
unlike = (look_warning(prepared.final) if run.config.dataset == "mnist" else None) or (
    known.warning(prepared.final) if known is not None else None
)
for warning in filter(None, [confidence_warning(probs, classes), unlike]):
    st.warning(warning)  # made by the core, in the visitor's language
st.plotly_chart(probability_figure(probs, names), key="predict_probs")

st.subheader(_("What it looked at"))
method = method_choice("why_method")
for column, found in zip(
    st.columns(2), [explain(run.model, prepared.final, c, method) for c in top_two(run.model, prepared.final)]
):
    column.image(
        heat_tile(prepared.final, found.heat),
        caption=_("{label} ({share:.0%}): red speaks for it, blue against it").format(
            label=names[found.target], share=found.probability
        ),
    )
st.caption(_("The answer and the runner-up. {how_to_read}").format(how_to_read=_(HOW_TO_READ)))
accuracy = _("not measured") if run.meta.test_acc is None else f"{run.meta.test_acc:.2%}"
st.caption(  # no text from run.json
    _("Run `{run_id}`: test accuracy {accuracy} on {dataset}.").format(
        run_id=run.run_id, accuracy=accuracy, dataset=run.config.dataset
    )
)
st.caption(_("Follow this digit through the network while a run trains: **Train**, Watch one digit, from Predict."))

next_step("app_pages/7_Tune.py", _("let a search choose the knobs (Tune)"))
