"""Compare two runs: their curves on the same axes and the settings where they differ."""

import pandas as pd
import streamlit as st

from pages.shared import common, store
from rnnreg import plots

common.require_app()

st.title("Compare two runs")
table = common.run_table()
if table.empty:
    common.empty_store()
    st.stop()
options = list(table["run"])
labels = common.labels()
picked = [r for r in common.picked() if r in options]
default_a = picked[0] if picked else options[0]
default_b = picked[1] if len(picked) > 1 else next((r for r in options if r != default_a), default_a)
c1, c2 = st.columns(2)
# keyed by the sidebar's pair: a new pick there starts from it again, a choice here holds until then
pair = "|".join(picked[:2])
a = c1.selectbox("Run A", options, index=options.index(default_a), format_func=labels.get, key=f"cmp_a|{pair}")
b = c2.selectbox("Run B", options, index=options.index(default_b), format_func=labels.get, key=f"cmp_b|{pair}")

colors = plots.assign_colors([a, b], st.session_state.get(common.COLORS))
rows = table.set_index("run")


def figure_metric(col, label: str, run: str, column: str, *, scale: float = 1.0, unit: str = "",
                  delta_unit: str = "", decimals: int = 2, lower_is_better: bool = True,
                  help: str | None = None) -> None:
    """Run B's figure carries its difference from run A's, green when it is the better one.

    Perplexities with two decimals, as the README's tables; a difference of two shares is in
    percentage points (`delta_unit=" pp"`), not a relative change."""
    value, of_a = rows.at[run, column] * scale, rows.at[a, column] * scale
    delta = (None if run == a or pd.isna(value) or pd.isna(of_a)  # "against run A" is said once, above
             else f"{value - of_a:+.{decimals}f}{delta_unit or unit}")
    col.metric(label, "—" if pd.isna(value) else f"{value:.{decimals}f}{unit}", delta=delta,
               delta_color="inverse" if lower_is_better else "normal", help=help)


# A memory-task run is judged by the keys it recalls (higher is better), a language model by perplexity.
recall = rows.loc[[a, b], "test_accuracy"].notna().any()
mc = rows.loc[[a, b], "mc_test_ppl"].notna().any()  # tested with dropout on (`rnnreg evaluate`)


def metric_cells(col, n: int) -> list:
    """`n` places for figures, two a row: at 1024 px three a row cut "114.52" to "11…"."""
    cells = []
    while len(cells) < n:
        cells += col.columns(2)
    return cells[:n]


for col, run in ((c1, a), (c2, b)):
    best, test, *more, epochs = metric_cells(col, 3 + int(mc) + int(recall))
    last_valid = rows.at[run, "last_valid_ppl"]
    figure_metric(best, "best valid", run, "best_valid_ppl",
                  help="the lowest validation perplexity over the epochs trained"
                       + ("" if pd.isna(last_valid) else f"; after the last epoch: {last_valid:.2f}"))
    figure_metric(test, "test", run, "test_ppl", help="test perplexity of the model after the last epoch")
    if mc:
        figure_metric(more.pop(0), "MC test", run, "mc_test_ppl",
                      help=store.mc_text(rows.at[run, "mc_samples"], rows.at[run, "mc_protocol"])
                      or "not evaluated with dropout on")
    if recall:
        figure_metric(more.pop(0), "test recall", run, "test_accuracy", scale=100, unit="%", delta_unit=" pp",
                      decimals=1, lower_is_better=False)
    epochs.metric("epochs", store.epochs_text(rows.at[run, "epochs_done"], rows.at[run, "epochs_total"]))
    if run != a:  # below the figures, so that A's and B's stand level
        col.caption("Differences against run A; green where B is better.")
    if rows.at[run, "why_stopped"]:  # why its curve ends early
        col.caption(f"{rows.at[run, 'state']}: {common.escape_markdown(rows.at[run, 'why_stopped'])}")

common.warn_if_tasks_mix([a, b])
epochs = common.frames([a, b], "epochs")
if (rows.loc[[a, b], "task"] == "memory").all():  # judged by the keys it recalls
    common.show_figure(plots.recall_figure(epochs, colors), key="cmp_recall", file_stem="compare-recall")
log_y = st.toggle("log y", value=True, key="cmp_log")
title = f"Train (dashed) and valid (solid) perplexity<br><sup>{plots.TRAIN_NOTE}</sup>"
common.show_figure(plots.perplexity_figure(epochs, colors, log_y=log_y, title=title),
                   key="cmp_curves", file_stem="compare-perplexity")

st.subheader("Settings that differ")
if a == b:
    st.caption("Pick two different runs.")
else:
    diff = plots.config_diff(common.run_config(a), common.run_config(b), names=(labels[a], labels[b]))
    if diff.empty:
        st.caption("The two configs are identical.")
    else:
        st.dataframe(diff, hide_index=True, height=common.table_height(len(diff), most=40), placeholder="—")
