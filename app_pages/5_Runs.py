"""Runs: your saved runs and the shared ones, each in a sortable table; compare, download, upload, share, delete.

Only your own runs can be deleted or shared; shared runs (made on this server's command line, or shared by
their owner) are read-only. Run names and messages may come from someone's archive: names are shown in code
spans (an imported run's name holds only letters, digits and -._), messages and errors with ``st.text``.
"""

import streamlit as st

from mnist_core.outcomes import outcome
from mnist_core.run_archive import export_run, export_runs, import_run
from mnist_core.run_schema import MAX_NAME, MAX_NOTE, RunError
from mnist_core.runs import delete_run, differing_labels, name_run, runs_root, runs_table, share_run
from ui.charts import compare_figure
from ui.common import next_step, outcome_css, show_outcome
from ui.state import get_run, job_queue, viewer

st.title("Runs")
me = viewer()
# Bumped whenever the list of runs changes here: a table under a new key starts with nothing ticked, so a
# selection never outlives the rows it was made on.
st.session_state.setdefault("runs_generation", 0)


def changed() -> None:
    st.session_state["runs_generation"] += 1
    st.session_state.pop("confirm_delete", None)


for problem in st.session_state.pop("runs_problems", []):
    st.error("Not done:")
    st.text(problem)

running, waiting = job_queue().busy()
if running or waiting:
    st.info(f"Training now: {running} run(s); waiting: {waiting}. Each run appears below when it ends.")

with st.expander("Add a run from an archive"):
    upload = st.file_uploader("A run archive (.zip) downloaded from this page", type=["zip"], key="run_upload")
    if upload is not None and st.session_state.get("imported") != upload.file_id:
        st.session_state["imported"] = upload.file_id  # once per upload, whatever the outcome
        try:
            added = import_run(upload.getvalue(), owner=me)
            st.session_state["selected_run"] = added.name
            st.session_state["import_note"] = ("success", f"Added run `{added.name}`: it is yours, not shared.")
            changed()
        except RunError as exc:
            st.session_state["import_note"] = ("error", str(exc))
    if note := st.session_state.get("import_note"):
        kind, text = note
        if kind == "success":
            st.success(text)
        else:
            st.error("This archive was not added, and nothing changed:")
            st.text(text)

FORMATS = {"lr": "{:g}", "final lr": "{:g}", "test accuracy": "{:.2%}", "training s": "{:.1f}", "images/s": "{:,.0f}"}
COLUMNS = {
    "status": st.column_config.TextColumn("status", help="how the run ended", width=240),
    "lr": st.column_config.NumberColumn("lr", format="%g"),
    "final lr": st.column_config.NumberColumn("final lr", format="%g", help="the learning rate it ended with"),
    "lr changes": st.column_config.NumberColumn("lr changes", help="times the learning rate was changed live"),
    "imported": st.column_config.CheckboxColumn("imported", help="added from an archive"),
    "test accuracy": st.column_config.NumberColumn("test accuracy", format="percent"),
    "training s": st.column_config.NumberColumn("training s", format="%.1f"),
    "images/s": st.column_config.NumberColumn("images/s", format="%.0f"),
    "study": st.column_config.TextColumn("study", help="the Tune study and trial number that trained it"),
}


def ticked(table, key: str) -> list[str]:
    """Draw ``table`` with row selection; the ids of the ticked rows."""
    hidden = ["yours", "shared"] + (["name"] if not table["name"].astype(bool).any() else [])  # no names: no column
    shown = table.drop(columns=hidden).assign(status=table["status"].map(lambda s: outcome(s).label))
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
    st.info("No saved runs yet. Every run you train on the **Train** page is saved here.")
    st.stop()

st.subheader("Your runs")
mine = ticked(yours, "mine") if not yours.empty else []
if yours.empty:
    st.caption("None yet: runs you train or add from an archive are yours, and only you can delete them.")
else:
    st.caption(f"{len(yours)} runs. Only you see them unless you share one. Tick rows to compare them.")
