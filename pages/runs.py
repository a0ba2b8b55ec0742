"""Runs: every run in a sortable table (with the time a running one still needs and why one stopped
early), settings against perplexity; rename, resume or delete a run, read its train.log's last lines,
or delete the ticked ones."""

import hashlib
import time
from pathlib import Path

import pandas as pd
import streamlit as st

from pages.shared import common, store
from rnnreg import launch, line, plots, runs
from rnnreg.runs.table import state_in_line

common.require_app()
VISIBLE_ROWS = 20  # a store of the shipped runs and a lecture's few fits at once; more scroll
LOG_LINES = 40  # of a run's train.log, shown under its Rename / Resume / Delete
DELETE_POPOVER, DELETE_ERROR, DELETED = "delete_popover", "delete_error", "deleted_run"


def delete(run_id: str, label: str) -> None:
    """"Yes, delete it": the run its confirmation named.  The popover is closed, and until it is
    opened again it offers no "Yes" for the next run under the same pointer: the close does not
    always reach a popover opened a moment before (seen in Chromium)."""
    st.session_state[DELETE_POPOVER] = False
    try:
        runs.delete_run(common.runs_root(), run_id)
        st.session_state[DELETED] = label
        st.toast(f"Deleted {common.escape_markdown(label)}")
    except runs.RunStoreError as err:
        st.session_state[DELETE_ERROR] = str(err)


def delete_popover_toggled() -> None:
    st.session_state.pop(DELETED, None)  # opened (or closed) anew: it may confirm another deletion


st.title("Runs")
if unlisted := runs.unlisted_folders(common.runs_root()):  # copied in under a name no command could address
    st.warning("Not listed, their folder names are no run id (letters, digits, `.`, `_` and `-` only; rename them "
               "to list them): " + ", ".join(f"`{common.escape_markdown(name)}`" for name in unlisted),
               icon=":material/folder_off:")
table = common.run_table()
if table.empty:
    common.empty_store()
    st.stop()

search = st.text_input("Search", placeholder="name, id, preset, placement, state …", key="runs_search")
training = list(table.loc[table["state"].isin(runs.ACTIVE_STATES), "run"])


@st.fragment(run_every=common.LIVE_REFRESH_S if training else None)
def training_now() -> None:
    """The runs queued or training as this page opened, redrawn every few seconds: how far each is.
    The table below is drawn once (a redraw would disturb a selection); once they have all ended,
    the whole page is drawn again."""
    now = common.run_table().set_index("run").reindex(training).dropna(subset=["state"])  # not one deleted meanwhile
    in_line = line.places(common.runs_root())  # queued runs start first in, first out
    for run_id, row in now.iterrows():
        done, total = row["epochs_done"], row["epochs_total"]
        last = row["last_valid_ppl"]
        eta = common.seconds_left(run_id, total) if row["state"] == "running" else float("nan")
        state = state_in_line(row["state"], run_id, in_line)
        text = (f"**{common.escape_markdown(row['label'])}** · {state} · epoch {store.epochs_text(done, total)}"
                + (f" · valid {last:.1f}" if pd.notna(last) else "")
                + (f" · {store.duration_text(eta)} left" if pd.notna(eta) else ""))
        fraction = min(1.0, done / total) if pd.notna(total) and total and pd.notna(done) else 0.0
        st.progress(fraction, text=text)
    common.rerun_once_ended(training, True)


if training:
    training_now()
    note, refresh = st.columns([6, 1], vertical_alignment="center")
    note.caption(f"{len(training)} run(s) queued or training: the bars above follow them live; this table is as "
                 f"of {time.strftime('%H:%M:%S')}.")
    refresh.button("Refresh", key="runs_refresh", icon=":material/refresh:", type="tertiary")
view = common.browsing_order(table)  # any column header sorts differently
state_text = view["state"] + view["read_only"].map({True: " (reference)", False: ""})
if search:  # what the table shows is what a search finds
    searched = ["label", "run", "preset", "placement", "rates", "variant", "device", "why_stopped"]
    text = pd.concat([view[searched].astype(str), state_text], axis=1).agg(" ".join, axis=1)
    found = text.str.contains(search, case=False, regex=False)
    view, state_text = view[found], state_text[found]

# the figures right after what a run is: at 1024 px the rates pushed them out of view
shown = pd.DataFrame({
    "name": view["label"], "preset": view["preset"], "placement": view["placement"],
    "best valid": view["best_valid_ppl"], "final valid": view["last_valid_ppl"], "test": view["test_ppl"],
    "dropout": view["rates"], "state": state_text,
    "epochs": [store.epochs_text(d, t) for d, t in zip(view["epochs_done"], view["epochs_total"])],
    "wall (min)": view["wall_seconds"] / 60,
    "device": view["device"], "problems": view["problems"], "id": view["run"],
})
if (view["why_stopped"] != "").any():  # why a run ended before its last epoch, as its trainer (or its crash)
    # said; long, so beside the problems, after the figures a reader scans first
    shown.insert(shown.columns.get_loc("problems"), "why it stopped", view["why_stopped"].replace("", None))
