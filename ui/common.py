"""The sidebar every page shares, and the data set loaded once per server process."""

from __future__ import annotations

import streamlit as st

from mnist_core.data import DATASETS, TITLES, DataError, Dataset, load_dataset
from mnist_core.train import device_label, resolve_device


@st.cache_resource(show_spinner="Loading the data set (once per server)...")
def shared_dataset(name: str) -> Dataset:
    """One read-only copy per server process, shared by every session."""
    return load_dataset(name)


@st.cache_resource
def device_name() -> str:
    return device_label(resolve_device("auto"))


def sidebar() -> None:
    """The data set choice and what is in use: data source and device. Stops the page if data is missing."""
    # Widget state does not survive a page switch, so the choice lives in its own key.
    st.session_state.setdefault("dataset_name", "mnist")
    names = list(DATASETS)
    choice = st.sidebar.selectbox(
        "Data set", names, index=names.index(st.session_state["dataset_name"]), format_func=TITLES.get
    )
    st.session_state["dataset_name"] = choice
    try:
        dataset = shared_dataset(choice)
    except DataError as exc:
        st.sidebar.error("Data set not available")
        st.error(f"{TITLES[choice]} could not be loaded: {exc}")
        st.info("Choose MNIST in the sidebar: it always works, from the embedded 5,000-digit sample if need be.")
        st.stop()
    st.sidebar.caption(f"**{dataset.title}**  \n{dataset.n_train:,} train / {dataset.n_test:,} test images")
    st.sidebar.caption(f"Source: {dataset.source}")
    st.sidebar.caption(f"Device: {device_name()}")


def current() -> tuple[Dataset, str]:
    """The data set chosen in the sidebar (already loaded by ``sidebar``) and the device's name."""
    return shared_dataset(st.session_state.get("dataset_name", "mnist")), device_name()


def keep_widget_state() -> None:
    """Streamlit forgets a widget's value when a page without it runs; re-assigning its key keeps it.

    Widgets whose key starts with ``keep_`` (the training knobs) survive a visit to another page.
    """
    for key in list(st.session_state.keys()):
        if isinstance(key, str) and key.startswith("keep_"):
            st.session_state[key] = st.session_state[key]
