"""Tune: a hyperparameter search on Optuna. Every trial is an ordinary run of the server's queue, selected on
a validation split held out of the training set; the page shows the study live, from every worker."""

import streamlit as st

from mnist_core.config import OPTIMISERS, TrainConfig, held_out
from mnist_core.jobs import QueueError
from mnist_core.model import ACTIVATIONS
from mnist_core.tune import (
    SAMPLERS,
    SearchSpace,
    best_trial,
    default_storage,
    describe_space,
    driver_of,
    format_params,
    new_study_name,
    open_study,
    pruning_savings,
    scaled_channels,
    start_study,
    study_figures,
    study_names,
    trials_table,
)
from ui.common import KEEP, as_text, current
from ui.state import client_address, job_queue, owner, viewer

METHODS = {
    "grid": "every combination once (the learning rate at 1 value per decade)",
    "random": "independent random picks",
    "TPE": "Optuna's default: random at first, then near what worked so far",
}
WIDTHS = (0.5, 1.0, 2.0, 4.0)  # the network widths offered, as multipliers of the tutorial's
REFRESH_S = 2.0  # the study's table and views redraw this often while it runs

dataset, device = current()
queue = job_queue()
study_owner = owner() + "-tune"  # the study's trials are its own jobs: the Train page stays free
storage = default_storage()

st.title("Tune")
st.markdown(
    "Turning one knob at a time teaches the first lesson; a **search** teaches the second. Choose what to "
    "search and how; [Optuna](https://optuna.org) picks each trial's hyperparameters. Every trial is an "
    "ordinary run in the same queue as **Train**: find it on **Runs** (tagged with its study) and open it in "
    "**Report**. A trial whose validation accuracy falls below the median of earlier trials after an epoch is "
    "*pruned*: stopped early, to spend the time on better ones."
)

space = SearchSpace()  # the widgets start on the core's defaults: one definition of the default search
defaults = {
    "keep_tune_study": new_study_name(storage),  # a new study by default: continuing one is a choice
    "keep_tune_lr_low": space.lr_low,
    "keep_tune_lr_high": space.lr_high,
    "keep_tune_optimisers": list(space.optimisers),
    "keep_tune_batch_sizes": list(space.batch_sizes),
    "keep_tune_epochs": list(space.epochs),
    "keep_tune_widths": list(space.widths),
    "keep_tune_activations": list(space.activations),
    "keep_tune_method": space.sampler,
    "keep_tune_trials": 12,
    "keep_tune_validation": space.validation,
}
for key, value in defaults.items():
    st.session_state.setdefault(key, value)

driver = driver_of(study_owner)


def chosen_space() -> SearchSpace:
    """The search space of the widgets' values (read when called: a button's callback runs before the page)."""
    state = st.session_state
    return SearchSpace(
        lr_low=state["keep_tune_lr_low"],
        lr_high=state["keep_tune_lr_high"],
        optimisers=tuple(o for o in OPTIMISERS if o in state["keep_tune_optimisers"]),
        batch_sizes=tuple(sorted(state["keep_tune_batch_sizes"])),
        epochs=tuple(sorted(state["keep_tune_epochs"])),
        widths=tuple(sorted(state["keep_tune_widths"])),
        activations=tuple(a for a in ACTIVATIONS if a in state["keep_tune_activations"]),
        sampler=state["keep_tune_method"],
        dataset=dataset.name,
        validation=round(state["keep_tune_validation"], 2),
    )


running = driver is not None and driver.running

