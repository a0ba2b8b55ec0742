"""Export: the picked runs' metrics as CSV, their results as a Markdown or LaTeX table, and the
`rnnreg train` commands that train them again."""

import streamlit as st

from pages.shared import common, store
from rnnreg import plots, reproduce

common.require_app()

st.title("Export")
picked = common.require_picked()
if picked is None:
    st.stop()
st.caption("Every chart of the Curves and Results pages has Plotly's camera button (PNG) and a "
           "*Download chart (HTML)* link under it.")

st.subheader("Metrics as CSV")
c1, c2 = st.columns(2)
for col, kind, what in ((c1, "epochs", "per epoch"), (c2, "steps", "per logged step")):
    frame = store.csv_frame(common.frames(picked, kind))
    col.download_button(f"Metrics {what} ({len(frame)} rows)", frame.to_csv(index=False), file_name=f"rnnreg-{kind}.csv",
                        mime="text/csv", key=f"csv_{kind}", on_click="ignore", icon=":material/download:",
                        disabled=frame.empty)

st.subheader("Results table")
rows = common.run_table().set_index("run").loc[picked].reset_index()
markdown_tab, latex_tab = st.tabs(["Markdown", "LaTeX"])
for tab, text, ext in ((markdown_tab, plots.results_markdown(rows), "md"),
                       (latex_tab, plots.results_latex(rows), "tex")):
    tab.code(text, language="markdown" if ext == "md" else "latex")
    tab.download_button(f"Download .{ext}", text, file_name=f"rnnreg-results.{ext}", key=f"table_{ext}",
                        on_click="ignore", icon=":material/download:")

st.subheader("Commands that train them again")
st.caption("Each run's preset and the options its config.json departs from it in (the seed always); "
           "`rnnreg show RUN` prints the same.")
labels = common.labels()
commands = []
for run_id in picked:
    label, frames = labels.get(run_id, run_id), common.run_frames(run_id)
    commands.append((label if label == run_id else f"{label} ({run_id})",
                     reproduce.run_command(frames["config"], frames["environment"])))
commands_text = reproduce.script(commands)
st.code(commands_text, language="bash", wrap_lines=True)  # a long command readable whole
st.download_button("Download .sh", commands_text, file_name="rnnreg-train-again.sh", key="commands_sh",
                   on_click="ignore", icon=":material/download:")
