"""Home page: what the app is, how the tutorial maps to the pages, the data set and device in use."""

import streamlit as st

from ui.common import page_setup

dataset, device = page_setup("Watch a neural network learn")

st.title("Watch a neural network learn")
st.markdown(
    """
A classic beginner tutorial, *Deep learning with Julia: the Flux.jl story*, trains a small
convolutional network on handwritten digits. This dashboard runs the same network in PyTorch,
in your browser: turn the knobs the tutorial turns, watch the loss fall live, look inside the
layers, and read an honest accuracy report.

| Tutorial step | Page |
|---|---|
| 1. Load MNIST, add the channel dimension, one-hot labels, batch by 128 | **Data** |
| 2. The 8-layer `Chain`, how each layer changes the shape; 3. predictions before training | **Model** |
| 4. Loss, optimiser (`Descent(0.1)`, Momentum, ADAM); 5. three ways to train; 6. callbacks | **Train** |
| `accuracy(model(x), y)`, and what the model gets wrong | **Report** |
"""
)
col1, col2, col3 = st.columns(3)
col1.metric("Data set", dataset.title)
col2.metric("Images", f"{dataset.n_train:,} train / {dataset.n_test:,} test")
col3.metric("Device", device)
st.caption(dataset.describe())