if (view["state"] == "running").any():  # how long each running run still needs, at its recent pace
    # minutes, as numbers: the column sorts by how long, as "wall (min)" does
    shown.insert(shown.columns.get_loc("epochs") + 1, "time left (min)",
                 [common.seconds_left(run, total) / 60 if state == "running" else None
                  for run, total, state in zip(view["run"], view["epochs_total"], view["state"])])
if (view["variant"] != "").any():  # settings other than the preset's (not seeds of its configuration)
    shown.insert(shown.columns.get_loc("dropout") + 1, "other settings", view["variant"])
if view["test_accuracy"].notna().any():  # memory-task runs: what they are judged by
    shown.insert(shown.columns.get_loc("test") + 1, "test recall", view["test_accuracy"] * 100)
if view["mc_test_ppl"].notna().any():  # runs tested with their dropout on (`rnnreg evaluate`)
    shown.insert(shown.columns.get_loc("test") + 1, "MC test", view["mc_test_ppl"])
    shown.insert(shown.columns.get_loc("MC test") + 1, "MC passes",
                 [store.mc_text(n, how) for n, how in zip(view["mc_samples"], view["mc_protocol"])])
# Streamlit keeps a table's row selection by position when its rows change (a search, a run
# finished or deleted): a table of other rows is a new widget, so a selection always means these rows.
listing = hashlib.blake2b("\n".join(view["run"]).encode(), digest_size=8).hexdigest()
selection = st.dataframe(
    shown, hide_index=True, key=f"runs_table_{listing}", on_select="rerun", selection_mode="multi-row",
    height=common.table_height(len(shown), most=VISIBLE_ROWS),
    placeholder="—",  # a memory run has no perplexity to speak of, a language model no recall
    column_config={
        # in a narrow window the figures are a scroll away: the run's name stays in view beside them
        "name": st.column_config.TextColumn(pinned=True),
        "preset": st.column_config.TextColumn(width="small"),
        # two decimals, as the README's tables (83.35 would read 83.3 here)
        "best valid": st.column_config.NumberColumn(
            format="%.2f", help="the lowest validation perplexity over the epochs trained"),
        "final valid": st.column_config.NumberColumn(
            format="%.2f", help="validation perplexity after the last epoch trained: the model 'test' is of"),
        "test": st.column_config.NumberColumn(
            format="%.2f", help="test perplexity of the model after the last epoch (the paper's figure)"),
        "wall (min)": st.column_config.NumberColumn(format="%.1f"),
        "why it stopped": st.column_config.TextColumn(
            width="large",  # a crash's message is long: the rest of it on hover
            help="a diverged, failed, cancelled or interrupted run: what its trainer said, or the crash its "
                 "train.log ends with"),
        "time left (min)": st.column_config.NumberColumn(
            format="%.1f",
            help="a running run's remaining epochs at the pace of its last few, less its current one's progress"),
        "other settings": st.column_config.TextColumn(
            help="model and training settings that differ from the preset's (seed and device aside)"),
        "MC test": st.column_config.NumberColumn(
            format="%.2f", help="test perplexity with dropout on: the mean prediction of stochastic passes "
                                "(`python -m rnnreg evaluate RUN --mc-samples N`), the latest evaluation"),
        "MC passes": st.column_config.TextColumn(help="how many passes, and how each drew its masks"),
        "test recall": st.column_config.NumberColumn(format="%.1f%%",
                                                     help="memory task: keys recalled on the test set"),
    },
)
chosen = [view["run"].iloc[i] for i in selection.selection.rows] if selection else []
show, remove = st.columns([3, 2], vertical_alignment="center")
show.button(f"Show the {len(chosen)} selected run(s) on the chart pages", disabled=not chosen,
            on_click=common.set_picked, args=(chosen,), icon=":material/done_all:")
