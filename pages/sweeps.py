"""Sweeps: each sweep's progress, its placement x rate (or x delay) matrix, curves grouped by config
with seed bands; memory-task sweeps in recall instead of perplexity."""

import json

import pandas as pd
import streamlit as st

from pages.shared import common
from rnnreg import plots, sweeps

common.require_app()

EXAMPLE = {"name": "demo-rates", "preset": "demo", "base": {"epochs": 4, "device": "cpu"},
           "axes": {"placement": ["none", "zaremba"], "dropout": [0.3, 0.5], "seed": [0, 1]}}

st.title("Sweeps")
table = common.run_table()
names = sorted(n for n in table["sweep"].unique() if n) if "sweep" in table else []


@st.fragment(run_every=3)
def show_sweep(name: str) -> None:
    table = common.run_table()
    members = table[table["sweep"] == name]
    counts = members["state"].value_counts()
    columns = st.columns(5)
    for column, state in zip(columns, ("finished", "running", "queued", "interrupted", "failed")):
        extra = counts.get("diverged", 0) + counts.get("cancelled", 0) if state == "failed" else 0
        column.metric(state, int(counts.get(state, 0)) + int(extra),  # a short label: five in a row at 1024 px
                      help="failed, diverged or cancelled" if state == "failed" else None)
    st.progress(int(counts.get("finished", 0)) / max(len(members), 1), text=f"{len(members)} runs")
    # A memory-task sweep is judged by recall, and its runs differ by delay as well as placement:
    # runs at different delays are different configs, never seeds of one.
    memory = bool(len(members)) and members["task"].eq("memory").all()
    by_delay = memory and members["delay"].nunique() > 1
    panels = by_delay and members["delay"].nunique() <= plots.MAX_SWEEP_PANELS  # more: too small to read
    common.show_figure(plots.sweep_matrix_figure(members, column="delay" if by_delay else "dropout",
                                                 value="test_accuracy" if memory else "best_valid_ppl"),
                       key=f"sweep_matrix_{name}", file_stem=f"sweep-{name}-matrix")
    # the seeds of one configuration share a line; across delays, a panel per delay with a line per configuration
    groups = plots.sweep_configs(members, column="delay" if panels else None).rename("group")
    epochs = common.frames(list(members["run"]), "epochs")
    if not epochs.empty:
        epochs = epochs.merge(pd.DataFrame({"run": members["run"], "group": groups, "panel": members["delay"]}),
                              on="run")
    colors = plots.assign_colors(sorted(groups.unique(), key=plots.natural_key))
    if panels and "valid_accuracy" in epochs:
        figure = plots.sweep_panels_figure(epochs, colors)
    elif memory and "valid_accuracy" in epochs:
        figure = plots.sweep_bands_figure(epochs, colors, y="valid_accuracy", log_y=False)
    else:
        log_y = st.toggle("log y", value=True, key=f"sweep_log_{name}")
        figure = plots.sweep_bands_figure(epochs, colors, log_y=log_y)
    common.show_figure(figure, key=f"sweep_bands_{name}", file_stem=f"sweep-{name}-bands")


if names:
    chosen = st.selectbox("Sweep", names, key="sweep_name")
    show_sweep(chosen)
else:
    st.info("No sweeps yet. Launch one below, or from the command line: `python -m rnnreg sweep SPEC`.")

st.subheader("Launch a sweep")
with st.form("sweep_form"):
    spec_text = st.text_area("Spec (JSON)", value=json.dumps(EXAMPLE, indent=2), height=260, key="sweep_spec")
    limit = st.number_input("Runs training at once", min_value=1, max_value=16, value=1, key="sweep_limit")
    submitted = st.form_submit_button("Launch the sweep", icon=":material/rocket_launch:")
if submitted:
    try:
        sweep = sweeps.expand(json.loads(spec_text))
        done = sweeps.run_local(sweep, common.runs_root(), max_concurrent=int(limit))
    except json.JSONDecodeError as err:
        st.error(f"The spec is not valid JSON (line {err.lineno}: {common.escape_markdown(err.msg)}).")
    except (sweeps.SweepError, ValueError) as err:
        st.error(common.escape_markdown(err))
    else:
        st.success(f"Sweep {sweep.name}: started {len(done.started)}, resumed {len(done.resumed)}, "
                   f"already there {len(done.kept)} (launching it again never duplicates a run).")
