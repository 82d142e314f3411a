"""Tune: a hyperparameter search on Optuna. Every trial is an ordinary run of the server's queue, selected on
a validation split held out of the training set; the page shows the study live, from every worker."""

import streamlit as st

from mnist_core.config import OPTIMISERS, TrainConfig, held_out
from mnist_core.i18n import N_, _, stored
from mnist_core.jobs import QueueError
from mnist_core.model import ACTIVATIONS
from mnist_core.tune import (
    EPOCHS,
    RUN,
    SAMPLERS,
    STATE,
    TRAINING_S,
    TRIAL,
    VAL_ACCURACY,
    WORKER,
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
    "grid": N_("every combination once (the learning rate at 1 value per decade)"),
    "random": N_("independent random picks"),
    "TPE": N_("Optuna's default: random at first, then near what worked so far"),
}
SAMPLER_NAMES = {"grid": N_("grid"), "random": N_("random"), "TPE": "TPE"}  # the methods' names (TPE is a name)
WIDTHS = (0.5, 1.0, 2.0, 4.0)  # the network widths offered, as multipliers of the tutorial's
REFRESH_S = 2.0  # the study's table and views redraw this often while it runs

dataset, device = current()
queue = job_queue()
study_owner = owner() + "-tune"  # the study's trials are its own jobs: the Train page stays free
storage = default_storage()