by_id = view.set_index("run")
# After a lecture: its live runs go in one go.  Shipped runs are read-only; an active run is cancelled first.
doomed = [r for r in chosen if not by_id.at[r, "read_only"] and by_id.at[r, "state"] not in runs.ACTIVE_STATES]
with remove.popover(f"Delete the {len(doomed)} selected…", icon=":material/delete_sweep:", disabled=not doomed,
                    help="shipped reference runs and queued or running runs among the selected stay"):
    names = ", ".join(f"**{common.escape_markdown(by_id.at[r, 'label'])}**" for r in doomed)
    st.markdown(f"Delete {names} and all their files? This cannot be undone.")
    if len(doomed) < len(chosen):
        st.caption(f"{len(chosen) - len(doomed)} other selected run(s) stay: shipped runs are read-only, "
                   "and a queued or running run must be cancelled first.")
    if st.button("Yes, delete them", type="primary", key="delete_selected_yes"):
        refused = []
        for run_id in doomed:
            try:
                runs.delete_run(common.runs_root(), run_id)
            except runs.RunStoreError as err:
                refused.append(str(err))
        st.toast(f"Deleted {len(doomed) - len(refused)} run(s)"
                 + (f"; {common.escape_markdown('; '.join(refused))}" if refused else ""))
        st.rerun()

broken = view[view["problems"] != ""]
for _, row in broken.iterrows():
    st.warning(f"**{common.escape_markdown(row['label'])}** ({row['state']}): {common.escape_markdown(row['problems'])}",
               icon=":material/report:")

# Off until asked for: its WebGL drawing is most of this page's time in a browser.
if st.toggle("Settings against best validation perplexity (parallel coordinates)", key="runs_parcoords_on"):
    settings = ["preset", "placement", *sorted(c for c in table.columns if c.startswith("rate ")), "epochs_done"]
    known = view[view["settings_known"]]  # a site a run has no rate for is a site it does not drop: 0
    common.show_figure(plots.parallel_coordinates_figure(known.fillna({c: 0.0 for c in settings[2:]}), settings),
                       key="runs_parcoords", file_stem="settings-vs-valid-ppl")
    unknown = view.loc[~view["settings_known"] & view["best_valid_ppl"].notna(), "label"]
    if len(unknown):
        st.caption(f"Not drawn, their settings unreadable: {common.escape_markdown(', '.join(unknown))}.")

st.subheader("Rename, resume or delete a run")
user_runs = table[~table["read_only"]]
if user_runs.empty:
    st.caption("Only shipped reference runs here; they are read-only.")
    st.stop()
mine = user_runs.set_index("run")
common.hold_pick("manage_run", mine.index)  # its label names its state, which changes under it
target = st.selectbox("Run", list(mine.index), key="manage_run",
                      format_func=lambda r: f"{mine.at[r, 'label']} · {mine.at[r, 'state']} ({r})")
new_name = st.text_input("New name", value=mine.at[target, "name"], key=f"rename_{target}", max_chars=200,
                         placeholder="a name for this run")
left, middle, right = st.columns(3)
if left.button("Rename", key="rename_button", icon=":material/edit:"):
    try:
        runs.rename_run(common.runs_root(), target, new_name)
        st.toast(f"Renamed to {common.escape_markdown(new_name.strip())}")
        st.rerun()
    except runs.RunStoreError as err:
        st.error(common.escape_markdown(err))
refusal, how = common.resume_offer(target, mine.loc[target])
if middle.button("Resume", key="resume_button", icon=":material/play_circle:", disabled=refusal is not None,
                 help=f"Cannot resume: {common.escape_markdown(refusal)}" if refusal else how):
    try:
        with st.spinner("Starting its trainer…"):
            launch.resume(common.runs_root(), target, wait=common.RESUME_WAIT_S)
        st.toast(f"Resuming {common.escape_markdown(mine.at[target, 'label'])}: follow it on the Launch page",
                 icon=":material/play_circle:")
        st.rerun()
    except runs.RunStoreError as err:
        st.error(common.escape_markdown(err))
# The confirmation lives in a popover: it closes when one clicks elsewhere, leaves the page or deletes.
with right.popover("Delete…", icon=":material/delete:", key=DELETE_POPOVER, on_change=delete_popover_toggled):
    if DELETED in st.session_state:
        st.caption(f"Deleted {common.escape_markdown(st.session_state[DELETED])}. Open this again to delete "
                   "another run.")
    else:
        st.markdown(f"Delete **{common.escape_markdown(mine.at[target, 'label'])}** and all its files? "
                    "This cannot be undone.")
        # the run this confirmation names goes with the click (args), whatever the picker holds by then
        st.button("Yes, delete it", type="primary", key="delete_yes", on_click=delete,
                  args=(target, mine.at[target, "label"]))
if DELETE_ERROR in st.session_state:
    st.error(st.session_state.pop(DELETE_ERROR))
# What its trainer printed last: a failed or interrupted run's story without a terminal (plain text).
with st.expander("Its train.log, last lines", icon=":material/article:"):
    tail = runs.read_log_tail(Path(mine.at[target, "path"]) / runs.LOG_FILE)[-LOG_LINES:]
    st.code("\n".join(tail) if tail else "(no train.log, or nothing in it)", language=None)
