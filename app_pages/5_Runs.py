"""Runs: your saved runs and the shared ones, each in a sortable table; compare, download, upload, share, delete.

Only your own runs can be deleted or shared; shared runs (made on this server's command line, or shared by
their owner) are read-only. Run names and messages may come from someone's archive: names are shown in code
spans (an imported run's name holds only letters, digits and -._), messages and errors with ``st.text``.
"""

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st

from mnist_core.i18n import _, stored, when
from mnist_core.outcomes import outcome
from mnist_core.run_archive import export_run, export_runs, import_run
from mnist_core.run_schema import MAX_NAME, MAX_NOTE, RunError
from mnist_core.runs import delete_run, differing_labels, name_run, runs_root, runs_table, share_run
from ui.charts import compare_figure
from ui.common import next_step, outcome_css, show_outcome
from ui.state import get_run, job_queue, viewer

st.title(_("Runs"))
me = viewer()
# Bumped whenever the list of runs changes here: a table under a new key starts with nothing ticked, so a
# selection never outlives the rows it was made on.
st.session_state.setdefault("runs_generation", 0)


def changed() -> None:
    st.session_state["runs_generation"] += 1
    st.session_state.pop("confirm_delete", None)


for problem in st.session_state.pop("runs_problems", []):
    st.error(_("Not done:"))
    st.text(problem)

running, waiting = job_queue().busy()
if running or waiting:
    st.info(
        _("Training now: {running} run(s); waiting: {waiting}. Each run appears below when it ends.").format(
            running=running, waiting=waiting
        )
    )

with st.expander(_("Add a run from an archive")):
    upload = st.file_uploader(_("A run archive (.zip) downloaded from this page"), type=["zip"], key="run_upload")
    if upload is not None and st.session_state.get("imported") != upload.file_id:
        st.session_state["imported"] = upload.file_id  # once per upload, whatever the outcome
        try:
            added = import_run(upload.getvalue(), owner=me)
            st.session_state["selected_run"] = added.name
            st.session_state["import_note"] = ("success", added.name)  # put in words when shown: in the language then
            changed()
        except RunError as exc:
            st.session_state["import_note"] = ("error", str(exc))
    if note := st.session_state.get("import_note"):
        kind, text = note
        if kind == "success":
            st.success(_("Added run `{name}`: it is yours, not shared.").format(name=text))
        else:
            st.error(_("This archive was not added, and nothing changed:"))
            st.text(text)

# The table's columns keep their names (mnist_core.runs.TABLE_COLUMNS): FORMATS, the styling and column_config
# find them by name; a reader sees each under its label, in their language.
FORMATS = {
    "lr": "{:g}",
    "final lr": "{:g}",  # untranslated: a column's name
    "test accuracy": "{:.2%}",  # untranslated: a column's name
    "training s": "{:.1f}",
    "images/s": "{:,.0f}",
}
Column, NumberColumn = st.column_config.Column, st.column_config.NumberColumn
COLUMNS = {
    "name": Column(_("name")),
    "status": st.column_config.TextColumn(_("status"), help=_("how the run ended"), width=240),
    "test accuracy": NumberColumn(_("test accuracy"), format="percent"),  # untranslated: a column's name
    "data set": Column(_("data set")),  # untranslated: a column's name
    "optimiser": Column(_("optimiser")),
    "lr": NumberColumn(_("lr"), format="%g"),
    "epochs": Column(_("epochs")),
    "batch_size": Column(_("batch_size")),
    "loop": Column(_("loop")),
    "channels": Column(_("channels")),
    "activation": Column(_("activation")),
    "seed": Column(_("seed")),
    "init": Column(_("init")),
    "final lr": NumberColumn(  # untranslated: a column's name
        _("final lr"), format="%g", help=_("the learning rate it ended with")
    ),
    "lr changes": NumberColumn(  # untranslated: a column's name
        _("lr changes"), help=_("times the learning rate was changed live")
    ),
    "training s": NumberColumn(_("training s"), format="%.1f"),
    "images/s": NumberColumn(_("images/s"), format="%.0f"),
    "steps": Column(_("steps")),
    "device": Column(_("device")),
    "imported": st.column_config.CheckboxColumn(_("imported"), help=_("added from an archive")),
    "study": st.column_config.TextColumn(_("study"), help=_("the Tune study and trial number that trained it")),
    "started": Column(_("started")),
    "run": Column(_("run")),
}


def in_language(column: pd.Series) -> pd.Series:
    """A column of text saved in English (a data set's title, a device), in the reader's language."""
    words = {v: stored(v) for v in column.unique() if isinstance(v, str)}
    return column.map(lambda v: words.get(v, v) if isinstance(v, str) else v)


