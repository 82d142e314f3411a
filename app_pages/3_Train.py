"""Train: the tutorial's knobs, a live loss chart, and the run's controls: pause, step, resume, stop,
and a new learning rate or momentum while it trains."""

import streamlit as st

from mnist_core import i18n
from mnist_core.config import CONFIG_FIELDS, LOOP_STYLES, NETWORK_KNOBS, TrainConfig, batches_per_epoch, nearest_offer
from mnist_core.devices import available_devices
from mnist_core.feed import FEED_POLL_S, FEED_WAIT_POLL_S
from mnist_core.i18n import N_, _
from mnist_core.jobs import Job, JobSnapshot
from mnist_core.outcomes import JobState
from mnist_core.presets import PRESET_KNOBS, PRESETS, matching
from mnist_core.run_schema import MAX_NAME
from mnist_core.visual import duration, live_chart_data
from ui.charts import honest_loss_axis, loss_figure, lr_find_figure
from ui.common import KEEP, current, outcome_box
from ui.inside import estimated_epoch, health_panel, network_card, sentence, watch_panel
from ui.live_chart import live_chart
from ui.state import job_queue, owner, session_job
from ui.train_actions import act, apply_preset, find_lr, keep_knobs, knobs_config, name_it, send_knob, start_run, use_lr

dataset, device = current()
CODE = {  # the tutorial's Flux loop and the PyTorch that runs here, per loop style: code, never translated
    "train!": (
        "@epochs 10 Flux.train!(loss, ps, train_data, opt, cb=callback)",  # untranslated: code
        "opt.zero_grad()\nloss = F.cross_entropy(model.logits(x), y)\nloss.backward()\nopt.step()",
    ),
    "gradient": (
        "for (x, y) in train_data\n    gs = gradient(() -> loss(x, y), ps)\n"  # untranslated: code
        "    Flux.update!(opt, ps, gs)\nend",
        "grads = torch.autograd.grad(loss, params)\nfor p, g in zip(params, grads):\n"  # untranslated: code
        "    p.grad = g\nopt.step()",
    ),
    "manual": (
        "gs = gradient(() -> loss(x, y), ps)\nfor p in ps\n    p .-= lr .* gs[p]\nend",  # untranslated: code
        "grads = torch.autograd.grad(loss, params)\nwith torch.no_grad():\n"  # untranslated: code
        "    for p, g in zip(params, grads):\n        p.sub_(lr * g)",
    ),
}
PRESETS_HELP = N_("Knobs worth trying first, each saying what to look for. Moving a knob makes the settings your own.")
ZOOM_HELP = N_("Draw the finished curve with Plotly's chart: zoom, pan, and read each point's step and loss.")
REPORT_PAGE = "app_pages/4_Report.py"  # a page by its file: its address, whatever its title
NO_FEED_REFRESH_S = 0.5  # the live view's redraws where the server cannot serve a feed (no static serving)

st.title(_("Train"))
queue = job_queue()
me = owner()
job = session_job()
# One reading of the job for this whole run of the page (Job.snapshot): it may start or end while the page draws.
now = job.snapshot() if job is not None else None
active = now is not None and now.state != JobState.DONE
live = now is not None and now.state == JobState.RUNNING  # running or paused: the live knobs steer it
paused = now is not None and now.paused
feed = now.feed if now is not None else None  # the chart follows a waiting or training job by itself
keep_knobs(job)


def knob_widget(name: str, **extra):
    """The widget of one TrainConfig field, from its one definition (label, help, range, choices)."""
    k = TrainConfig.knob(name)
    key = f"keep_{name}"
    disabled = active and not (k.live and live)
    # persist_state: the value outlives a visit to another page (and the widget hidden, as momentum for Descent)
    common = {"key": key, "help": sentence(_(k.help)), "disabled": disabled, "persist_state": KEEP}
    label = _(k.label)
    if k.live:
        common["on_change"], common["args"] = send_knob, (name,)
    if k.offer:
        options = sorted({*k.offer, st.session_state[key]})
        return st.select_slider(label, options, format_func=lambda v: f"{v:g}", **common, **extra)
    if isinstance(CONFIG_FIELDS[name].default, bool):
        return st.toggle(label, **common, **extra)
    if isinstance(CONFIG_FIELDS[name].default, str) and not k.choices:
        return st.text_input(label, max_chars=40, **common, **extra)
    if k.choices:
        if len(k.choices) <= 4:
            return st.radio(label, k.choices, horizontal=name != "loop", **common, **extra)
        return st.selectbox(label, k.choices, **common, **extra)
    if isinstance(CONFIG_FIELDS[name].default, float):
        return st.slider(label, float(k.low), float(k.high), step=0.01, **common, **extra)
    if k.high - k.low <= 1000:
        return st.slider(label, int(k.low), int(k.high), **common, **extra)
    return st.number_input(label, int(k.low), int(k.high), **common, **extra)


