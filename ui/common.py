"""The sidebar every page shares, the data set loaded once per server process, how a run's outcome looks,
and what a saved run's report needs, cached per run."""

from __future__ import annotations

import re
from dataclasses import dataclass

import streamlit as st
import torch

from mnist_core import settings
from mnist_core.data import DATASETS, ENV_VARS, TITLES, DataError, Dataset, load_dataset
from mnist_core.devices import device_label, resolve_device
from mnist_core.digits import Familiarity
from mnist_core.i18n import _, language, stored, using
from mnist_core.outcomes import OUTCOMES, outcome
from mnist_core.report import predict, run_test_set
from mnist_core.runs import Run
from mnist_core.worker import trainer_threads


@dataclass(frozen=True)
class LoadResult:
    """What loading a data set gave: the data set, or the message of why it failed (cached alike)."""

    dataset: Dataset | None = None
    error: str | None = None


@st.cache_resource(show_spinner=False)  # the sidebar's spinner, in the visitor's language, shows a first load
def _load(name: str) -> LoadResult:
    # st.cache_resource does not keep exceptions: returning the failure keeps a broken file from being
    # parsed again on every page load, until someone presses "Try again". Loaded in English, for every
    # session alike: a page shows its texts (the source, an error) through i18n.stored.
    try:
        with using("en"):
            return LoadResult(dataset=load_dataset(name))
    except DataError as exc:
        return LoadResult(error=str(exc))


def shared_dataset(name: str) -> Dataset:
    """One read-only copy per server process, shared by every session; raises ``DataError`` if it failed (its
    message in the visitor's language)."""
    result = _load(name)
    if result.dataset is None:
        raise DataError(stored(result.error))
    return result.dataset


@st.cache_resource(max_entries=2, show_spinner=False)
def _familiarity(name: str) -> Familiarity:
    dataset = shared_dataset(name)
    return Familiarity.of(dataset.train_images, dataset.test_images)


def familiarity(name: str) -> Familiarity | None:
    """How near a drawing is to data set ``name``'s training images (one per server process), None if it is not
    loaded."""
    try:
        return _familiarity(name)
    except DataError:
        return None


@st.cache_resource
def _device_name(lang: str) -> str:
    return device_label(resolve_device("auto"), cpu_threads=trainer_threads())


def device_name() -> str:
    """Where a run will train: the GPU's name, or the CPU and the most threads its trainer may use."""
    return _device_name(language())


@st.cache_resource
def server_threads() -> None:
    """The server's own PyTorch work (a report, one digit through the network) is small, and the trainer and
    many sessions share the machine: one thread, set once per server process. With PyTorch's default (every
    core) its OpenMP threads would wait for cores a trainer holds whenever a page redraws."""
    torch.set_num_threads(1)


def _advice(name: str) -> str:
    """What to do when ``name`` could not be loaded: right for the set that failed."""
    if name != "mnist":
        return _("Choose MNIST in the sidebar to go on, or fix the files and press **Try again**.")
    var = ENV_VARS[name]
    if settings.get(var):
        return _(
            "Fix the files named above, or unset `{var}` and restart the app: when no folder is set, "
            "MNIST is downloaded or the embedded 5,000-digit sample is used. Then press **Try again**."
        ).format(var=var)
    return _("Fix the problem named above, then press **Try again**.")


def as_text(text: str) -> str:
    """``text`` for a markdown element, shown exactly as written: a name from storage or an archive never
    becomes a link, an image or formatting."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!|<>~$:])", r"\\\1", text)


def sidebar() -> None:
    """The data set choice and what is in use: data source and device. Pages that need data stop in ``current``."""
    # Widget state does not survive a page switch, so the choice lives in its own key.
    st.session_state.setdefault("dataset_name", "mnist")
    names = list(DATASETS)
    choice = st.sidebar.selectbox(
        _("Data set"),
        names,
        index=names.index(st.session_state["dataset_name"]),
        format_func=lambda name: _(TITLES[name]),
    )
    st.session_state["dataset_name"] = choice
    try:
        with st.spinner(_("Loading the data set (once per server)...")):  # shown only if it takes a while
            dataset = shared_dataset(choice)
    except DataError:
        st.sidebar.error(
            _("{dataset} is not available. {advice}").format(dataset=_(TITLES[choice]), advice=_advice(choice))
        )
        if st.sidebar.button(_("Try again"), key="retry_dataset"):
            _load.clear(choice)  # only this set's remembered failure
            st.rerun()
    else:
        sizes = _("{n_train:,} train / {n_test:,} test images").format(n_train=dataset.n_train, n_test=dataset.n_test)
        st.sidebar.caption(f"**{_(dataset.title)}**  \n{sizes}")
        st.sidebar.caption(_("Source: {source}").format(source=stored(dataset.source)))
    st.sidebar.caption(_("Device: {device}").format(device=device_name()))


def current() -> tuple[Dataset, str]:
    """The data set chosen in the sidebar and the device's name; stops the page with a message if it failed."""
    name = st.session_state.get("dataset_name", "mnist")
    try:
        dataset = shared_dataset(name)
    except DataError as exc:
        st.error(_("{dataset} could not be loaded: {error}").format(dataset=_(TITLES.get(name, name)), error=exc))
        st.info(_advice(name))
        st.stop()
    return dataset, device_name()