def started(column: pd.Series) -> pd.Series:
    """When each run started, as the reader's language writes a date, in their time zone (the browser's)."""
    try:
        zone = ZoneInfo(st.context.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return column.map(lambda t: when(datetime.fromtimestamp(t, zone)) if t == t and t else "")  # t == t: not NaN


def ticked(table, key: str) -> list[str]:
    """Draw ``table`` with row selection; the ids of the ticked rows."""
    hidden = ["yours", "shared"] + (["name"] if not table["name"].astype(bool).any() else [])  # no names: no column
    shown = table.drop(columns=hidden).assign(
        status=table["status"].map(lambda s: _(outcome(s).label)),
        **{"data set": in_language(table["data set"])},  # untranslated: a column's name
        device=in_language(table["device"]),
        started=started(table["started"]),
    )
    generation = st.session_state["runs_generation"]
    event = st.dataframe(
        # A Styler's text wins over column_config's number formats: the numbers are formatted here.
        shown.style.map(outcome_css, subset=["status"]).format(FORMATS, na_rep=""),
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row",
        key=f"{key}-{generation}-{hash(tuple(table['run']))}",
        column_config=COLUMNS,
    )
    return [table.iloc[i]["run"] for i in event.selection.rows if i < len(table)] if event else []


table = runs_table(viewer=me)
yours, shared = table[table["yours"]], table[~table["yours"]]
if table.empty:
    st.info(_("No saved runs yet. Every run you train on the **Train** page is saved here."))
    st.stop()

st.subheader(_("Your runs"))
mine = ticked(yours, "mine") if not yours.empty else []
if yours.empty:
    st.caption(_("None yet: runs you train or add from an archive are yours, and only you can delete them."))
else:
    st.caption(_("{n} runs. Only you see them unless you share one. Tick rows to compare them.").format(n=len(yours)))
st.subheader(_("Shared runs"))
if shared.empty:
    st.caption(_("None: runs from this server's command line, and runs their owners share, appear here."))
    others = []
else:
    st.caption(_("{n} runs every visitor sees, read-only.").format(n=len(shared)))
    others = ticked(shared, "shared")

chosen = mine + others
if not chosen:
    st.info(_("Tick one or more runs in a table to compare their curves, download, share or delete them."))
    st.stop()

runs = [run for run in (get_run(run_id) for run_id in chosen) if run is not None]
if runs:
    labels = differing_labels([r.config for r in runs])
    if len(runs) > 1:
        labels = [f"{label} ({r.run_id[-4:]})" if labels.count(label) > 1 else label for label, r in zip(labels, runs)]
    st.plotly_chart(compare_figure(runs, labels), key="compare")

if len(chosen) == 1:
    st.subheader(_("Selected run: `{run_id}`").format(run_id=chosen[0]))
    if runs and runs[0].run_id == chosen[0]:
        meta = runs[0].meta
        show_outcome(meta.status, meta.message)  # the message, saved in English, in the reader's language
        if mine:  # its owner names it and writes down what was tried; others read it (as text)
            with st.form(f"name-{chosen[0]}", border=False):
                name = st.text_input(_("Name"), meta.name, max_chars=MAX_NAME, placeholder=_("e.g. ADAM, high lr"))
                note = st.text_area(
                    _("Note"),
                    meta.note,
                    max_chars=MAX_NOTE,
                    height=80,
                    placeholder=_("what you tried, what you saw"),
                )
                if st.form_submit_button(_("Save name and note")):
                    try:
                        name_run(runs_root() / chosen[0], me, name, note)
                        changed()
                        st.rerun()
                    except RunError as exc:
                        st.error(str(exc))
        elif meta.name or meta.note:
            st.text("\n".join(filter(None, [meta.name, meta.note])))
else:
    st.subheader(_("{n} runs selected").format(n=len(chosen)))

download, share, remove = st.columns(3)
try:
    if len(chosen) == 1:
        data, name, words = export_run(runs_root() / chosen[0]), f"{chosen[0]}.zip", _("Download as archive")
        note = _("config, metrics CSVs, report and weights; add it back with **Add a run from an archive**")
    else:
        data, name = export_runs([runs_root() / r for r in chosen]), "mnist-runs.zip"
        words = _("Download {n}").format(n=len(chosen))
        note = _("one zip of {n} run archives: unzip it and add each back with **Add a run from an archive**").format(
            n=len(chosen)
        )
    download.download_button(words, data, file_name=name, mime="application/zip", help=note)
except RunError as exc:
    download.error(_("Cannot export this run:"))
    download.text(str(exc))

if not mine:
    remove.caption(_("Shared runs are read-only: only their owners can delete them."))
    st.stop()

public = set(yours.loc[yours["run"].isin(mine) & yours["shared"], "run"])
words = _("Stop sharing {n}").format(n=len(public)) if public else _("Share {n} with every visitor").format(n=len(mine))
if share.button(words, key="share", help=_("shared runs are shown to every visitor, read-only")):
    problems = []
    for run_id in mine:
        try:
            share_run(runs_root() / run_id, me, shared=not public)
        except RunError as exc:
            problems.append(_("{run_id} could not be changed: {error}").format(run_id=run_id, error=exc))
    changed()
    st.session_state["runs_problems"] = problems
    st.rerun()

training = {job.id for job in job_queue().active()}
if remove.button(_("Delete {n} of your runs").format(n=len(mine)), key="delete"):
    st.session_state["confirm_delete"] = list(mine)
pending = [run_id for run_id in st.session_state.get("confirm_delete", []) if run_id in mine]
if pending:
    st.warning(_("Delete {runs} for good?").format(runs=", ".join(f"`{run_id}`" for run_id in pending)))
    yes, no = st.columns(2)
    if yes.button(_("Yes, delete"), type="primary"):
        problems = []
        for run_id in pending:
            try:
                if run_id in training:
                    raise RunError(_("it is still training: stop it on the Train page first."))
                delete_run(runs_root() / run_id, me)
            except RunError as exc:
                problems.append(_("{run_id} could not be deleted: {error}").format(run_id=run_id, error=exc))
        changed()
        st.session_state["runs_problems"] = problems
        st.rerun()
    if no.button(_("Cancel")):
        del st.session_state["confirm_delete"]
        st.rerun()

next_step("app_pages/6_Predict.py", _("try a run on your own handwriting (Predict)"))
