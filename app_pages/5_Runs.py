"""Runs: every saved run in one sortable table; compare, download, upload and delete.

Run names and messages may come from someone's archive: names are shown in code spans (an imported run's
name holds only letters, digits and -._), messages and errors with ``st.text``, never as markdown.
"""

import streamlit as st

from mnist_core.outcomes import outcome
from mnist_core.runs import (
    RunError,
    delete_run,
    differing_labels,
    export_run,
    export_runs,
    import_run,
    runs_root,
    runs_table,
)
from ui.charts import compare_figure
from ui.common import outcome_css, show_outcome
from ui.state import get_run, job_queue

st.title("Runs")

running, waiting = job_queue().busy()
if running or waiting:
    st.info(f"Training now: {running} run(s); waiting: {waiting}. Each run appears below when it ends.")

with st.expander("Add a run from an archive"):
    upload = st.file_uploader("A run archive (.zip) downloaded from this page", type=["zip"], key="run_upload")
    if upload is not None and st.session_state.get("imported") != upload.file_id:
        try:
            added = import_run(upload.getvalue())
            st.session_state["imported"] = upload.file_id
            st.session_state["selected_run"] = added.name  # Report and Predict show it to this session only
            st.success(f"Added run `{added.name}`.")
        except RunError as exc:
            st.error("This archive was not added, and nothing changed:")
            st.text(str(exc))

table = runs_table()
if table.empty:
    st.info("No saved runs yet. Every run from the **Train** page or the command line is saved here.")
    st.stop()

st.caption(f"{len(table)} runs in `{runs_root()}`. Click a column to sort; tick rows to compare them.")
shown = table.assign(status=table["status"].map(lambda s: outcome(s).label))
event = st.dataframe(
    # A Styler's text wins over column_config's number formats: the numbers are formatted here.
    shown.style.map(outcome_css, subset=["status"]).format(
        {"lr": "{:g}", "final lr": "{:g}", "test accuracy": "{:.2%}", "training s": "{:.1f}", "images/s": "{:,.0f}"},
        na_rep="",
    ),
    hide_index=True,
    on_select="rerun",
    selection_mode="multi-row",
    key=f"runs_table-{hash(tuple(table['run']))}",  # a new list of runs starts a new selection
    column_config={
        "status": st.column_config.TextColumn("status", help="how the run ended", width=240),
        "lr": st.column_config.NumberColumn("lr", format="%g"),
        "final lr": st.column_config.NumberColumn("final lr", format="%g", help="the learning rate it ended with"),
        "lr changes": st.column_config.NumberColumn("lr changes", help="times the learning rate was changed live"),
        "imported": st.column_config.CheckboxColumn("imported", help="added from an archive"),
        "test accuracy": st.column_config.NumberColumn("test accuracy", format="percent"),
        "training s": st.column_config.NumberColumn("training s", format="%.1f"),
        "images/s": st.column_config.NumberColumn("images/s", format="%.0f"),
        "study": st.column_config.TextColumn("study", help="the Tune study and trial number that trained it"),
    },
)
chosen = [table.iloc[i]["run"] for i in event.selection.rows] if event else []
if not chosen:
    st.info("Tick one or more runs in the table to compare their curves, download, or delete them.")
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
        show_outcome(runs[0].meta.status, runs[0].meta.message)
else:
    st.subheader(f"{len(chosen)} runs selected")
download, remove = st.columns(2)
try:
    if len(chosen) == 1:
        data, name, words = export_run(runs_root() / chosen[0]), f"{chosen[0]}.zip", "Download as archive"
        note = "config, metrics CSVs, report and weights; add it back with **Add a run from an archive**"
    else:
        data, name, words = (
            export_runs([runs_root() / r for r in chosen]),
            "mnist-runs.zip",
            f"Download {len(chosen)} runs",
        )
        note = (
            f"one zip holding {len(chosen)} run archives: unzip it and add each back with **Add a run from an archive**"
        )
    download.download_button(words, data, file_name=name, mime="application/zip", help=note)
    download.caption(note)
except RunError as exc:
    download.error("Cannot export this run:")
    download.text(str(exc))

if remove.button(f"Delete {len(chosen)} run(s)", key="delete"):
    st.session_state["confirm_delete"] = list(chosen)
pending = st.session_state.get("confirm_delete")
if pending:
    st.warning(f"Delete {', '.join(f'`{run_id}`' for run_id in pending)} for good?")
    yes, no = st.columns(2)
    if yes.button("Yes, delete", type="primary"):
        for run_id in pending:
            try:
                delete_run(runs_root() / run_id)
            except RunError as exc:
                st.error(f"`{run_id}` could not be deleted:")
                st.text(str(exc))
        del st.session_state["confirm_delete"]
        st.rerun()
    if no.button("Cancel"):
        del st.session_state["confirm_delete"]
        st.rerun()
