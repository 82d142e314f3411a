"""Train: the tutorial's knobs, a live loss chart fed by a background run, and Stop."""

import numpy as np
import streamlit as st

from mnist_core.train import LOOP_STYLES, OPTIMISERS, TrainConfig, available_devices, plateau_warning
from ui.charts import loss_figure
from ui.common import current
from ui.state import job_queue, remember_job, session_job

dataset, device = current()
LEARNING_RATES = sorted({float(f"{v:.2g}") for v in np.logspace(-4, 0, 41)})  # 1e-4 ... 1, 10 per decade
CODE = {
    "train!": (
        "@epochs 10 Flux.train!(loss, ps, train_data, opt, cb=callback)",
        "opt.zero_grad()\nloss = F.cross_entropy(model.logits(x), y)\nloss.backward()\nopt.step()",
    ),
    "gradient": (
        "for (x, y) in train_data\n    gs = gradient(() -> loss(x, y), ps)\n    Flux.update!(opt, ps, gs)\nend",
        "grads = torch.autograd.grad(loss, params)\nfor p, g in zip(params, grads):\n    p.grad = g\nopt.step()",
    ),
    "manual": (
        "gs = gradient(() -> loss(x, y), ps)\nfor p in ps\n    p .-= lr .* gs[p]\nend",
        "grads = torch.autograd.grad(loss, params)\nwith torch.no_grad():\n"
        "    for p, g in zip(params, grads):\n        p.sub_(lr * g)",
    ),
}

st.title("Train")
job = session_job()
busy = job is not None and not job.done
queue = job_queue()

controls, view = st.columns([1, 2.6], gap="large")
with controls:
    tutorial = TrainConfig()  # the tutorial's defaults, kept across pages once changed
    for key, value in {
        "keep_lr": tutorial.lr,
        "keep_epochs": tutorial.epochs,
        "keep_batch": tutorial.batch_size,
        "keep_opt": tutorial.optimiser,
        "keep_loop": tutorial.loop,
        "keep_seed": tutorial.seed,
        "keep_device": tutorial.device,
        "keep_record": tutorial.record_every,
    }.items():
        st.session_state.setdefault(key, value)
    lr = st.select_slider(
        "Learning rate (log scale)",
        LEARNING_RATES,
        key="keep_lr",
        format_func=lambda v: f"{v:g}",
        disabled=busy,
        help="The tutorial uses Descent(0.1).",
    )
    epochs = st.slider("Epochs", 1, 30, key="keep_epochs", disabled=busy)
    batch_size = st.select_slider("Batch size", [16, 32, 64, 128, 256, 512, 1024], key="keep_batch", disabled=busy)
    optimiser = st.radio(
        "Optimiser",
        OPTIMISERS,
        key="keep_opt",
        horizontal=True,
        disabled=busy,
        help="Descent is plain gradient descent; the article names Momentum and ADAM as better.",
    )
    loop = st.radio("Loop style", list(LOOP_STYLES), format_func=LOOP_STYLES.get, key="keep_loop", disabled=busy)
    with st.expander("Advanced"):
        seed = st.number_input("Seed", 0, 2**31 - 1, key="keep_seed", disabled=busy)
        device_choice = st.selectbox("Device", available_devices(), key="keep_device", disabled=busy)
        record_every = st.number_input(
            "Loss on the whole train set every N batches (0 = off)",
            0,
            100_000,
            key="keep_record",
            disabled=busy,
            help="The tutorial's callback. It evaluates every training image: costly.",
        )
    start = st.button("Start training", type="primary", disabled=busy, use_container_width=True)
    stop = st.button("Stop", disabled=not busy, use_container_width=True)

if start:
    config = TrainConfig(
        dataset=dataset.name,
        lr=lr,
        epochs=epochs,
        batch_size=batch_size,
        optimiser=optimiser,
        loop=loop,
        seed=int(seed),
        device=device_choice,
        record_every=int(record_every),
    )
    try:
        # Offline (the sample is in use) the child need not try the network again.
        remember_job(queue.submit(config, allow_download=dataset.source_kind != "sample"))
        st.rerun()
    except ValueError as exc:
        controls.error(str(exc))
if stop and job is not None:
    queue.stop(job.id)

with view:
    flux_code, torch_code = CODE[loop]
    with st.expander(f"What the loop style does: {LOOP_STYLES[loop]}"):
        left, right = st.columns(2)
        left.caption("Flux (the tutorial)")
        left.code(flux_code, language="julia")
        right.caption("PyTorch (what runs here)")
        right.code(torch_code, language="python")


# Twice a second while training; a job waiting in the queue only needs its place now and then,
# which keeps a server with many waiting learners responsive.
watched_state = job.state if job is not None else None


@st.fragment(run_every=(0.5 if watched_state == "running" else 2.0) if busy else None)
def live_view() -> None:
    job = session_job()
    if job is None:
        st.info(f"Set the knobs and press **Start training**. Data: {dataset.describe()}.")
        return
    if busy and job.state != watched_state:  # queued -> running -> done: redraw the page (knobs, refresh rate)
        st.rerun(scope="app")
    cfg = job.config
    st.caption(
        f"Run `{job.id}`: {cfg.optimiser}, lr {cfg.lr:g}, {cfg.epochs} epochs, batch {cfg.batch_size}, "
        f"loop {cfg.loop}, seed {cfg.seed}"
    )
    if job.state == "queued":
        place = queue.position(job.id)
        st.info(
            f"Waiting in the queue: place {place} of {len(queue.active())} jobs. "
            f"Training runs {queue.max_concurrent} at a time so each finishes as fast as it can."
        )
    h = job.history
    if h is not None:
        left = h.seconds_left
        st.progress(
            min(h.step / max(h.total_steps, 1), 1.0),
            text=f"epoch {h.epoch}/{cfg.epochs} · step {h.step}/{h.total_steps} · "
            f"{h.images_per_sec:,.0f} images/s" + (f" · about {left:.0f} s left" if left is not None else ""),
        )
        if h.epochs:
            e = h.epochs[-1]
            st.caption(f"after epoch {e.epoch}: test accuracy {e.test_acc:.2%}, train loss {e.train_loss:.4f}")
        warning = plateau_warning(h.epochs)
        if warning:
            st.warning(warning)
        st.plotly_chart(
            loss_figure(list(h.batch_losses), list(h.epochs), list(h.full_losses), h.total_steps), key="live_chart"
        )
    if job.done:
        if job.outcome == "finished" and job.run_dir is not None:
            st.success(f"{job.message} Test accuracy {h.epochs[-1].test_acc:.2%}. The run is saved.")
        elif job.outcome == "diverged":
            st.error(job.message)
        elif job.outcome in ("stopped", "cancelled"):
            st.warning(job.message + (" The partial run is saved and can be reported on." if job.run_dir else ""))
        else:
            st.error(job.message)
        if job.run_dir is not None:
            st.session_state["selected_run"] = job.id
            st.page_link("app_pages/4_Report.py", label="Open its report", icon=":material/analytics:")


with view:
    live_view()
