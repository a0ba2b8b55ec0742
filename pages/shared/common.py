"""What every page shares: the run store as cached DataFrames, the run picker's state, chart output.

The pages get the run store's tables here (read by `pages.shared.store`).  Loaders are cached
with `st.cache_data` and keyed by the files' modification times, so a run that is still being
written shows new epochs on the next rerun while finished runs are read once.
"""

from __future__ import annotations

import hashlib
import re
import runpy
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from rnnreg import lecture, plots, runs
from rnnreg.config import PAPER_MODEL_ORDER, PRESETS, browsing_rank
from pages.shared import store

APP_SCRIPT = Path(__file__).resolve().parents[2] / "app.py"
RESUME_WAIT_S = 60  # how long a Resume click waits for the trainer to load and claim the run


def require_app() -> None:
    """Make sure this page runs inside app.py's navigation, not on its own.

    Streamlit still knows its legacy pages/ auto-discovery: on a fresh server the first
    request for a page's URL (and every AppTest run) executes pages/<page>.py directly,
    without app.py (no sidebar, no shared state).  app.py's st.navigation switches that
    mode off for the whole server; here we do the same and run app.py in this very script
    run (so widget events are kept), which draws the shell and this page, then stop.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP_SCRIPT), run_name="__main__")
        st.stop()


PICKED = "picked_runs"  # session_state: run ids shown on the chart pages
PICK_PARAM = "run"  # the URL's query parameter for them, once per run: ?run=ID&run=ID
COLORS = "run_colors"  # session_state: run id -> colour, kept for the whole session

PAGE_FILES = {
    "runs": "pages/runs.py",
    "launch": "pages/launch.py",
    "perplexity": "pages/perplexity.py",
    "gradients": "pages/gradients.py",
    "gates": "pages/gates.py",
    "compare": "pages/compare.py",
    "export": "pages/export.py",
}


def runs_root() -> Path:
    """$RNNREG_RUNS_DIR, else runs/ (which holds the shipped runs/reference/)."""
    return runs.runs_root()


# --- cached loaders ----------------------------------------------------------------------


@st.cache_data(show_spinner=False, max_entries=8)
def _run_table(root: str, signature: str, settled: tuple = ()) -> pd.DataFrame:
    # `settled`: runs shown active whose process has died since their files last changed
    return store.run_table(Path(root))


def _digest(signature: tuple) -> str:
    # a short key: st.cache_data hashes its arguments, and a 200-stat tuple is slow to hash
    return hashlib.blake2b(repr(signature).encode(), digest_size=16).hexdigest()


def run_table() -> pd.DataFrame:
    """One row per run (broken ones included, with their `problems`); re-read when a file changes."""
    root = runs_root()
    signature = _digest(store.signatures(root))
    table = _run_table(str(root), signature)
    settled = store.settled_states(table)  # a killed trainer changes no file: ask the live rows' processes
    return _run_table(str(root), signature, settled) if settled else table


@st.cache_data(show_spinner=False, max_entries=256)
def _run_frames(root: str, run_id: str, signature: str) -> dict:
    return store.run_frames(Path(root), run_id)


def _signature_of(root: Path, run_id: str) -> str:
    try:
        return _digest(runs.run_signature(runs.find_run_dir(root, run_id)))
    except runs.RunStoreError:
        return ""  # gone or never there: run_frames says so


def run_frames(run_id: str) -> dict:
    """The frames of one run (see `pages.shared.store.run_frames`), re-read when its files change."""
    root = runs_root()
    return _run_frames(str(root), run_id, _signature_of(root, run_id))


def seconds_left(run_id: str, epochs_total: object) -> float:
    """How long a running run still needs (see `pages.shared.store.eta_seconds`); NaN if unknown."""
    frames = run_frames(run_id)
    return store.eta_seconds(frames.get("epochs"), epochs_total, steps=frames.get("steps"),
                             batches_per_epoch=frames.get("environment", {}).get("batches_per_epoch"))


def resume_offer(run_id: str, row: pd.Series) -> tuple[str | None, str]:
    """(why it cannot be resumed or None, what a resume of it will do): for the Resume button."""
    try:
        run_dir = runs.find_run_dir(runs_root(), run_id)
    except runs.RunStoreError as err:
        return str(err), ""
    refusal = runs.resume_refusal(run_dir)
    if refusal:
        return refusal, ""
    if (run_dir / runs.CHECKPOINT_FILE).is_file():
        where = f"from its last completed epoch ({store.epochs_text(row['epochs_done'], row['epochs_total'])})"
        saved, _ = runs.read_json(run_dir / runs.CHECKPOINT_STATE_FILE)  # the checkpoint's readable copy
        epoch, within = (saved or {}).get("epoch"), (saved or {}).get("within_epoch")
        if isinstance(epoch, int) and isinstance(within, dict) and isinstance(within.get("windows"), int):
            where = f"from its checkpoint partway into epoch {epoch + 1}, after {within['windows']} of its minibatches"
        elif isinstance(epoch, int) and not isinstance(epoch, bool):  # killed after an epoch's record, before its
            # checkpoint: the records say one epoch more than the checkpoint holds, and the resume goes by the latter
            where = f"from its checkpoint after epoch {store.epochs_text(epoch, row['epochs_total'])}"
    else:
        where = "from the start: it stopped before its first epoch's checkpoint"
    return None, (f"Train it on in the background {where}, with its own settings; it waits its turn in "
                  "the dashboard's queue (one run at a time). Follow it on the Launch page.")


@st.cache_data(show_spinner=False, max_entries=64)
def _frames(root: str, kind: str, picked: tuple[tuple[str, str, str], ...]) -> pd.DataFrame:
    # one cached frame per (kind, picked runs and their signatures): a page switch unpickles only
    # the frame it draws, not every frame of every picked run
    parts = []
    for run_id, label, signature in picked:
        df = _run_frames(root, run_id, signature).get(kind)
        if df is None or df.empty:
            continue
        df = df.copy()
        df.insert(0, "label", label)
        df.insert(0, "run", run_id)
        parts.append(df)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def frames(run_ids: list[str], kind: str) -> pd.DataFrame:
    """The `kind` frame (epochs, steps, layers, gates, gtt) of several runs, with run and label columns."""
    root = runs_root()
    labels = run_table().set_index("run")["label"]
    picked = tuple((r, labels[r], _signature_of(root, r)) for r in run_ids if r in labels.index)
    return _frames(str(root), kind, picked)


LIVE_REFRESH_S = 3  # how often a chart of runs still training is redrawn


def active(run_ids: Iterable[str]) -> bool:
    """Whether any of `run_ids` is queued or training now."""
    states = run_table().set_index("run")["state"].reindex(list(run_ids))
    return bool(states.isin(list(runs.ACTIVE_STATES)).any())


def rerun_once_ended(run_ids: Iterable[str], were_active: bool) -> None:
    """From a fragment refreshing live runs: once none of them is queued or training any more,
    rerun the whole page, so what the fragment does not draw (captions, buttons, a table) says
    so too, and the fragment stops ticking."""
    if were_active and not active(run_ids):
        st.rerun()


def run_config(run_id: str) -> dict:
    return run_frames(run_id).get("config") or {}


def run_setting(run_id: str, section: str, key: str) -> float | None:
    """One number of a run's config.json (`train`, `clip`), None where a hand-edited or corrupt
    file has no such section or no finite number there."""
    part = run_config(run_id).get(section)
    return runs.finite_number(part.get(key) if isinstance(part, dict) else None)


# --- picked runs and their colours ---------------------------------------------------------


def picked() -> list[str]:
    return list(st.session_state.get(PICKED, []))


def colors() -> dict[str, str]:
    st.session_state[COLORS] = plots.assign_colors(picked(), st.session_state.get(COLORS))
    return st.session_state[COLORS]


def set_picked(run_ids: list[str]) -> None:
    """Replace the picked runs (used by buttons on the pages; the sidebar reads it on the next run)."""
    st.session_state[PICKED] = list(dict.fromkeys(run_ids))


def hold_pick(key: str, options: Iterable[str]) -> None:
    """Keep the run picker `key` on its run when the run's label changes (its state, a rename).

    A selectbox's value travels as its formatted label: once that changes, Streamlit finds it
    among no option and falls back to the first run, so the Rename or Delete that follows acts on
    another run (seen in Chromium).  Read before the widget is drawn, the value still decodes by
    the last script run's labels; set back, it is drawn under its new label.  Call it just before
    the widget."""
    value = st.session_state.get(key)
    if value is not None and value in set(options):
        st.session_state[key] = value


def labels() -> dict[str, str]:
    """run id -> label, for format_func (look it up once per page, not once per option)."""
    return run_table().set_index("run")["label"].astype(str).to_dict()


def warn_if_tasks_mix(run_ids: list[str]) -> None:
    """Say so where memory-task runs and language models share a perplexity chart: a few symbols
    against 10,000 words, so their perplexities (2-25 against 80-1000) do not compare."""
    tasks = run_table().set_index("run")["task"].reindex(list(dict.fromkeys(run_ids)))
    memory = tasks == "memory"
    if memory.any() and not memory.all():
        who = ("One run is a memory-task run, the other a language model" if len(tasks) == 2 else
               f"{int(memory.sum())} of the {len(tasks)} runs are memory-task runs, the others language models")
        st.warning(f"{who}: their perplexities are over different vocabularies and do not compare.",
                   icon=":material/compare_arrows:")


def require_picked(minimum: int = 1) -> list[str] | None:
    """The picked runs, or None after telling the user how to pick (and where to start runs)."""
    ids = picked()
    if run_table().empty:
        empty_store()
        return None
    if len(ids) < minimum:
        st.info(f"Pick {'a run' if minimum == 1 else f'{minimum} runs'} in the sidebar to see this page.",
                icon=":material/arrow_back:")
        return None
    return ids


def empty_store() -> None:
    """The friendly 'nothing here yet' message."""
    st.info(
        f"No runs yet in `{runs_root()}`.\n\n"
        "Start one on the **Launch** page, or from a terminal:\n\n"
        "```\npython -m rnnreg train --preset demo --device cpu\n```\n"
        "A run directory copied into the runs folder shows up here too.",
        icon=":material/rocket_launch:",
    )
    st.page_link(PAGE_FILES["launch"], label="Go to Launch", icon=":material/rocket_launch:")


def show_figure(fig: go.Figure, key: str, *, file_stem: str | None = None, download: bool = True) -> None:
    """A chart with Plotly's PNG button (mode bar) and, with `download`, a standalone-HTML download under it."""
    fig = plots.legend_below(fig)  # a legend above the plot wraps onto the title from a few runs on
    st.plotly_chart(fig, key=key, theme=None, config={
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": file_stem or key, "scale": 2},
    })
    if not download:
        return
    st.download_button(
        "Download chart (HTML)", data=_html_maker(fig), file_name=f"{file_stem or key}.html", mime="text/html",
        key=f"{key}-html", on_click="ignore", icon=":material/download:", type="tertiary",
    )