with st.container(border=True):
    left, right = st.columns(2)
    left.text_input("Study name", key="keep_tune_study", persist_state=KEEP, disabled=running, max_chars=100)
    if not running and st.session_state["keep_tune_study"].strip() in study_names(storage, viewer()):
        left.caption("A study of yours has this name: Start continues it. Give a new name to start afresh.")
    for end, word in (("low", "Lowest"), ("high", "Highest")):
        left.select_slider(
            f"{word} learning rate (log scale)",
            options=TrainConfig.knob("lr").offer,
            key=f"keep_tune_lr_{end}",
            persist_state=KEEP,
            disabled=running,
            format_func=lambda v: f"{v:g}",
        )
    left.multiselect("Optimisers", OPTIMISERS, key="keep_tune_optimisers", persist_state=KEEP, disabled=running)
    left.multiselect(
        "Batch sizes",
        TrainConfig.knob("batch_size").offer,
        key="keep_tune_batch_sizes",
        persist_state=KEEP,
        disabled=running,
    )
    right.multiselect("Epochs", list(range(1, 11)), key="keep_tune_epochs", persist_state=KEEP, disabled=running)
    left.multiselect(
        "Network widths",
        WIDTHS,
        key="keep_tune_widths",
        persist_state=KEEP,
        disabled=running,
        format_func=lambda w: f"×{w:g} ({scaled_channels(w)})",
        help="Multipliers of the tutorial's four conv widths (8,16,32,32). Wider learns more per epoch, slower.",
    )
    right.multiselect("Activations", ACTIVATIONS, key="keep_tune_activations", persist_state=KEEP, disabled=running)
    right.radio(
        "Search method",
        SAMPLERS,
        key="keep_tune_method",
        persist_state=KEEP,
        horizontal=True,
        disabled=running,
        help="; ".join(f"{k}: {v}" for k, v in METHODS.items()),
    )
    right.number_input(
        "Trials", min_value=1, max_value=100, key="keep_tune_trials", persist_state=KEEP, disabled=running
    )
    right.slider(
        "Validation share",
        0.05,
        0.5,
        step=0.05,
        key="keep_tune_validation",
        persist_state=KEEP,
        disabled=running,
        format="%.2f",
    )

    space = chosen_space()
    n_val = held_out(dataset.n_train, space.validation)
    st.caption(
        f"Trials are compared on a **validation split**: {n_val:,} of the {dataset.n_train:,} training images, "
        f"held out (the same ones for every trial) and never trained on. The {dataset.n_test:,} test images are "
        "never used to choose: the best trial's test accuracy is shown once, at the end."
        + (f" The grid has {space.grid_size()} points." if space.sampler == "grid" else "")
    )

    def start() -> None:
        name = st.session_state["keep_tune_study"].strip()
        try:
            open_study(storage, name, chosen_space(), owner=viewer())  # creates it, or checks it searches this space
            trials = int(st.session_state["keep_tune_trials"])
            start_study(queue, study_owner, storage, name, trials, run_owner=viewer(), address=client_address())
            st.session_state["tune_view"] = name
            st.session_state.pop("tune_error", None)
        except (ValueError, QueueError) as exc:
            st.session_state["tune_error"] = str(exc)

    go, stop = st.columns(2)
    go.button("Start the study", type="primary", disabled=running, on_click=start, use_container_width=True)
    if stop.button("Stop the study", disabled=not running, use_container_width=True):
        driver.stop()
        st.rerun()

if error := st.session_state.get("tune_error"):
    st.error(as_text(f"The study did not start: {error}"))

names = study_names(storage, viewer())
if not names:
    st.info("No study yet: choose what to search above and press **Start the study**.")
    st.stop()
if driver is not None and st.session_state.get("tune_view") not in names:
    st.session_state["tune_view"] = driver.study_name
view = st.selectbox(
    "Study to show", names, key="tune_view", help="your studies, and those started on this server's command line"
)


@st.fragment(run_every=REFRESH_S if running else None)
def show_study(name: str) -> None:
    mine = driver_of(study_owner)
    if running and not (mine is not None and mine.running):
        st.rerun(scope="app")  # the study ended: the buttons change
    study, space = open_study(storage, name)
    st.caption(f"Searching {describe_space(space)}.")
    if mine is not None and mine.study_name == name:
        current_trial = mine.current
        if mine.running and current_trial is not None:
            job = queue.get(current_trial.job_id)
            h, where = job.history if job is not None else None, ""
            if h is not None and h.total_steps:
                where = f": epoch {h.epoch}/{job.config.epochs}, step {h.step}/{h.total_steps}"
            st.info(f"Trial {current_trial.number} training ({format_params(current_trial.params)}){where}.")
        elif not mine.running and mine.message:
            st.warning(as_text(mine.message))  # it may quote a study's name

    table = trials_table(study)
    savings = pruning_savings(study)
    best = best_trial(study)
    done = table["state"].isin(["complete", "pruned"]).sum() if not table.empty else 0
    a, b, c = st.columns(3)
    a.metric("Trials ended", f"{done}", help="complete or pruned; failed and stopped trials are in the table too")
    b.metric("Best validation accuracy", f"{best.val_acc:.1%}" if best else "—")
    c.metric(
        "Time pruning saved",
        f"{savings.seconds_saved:.1f} s" if savings.seconds_saved < 10 else f"{savings.seconds_saved:.0f} s",
        help=f"{savings.pruned} trial(s) pruned; their missing epochs at their own pace. "
        f"All trials trained for {savings.seconds_spent:.0f} s.",
    )
    if best is not None:
        test = "not available" if best.test_acc is None else f"{best.test_acc:.1%}"
        st.success(
            f"Best so far: trial {best.number} ({format_params(best.params)}), validation accuracy "
            f"{best.val_acc:.1%}. Its test accuracy, read once and not used to choose: **{test}**."
        )
        if best.run and st.button("Open the best trial in Report", key=f"report-{best.run}"):
            st.session_state["selected_run"] = best.run
            st.switch_page("app_pages/4_Report.py")
    if table.empty:
        st.info("No trial has started yet.")
        return
    st.dataframe(
        table.drop(columns=["worker"]),  # a machine's name: for the command line's table, not a learner's
        hide_index=True,
        column_config={
            "lr": st.column_config.NumberColumn("lr", format="%.3g"),
            "val accuracy": st.column_config.NumberColumn("val accuracy", format="percent"),
            "training s": st.column_config.NumberColumn("training s", format="%.1f"),
        },
    )
    figures = study_figures(study)
    if figures:
        for tab, (title, figure) in zip(st.tabs(list(figures)), figures.items()):
            tab.plotly_chart(figure, key=f"tune-{title}")
        if "Importances" not in figures:
            st.caption("Parameter importances appear once four trials have finished and two or more are searched.")


show_study(view)
