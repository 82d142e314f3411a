"""Report: the selected run's outcome, accuracy, per-epoch curves, per-class table, confusion matrix, mistakes.

Text a run folder holds (its message, device, data set title) may come from someone's archive: it is
shown with ``st.text``, never as markdown, so it cannot draw images or links on the page.
"""

import streamlit as st

from mnist_core.history import plateau_warning
from mnist_core.i18n import N_, _, stored
from mnist_core.outcomes import Ending
from mnist_core.report import FOUND, GUESSES_RIGHT, cell_indices, worst_cell
from mnist_core.runs import describe_schedule
from mnist_core.visual import upscale
from ui.charts import confusion_figure
from ui.common import next_step, run_answers, run_figures, run_test_images, show_outcome
from ui.state import chosen_run, job_queue
from ui.why import mistake_maps

st.title(_("Report"))
run = chosen_run(
    N_("Run"),  # run_picker translates its label
    key="run_picker",
    empty=_("No saved runs yet. Train one on the **Train** page; it is saved when it ends."),
)
cfg, meta = run.config, run.meta
st.caption(
    _("{optimiser}, lr {lr:g}, {epochs} epochs, batch {batch_size}, loop {loop}, seed {seed}").format(
        optimiser=cfg.optimiser, lr=cfg.lr, epochs=cfg.epochs, batch_size=cfg.batch_size, loop=cfg.loop, seed=cfg.seed
    )
    + (" · " + _("imported from an archive") if meta.imported else "")
)
st.text(" · ".join(stored(t) for t in (meta.dataset_title or cfg.dataset, meta.device) if t))  # saved in English
live = job_queue().get(run.run_id)
if live is not None and not live.done:  # a checkpoint of a run that still trains (paused, or at an epoch end)
    if live.history is not None and live.history.paused:
        checkpoint = _(
            "This run is paused: this is the model as saved at step {steps}. "
            "The final report replaces it when the run ends."
        )
    else:
        checkpoint = _(
            "This run is still training: this is the model as saved at step {steps}. "
            "The final report replaces it when the run ends."
        )
    st.info(checkpoint.format(steps=meta.steps))
else:
    show_outcome(meta.status, meta.message)  # the message, saved in English, in the reader's language
if meta.status != Ending.COLLAPSED and (warning := plateau_warning(run.history.epochs)):  # collapsed says it already
    st.warning(warning)

report = run.report
if report is None and live is not None and not live.done:
    st.info(_("Its checkpoint has no report yet: one is written at the end of an epoch. Its curves are below."))
elif report is None and meta.status == Ending.DIVERGED:
    st.info(_("A diverged run has no report: its weights are no longer numbers (NaN). Its curves are below."))
elif report is None:
    st.info(_("This run has no report: it ended before its first epoch was evaluated. Its curves are below."))
else:
    a, b, c, d = st.columns(4)
    a.metric(_("Test accuracy"), f"{report.test_acc:.2%}")
    b.metric(_("Train accuracy"), f"{report.train_acc:.2%}")
    c.metric(_("Test loss"), f"{report.test_loss:.4f}")
    d.metric(_("Train loss"), f"{report.train_loss:.4f}")
    st.caption(
        _(
            "Measured after training on all {n_train:,} training and {n_test:,} test "
            "images: the tutorial's accuracy(model(x), y). Training took {seconds:.1f} s "
            "at {speed:,.0f} images/s."
        ).format(n_train=meta.n_train, n_test=meta.n_test, seconds=meta.train_seconds, speed=meta.images_per_sec)
    )

h = run.history
st.subheader(_("Training curves"))
figures = run_figures(run)
st.plotly_chart(figures["loss"], key="loss")
for name, schedule in (("lr", h.lr_schedule), ("momentum", h.momentum_schedule)):
    if len(schedule) > 1:
        st.caption(describe_schedule(name, schedule))