def _html_maker(fig: go.Figure) -> Callable[[], str]:
    # built only when the button is clicked: the page stays light while it refreshes
    return lambda: plots.figure_html(fig)


TABLE_ROW_PX = 35  # st.dataframe's default row height, the header row's too


def table_height(rows: int, *, most: int) -> int:
    """Pixels for an st.dataframe that shows `rows` rows without scrolling, up to `most` of them
    (Streamlit's own default stops at ten)."""
    return TABLE_ROW_PX * (min(max(rows, 1), most) + 1) + 3  # + 3: the frame's border


# --- the sidebar run picker ---------------------------------------------------------------

FILTERS = (("preset", "Preset"), ("placement", "Placement"), ("state", "State"))


def browsing_order(table: pd.DataFrame) -> pd.DataFrame:
    """`table` (newest first) with your runs first, then the shipped ones, the paper's models
    (large, medium, small) before the CPU demo and memory-task runs."""
    rank = [browsing_rank(preset, bool(read_only)) for preset, read_only in zip(table["preset"], table["read_only"])]
    return table.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank")


def _default_pick(table: pd.DataFrame) -> list[str]:
    """Runs with curves, so a dashboard shows something at once: your two newest runs, or on a
    fresh install the paper's Table 1 as shipped (`table_1_runs`); where fewer than two of its
    models ship, the shipped contrast - no dropout beside Zaremba's dropout, each the largest
    model (then the first seed) the shipped runs have."""
    with_data = table[(table["epochs_done"] > 0) & (table["problems"] == "")]
    own = with_data[~with_data["read_only"].astype(bool)]
    if not own.empty:
        return list(own["run"][:2])
    table_1 = table_1_runs(with_data)
    if len(table_1) >= 2:
        return table_1

    def largest(rows: pd.DataFrame) -> list[str]:
        if rows.empty:
            return []
        ranked = rows.assign(_rank=rows["preset"].map(PAPER_MODEL_ORDER).fillna(len(PAPER_MODEL_ORDER)))
        return [ranked.sort_values(["_rank", "seed", "created_at"], kind="stable")["run"].iloc[0]]

    pick = largest(with_data[with_data["placement"] == "none"]) \
        + largest(with_data[with_data["placement"] == "zaremba"])
    return pick if len(pick) == 2 else list(with_data["run"][:2])


