"""The sidebar every page shares, and the data set loaded once per server process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import streamlit as st

from mnist_core.data import DATASETS, ENV_VARS, TITLES, DataError, Dataset, load_dataset
from mnist_core.train import device_label, resolve_device


@dataclass(frozen=True)
class LoadResult:
    """What loading a data set gave: the data set, or the message of why it failed (cached alike)."""

    dataset: Dataset | None = None
    error: str | None = None


@st.cache_resource(show_spinner="Loading the data set (once per server)...")
def _load(name: str) -> LoadResult:
    # st.cache_resource does not keep exceptions: returning the failure keeps a broken file from being
    # parsed again on every page load, until someone presses "Try again".
    try:
        return LoadResult(dataset=load_dataset(name))
    except DataError as exc:
        return LoadResult(error=str(exc))


def shared_dataset(name: str) -> Dataset:
    """One read-only copy per server process, shared by every session; raises ``DataError`` if it failed."""
    result = _load(name)
    if result.dataset is None:
        raise DataError(result.error)
    return result.dataset


@st.cache_resource
def device_name() -> str:
    return device_label(resolve_device("auto"))


def _advice(name: str) -> str:
    """What to do when ``name`` could not be loaded: right for the set that failed."""
    if name != "mnist":
        return "Choose MNIST in the sidebar to go on, or fix the files and press **Try again**."
    var = ENV_VARS[name]
    if os.environ.get(var):
        return (
            f"Fix the files named above, or unset `{var}` and restart the app: when no folder is set, "
            "MNIST is downloaded or the embedded 5,000-digit sample is used. Then press **Try again**."
        )
    return "Fix the problem named above, then press **Try again**."


def sidebar() -> None:
    """The data set choice and what is in use: data source and device. Pages that need data stop in ``current``."""
    # Widget state does not survive a page switch, so the choice lives in its own key.
    st.session_state.setdefault("dataset_name", "mnist")
    names = list(DATASETS)
    choice = st.sidebar.selectbox(
        "Data set", names, index=names.index(st.session_state["dataset_name"]), format_func=TITLES.get
    )
    st.session_state["dataset_name"] = choice
    try:
        dataset = shared_dataset(choice)
    except DataError:
        st.sidebar.error(f"{TITLES[choice]} is not available. {_advice(choice)}")
        if st.sidebar.button("Try again", key="retry_dataset"):
            _load.clear(choice)  # only this set's remembered failure
            st.rerun()
    else:
        st.sidebar.caption(f"**{dataset.title}**  \n{dataset.n_train:,} train / {dataset.n_test:,} test images")
        st.sidebar.caption(f"Source: {dataset.source}")
    st.sidebar.caption(f"Device: {device_name()}")


def current() -> tuple[Dataset, str]:
    """The data set chosen in the sidebar and the device's name; stops the page with a message if it failed."""
    name = st.session_state.get("dataset_name", "mnist")
    try:
        dataset = shared_dataset(name)
    except DataError as exc:
        st.error(f"{TITLES.get(name, name)} could not be loaded: {exc}")
        st.info(_advice(name))
        st.stop()
    return dataset, device_name()


def keep_widget_state() -> None:
    """Streamlit forgets a widget's value when a page without it runs; re-assigning its key keeps it.

    Widgets whose key starts with ``keep_`` (the training knobs) survive a visit to another page.
    """
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith("keep_"):
            st.session_state[key] = st.session_state[key]
