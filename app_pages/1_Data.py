"""Data: sample images, class counts, and the tutorial's data steps on real tensors."""

import pandas as pd
import streamlit as st

from mnist_core.config import batch_bounds, batches_per_epoch
from mnist_core.data import one_hot
from mnist_core.i18n import _
from mnist_core.visual import batch_shapes, class_counts, upscale
from ui.charts import class_count_figure
from ui.common import current, next_step

st.title(_("Data"))
dataset, _device = current()
st.caption(dataset.describe())  # in the visitor's language

st.subheader(_("Sample images"))
left, right = st.columns([1, 3])
SPLITS = {"train": _("train"), "test": _("test")}
split = left.radio(_("Split"), list(SPLITS), horizontal=True, format_func=SPLITS.get, key="data_split")
images, labels = (
    (dataset.train_images, dataset.train_labels) if split == "train" else (dataset.test_images, dataset.test_labels)
)
last_start = max(len(images) - 32, 0)  # 32 images are shown from the first one on
start = left.number_input(
    _("First of 32 images (0-{last:,})").format(last=last_start), 0, last_start, 0, step=32, key="data_start"
)
shown = range(start, min(start + 32, len(images)))
right.image(
    [upscale(images[i], 3) for i in shown],
    caption=[f"#{i}: {_(dataset.classes[int(labels[i])])}" for i in shown],
    width=84,
)

st.subheader(_("Images per class"))
st.plotly_chart(class_count_figure(class_counts(dataset)))

st.subheader(_("The tutorial's data steps, on the real tensors"))
st.markdown(
    _(
        "Flux stores arrays column-major, batch last (**WHCN**); PyTorch row-major, batch first (**NCHW**). "
        "Both add a channel dimension of size 1 so the convolution sees a one-channel image."
    )
)
st.dataframe(batch_shapes(dataset), hide_index=True)  # in the visitor's language
# One above the other, each the page's width: side by side, the aligned comments would wrap at 1280 px.
st.caption(_("Flux (the tutorial)"))
st.code(
    "x_train = Flux.unsqueeze(x_train, 3)   # 28x28x60000 -> 28x28x1x60000\n"
    "y_train = onehotbatch(y_train, 0:9)\n"
    "train_data = DataLoader((x_train, y_train), batchsize=128)",
    language="julia",
    wrap_lines=True,
)
st.caption(_("PyTorch (what runs here)"))
st.code(
    "x = images.unsqueeze(1).float() / 255   # (60000, 28, 28) -> (60000, 1, 28, 28)\n"
    "y = labels                              # cross_entropy takes class indices\n"
    "batch = x[perm[i : i + 128]]            # a slice of a shuffled index, on the device",
    language="python",
    wrap_lines=True,
)
start, stop = batch_bounds(dataset.n_train, 128)[-1]
if stop - start > 128:  # a remainder: say where it goes
    st.caption(
        _(
            "Batches of 128 make {steps:,} steps an epoch here: the {left_over} images left over join the last "
            "batch ({last} images), because a step on a handful of images at the full learning rate throws the "
            "model off at every epoch's end."
        ).format(steps=batches_per_epoch(dataset.n_train, 128), left_over=stop - start - 128, last=stop - start)
    )

st.markdown(_("**One-hot encoding** of the first 8 training labels (`onehotbatch(y, 0:9)`): one row per image."))
first = dataset.train_labels[:8]
onehot = pd.DataFrame(
    one_hot(first, len(dataset.classes)).int().numpy(),
    columns=[_(c) for c in dataset.classes],
    index=[f"#{i}: {_(dataset.classes[int(y)])}" for i, y in enumerate(first)],
)
st.dataframe(onehot)
st.caption(_("PyTorch's `cross_entropy` takes the class index directly; the one-hot matrix is the same information."))

next_step("app_pages/2_Model.py", _("the network that reads these images (Model)"))