def table_1_runs(table: pd.DataFrame) -> list[str]:
    """The paper's Table 1 among `table`'s runs, small then medium then large: for each paper model
    the lowest seed trained in the preset's own configuration (small without dropout, medium and
    large with Zaremba's at 0.5 and 0.65; no other settings, not part of a sweep)."""
    found = []
    for preset in sorted(PAPER_MODEL_ORDER, key=PAPER_MODEL_ORDER.get, reverse=True):
        own = PRESETS[preset].dropout
        rows = lecture.at_own_settings(table, preset)
        rows = rows[(rows["placement"] == own.placement) & (rows["rates"] == store.rates_text(own.rates))]
        if not rows.empty:
            found.append(rows["run"].iloc[0])
    return found


def sidebar_picker() -> None:
    """Filter runs (preset, placement, state) and pick the ones every chart page shows."""
    table = run_table()
    ids = set(table["run"])
    if PICKED not in st.session_state:  # a new session: a bookmarked or reloaded URL says which runs
        from_url = [r for r in dict.fromkeys(st.query_params.get_all(PICK_PARAM)) if r in ids]
        st.session_state[PICKED] = from_url or _default_pick(table)
    else:  # a deleted run disappears from the pick instead of breaking the widget
        st.session_state[PICKED] = [r for r in st.session_state[PICKED] if r in ids]
    with st.sidebar:
        st.subheader("Runs shown")
        if table.empty:
            st.caption("No runs yet.")
            return
        with st.expander("Filter the list", expanded=False):
            mask = pd.Series(True, index=table.index)
            for column, title in FILTERS:
                chosen = st.multiselect(title, sorted(table[column].astype(str).unique()), key=f"filter_{column}")
                if chosen:
                    mask &= table[column].astype(str).isin(chosen)
        listed = list(browsing_order(table[mask])["run"])
        options = listed + [r for r in st.session_state[PICKED] if r not in listed]
        labels = table.set_index("run")["label"].to_dict()
        states = table.set_index("run")["state"].to_dict()
        st.multiselect(  # a run's state where it is not finished: the chips' width is for the names
            "Pick runs", options, key=PICKED, format_func=lambda r: labels.get(r, r) + (
                "" if states.get(r) == "finished" else f" · {states.get(r, '?')}"),
            placeholder="Choose runs to compare",
            help="Every chart page shows these runs; each keeps its colour on every page.",
        )
        chosen_colors = colors()
        shapes = plots.marker_symbols(chosen_colors, picked())  # ● for all but runs that share a colour
        for run_id in picked():
            glyph = plots.GLYPHS[shapes[run_id]]
            st.markdown(
                f"<span style='color:{chosen_colors[run_id]};font-size:1.3em'>{glyph}</span> "
                f"{escape_markdown(labels[run_id])}",
                unsafe_allow_html=True,
            )
        if len(picked()) > len(plots.PALETTE):
            st.caption(f"More than {len(plots.PALETTE)} runs: colours repeat. The perplexity charts give runs that "
                       "share a colour other marker shapes; hovering names every line.")
        st.caption(f"{len(table)} runs in `{runs_root()}`")
    if st.query_params.get_all(PICK_PARAM) != picked():  # the URL names the runs shown: reload, bookmark, share
        if picked():
            st.query_params[PICK_PARAM] = picked()
        else:
            del st.query_params[PICK_PARAM]


# what makes markdown inside a line: emphasis, code, links and images (through the brackets),
# strike-through, table cells, LaTeX; '#', '-' or '1.' only begin a block at the start of a line
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|$~])")


ASCII_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every one may be backslash-escaped in CommonMark


def word_markdown(word: str) -> str:
    """A vocabulary word as itself: every ASCII punctuation mark escaped, so that no word makes a
    link, an image or emphasis, nor, at the start of a line, a heading ('#' is a Penn Treebank
    word), a list ('-', '1.') or a rule; a colon followed by an invisible space, so that ':name:'
    is no emoji or icon code."""
    return ASCII_PUNCTUATION.sub(r"\\\1", word).replace(":", ":\u200b")  # '\<b>' is text, never HTML


def escape_markdown(text: object) -> str:
    """`text` (a run's name, a message) shown as typed inside Streamlit markdown: no emphasis,
    code, links or LaTeX (`$`) from its characters, and no HTML even where HTML is allowed."""
    text = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MARKDOWN_PUNCTUATION.sub(r"\\\1", text)
