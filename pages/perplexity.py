"""Perplexity: train (dashed) and valid (solid) curves, the generalisation gap, the per-step loss."""

import streamlit as st

from pages.shared import common, store
from rnnreg import plots
from rnnreg.config import PRESETS

common.require_app()

st.title("Perplexity")
picked = common.require_picked()
if picked is None:
    st.stop()
colors = common.colors()

# the paper's Table 1 models: "small without dropout, medium with zaremba dropout 0.5, ..."
paper_models = ", ".join(
    f"{name} " + (f"with {d.placement} dropout {max(d.rates.values()):g}" if d.rates else "without dropout")
    for name, d in ((name, PRESETS[name].dropout) for name in plots.PAPER_PERPLEXITY))
c1, c2, c3 = st.columns([2, 1, 1])
x = c1.segmented_control("x axis", list(plots.X_AXES), format_func=plots.X_AXES.get, default="epoch",
                         required=True, key="ppl_x")
log_y = c2.toggle("log y", value=True, key="ppl_log")
paper = c3.toggle("paper lines", value=True, key="ppl_paper",  # short: a third of the page at 1024 px
                  help="Zaremba et al. 2014, Table 1: valid/test perplexity for runs of the small, medium and large "
                       "presets: "
                       f"its models, {paper_models}; a run with other dropout is drawn against the paper's model "
                       "of its size all the same. "
                       "Its main.lua prints valid about 1-1.5% low (it divides by a fraction of a window more than "
                       "it reads; README, 'How the paper's own code counts'); test is exact.")
common.warn_if_tasks_mix(picked)
presets = list(common.run_table().set_index("run").loc[picked, "preset"]) if paper else []
training = common.active(picked)
every = common.LIVE_REFRESH_S if training else None  # while a picked run trains, its curves grow on screen


@st.fragment(run_every=every)
def curves() -> None:
    epochs = common.frames(picked, "epochs")
    common.show_figure(plots.perplexity_figure(epochs, colors, x=x, log_y=log_y, reference_presets=presets),
                       key="ppl_curves", file_stem="perplexity")
    for alike in store.identical_curves(epochs):  # one curve seems missing: say it lies under the other
        st.caption("Drawn on top of each other, their curves being identical to the last digit: "
                   + " and ".join(f"**{common.escape_markdown(label)}**" for label in alike)
                   + " (the same settings and seed train alike).")
    common.show_figure(plots.gap_figure(epochs, colors, x=x), key="ppl_gap", file_stem="generalisation-gap")
    common.rerun_once_ended(picked, training)


@st.fragment(run_every=every)
def loss(smoothing: float) -> None:
    steps = common.frames(picked, "steps")
    common.show_figure(plots.loss_figure(steps, colors, smoothing=smoothing), key="ppl_loss",
                       file_stem="training-loss")


if training:
    st.caption(f"A picked run is training: these charts redraw every {common.LIVE_REFRESH_S} s.")
curves()
smoothing = st.slider("Loss smoothing", 0.0, 0.95, 0.6, 0.05, key="ppl_smoothing",
                      help="exponential moving average; the raw curve stays visible underneath")
loss(smoothing)