def lr_finder(chart_slot) -> None:
    """Find a learning rate: the range test's button and suggestion here, its curve in the wide ``chart_slot``.
    A result is offered only for the optimiser and batch size it was measured with."""
    found = queue.latest_of(me, task="lr-find")
    with st.expander(_("Find a learning rate"), expanded=found is not None):
        st.caption(
            _(
                "A short run that raises the learning rate a little every batch, from 1e-6 to 10, until the loss "
                "blows up (Leslie Smith's range test, fastai's lr_find). It uses the optimiser, batch size and "
                "seed above."
            )
        )
        st.button(_("Run the range test"), on_click=find_lr, disabled=active, use_container_width=True)
        if found is None:
            return
        if not found.done:
            st.info(_("The range test is running..."))
            return
        if found.lr_curve is None:
            st.error(i18n.stored(found.message))
            return
        c, cfg = found.lr_curve, found.config
        knobs = (st.session_state["keep_optimiser"], st.session_state["keep_batch_size"])
        if (cfg.optimiser, cfg.batch_size) != knobs:
            st.caption(
                _("The last test was for {optimiser}, batch {batch}: run it again for these knobs.").format(
                    optimiser=cfg.optimiser, batch=cfg.batch_size
                )
            )
            return
        choice = nearest_offer("lr", c.suggested_lr)
        st.button(
            _("Use lr {lr:g}").format(lr=choice),
            on_click=use_lr,
            args=(choice,),
            disabled=active,
            use_container_width=True,
        )
    title = _("The range test for {optimiser}, batch {batch}").format(optimiser=cfg.optimiser, batch=cfg.batch_size)
    with chart_slot, st.expander(title, expanded=True):
        st.plotly_chart(lr_find_figure(c.lrs, c.losses, c.smoothed, c.suggested_lr), key="lr_find_chart")
        settings = _("{optimiser}, batch {batch}, seed {seed}.").format(
            optimiser=cfg.optimiser, batch=cfg.batch_size, seed=cfg.seed
        )
        st.caption(f"{settings} {i18n.stored(found.message)}")


def fixed_knobs(momentum: bool, advanced) -> None:
    """The knobs a run keeps from its start (and momentum, where asked), the rarely turned ones last, in the
    container ``advanced()`` makes there."""
    knob_widget("epochs")
    knob_widget("batch_size")
    if knob_widget("optimiser") != "Descent" and momentum:
        knob_widget("momentum")
    knob_widget("loop", format_func=lambda style: _(LOOP_STYLES[style]))
    if st.session_state["keep_loop"] == "manual" and st.session_state["keep_optimiser"] != "Descent":
        st.warning(_("The update by hand is plain Descent: choose Descent, or another loop style, to start."))
    with advanced():
        st.caption(_("Network (the tutorial's Chain: 8,16,32,32, relu, no batch norm, no dropout)"))
        for name in NETWORK_KNOBS:
            knob_widget(name)
        network_card(knobs_config(), dataset.n_train)
        knob_widget("seed")
        if st.session_state["keep_device"] not in available_devices():
            st.session_state["keep_device"] = "auto"
        st.selectbox(
            _(TrainConfig.knob("device").label),
            available_devices(),
            key="keep_device",
            disabled=active,
            persist_state=KEEP,
        )
        knob_widget("record_every")


