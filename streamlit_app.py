"""Entry point: the page list, the shared sidebar, and the home page (what the app is, data and device)."""

import re

import streamlit as st

from mnist_core.i18n import N_, _
from ui.language import choose_language, language_switch

# Only Streamlit (and the language's few lines) at the top: on a cold start the home page's title and text are
# drawn before PyTorch and the data set load (seconds on a small machine); the rest of the app is imported in
# start(), below them.


PAGES = [  # the tutorial's steps, in order: the page list and Home's links
    ("app_pages/1_Data.py", N_("Data"), ":material/image:"),
    ("app_pages/2_Model.py", N_("Model"), ":material/layers:"),
    ("app_pages/3_Train.py", N_("Train"), ":material/show_chart:"),
    ("app_pages/4_Report.py", N_("Report"), ":material/analytics:"),
    ("app_pages/5_Runs.py", N_("Runs"), ":material/table_rows:"),
    ("app_pages/6_Predict.py", N_("Predict"), ":material/draw:"),
    ("app_pages/7_Tune.py", N_("Tune"), ":material/tune:"),
]


def intro() -> None:
    """The home page's title and text: needs nothing but Streamlit."""
    st.title(_("Watch a neural network learn"))
    st.markdown(
        _(
            "A classic beginner tutorial, *Deep learning with Julia: the Flux.jl story*, trains a small "
            "convolutional network on handwritten digits. This dashboard runs the same network in PyTorch, "
            "in your browser: turn the knobs the tutorial turns, watch the loss fall live, look inside the "
            "layers, and read an honest accuracy report."
        )
    )
    steps = [
        (_("1. Load MNIST, add the channel dimension, one-hot labels, batch by 128"), _("Data")),
        (_("2. The 8-layer `Chain` and how each layer changes the shape; 3. predictions before training"), _("Model")),
        (_("4. Loss and optimiser (`Descent(0.1)`, Momentum, ADAM); 5. three ways to train; 6. callbacks"), _("Train")),
        (_("`accuracy(model(x), y)`, per class, and what the model gets wrong"), _("Report")),
        (_("Compare runs, download and share them"), _("Runs")),
        (_("Try the trained model on your own handwriting"), _("Predict")),
        (_("Search the hyperparameters: many runs, chosen on a validation split"), _("Tune")),
    ]
    step, page = _("Tutorial step"), _("Page")  # not inside the f-string: Babel's extractor would not see them
    table = [f"| {step} | {page} |", "|---|---|"] + [f"| {s} | **{p}** |" for s, p in steps]
    st.markdown("\n".join(table))


def home() -> None:
    from mnist_core.i18n import number, stored
    from ui.common import current

    st.caption(_("The tutorial's path, a page a step:"))
    for i, (column, (path, title, _icon)) in enumerate(zip(st.columns(len(PAGES)), PAGES), start=1):
        column.page_link(path, label=f"{i}. {_(title)}")
    dataset, device = current()
    st.subheader(_(dataset.title))
    col1, col2, col3 = st.columns(3)
    col1.metric(_("Training images"), number(dataset.n_train))
    col2.metric(_("Test images"), number(dataset.n_test))
    col3.metric(_("Device"), re.split(r" \(|（", device)[0])  # "CPU (2 threads)", "CPU（2 个线程）": "CPU"
    st.caption(_("Data from {source}. Device: {device}.").format(source=stored(dataset.source), device=device))
    if dataset.source_kind == "sample":
        st.info(
            _(
                "No MNIST files and no network here, so this is the embedded sample of 5,000 real digits. "
                "Point `MNIST_DATA_DIR` at the four IDX files for the full 70,000 (see README)."
            )
        )


choose_language()  # before anything is drawn: every text below is in the visitor's language
st.set_page_config(page_title=_("Watch a neural network learn"), page_icon=":material/model_training:", layout="wide")
# The pages live in app_pages/, not pages/: with a pages/ folder Streamlit serves a page's direct
# URL in its older automatic mode, without running this file (no sidebar, no page config). A file page's URL
# comes from its file name, so a translated title keeps the page's address.
page = st.navigation(
    [st.Page(home, title=_("Home"), icon=":material/home:", default=True)]
    + [st.Page(path, title=_(title), icon=icon) for path, title, icon in PAGES]
)
language_switch()


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


if page.title == _("Home"):
    intro()
with st.spinner(_("Loading PyTorch and the data set (once per server)...")):  # seconds only on a cold start
    start()
page.run()
