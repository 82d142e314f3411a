"""Report: the selected run's outcome, accuracy, per-epoch curves, per-class table, confusion matrix, mistakes.

Text a run folder holds (its message, device, data set title) may come from someone's archive: it is
shown with ``st.text``, never as markdown, so it cannot draw images or links on the page.
"""

import streamlit as st

from mnist_core.history import plateau_warning
from mnist_core.outcomes import Ending
from mnist_core.report import FOUND, GUESSES_RIGHT, cell_indices, worst_cell
from mnist_core.runs import describe_schedule
from mnist_core.visual import upscale
from ui.charts import confusion_figure
from ui.common import next_step, run_answers, run_figures, run_test_images, show_outcome
from ui.state import chosen_run, job_queue
from ui.why import mistake_maps

st.title("Report")
run = chosen_run(
    "Run", key="run_picker", empty="No saved runs yet. Train one on the **Train** page; it is saved when it ends."
)
cfg, meta = run.config, run.meta
st.caption(
    f"{cfg.optimiser}, lr {cfg.lr:g}, {cfg.epochs} epochs, batch {cfg.batch_size}, loop {cfg.loop}, seed {cfg.seed}"
    + (" · imported from an archive" if meta.imported else "")
)
st.text(" · ".join(t for t in (meta.dataset_title or cfg.dataset, meta.device) if t))
live = job_queue().get(run.run_id)
if live is not None and not live.done:  # a checkpoint of a run that still trains (paused, or at an epoch end)
    now = "paused" if live.history is not None and live.history.paused else "still training"
    st.info(
        f"This run is {now}: this is the model as saved at step {meta.steps}. "
        "The final report replaces it when the run ends."
    )
else:
    show_outcome(meta.status, meta.message)
if meta.status != Ending.COLLAPSED and (warning := plateau_warning(run.history.epochs)):  # collapsed says it already
    st.warning(warning)

report = run.report
if report is None and live is not None and not live.done:
    st.info("Its checkpoint has no report yet: one is written at the end of an epoch. Its curves are below.")
elif report is None and meta.status == Ending.DIVERGED:
    st.info("A diverged run has no report: its weights are no longer numbers (NaN). Its curves are below.")
elif report is None:
    st.info("This run has no report: it ended before its first epoch was evaluated. Its curves are below.")
else:
    a, b, c, d = st.columns(4)
    a.metric("Test accuracy", f"{report.test_acc:.2%}")
    b.metric("Train accuracy", f"{report.train_acc:.2%}")
    c.metric("Test loss", f"{report.test_loss:.4f}")
    d.metric("Train loss", f"{report.train_loss:.4f}")
    st.caption(
        f"Measured after training on all {meta.n_train:,} training and {meta.n_test:,} test "
        f"images: the tutorial's accuracy(model(x), y). Training took {meta.train_seconds:.1f} s "
        f"at {meta.images_per_sec:,.0f} images/s."
    )

h = run.history
st.subheader("Training curves")
figures = run_figures(run)
st.plotly_chart(figures["loss"], key="loss")
for name, schedule in (("lr", h.lr_schedule), ("momentum", h.momentum_schedule)):
    if len(schedule) > 1:
        st.caption(describe_schedule(name, schedule))
if h.epochs:
    st.plotly_chart(figures["epochs"], key="epochs")
if report is None:
    st.stop()

st.subheader("Per class (test set)")
per_class = report.per_class.assign(
    **{FOUND: report.per_class[FOUND].map(lambda v: "no images" if v != v else f"{v:.1%}")},  # v != v: NaN
    **{GUESSES_RIGHT: report.per_class[GUESSES_RIGHT].map(lambda v: "no guesses" if v != v else f"{v:.1%}")},
)
st.table(per_class.style.hide(axis="index"))  # ten rows: a static table that never cuts a column off
st.caption(
    f"**{FOUND}**: of a class's test images, the share the model got right (the tutorial's accuracy on that "
    f"class alone). **{GUESSES_RIGHT}**: of the images the model called that class, the share that were it."
)

st.subheader("Confusion matrix (test set)")
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
    st.markdown("Click a cell, or choose one:")
    c1, c2 = st.columns(2)
    true_k = c1.selectbox("True class", range(len(classes)), format_func=classes.__getitem__, key=true_key)
    pred_k = c2.selectbox("Predicted class", range(len(classes)), format_func=classes.__getitem__, key=pred_key)
    if dataset is not None:
        idx = cell_indices(dataset.test_labels, run_answers(run, dataset), true_k, pred_k)
        st.caption(
            f"{int(report.confusion[true_k, pred_k])} test images are {classes[true_k]} and were "
            f"predicted {classes[pred_k]}" + (f"; the first {len(idx)}:" if idx else ".")
        )
        if idx:
            st.image([upscale(dataset.test_images[i], 2) for i in idx], caption=[f"#{i}" for i in idx], width=56)

st.subheader("Most confident mistakes (test set)")
m = report.mistakes
if m.empty:
    st.success("No mistakes on the test set.")
elif dataset is not None:
    st.image(
        [upscale(dataset.test_images[int(i)], 3) for i in m["index"]],
        caption=[
            f"#{int(i)}: true {classes[int(t)]}, said {classes[int(p)]} ({q:.0%})"
            for i, t, p, q in m[["index", "true", "predicted", "probability"]].itertuples(index=False)
        ],
        width=110,
    )
    with st.expander("What it looked at, mistake by mistake"):
        mistake_maps(run, dataset.test_images, m, classes)

next_step("app_pages/5_Runs.py", "compare this run with others (Runs)")