controls, view = st.columns([1, 2.6], gap="large")
finder_slot = view.container()  # the range test's curve: wide, above the run (empty without one)
with controls:
    # Start first: with the knobs above it, it was below the first screen at 1280 x 800
    st.button(_("Start training"), type="primary", disabled=active, use_container_width=True, on_click=start_run)
    per_epoch = batches_per_epoch(dataset.n_train, st.session_state["keep_batch_size"])
    epochs = st.session_state["keep_epochs"]
    about = estimated_epoch(knobs_config(), dataset.n_train) if not active else None
    plan = {
        "epochs": epochs,
        "per_epoch": per_epoch,
        "batch": st.session_state["keep_batch_size"],
        "steps": epochs * per_epoch,
        "dataset": _(dataset.title),
    }
    if about is None:
        st.caption(_("{epochs} epochs × {per_epoch} batches of {batch} = {steps:,} steps on {dataset}").format(**plan))
    else:
        st.caption(
            _(
                "{epochs} epochs × {per_epoch} batches of {batch} = {steps:,} steps on {dataset}, "
                "about {time} of training"
            ).format(time=duration(epochs * about), **plan)
        )
    if error := st.session_state.pop("control_error", None):
        st.error(error)
    # The preset the knobs match now (none once a knob moves): "back to the tutorial's settings" is one choice
    chosen = matching({name: st.session_state[f"keep_{name}"] for name in PRESET_KNOBS})
    if not active:
        # Buttons, not a select box: a choice is an event, so a knob moved at once after it is never undone by a
        # stale selection the browser sends back (a select box set by code re-applied its preset that way)
        with st.popover(_("Presets"), width="stretch", help=_(PRESETS_HELP)):
            for preset in PRESETS:  # the key and the callback keep the preset's English name
                st.button(_(preset.name), key=f"preset_{preset.name}", on_click=apply_preset, args=(preset.name,),
                          use_container_width=True, help=_(preset.look_for))  # fmt: skip
        st.caption(_("Preset: {name}").format(name=_(chosen.name)) if chosen else _("Your own settings"))
    knob_widget("lr")
    if live:
        st.caption(_("Move the learning rate while it trains: it applies from the next batch once the slider rests."))
    if active:
        # While it trains only the live knobs stay open: the run's controls then sit in the first screen,
        # also at 390 px wide, where the columns stack
        if st.session_state["keep_optimiser"] != "Descent":
            knob_widget("momentum")
        with st.expander(_("This run's other settings")):
            fixed_knobs(momentum=False, advanced=st.container)
    else:
        lr_finder(finder_slot)
        fixed_knobs(momentum=True, advanced=lambda: st.expander(_("Advanced")))


def mode(j: Job | None, reading: JobSnapshot | None = None) -> tuple:
    """What decides the page's layout and refresh rate (of ``reading``, else read now): a change of it redraws
    the whole page."""
    return (None,) if j is None else (j.id, (reading or j.snapshot()).mode)


watched = mode(job, now)  # what this run of the page draws
drawn_mode = now.mode if now is not None else None  # the feed's mode this page is drawn for (mnist_core.feed)
# The chart follows the job's feed in every state but the end (waiting, training, paused), and redraws the page
# when the feed's mode changes: no timer. Only a server without static serving has no feed: a timer then.
refresh = NO_FEED_REFRESH_S if active and not feed else None


def run_buttons(j: Job) -> None:
    """Cancel a waiting job; pause, resume, step or stop a running one. A button that changes the page's mode
    redraws the whole page."""
    buttons, h = st.columns(4), j.history
    if j.state == JobState.QUEUED:
        if buttons[0].button(_("Cancel"), key="cancel", use_container_width=True):
            act(j, "stop")
            st.rerun(scope="app")
    elif j.state == JobState.RUNNING:
        if h.paused:
            if buttons[0].button(
                _("Resume"), key="resume", type="primary", icon=":material/play_arrow:", use_container_width=True
            ):
                act(j, "resume")
            if buttons[1].button(_("Step 1 batch"), key="step", icon=":material/skip_next:", use_container_width=True):
                act(j, "step", batches=1)
            if buttons[2].button(
                _("To epoch end"),
                key="epoch",
                icon=":material/fast_forward:",
                use_container_width=True,
                help=_("train to the end of this epoch (a whole epoch when paused at its start), then pause"),
            ):
                act(j, "epoch")
        elif buttons[0].button(_("Pause"), key="pause", icon=":material/pause:", use_container_width=True):
            act(j, "pause")
        if buttons[3].button(_("Stop"), key="stop", icon=":material/stop:", use_container_width=True):
            act(j, "stop")
        if mode(j) != watched and not st.session_state.get(INLINE):
            st.rerun(scope="app")


