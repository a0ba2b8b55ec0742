"""rnnreg dashboard: `streamlit run app.py` (runs from $RNNREG_RUNS_DIR, else runs/)."""

from pathlib import Path

import streamlit as st

from pages.shared.warmup import prefetch_plotly

# A file served by the app itself: a ":material/...:" favicon is fetched from fonts.gstatic.com,
# which a lecture hall without internet does not reach.
FAVICON = Path(__file__).parent / "pages" / "shared" / "favicon.png"
st.set_page_config(page_title="rnnreg: dropout in LSTMs", page_icon=str(FAVICON), layout="wide")
prefetch = prefetch_plotly()  # before the heavy imports below: the browser compiles Plotly meanwhile

from pages.shared import common  # noqa: E402  (pandas, the run store)
from pages.shared.code_version import stale_code_notice  # noqa: E402

stale = stale_code_notice()
if stale:  # old modules and caches beside new pages: a traceback waiting to happen
    st.warning(stale, icon=":material/restart_alt:")
    st.stop()

page = st.navigation({
    "Runs": [
        st.Page(common.PAGE_FILES["runs"], title="Runs", icon=":material/table_rows:"),
        st.Page(common.PAGE_FILES["launch"], title="Launch", icon=":material/rocket_launch:"),
    ],
    "Curves": [
        # The landing page: a fresh install opens on the shipped runs' curves (the story at once).
        st.Page(common.PAGE_FILES["perplexity"], title="Perplexity", icon=":material/show_chart:", default=True),
        st.Page(common.PAGE_FILES["gradients"], title="Gradients", icon=":material/trending_up:"),
        st.Page(common.PAGE_FILES["gates"], title="Gates", icon=":material/bar_chart:"),
    ],
    "Results": [
        st.Page(common.PAGE_FILES["compare"], title="Compare two runs", icon=":material/compare_arrows:"),
        st.Page("pages/sweeps.py", title="Sweeps", icon=":material/grid_view:"),
        st.Page(common.PAGE_FILES["export"], title="Export", icon=":material/download:"),
    ],
    "Lecture": [
        st.Page("pages/lecture.py", title="Why recurrent dropout hurts", icon=":material/school:"),
        st.Page("pages/poke.py", title="Poke a trained model", icon=":material/touch_app:"),
    ],
})
common.sidebar_picker()
if prefetch is not None:
    # Gone before the page runs: a page may st.stop(), after which Streamlit drops every
    # delta.  The browser is fetching Plotly by now; removing the chart does not stop that.
    prefetch.empty()
page.run()
