"""Model: the layer-shape table, how the maps shrink, Flux vs PyTorch code, and what each layer sees."""

import streamlit as st
import torch

from mnist_core.model import as_input, build_model, evaluating, first_prediction, layer_table
from mnist_core.visual import layer_dataframe, map_grid, upscale
from mnist_core.watch import model_at, saved_steps
from ui.charts import probability_figure, shrink_figure
from ui.common import current, next_step
from ui.inside import knobs_network, pixel_worked_out
from ui.state import get_run, run_ids

st.title("Model")
dataset, _ = current()

network = knobs_network()  # the network Train's knobs describe: the tutorial's Chain until they change
rows = layer_table(build_model(**network))
layers = layer_dataframe(rows)
st.subheader(f"{len(rows)} layers, shapes read off a real forward pass")
# A static table: it wraps its text, so every column (parameters and multiply-adds too) fits at 1280 px.
st.table(layers.style.format({"parameters": "{:,}", "multiply-adds": "{:,}"}).hide(axis="index"))
st.caption(
    f"{layers['parameters'].sum():,} parameters · {layers['multiply-adds'].sum():,} multiply-adds per image. "
    "NCHW is PyTorch's order (batch, channels, height, width); WHCN is Flux's (width, height, channels, batch). "
    "The network is the one Train's knobs describe (Network, under the knobs)."
)
st.plotly_chart(shrink_figure(rows))

# One above the other, each the page's width, so that no line wraps at 1280 px; both written from the layers
flux, torch_code = st.container(), st.container()
flux.caption("Flux (the tutorial's words)")
flux.code("model = Chain(\n    " + ",\n    ".join(r.flux for r in rows) + ")", language="julia", wrap_lines=True)
torch_code.caption("PyTorch (what runs here: mnist_core/model.py; training uses the logits, before softmax)")
torch_code.code(
    "nn.Sequential(\n    " + ",\n    ".join(r.pytorch for r in rows) + ")", language="python", wrap_lines=True
)

st.subheader("Inside the network")
ids = run_ids()
choices = ["untrained (seed 0, Flux init)"] + ids
default = st.session_state.get("selected_run")
which = st.selectbox("Model", choices, index=choices.index(default) if default in choices else 0)
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
            "The model as it was after step", steps, value=steps[-1], format_func=lambda s: f"{s:,}", key=f"at_{which}"
        )
        if step != run.meta.steps:
            model = model_at(run.path, step)
        st.caption(f"Snapshots of this run: steps {', '.join(f'{s:,}' for s in steps)} (float16 weights).")
    if run.config.dataset != dataset.name:
        st.warning(f"This run was trained on {run.config.dataset}; the images below are from {dataset.title}.")

index = st.number_input(f"Test image (0-{dataset.n_test - 1})", 0, dataset.n_test - 1, 0)
image = dataset.test_images[index : index + 1]
guess, probs = first_prediction(model, image)
left, right = st.columns([1, 3])
left.image(upscale(image[0], 6), caption=f"true: {dataset.classes[int(dataset.test_labels[index])]}")
right.markdown(f"**Prediction of this image: {dataset.classes[guess]}** ({float(probs[guess]):.0%} sure)")
right.plotly_chart(probability_figure(probs.numpy(), list(dataset.classes)), key="probs")
if which == choices[0]:
    st.caption("Untrained, the numbers are useless, as the tutorial says; the check is that the shapes fit.")

with torch.inference_mode(), evaluating(model):
    maps = model.feature_maps(as_input(image))  # [(1, 8, 14, 14), ..., (1, 32, 2, 2)]
for i, fmap in enumerate(maps, start=1):
    c, h, w = fmap.shape[1:]
    st.markdown(f"**Conv layer {i}**: {c} feature maps of {h}x{w} (after its activation; each scaled to its range)")
    st.image(map_grid(fmap[0], columns=16 if c > 8 else 8, cell=48))
filters = model.first_filters()
st.markdown(f"**The first layer's {len(filters)} filters** (5x5 weights; bright = positive)")
st.image(map_grid(filters, columns=8 if len(filters) <= 8 else 16, cell=60))

st.subheader("One pixel of a feature map, worked out")
pixel_worked_out(model, image[0].numpy(), maps)

next_step("app_pages/3_Train.py", "train it and watch the loss fall (Train)")
