"""Notice when the dashboard's code changed on disk under a running server (a `git pull`).

Streamlit re-reads a page's script on every run but reloads an imported module only when that
module's own file changed, and its data caches outlive both: after a pull, a new page can meet
an old helper module or a table cached by the old code (seen: `KeyError: 'why_stopped'`).  Rather
than a traceback, the app says to restart.  Training runs are separate processes: unaffected.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import streamlit as st

PROJECT_DIR = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("rnnreg", "pages")  # with app.py: the code a dashboard process runs


def fingerprint(project: Path = PROJECT_DIR) -> str:
    """A digest of the path, size and modification time of every Python file the app runs."""
    files = [project / "app.py", *(f for d in SOURCE_DIRS for f in (project / d).rglob("*.py"))]
    stats = []
    for f in sorted(files):
        try:
            s = f.stat()
        except OSError:  # removed by the change itself
            continue
        stats.append(f"{f.relative_to(project)}:{s.st_size}:{s.st_mtime_ns}")
    return hashlib.blake2b("\n".join(stats).encode(), digest_size=16).hexdigest()


@st.cache_resource(show_spinner=False)
def _started_with() -> str:
    # once per server process: the code it imported
    return fingerprint()


def stale_code_notice() -> str | None:
    """What to tell the user when the code on disk is no longer the code this server started with."""
    if fingerprint() == _started_with():
        return None
    return ("The dashboard's code changed on disk since this server started (a `git pull`, say). Stop it and "
            "start it again (`streamlit run app.py`) to load the new code; runs training meanwhile go on.")
