"""Data: sample images, class counts, and the tutorial's data steps on real tensors."""

import pandas as pd
import streamlit as st

from mnist_core.config import batch_bounds, batches_per_epoch
from mnist_core.data import one_hot
from mnist_core.visual import batch_shapes, class_counts, upscale
from ui.charts import class_count_figure
from ui.common import current, next_step

st.title("Data")
dataset, _ = current()
st.caption(dataset.describe())

st.subheader("Sample images")
left, right = st.columns([1, 3])
split = left.radio("Split", ["train", "test"], horizontal=True)
images, labels = (
    (dataset.train_images, dataset.train_labels) if split == "train" else (dataset.test_images, dataset.test_labels)
)
last_start = max(len(images) - 32, 0)  # 32 images are shown from the first one on
start = left.number_input(f"First of 32 images (0-{last_start:,})", 0, last_start, 0, step=32)
shown = range(start, min(start + 32, len(images)))
right.image(
    [upscale(images[i], 3) for i in shown],
    caption=[f"#{i}: {dataset.classes[int(labels[i])]}" for i in shown],
    width=84,
)

st.subheader("Images per class")
st.plotly_chart(class_count_figure(class_counts(dataset)))

st.subheader("The tutorial's data steps, on the real tensors")
st.markdown(
    "Flux stores arrays column-major, batch last (**WHCN**); PyTorch row-major, batch first (**NCHW**). "
    "Both add a channel dimension of size 1 so the convolution sees a one-channel image."
)
st.dataframe(batch_shapes(dataset), hide_index=True)
# One above the other, each the page's width: side by side, the aligned comments would wrap at 1280 px.
st.caption("Flux (the tutorial)")
st.code(
    "x_train = Flux.unsqueeze(x_train, 3)   # 28x28x60000 -> 28x28x1x60000\n"
    "y_train = onehotbatch(y_train, 0:9)\n"
    "train_data = DataLoader((x_train, y_train), batchsize=128)",
    language="julia",
    wrap_lines=True,
)
st.caption("PyTorch (what runs here)")
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
        f"Batches of 128 make {batches_per_epoch(dataset.n_train, 128):,} steps an epoch here: the "
        f"{stop - start - 128} images left over join the last batch ({stop - start} images), because a step on "
        "a handful of images at the full learning rate throws the model off at every epoch's end."
    )

st.markdown("**One-hot encoding** of the first 8 training labels (`onehotbatch(y, 0:9)`): one row per image.")
first = dataset.train_labels[:8]
onehot = pd.DataFrame(
    one_hot(first, len(dataset.classes)).int().numpy(),
    columns=list(dataset.classes),
    index=[f"#{i}: {dataset.classes[int(y)]}" for i, y in enumerate(first)],
)
st.dataframe(onehot)
st.caption("PyTorch's `cross_entropy` takes the class index directly; the one-hot matrix is the same information.")

next_step("app_pages/2_Model.py", "the network that reads these images (Model)")