def still_view(j: Job) -> None:
    """A paused or ended run: its lines and its chart, drawn by the page (no feed to follow)."""
    h = j.history
    # Paused or ended: the same lines as the feed's above the chart while it trains (one definition of them)
    progress, notes, warning = j.live_lines()
    if progress is not None:
        share, text = progress
        if share is None:  # warming up or starting: what is happening
            st.info(text)
        else:
            st.progress(share, text=text)
    for note in notes:
        st.caption(note)
    if warning:
        st.warning(warning)
    # Paused or ended: the canvas the learner watched, light on the browser (see ui/live_chart.py); Plotly's
    # chart, to zoom and hover, when asked for (it costs the browser as much as the rest of the page's redraw).
    if j.done and st.toggle(_("Zoom and hover"), key="zoom_chart", persist_state="session", help=_(ZOOM_HELP)):
        losses = h.batch_losses[:]
        figure = loss_figure(losses, h.epochs[:], h.full_losses[:], h.total_steps, lr_schedule=h.lr_schedule[:])
        st.plotly_chart(honest_loss_axis(figure, losses), key="still_chart")
    else:
        live_chart(live_chart_data(h.batch_losses[:], h.epochs[:], h.full_losses[:], h.total_steps, h.lr_schedule[:]))


@st.fragment(run_every=refresh)
def live_view() -> None:
    j = session_job()
    if j is None:
        st.info(_("Set the knobs and press **Start training**. Data: {data}.").format(data=dataset.describe()))
        if chosen is not None:
            st.caption(f"**{_(chosen.name)}**: {_(chosen.look_for)}")
        # Empty axes where the curve will be drawn.
        planned = st.session_state["keep_epochs"] * batches_per_epoch(
            dataset.n_train, st.session_state["keep_batch_size"]
        )
        live_chart(live_chart_data([], [], [], planned, []))
        return
    if mode(j) != watched and not st.session_state.get(INLINE):
        st.rerun(scope="app")  # queued -> running -> paused -> done: redraw the page (knobs, refresh rate)
    cfg = j.config
    h = j.history
    run_buttons(j)
    settings = {"id": j.id, "optimiser": cfg.optimiser, "lr": cfg.lr, "momentum": cfg.momentum, "epochs": cfg.epochs,
                "batch": cfg.batch_size, "loop": cfg.loop, "seed": cfg.seed}  # fmt: skip
    if cfg.optimiser != "Descent":
        run_line = _(
            "Run `{id}`: {optimiser}, lr {lr:g}, momentum {momentum:g}, {epochs} epochs, batch {batch}, "
            "loop {loop}, seed {seed}"
        )
    else:
        run_line = _("Run `{id}`: {optimiser}, lr {lr:g}, {epochs} epochs, batch {batch}, loop {loop}, seed {seed}")
    st.caption(run_line.format(**settings))
    if preset := matching({name: getattr(cfg, name) for name in PRESET_KNOBS}):
        st.caption(
            _("What to look for ({preset}): {look_for}").format(preset=_(preset.name), look_for=_(preset.look_for))
        )
    if j.state == JobState.QUEUED and not feed:
        st.info(queue.waiting_line(j.id))
    if h is None:  # never left the queue
        if j.done:
            outcome_message(j)
        return
    if h.paused and (j.folder / "report.json").is_file():  # the checkpoint of the paused model
        st.session_state["selected_run"] = j.id
        st.page_link(REPORT_PAGE, label=_("Report of the paused model"), icon=":material/analytics:")
    if feed:  # the chart below follows the run, with its progress, epoch and knob lines
        return
    still_view(j)
    if j.done:
        outcome_message(j)


INLINE = "live_view_inline"  # set while the script draws the view itself, not a rerun of the fragment alone


def followed_chart(j: Job) -> None:
    """The chart of a waiting or training job with a feed: it polls the feed, shows the place in line or the
    progress and epoch lines, and redraws the page when the feed's mode is not the one drawn here. Outside
    the view's fragment, so that the redraw is the whole page's (knobs, buttons, timers) in one run."""
    payload = queue.feed_payload(j)  # what the feed says: the chart goes on from there
    # empty axes until the trainer says how many steps
    planned = j.config.epochs * batches_per_epoch(dataset.n_train, j.config.batch_size)
    curves = payload.get("chart") or live_chart_data([], [], [], planned, [])
    poll = FEED_POLL_S if now.state == JobState.RUNNING and not now.paused else FEED_WAIT_POLL_S
    live_chart(curves, feed, drawn_mode, payload["progress"], payload["notes"], payload["warning"], poll=poll)