st.subheader("Shared runs")
if shared.empty:
    st.caption("None: runs from this server's command line, and runs their owners share, appear here.")
    others = []
else:
    st.caption(f"{len(shared)} runs every visitor sees, read-only.")
    others = ticked(shared, "shared")

chosen = mine + others
if not chosen:
    st.info("Tick one or more runs in a table to compare their curves, download, share or delete them.")
    st.stop()

runs = [run for run in (get_run(run_id) for run_id in chosen) if run is not None]
if runs:
    labels = differing_labels([r.config for r in runs])
    if len(runs) > 1:
        labels = [f"{label} ({r.run_id[-4:]})" if labels.count(label) > 1 else label for label, r in zip(labels, runs)]
    st.plotly_chart(compare_figure(runs, labels), key="compare")

if len(chosen) == 1:
    st.subheader(f"Selected run: `{chosen[0]}`")
    if runs and runs[0].run_id == chosen[0]:
        meta = runs[0].meta
        show_outcome(meta.status, meta.message)
        if mine:  # its owner names it and writes down what was tried; others read it (as text)
            with st.form(f"name-{chosen[0]}", border=False):
                name = st.text_input("Name", meta.name, max_chars=MAX_NAME, placeholder="e.g. ADAM, high lr")
                note = st.text_area(
                    "Note", meta.note, max_chars=MAX_NOTE, height=80, placeholder="what you tried, what you saw"
                )
                if st.form_submit_button("Save name and note"):
                    try:
                        name_run(runs_root() / chosen[0], me, name, note)
                        changed()
                        st.rerun()
                    except RunError as exc:
                        st.error(str(exc))
        elif meta.name or meta.note:
            st.text("\n".join(filter(None, [meta.name, meta.note])))
else:
    st.subheader(f"{len(chosen)} runs selected")

download, share, remove = st.columns(3)
try:
    if len(chosen) == 1:
        data, name, words = export_run(runs_root() / chosen[0]), f"{chosen[0]}.zip", "Download as archive"
        note = "config, metrics CSVs, report and weights; add it back with **Add a run from an archive**"
    else:
        data, name, words = export_runs([runs_root() / r for r in chosen]), "mnist-runs.zip", f"Download {len(chosen)}"
        note = f"one zip of {len(chosen)} run archives: unzip it and add each back with **Add a run from an archive**"
    download.download_button(words, data, file_name=name, mime="application/zip", help=note)
except RunError as exc:
    download.error("Cannot export this run:")
    download.text(str(exc))

if not mine:
    remove.caption("Shared runs are read-only: only their owners can delete them.")
    st.stop()

public = set(yours.loc[yours["run"].isin(mine) & yours["shared"], "run"])
words = f"Stop sharing {len(public)}" if public else f"Share {len(mine)} with every visitor"
if share.button(words, key="share", help="shared runs are shown to every visitor, read-only"):
    problems = []
    for run_id in mine:
        try:
            share_run(runs_root() / run_id, me, shared=not public)
        except RunError as exc:
            problems.append(f"{run_id} could not be changed: {exc}")
    changed()
    st.session_state["runs_problems"] = problems
    st.rerun()

training = {job.id for job in job_queue().active()}
if remove.button(f"Delete {len(mine)} of your runs", key="delete"):
    st.session_state["confirm_delete"] = list(mine)
pending = [run_id for run_id in st.session_state.get("confirm_delete", []) if run_id in mine]
if pending:
    st.warning(f"Delete {', '.join(f'`{run_id}`' for run_id in pending)} for good?")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", type="primary"):
        problems = []
        for run_id in pending:
            try:
                if run_id in training:
                    raise RunError("it is still training: stop it on the Train page first.")
                delete_run(runs_root() / run_id, me)
            except RunError as exc:
                problems.append(f"{run_id} could not be deleted: {exc}")
        changed()
        st.session_state["runs_problems"] = problems
        st.rerun()
    if no.button("Cancel"):
        del st.session_state["confirm_delete"]
        st.rerun()

next_step("app_pages/6_Predict.py", "try a run on your own handwriting (Predict)")