st.title(_("Tune"))
st.markdown(
    _(
        "Turning one knob at a time teaches the first lesson; a **search** teaches the second. Choose what to "
        "search and how; [Optuna](https://optuna.org) picks each trial's hyperparameters. Every trial is an "
        "ordinary run in the same queue as **Train**: find it on **Runs** (tagged with its study) and open it in "
        "**Report**. A trial whose validation accuracy falls below the median of earlier trials after an epoch is "
        "*pruned*: stopped early, to spend the time on better ones."
    )
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
    left.text_input(_("Study name"), key="keep_tune_study", persist_state=KEEP, disabled=running, max_chars=100)
    if not running and st.session_state["keep_tune_study"].strip() in study_names(storage, viewer()):
        left.caption(_("A study of yours has this name: Start continues it. Give a new name to start afresh."))
    for end, label in (
        ("low", _("Lowest learning rate (log scale)")),
        ("high", _("Highest learning rate (log scale)")),
    ):
        left.select_slider(
            label,
            options=TrainConfig.knob("lr").offer,
            key=f"keep_tune_lr_{end}",
            persist_state=KEEP,
            disabled=running,
            format_func=lambda v: f"{v:g}",
        )
    left.multiselect(_("Optimisers"), OPTIMISERS, key="keep_tune_optimisers", persist_state=KEEP, disabled=running)
    left.multiselect(
        _("Batch sizes"),
        TrainConfig.knob("batch_size").offer,
        key="keep_tune_batch_sizes",
        persist_state=KEEP,
        disabled=running,
    )
    right.multiselect(_("Epochs"), list(range(1, 11)), key="keep_tune_epochs", persist_state=KEEP, disabled=running)
    left.multiselect(
        _("Network widths"),
        WIDTHS,
        key="keep_tune_widths",
        persist_state=KEEP,
        disabled=running,
        format_func=lambda w: f"×{w:g} ({scaled_channels(w)})",
        help=_("Multipliers of the tutorial's four conv widths (8,16,32,32). Wider learns more per epoch, slower."),
    )
    right.multiselect(_("Activations"), ACTIVATIONS, key="keep_tune_activations", persist_state=KEEP, disabled=running)
    right.radio(
        _("Search method"),
        SAMPLERS,
        key="keep_tune_method",
        persist_state=KEEP,
        horizontal=True,
        disabled=running,
        format_func=lambda method: _(SAMPLER_NAMES.get(method, method)),
        help="; ".join(f"{_(SAMPLER_NAMES.get(k, k))}: {_(v)}" for k, v in METHODS.items()),
    )
    right.number_input(
        _("Trials"), min_value=1, max_value=100, key="keep_tune_trials", persist_state=KEEP, disabled=running
    )
    right.slider(
        _("Validation share"),
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
    split = _(
        "Trials are compared on a **validation split**: {n_val:,} of the {n_train:,} training images, held out "
        "(the same ones for every trial) and never trained on. The {n_test:,} test images are never used to "
        "choose: the best trial's test accuracy is shown once, at the end."
    ).format(n_val=n_val, n_train=dataset.n_train, n_test=dataset.n_test)
    if space.sampler == "grid":
        split += " " + _("The grid has {n} points.").format(n=space.grid_size())
    st.caption(split)

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
    go.button(_("Start the study"), type="primary", disabled=running, on_click=start, use_container_width=True)
    if stop.button(_("Stop the study"), disabled=not running, use_container_width=True):
        driver.stop()
        st.rerun()

if error := st.session_state.get("tune_error"):
    st.error(as_text(_("The study did not start: {error}").format(error=stored(error))))

names = study_names(storage, viewer())
if not names:
    st.info(_("No study yet: choose what to search above and press **Start the study**."))
    st.stop()
if driver is not None and st.session_state.get("tune_view") not in names:
    st.session_state["tune_view"] = driver.study_name
view = st.selectbox(
    _("Study to show"),
    names,
    key="tune_view",
    help=_("your studies, and those started on this server's command line"),
)


@st.fragment(run_every=REFRESH_S if running else None)
def show_study(name: str) -> None:
    mine = driver_of(study_owner)
    if running and not (mine is not None and mine.running):
        st.rerun(scope="app")  # the study ended: the buttons change
    study, space = open_study(storage, name)
    st.caption(_("Searching {space}.").format(space=describe_space(space)))
    if mine is not None and mine.study_name == name:
        current_trial = mine.current
        if mine.running and current_trial is not None:
            job = queue.get(current_trial.job_id)
            h = job.history if job is not None else None
            trial = {"number": current_trial.number, "params": format_params(current_trial.params)}
            if h is not None and h.total_steps:
                st.info(
                    _("Trial {number} training ({params}): epoch {epoch}/{epochs}, step {step}/{steps}.").format(
                        **trial, epoch=h.epoch, epochs=job.config.epochs, step=h.step, steps=h.total_steps
                    )
                )
            else:
                st.info(_("Trial {number} training ({params}).").format(**trial))
        elif not mine.running and mine.message:
            st.warning(as_text(stored(mine.message)))  # it may quote a study's name

    table = trials_table(study)
    savings = pruning_savings(study)
    best = best_trial(study)
    done = table[STATE].isin(["complete", "pruned"]).sum() if not table.empty else 0
    a, b, c = st.columns(3)
    a.metric(_("Trials ended"), f"{done}", help=_("complete or pruned; failed and stopped trials are in the table too"))
    b.metric(_("Best validation accuracy"), f"{best.val_acc:.1%}" if best else "—")
    saved = savings.seconds_saved
    c.metric(
        _("Time pruning saved"),
        _("{seconds:.1f} s").format(seconds=saved) if saved < 10 else _("{seconds:.0f} s").format(seconds=saved),
        help=_(
            "{pruned} trial(s) pruned; their missing epochs at their own pace. All trials trained for {seconds:.0f} s."
        ).format(pruned=savings.pruned, seconds=savings.seconds_spent),
    )
    if best is not None:
        test = _("not available") if best.test_acc is None else f"{best.test_acc:.1%}"
        st.success(
            _(
                "Best so far: trial {number} ({params}), validation accuracy {val_acc:.1%}. Its test accuracy, read "
                "once and not used to choose: **{test}**."
            ).format(number=best.number, params=format_params(best.params), val_acc=best.val_acc, test=test)
        )
        if best.run and st.button(_("Open the best trial in Report"), key=f"report-{best.run}"):
            st.session_state["selected_run"] = best.run
            st.switch_page("app_pages/4_Report.py")
    if table.empty:
        st.info(_("No trial has started yet."))
        return
    shown = table.drop(columns=[WORKER])  # a machine's name: for the command line's table, not a learner's
    shown[STATE] = shown[STATE].map(_)
    # The columns in the visitor's language (the same names in English); the hyperparameters' names stay, as
    # the trials' descriptions above write them
    header = {c: _(c) for c in (TRIAL, STATE, VAL_ACCURACY, EPOCHS, TRAINING_S, RUN)}
    st.dataframe(
        shown.rename(columns=header),
        hide_index=True,
        column_config={
            "lr": st.column_config.NumberColumn("lr", format="%.3g"),
            header[VAL_ACCURACY]: st.column_config.NumberColumn(header[VAL_ACCURACY], format="percent"),
            header[TRAINING_S]: st.column_config.NumberColumn(header[TRAINING_S], format="%.1f"),
        },
    )
    figures = study_figures(study)
    if figures:
        for tab, (title, figure) in zip(st.tabs([_(title) for title in figures]), figures.items()):
            tab.plotly_chart(figure, key=f"tune-{title}")
        if "Importances" not in figures:
            st.caption(_("Parameter importances appear once four trials have finished and two or more are searched."))


show_study(view)
