"""Model: the layer-shape table, how the maps shrink, Flux vs PyTorch code, and what each layer sees."""

import streamlit as st
import torch

from mnist_core.i18n import N_, _
from mnist_core.model import as_input, build_model, evaluating, first_prediction, layer_table
from mnist_core.visual import (
    FLUX_LAYER,
    MULTIPLY_ADDS,
    OUTPUT_NCHW,
    OUTPUT_WHCN,
    PARAMETERS,
    SPATIAL,
    layer_dataframe,
    map_grid,
    upscale,
)
from mnist_core.watch import model_at, saved_steps
from ui.charts import probability_figure, shrink_figure
from ui.common import current, next_step
from ui.inside import knobs_network, pixel_worked_out
from ui.state import get_run, run_ids

UNTRAINED = N_("untrained (seed 0, Flux init)")  # the first choice of "Model", before the runs' ids

st.title(_("Model"))
dataset, _device = current()

network = knobs_network()  # the network Train's knobs describe: the tutorial's Chain until they change
rows = layer_table(build_model(**network))
layers = layer_dataframe(rows)
st.subheader(_("{n} layers, shapes read off a real forward pass").format(n=len(rows)))
# A static table: it wraps its text, so every column (parameters and multiply-adds too) fits at 1280 px. Its
# columns keep their English names (code and tests read them), renamed for display: the same names in English
names = {c: _(c) for c in (FLUX_LAYER, OUTPUT_NCHW, OUTPUT_WHCN, SPATIAL, PARAMETERS, MULTIPLY_ADDS)}
thousands = {names[PARAMETERS]: "{:,}", names[MULTIPLY_ADDS]: "{:,}"}
st.table(layers.rename(columns=names).style.format(thousands).hide(axis="index"))
st.caption(
    _(
        "{parameters:,} parameters · {macs:,} multiply-adds per image. "
        "NCHW is PyTorch's order (batch, channels, height, width); WHCN is Flux's (width, height, channels, batch). "
        "The network is the one Train's knobs describe (Network, under the knobs)."
    ).format(parameters=layers[PARAMETERS].sum(), macs=layers[MULTIPLY_ADDS].sum())
)
st.plotly_chart(shrink_figure(rows))

# One above the other, each the page's width, so that no line wraps at 1280 px; both written from the layers
flux, torch_code = st.container(), st.container()
flux.caption(_("Flux (the tutorial's words)"))
flux.code("model = Chain(\n    " + ",\n    ".join(r.flux for r in rows) + ")", language="julia", wrap_lines=True)
torch_code.caption(_("PyTorch (what runs here: mnist_core/model.py; training uses the logits, before softmax)"))
torch_code.code(
    "nn.Sequential(\n    " + ",\n    ".join(r.pytorch for r in rows) + ")", language="python", wrap_lines=True
)

st.subheader(_("Inside the network"))
ids = run_ids()
choices = [UNTRAINED] + ids
default = st.session_state.get("selected_run")
which = st.selectbox(
    _("Model"),
    choices,
    index=choices.index(default) if default in choices else 0,
    format_func=lambda choice: _(choice) if choice == UNTRAINED else choice,
    key="model_choice",  # a key, not the label: a change of language keeps the choice
)
if which == choices[0]:
    model = build_model(seed=0, **knobs_network())  # the network Train's knobs describe
else:
    run = get_run(which)
    if run is None:
        st.stop()
    st.session_state["selected_run"] = which
    model = run.model
    steps = saved_steps(run.path)
    if len(steps) > 1:  # the run kept snapshots (mnist_core.watch): show the model at any of them
        step = st.select_slider(
            _("The model as it was after step"),
            steps,
            value=steps[-1],
            format_func=lambda s: f"{s:,}",
            key=f"at_{which}",
        )
        if step != run.meta.steps:
            model = model_at(run.path, step)
        st.caption(
            _("Snapshots of this run: steps {steps} (float16 weights).").format(
                steps=", ".join(f"{s:,}" for s in steps)
            )
        )
    if run.config.dataset != dataset.name:
        st.warning(
            _("This run was trained on {trained_on}; the images below are from {dataset}.").format(
                trained_on=run.config.dataset, dataset=_(dataset.title)
            )
        )

index = st.number_input(
    _("Test image (0-{last})").format(last=dataset.n_test - 1), 0, dataset.n_test - 1, 0, key="model_image"
)
image = dataset.test_images[index : index + 1]
guess, probs = first_prediction(model, image)
left, right = st.columns([1, 3])
true = dataset.classes[int(dataset.test_labels[index])]
left.image(upscale(image[0], 6), caption=_("true: {label}").format(label=_(true)))
right.markdown(
    _("**Prediction of this image: {label}** ({sure:.0%} sure)").format(
        label=_(dataset.classes[guess]), sure=float(probs[guess])
    )
)
right.plotly_chart(probability_figure(probs.numpy(), [_(c) for c in dataset.classes]), key="probs")
if which == choices[0]:
    st.caption(_("Untrained, the numbers are useless, as the tutorial says; the check is that the shapes fit."))

with torch.inference_mode(), evaluating(model):
    maps = model.feature_maps(as_input(image))  # [(1, 8, 14, 14), ..., (1, 32, 2, 2)]
for i, fmap in enumerate(maps, start=1):
    c, h, w = fmap.shape[1:]
    st.markdown(
        _("**Conv layer {i}**: {c} feature maps of {h}x{w} (after its activation; each scaled to its range)").format(
            i=i, c=c, h=h, w=w
        )
    )
    st.image(map_grid(fmap[0], columns=16 if c > 8 else 8, cell=48))
filters = model.first_filters()
st.markdown(_("**The first layer's {n} filters** (5x5 weights; bright = positive)").format(n=len(filters)))
st.image(map_grid(filters, columns=8 if len(filters) <= 8 else 16, cell=60))

st.subheader(_("One pixel of a feature map, worked out"))
pixel_worked_out(model, image[0].numpy(), maps)

next_step("app_pages/3_Train.py", _("train it and watch the loss fall (Train)"))