# The panels below the curve follow the trainer's views of the digit (about 3 a second) and its health
# readings, in a fragment of their own: redrawn with the chart five times a second they took Chromium from
# 54% to 67% of a core while a run trains; on a timer of their own (2.5 redraws a second), 59%. With a live
# feed the digit follows the feed and only the health table needs a redraw, once a second: 2.5 redraws a
# second cost the watching browser 20% of a core (renderer 37% -> 17% without them). With a feed and the
# digit's tab open, no timer at all: every timed fragment rerun is one more chance to race a whole-page
# redraw in the browser ("Bad delta path index", a blank page).
HEALTH_TAB = N_("Training health")  # the tabs' state holds the label shown: compared in the visitor's language
INSIDE_REFRESH_S = 1.0 if feed else 0.4
inside_timed = live and not paused and (not feed or st.session_state.get("inside_tab") == _(HEALTH_TAB))


@st.fragment(run_every=INSIDE_REFRESH_S if inside_timed else None)
def inside() -> None:
    """Below the curve: one digit's journey through the network, and the health of each layer."""
    j = session_job()
    # Only the open tab is drawn: the other one's content would cost every redraw of the page and the panel.
    digit_tab, health_tab = st.tabs([_("Watch one digit"), _(HEALTH_TAB)], key="inside_tab", on_change="rerun")
    if digit_tab.open:
        if feed and inside_timed:  # back from the health tab: the digit follows the feed, drop the timer
            st.rerun(scope="app")
        with digit_tab:
            watch_panel(j, dataset, st.session_state["keep_seed"], feed)
    if health_tab.open:
        if live and not paused and not inside_timed:  # the health tab chosen while it trains: start its timer
            st.rerun(scope="app")
        with health_tab:
            health_panel(j)


def outcome_message(j: Job) -> None:
    """How the run ended, in its outcome's colour (mnist_core.outcomes), and where its report is."""
    outcome_box(j.outcome, i18n.stored(j.outcome_text()))  # its message was saved in English
    if j.run_dir is not None:
        st.session_state["selected_run"] = j.run_dir.name
        link, name = st.columns([1, 2], vertical_alignment="center")
        link.page_link(REPORT_PAGE, label=_("Open its report"), icon=":material/analytics:")
        name.text_input(
            _("Name this run"),
            key=f"name_{j.id}",
            max_chars=MAX_NAME,
            placeholder=_("Name this run (Runs shows it)"),
            label_visibility="collapsed",
            on_change=name_it,
            args=(j,),
        )
        if named := st.session_state.get(f"named_{j.id}"):
            name.caption(_("Saved as “{name}”.").format(name=named))
        if problem := st.session_state.pop(f"name_error_{j.id}", None):
            name.error(problem)


# One container per part, so that each fragment keeps its place in the column whatever the others draw: a
# fragment that draws more or fewer elements than the full run before it, or that moves, can race a full
# rerun in the browser ("Bad delta path index", a blank page).
run_slot, chart_slot, inside_slot = view.container(), view.container(), view.container()
with run_slot:
    st.session_state[INLINE] = True
    try:  # a rerun asked for meanwhile stops this run inside the view: the flag must not outlive it
        live_view()
    finally:
        st.session_state[INLINE] = False
if feed:
    with chart_slot:
        followed_chart(job)
with inside_slot:
    inside()
with view:  # below the run: the knobs' column has the loop style, this says what it runs
    flux_code, torch_code = CODE[st.session_state["keep_loop"]]
    style = _(LOOP_STYLES[st.session_state["keep_loop"]])
    with st.expander(_("What the loop style does: {style}").format(style=style)):
        left, right = st.columns(2)
        left.caption(_("Flux (the tutorial)"))
        left.code(flux_code, language="julia", wrap_lines=True)
        right.caption(_("PyTorch (what runs here)"))
        right.code(torch_code, language="python", wrap_lines=True)
