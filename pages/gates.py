"""Gates: activation histograms side by side, saturation over epochs, one gate's histogram over epochs.

The three views are lazy tabs: only the open one is computed and drawn, so the page stays
quick with many runs picked (each view is a grid of panels that Plotly draws in the browser).
"""

import streamlit as st

from pages.shared import common
from rnnreg import plots
from rnnreg.plots.gates import MAX_HISTOGRAM_RUNS
from rnnreg.plots.layout import last_common_epoch, layer_name

common.require_app()

st.title("Gates")
picked = common.require_picked()
if picked is None:
    st.stop()
colors = common.colors()
gates = common.frames(picked, "gates")
table = common.run_table().set_index("run")
with_gates = set(gates["run"]) if not gates.empty else set()
missing = [r for r in picked if r in table.index and r not in with_gates]
# trained without probes (train.gate_probe false: a speed run) it has none to show
unprobed = [r for r in missing if (common.run_config(r).get("train") or {}).get("gate_probe") is False]
# a run that trained an epoch with probes on has gate records: without them its probes.jsonl is missing or damaged
damaged = [r for r in missing if r not in unprobed and table.at[r, "epochs_done"] >= 1]
if unprobed:
    st.caption("Trained without gate probes (`gate_probe` off): "
               + ", ".join(f"**{common.escape_markdown(table.at[r, 'label'])}**" for r in unprobed) + ".")
if gates.empty and not damaged:
    st.info("None of the picked runs has gate statistics" + ("." if len(unprobed) == len(picked) else
            " yet (the trainer writes them after every epoch)."))
    st.stop()
if damaged:
    st.warning("No readable gate statistics in the probes.jsonl of "
               + ", ".join(f"**{common.escape_markdown(table.at[r, 'label'])}** ({table.at[r, 'epochs_done']} "
                           "epoch(s) trained)" for r in damaged)
               + ": the file is missing or damaged.", icon=":material/broken_image:")
    if gates.empty:
        st.stop()

layers = sorted(int(v) for v in gates["layer"].dropna().unique())
layer = st.selectbox("Layer", layers, format_func=layer_name, key="gates_layer")  # records count from 0
histograms, saturation, over_epochs = st.tabs(
    ["Histograms at an epoch", "Saturation over epochs", "One gate over epochs"], key="gates_view", on_change="rerun")

with histograms:
    if histograms.open:
        with_gates = list(dict.fromkeys(gates["run"]))  # in pick order
        shown = gates[gates["run"].isin(with_gates[:MAX_HISTOGRAM_RUNS])]  # more columns are too narrow to read
        if len(with_gates) > MAX_HISTOGRAM_RUNS:
            st.info(f"Showing the first {MAX_HISTOGRAM_RUNS} of the {len(with_gates)} picked runs with gate "
                    "statistics: more side by side are too narrow to read. Pick fewer in the sidebar to see the "
                    "others.", icon=":material/view_column:")
        shown_epochs = sorted(int(v) for v in shown["epoch"].dropna().unique())
        epoch = st.select_slider("Epoch (0 = before training)", shown_epochs, value=last_common_epoch(shown),
                                 key="gates_epoch") if len(shown_epochs) > 1 else shown_epochs[0]
        last = shown.groupby("run")["epoch"].max()
        further = [f"{common.labels().get(run, run)} ({int(n)})" for run, n in last.items() if n > epoch]
        if further and epoch == last_common_epoch(shown):  # the default, the last epoch all have: the rest trained on
            st.caption(f"Epoch {epoch} for every run; trained further, to the epoch in brackets: "
                       f"{common.escape_markdown(', '.join(further))}. The slider shows later epochs.")
        states = common.run_table().set_index("run")["state"].to_dict()
        common.show_figure(plots.gate_histogram_figure(shown, colors, layer=layer, epoch=epoch, states=states),
                           key="gates_hist", file_stem=f"gates-{layer_name(layer).replace(' ', '')}-epoch{epoch}")

with saturation:
    if saturation.open:
        common.show_figure(plots.saturation_figure(gates, colors, layer=layer), key="gates_saturation",
                           file_stem=f"gate-saturation-{layer_name(layer).replace(' ', '')}")

with over_epochs:
    if over_epochs.open:
        with_gates = [r for r in picked if r in set(gates["run"])]
        c1, c2 = st.columns(2)
        common.hold_pick("gates_heat_run", with_gates)  # through a rename
        run = c1.selectbox("Run", with_gates, format_func=common.labels().get, key="gates_heat_run")
        gate = c2.selectbox("Gate", plots.GATES, format_func=plots.GATE_NAMES.get, index=1, key="gates_heat_gate")
        common.show_figure(plots.gate_heatmap_figure(gates, run=run, layer=layer, gate=gate), key="gates_heatmap",
                           file_stem=f"gate-{gate}-over-epochs")
