"""Gradients: global norm before clipping against the clip threshold; per-layer norms, clipping
rate and gradient through time in lazy tabs (only the open one is computed and drawn)."""

import streamlit as st

from pages.shared import common
from rnnreg import plots
from rnnreg.plots.gradients import missing_probes_note, zero_norms_note
from rnnreg.plots.layout import last_common_epoch

common.require_app()

st.title("Gradients")
picked = common.require_picked()
if picked is None:
    st.stop()
colors = common.colors()
steps = common.frames(picked, "steps")
log_y = st.toggle("log y", value=True, key="grad_log")
clips = {r: common.run_setting(r, "train", "clip") for r in picked}
common.show_figure(plots.grad_norm_figure(steps, colors, clips, log_y=log_y), key="grad_norm", file_stem="grad-norm")

per_layer, clipped, through_time = st.tabs(
    ["Per layer", "Steps clipped per epoch", "Gradient through time"], key="grad_view", on_change="rerun")
with per_layer:
    if per_layer.open:
        common.show_figure(plots.layer_grad_figure(common.frames(picked, "layers"), colors, log_y=log_y),
                           key="grad_layers", file_stem="grad-norm-per-layer")
with clipped:
    if clipped.open:
        common.show_figure(plots.clipped_fraction_figure(common.frames(picked, "epochs"), colors),
                           key="grad_clipped", file_stem="clipped-fraction")
with through_time:
    if through_time.open:
        gtt = common.frames(picked, "gtt")
        if gtt.empty:
            st.info("None of the picked runs has gradient-through-time probes (the trainer records them after "
                    "every epoch; runs made before the probe existed have none).")
        else:
            epochs = sorted(int(e) for e in gtt["epoch"].dropna().unique())
            # first the last epoch every probed run has: the newest would hide the shorter runs
            epoch = st.select_slider("Epoch", epochs, value=last_common_epoch(gtt), key="gtt_epoch") \
                if len(epochs) > 1 else epochs[0]
            table = common.run_table().set_index("run")
            for note in (missing_probes_note(gtt, {r: table.at[r, "label"] for r in picked if r in table.index}, epoch),
                         zero_norms_note(gtt, epoch, table["placement"].to_dict())):
                if note:  # what the chart leaves out, and why
                    st.caption(common.escape_markdown(note))
            common.show_figure(plots.grad_through_time_figure(gtt, colors, epoch=epoch), key="grad_gtt",
                               file_stem=f"grad-through-time-epoch{epoch}")
