"""Entry point: the page list, the shared sidebar, and the home page (what the app is, data and device)."""

import streamlit as st

# Only Streamlit at the top: on a cold start the home page's title and text are drawn before PyTorch and
# the data set load (seconds on a small machine); the rest of the app is imported in start(), below them.


PATH = [  # the tutorial's steps, in order: Home's links
    ("app_pages/1_Data.py", "1. Data"),
    ("app_pages/2_Model.py", "2. Model"),
    ("app_pages/3_Train.py", "3. Train"),
    ("app_pages/4_Report.py", "4. Report"),
    ("app_pages/5_Runs.py", "5. Runs"),
    ("app_pages/6_Predict.py", "6. Predict"),
    ("app_pages/7_Tune.py", "7. Tune"),
]


def intro() -> None:
    """The home page's title and text: needs nothing but Streamlit."""
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


def home() -> None:
    from ui.common import current

    st.caption("The tutorial's path, a page a step:")
    for column, (path, label) in zip(st.columns(len(PATH)), PATH):
        column.page_link(path, label=label)
    dataset, device = current()
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


def start() -> None:
    """The shared sidebar, the owner cookie and the trainers: what every page needs before it runs."""
    from ui.common import server_threads, sidebar
    from ui.state import job_queue, keep_owner_cookie

    server_threads()
    sidebar()
    keep_owner_cookie()  # the browser's secret that owns its training jobs: a refresh finds them again
    job_queue()  # the first visit to any page starts the trainers warming, before anyone presses Start
    prefetch_charts()


def prefetch_charts() -> None:
    """An empty, hidden Plotly chart in the sidebar: the browser loads Plotly's code (3-4 s on a 2-core
    machine, measured with benchmarks/bench_report.py) while the learner reads the first page, not when
    Report, Train or Runs first draws a chart."""
    with st.sidebar.container(key="plotly_prefetch"):
        st.html("<style>.st-key-plotly_prefetch { display: none; }</style>")
        st.plotly_chart({"data": [{"type": "scatter", "x": [], "y": []}], "layout": {"height": 10}}, key="prefetch")


if page.title == "Home":
    intro()
with st.spinner("Loading PyTorch and the data set (once per server)..."):  # seconds only on a cold start
    start()
page.run()