# Streamlit forgets a widget's value when a run does not draw it (another page, or the widget hidden); the
# knobs (keys "keep_...") are drawn with ``persist_state=KEEP`` and outlive both. This replaced re-assigning every
# "keep_" key at the top of every run, which marked each of those widgets as set by the code: the browser
# redrew them all on every run (19 ms of a 131-ms Train page redraw, CDP's TaskDuration, 20 redraws each).
KEEP = "session"


_BOXES = {"green": st.success, "orange": st.warning, "red": st.error}


def outcome_box(status: str, text: str) -> None:
    """``text`` (markdown of our own making, never an archive's) in the box of ``status``'s colour, with its icon."""
    o = outcome(status)
    _BOXES.get(o.colour, st.info)(text, icon=o.icon)


def show_outcome(status: str, message: str = "") -> None:
    """A run's outcome in its colour and plain words (mnist_core.outcomes), then its message as text.

    The one way a page says how a run ended: Report, Runs, and the Train page (``show_outcome(job.outcome,
    job.message)``). The message may come from someone's archive: text, never markdown.
    """
    outcome_box(status, f"**{_(outcome(status).label)}**")
    if message:
        st.text(stored(message))  # saved in English by its trainer: in the reader's language where the catalog knows it


_CSS = {"green": "#1b7f3b", "orange": "#c25e00", "red": "#c62828", "blue": "#1f5fa8", "violet": "#6a3ea1"}


def outcome_css(label_or_status: str) -> str:
    """A table cell's CSS for an outcome (by its status word or label, in English or the visitor's language): its
    colour, in bold unless finished."""
    o = next((o for w, o in OUTCOMES.items() if label_or_status in (w, o.label, _(o.label))), None)
    if o is None:
        return "color: #666666"
    return f"color: {_CSS.get(o.colour, '#666666')}" + ("" if o.colour == "green" else "; font-weight: 600")


@st.cache_resource(max_entries=4, show_spinner=False)  # run_test_images' spinner is in the visitor's language
def _test_set(name: str, title: str, source: str, n_test: int, imported: bool) -> LoadResult:
    try:
        loaded = [shared_dataset(name)]
    except DataError:
        loaded = []
    try:  # in English, for every session alike: the page shows the error through i18n.stored
        with using("en"):
            return LoadResult(dataset=run_test_set(name, title, source, n_test, imported, loaded))
    except DataError as exc:
        return LoadResult(error=str(exc))


def run_test_images(run: Run) -> Dataset | None:
    """The data set a saved run was measured on, wherever it came from; None (with a message) if it is gone."""
    m = run.meta
    with st.spinner(_("Loading the run's test images...")):  # shown only if it takes a while
        result = _test_set(m.config.dataset, m.dataset_title, m.dataset_source, m.n_test, m.imported)
    if result.dataset is None:
        st.info(_("The images cannot be shown:"))
        st.text(stored(result.error))  # it names the run's data set title and source: text from the run, never markdown
    return result.dataset


@st.cache_resource(max_entries=8, show_spinner=False)  # run_answers' spinner is in the visitor's language
def _answers(path: str, saved_at: float, _run: Run, _images: torch.Tensor) -> torch.Tensor:
    return predict(_run.model, _images).argmax(1)


def run_answers(run: Run, dataset: Dataset) -> torch.Tensor:
    """The saved run's predicted class of every test image of ``dataset``, computed once per run folder."""
    saved_at = run.path.joinpath("run.json").stat().st_mtime
    with st.spinner(_("Classifying the test images...")):  # shown only if it takes a while
        return _answers(str(run.path), saved_at, run, dataset.test_images)


@st.cache_data(max_entries=16, show_spinner=False)  # run_figures' spinner is in the visitor's language
def _figures(path: str, saved_at: float, lang: str, _run: Run) -> dict:
    """The figures in language ``lang``: a reader of another language gets figures of their own."""
    from .charts import epoch_figure, honest_loss_axis, loss_figure

    h = _run.history
    curve = loss_figure(h.batch_losses, h.epochs, h.full_losses, h.total_steps or None, lr_schedule=h.lr_schedule)
    return {
        "loss": honest_loss_axis(curve, h.batch_losses),
        "epochs": epoch_figure(h.epochs) if h.epochs else None,
    }


def run_figures(run: Run) -> dict:
    """The Report's curves of a saved run (every batch's loss, per-epoch figures), built once per run folder and
    its run.json's time: a reopened Report only sends them. Not the confusion matrix: a copy from the cache
    loses the chart's click selection (measured: the click on a cell did nothing), and it costs ~25 ms."""
    saved_at = run.path.joinpath("run.json").stat().st_mtime
    with st.spinner(_("Drawing the run's charts...")):  # shown only if it takes a while
        return _figures(str(run.path), saved_at, language(), run)


def next_step(page: str, words: str) -> None:
    """The link at a page's end to the tutorial's next step."""
    st.divider()
    st.page_link(page, label=_("Next: {step}").format(step=words), icon=":material/arrow_forward:")