if h.epochs:
    st.plotly_chart(figures["epochs"], key="epochs")
if report is None:
    st.stop()

st.subheader(_("Per class (test set)"))
per_class = report.per_class.assign(
    **{FOUND: report.per_class[FOUND].map(lambda v: _("no images") if v != v else f"{v:.1%}")},  # v != v: NaN
    **{GUESSES_RIGHT: report.per_class[GUESSES_RIGHT].map(lambda v: _("no guesses") if v != v else f"{v:.1%}")},
).rename(columns=_)  # the columns' names (mnist_core.report, marked there) in the reader's language
st.table(per_class.style.hide(axis="index"))  # ten rows: a static table that never cuts a column off
st.caption(
    _(
        "**{found}**: of a class's test images, the share the model got right (the tutorial's accuracy on that "
        "class alone). **{guesses_right}**: of the images the model called that class, the share that were it."
    ).format(found=_(FOUND), guesses_right=_(GUESSES_RIGHT))
)

st.subheader(_("Confusion matrix (test set)"))
classes = list(report.classes)
left, right = st.columns([3, 2])
event = left.plotly_chart(
    confusion_figure(report.confusion.numpy(), classes),
    key=f"confusion-{run.run_id}",  # a click on another run's matrix is not kept
    on_select="rerun",
    selection_mode="points",
)
points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else []
# The chosen cell lives in the two select boxes, keyed by run: a cell chosen on another run never carries over.
# A click sets them once; the click stays in the chart's selection, so it is applied only when it is new.
true_key, pred_key, click_key = (f"{name}-{run.run_id}" for name in ("true", "pred", "click"))
if points and str(points[0].get("y")) in classes and str(points[0].get("x")) in classes:
    click = (classes.index(str(points[0]["y"])), classes.index(str(points[0]["x"])))
    if st.session_state.get(click_key) != click:
        st.session_state[click_key] = click
        st.session_state[true_key], st.session_state[pred_key] = click
worst = worst_cell(report.confusion)
st.session_state.setdefault(true_key, worst[0])
st.session_state.setdefault(pred_key, worst[1])
dataset = run_test_images(run)
with right:
    st.markdown(_("Click a cell, or choose one:"))
    c1, c2 = st.columns(2)
    true_k = c1.selectbox(_("True class"), range(len(classes)), format_func=classes.__getitem__, key=true_key)
    pred_k = c2.selectbox(_("Predicted class"), range(len(classes)), format_func=classes.__getitem__, key=pred_key)
    if dataset is not None:
        idx = cell_indices(dataset.test_labels, run_answers(run, dataset), true_k, pred_k)
        cell = (
            _("{count} test images are {true} and were predicted {predicted}; the first {shown}:")
            if idx
            else _("{count} test images are {true} and were predicted {predicted}.")
        )
        count = int(report.confusion[true_k, pred_k])
        st.caption(cell.format(count=count, true=classes[true_k], predicted=classes[pred_k], shown=len(idx)))
        if idx:
            st.image([upscale(dataset.test_images[i], 2) for i in idx], caption=[f"#{i}" for i in idx], width=56)

st.subheader(_("Most confident mistakes (test set)"))
m = report.mistakes
if m.empty:
    st.success(_("No mistakes on the test set."))
elif dataset is not None:
    st.image(
        [upscale(dataset.test_images[int(i)], 3) for i in m["index"]],
        caption=[
            _("#{index}: true {true}, said {said} ({probability:.0%})").format(
                index=int(i), true=classes[int(t)], said=classes[int(p)], probability=q
            )
            for i, t, p, q in m[["index", "true", "predicted", "probability"]].itertuples(index=False)
        ],
        width=110,
    )
    with st.expander(_("What it looked at, mistake by mistake")):
        mistake_maps(run, dataset.test_images, m, classes)

next_step("app_pages/5_Runs.py", _("compare this run with others (Runs)"))
