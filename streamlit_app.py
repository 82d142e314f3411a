"""Entry point: the page list, the shared sidebar, and the home page (what the app is, data and device)."""

import streamlit as st

from ui.common import current, keep_widget_state, sidebar
from ui.state import job_queue, keep_owner_cookie


def home() -> None:
    dataset, device = current()
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
| 2. The 8-layer `Chain` and how each layer changes the shape; 3. predictions before training | **Model** |
| 4. Loss and optimiser (`Descent(0.1)`, Momentum, ADAM); 5. three ways to train; 6. callbacks | **Train** |
| `accuracy(model(x), y)`, per class, and what the model gets wrong | **Report** |
| Compare runs, download and share them | **Runs** |
| Try the trained model on your own handwriting | **Predict** |
| Search the hyperparameters: many runs, chosen on a validation split | **Tune** |
"""
    )
    st.subheader(dataset.title)
    col1, col2, col3 = st.columns(3)
    col1.metric("Training images", f"{dataset.n_train:,}")
    col2.metric("Test images", f"{dataset.n_test:,}")
    col3.metric("Device", device.split(" (")[0])
    st.caption(f"Data from {dataset.source}. Device: {device}.")
    if dataset.source_kind == "sample":
        st.info(
            "No MNIST files and no network here, so this is the embedded sample of 5,000 real digits. "
            "Point `MNIST_DATA_DIR` at the four IDX files for the full 70,000 (see README)."
        )


st.set_page_config(page_title="Watch a neural network learn", page_icon=":material/model_training:", layout="wide")
keep_widget_state()
# The pages live in app_pages/, not pages/: with a pages/ folder Streamlit serves a page's direct
# URL in its older automatic mode, without running this file (no sidebar, no page config).
page = st.navigation(
    [
        st.Page(home, title="Home", icon=":material/home:", default=True),
        st.Page("app_pages/1_Data.py", title="Data", icon=":material/image:"),
        st.Page("app_pages/2_Model.py", title="Model", icon=":material/layers:"),
        st.Page("app_pages/3_Train.py", title="Train", icon=":material/show_chart:"),
        st.Page("app_pages/4_Report.py", title="Report", icon=":material/analytics:"),
        st.Page("app_pages/5_Runs.py", title="Runs", icon=":material/table_rows:"),
        st.Page("app_pages/6_Predict.py", title="Predict", icon=":material/draw:"),
        st.Page("app_pages/7_Tune.py", title="Tune", icon=":material/tune:"),
    ]
)
sidebar()
keep_owner_cookie()  # the browser's secret that owns its training jobs: a refresh finds them again
job_queue()  # the first visit to any page starts the trainers warming, before anyone presses Start
page.run()
