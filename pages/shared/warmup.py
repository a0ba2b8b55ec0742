"""Start the browser loading Plotly before the first real chart exists.

Streamlit's frontend fetches and compiles Plotly (a 4.7 MB script) only when the first chart
element arrives, and on a fresh session that element comes after the slowest part of the
first script run (importing pandas, reading the run store, building figures).  Measured on
the 2-core machine with the shipped runs, the browser then spent ~1.4 s compiling Plotly
after the server had finished.  A blank 10-pixel chart sent at the very start of a session's
first run makes the browser do that work while the server does its own; it is removed when
the page runs.  Imports nothing heavy (Streamlit has already loaded plotly).
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

_DONE = "_plotly_prefetched"


def prefetch_plotly():
    """A placeholder holding a blank chart on a session's first run (else None).

    Empty it once the heavy imports are done, before the page runs."""
    if st.session_state.get(_DONE):
        return None
    st.session_state[_DONE] = True
    placeholder = st.sidebar.empty()
    blank = go.Figure(layout={"height": 10, "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
                              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
                              "xaxis": {"visible": False}, "yaxis": {"visible": False}})
    placeholder.plotly_chart(blank, key="_plotly_prefetch", theme=None, config={"displayModeBar": False,
                                                                                 "staticPlot": True})
    return placeholder
