"""Lecture: why recurrent dropout hurts - four figures, Next/Back, and a presentation mode for a projector."""

import dataclasses
import uuid

import pandas as pd
import streamlit as st

from rnnreg import launch, lecture, lecture_evidence, lecture_memory, lecture_plots
from rnnreg.placements import PLACEMENT_NAMES
from rnnreg.runs import RunStoreError
from pages.shared import common

common.require_app()

STEP = "lecture_step"  # session_state: index into lecture.STEPS
LIVE = "lecture_live_runs"  # session_state: the two demo runs launched from this page
REQUEST = "lecture_live_request"  # session_state: request id, so a double click starts one pair
LIVE_ERROR = "lecture_live_error"  # session_state: why the live pair could not start
MEMORY_LIVE = "lecture_memory_runs"  # session_state: the memory-task runs launched from step 3
MEMORY_REQUEST = "lecture_memory_request"  # session_state: request id, so a double click starts one set
SIZE = "lecture_size"  # session_state: the model size step 1 shows (a preset)
PRESENT = "lecture_present"  # session_state: presentation mode (the toggle's key)
PRESENTATION_CSS = """
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stHeader"],
[data-testid="stSidebarNav"], [data-testid="stToolbar"] {display: none !important;}
[data-testid="stMainBlockContainer"] {max-width: 100% !important; padding: 0.5rem 3rem 1rem !important;}
[data-testid="stMainBlockContainer"] h1 {font-size: 3.2rem !important;}
[data-testid="stMainBlockContainer"] h2 {font-size: 2.6rem !important;}
[data-testid="stMainBlockContainer"] h3 {font-size: 2rem !important;}
[data-testid="stMainBlockContainer"] p, [data-testid="stMainBlockContainer"] li,
[data-testid="stMainBlockContainer"] button p, [data-testid="stMainBlockContainer"] label p
  {font-size: 1.6rem !important;}
[data-testid="stMainBlockContainer"] [data-baseweb="select"] div {font-size: 1.4rem !important;}
[data-testid="stMainBlockContainer"] [data-testid="stSelectbox"] [role="group"] {height: 2.8rem !important;}
[data-testid="stMainBlockContainer"] [data-testid="stSelectbox"] input {font-size: 1.6rem !important;}
[data-testid="stCaptionContainer"] {display: none !important;}
[data-testid="stColumn"] h2 {padding: 0 !important;}
</style>
"""


def go(delta: int) -> None:
    st.session_state[STEP] = min(max(st.session_state[STEP] + delta, 0), len(lecture.STEPS) - 1)


def navigation(where: str, heading: str | None = None) -> None:
    """Back, where we are, Next; `heading`: the step's, between the buttons (on a projector, a line saved)."""
    back, where_col, forward = st.columns([1, 3, 1], vertical_alignment="center")
    index = st.session_state[STEP]
    back.button("Back", key=f"lecture_back_{where}", on_click=go, args=(-1,), disabled=index == 0,
                icon=":material/arrow_back:", width="stretch")
    forward.button("Next", key=f"lecture_next_{where}", on_click=go, args=(1,),
                   disabled=index == len(lecture.STEPS) - 1, icon=":material/arrow_forward:",
                   width="stretch", type="primary")
    if heading:
        where_col.header(heading, anchor=False, text_alignment="center")
    else:
        where_col.markdown(f"<p style='text-align:center'>step {index + 1} of {len(lecture.STEPS)}</p>",
                           unsafe_allow_html=True)


def label_visibility() -> str:
    """On a projector a control's options say what it is ('layer 1 | layer 2'): its label's line goes to the chart."""
    return "collapsed" if st.session_state.get(PRESENT, False) else "visible"


def presentation_toggle() -> None:
    st.toggle("Presentation mode", key=PRESENT, help="large type, no sidebar: for a projector")


def show(fig, key: str) -> None:
    """A lecture chart, with the other pages' PNG and HTML downloads (for slides); on a projector
    (presentation mode) without the HTML button, which would take a line of the screen."""
    common.show_figure(fig, key, file_stem=key.replace("_", "-"),
                       download=not st.session_state.get(PRESENT, False))


def launch_together(configs: list, request_key: str, ids_key: str) -> None:
    """Start `configs` as queued runs, as many at once as there are CPUs, each with its share of
    them (rnnreg.training_run.share_cores); a request id per click, so a double click starts one set.

    At once, not in turn: on 2 free cores the demo pair had both curves on screen after 7 s instead
    of 33 s and ended after 36 s instead of 53; the eight memory runs took 49 s instead of 84
    (`python benchmarks/live_pair.py --what pair|memory`, README, Benchmarks)."""
    root = common.runs_root()
    request = st.session_state.setdefault(request_key, uuid.uuid4().hex)
    at_once = max(1, min(len(configs), launch.usable_cpus()))
    ids = []
    try:
        for i, (name, config) in enumerate(configs):
            ids.append(launch.launch(root, config, name=name, request_id=f"{request}-{i}", max_concurrent=at_once,
                                     live=True))  # the room watches: ahead of runs waiting in the background
    except RunStoreError as err:  # e.g. a runs folder that cannot be written: say so, keep the page
        st.session_state[LIVE_ERROR] = str(err)
    st.session_state[ids_key] = ids
    st.session_state[request_key] = uuid.uuid4().hex  # the next click starts a new set


def launch_live_pair() -> None:
    launch_together(lecture.live_demo_configs(), REQUEST, LIVE)
    if SIZE in st.session_state:
        st.session_state[SIZE] = "demo"  # the live pair is the demo's: show it training


def step_overfitting(font: int) -> None:
    table = common.run_table()
    presets = lecture.overfitting_presets(table)
    if st.session_state.get(SIZE, "demo") not in presets:  # its runs were deleted meanwhile
        st.session_state.pop(SIZE, None)
    live = [r for r in st.session_state.get(LIVE, []) if r in set(table["run"])]
    active = bool(live) and table.set_index("run").loc[live, "state"].isin(["queued", "running"]).any()
    controls = st.container(horizontal=True, vertical_alignment="bottom", gap="medium")  # above the chart
    preset = "demo"
    if len(presets) > 1:  # a shipped or own pair at the paper's sizes: the full-length picture
        st.session_state.setdefault(SIZE, "demo")  # (set here, not as a default: the live button sets it too)
        preset = controls.segmented_control("Model", presets, format_func=lecture.size_label, required=True,
                                            key=SIZE, label_visibility=label_visibility())
    controls.button("Run both live on this CPU", key="lecture_live", on_click=launch_live_pair,
                    icon=":material/play_arrow:", disabled=active,
                    help="the demo model on a 10k-word prefix for 8 epochs, without and with dropout, both at "
                         "once (about 36 s on a free 2-core CPU)")
    if LIVE_ERROR in st.session_state:
        st.error(st.session_state.pop(LIVE_ERROR))

    @st.fragment(run_every=3 if active else None)
    def figure() -> None:
        # read afresh at every tick: the live pair is drawn from its first epoch on, as it trains
        now = common.run_table() if active else table
        without, with_dropout = lecture.overfitting_pair(now, prefer=live, preset=preset)
        by_run = now.set_index("run") if not now.empty else None
        labels = by_run["label"].to_dict() if by_run is not None else {}
        names = {}
        if without:
            names[without] = "no dropout"
        if with_dropout:
            names[with_dropout] = (f"{by_run.at[with_dropout, 'placement']} dropout "
                                   f"{by_run.at[with_dropout, 'dropout']:g}")
        drawn_live = bool(names) and set(names) <= set(live)
        planned = [by_run.at[r, "epochs_total"] for r in names if pd.notna(by_run.at[r, "epochs_total"])] \
            if drawn_live else []  # live: the axis spans the epochs to come
        show(lecture_plots.overfitting_figure(
            common.frames(list(names), "epochs"), names, font_size=font, epochs_planned=max(planned, default=None),
            empty="Training live: the first epoch's perplexities appear here in a few seconds" if active else None,
            subtitle=lecture.live_pair_text() if drawn_live else None),
            "lecture_overfitting")
        if names:
            st.caption("Runs: " + "; ".join(f"{name}: {common.escape_markdown(labels[run])}"
                                             for run, name in names.items()))
        else:
            st.info(f"No finished runs of the {preset} preset yet (shipped ones live in `runs/reference/`).")
        if live:  # where they are, as of this tick
            states = by_run["state"].reindex(live).fillna("gone").tolist()
            st.caption("Live runs: " + ", ".join(f"{common.escape_markdown(labels.get(r, r))}: {s}"
                                                for r, s in zip(live, states)))
        common.rerun_once_ended(live, active)

    figure()


def step_masks(font: int) -> lecture.Step:
    """The schematic of one placement; returns the step as it reads for that placement."""
    placement = st.selectbox("Placement", PLACEMENT_NAMES, index=PLACEMENT_NAMES.index("zaremba"),
                             key="lecture_placement", label_visibility=label_visibility())
    show(lecture_plots.schematic_figure(lecture.schematic(placement), placement, font_size=font), "lecture_masks")
    st.markdown(lecture.placement_caption(placement))
    return dataclasses.replace(lecture.STEPS[1], takeaway=lecture.masks_takeaway(placement))


def step_memory(font: int) -> None:
    table = common.run_table()
    controls = st.container(horizontal=True, gap="medium")  # wraps where a screen is too narrow for all three
    wrt = controls.segmented_control("Gradient with respect to", ["c", "h"], default="c", required=True,
                                     key="lecture_wrt", format_func={"c": "cell c", "h": "hidden h"}.get,
                                     label_visibility=label_visibility())
    layer = controls.segmented_control("Layer", [0, 1], default=0, required=True, key="lecture_layer",
                                       format_func=lambda i: f"layer {i + 1}", label_visibility=label_visibility())
    measure = controls.segmented_control("Measure", ["norm", "nonzero"], default="norm", required=True,
                                         key="lecture_measure",
                                         format_func={"norm": "gradient norm", "nonzero": "units reached"}.get,
                                         label_visibility=label_visibility())
    pick = lecture_memory.memory_runs(table)
    gtt = common.frames(list(pick.runs), "gtt") if pick.runs else None
    memory = lecture_memory.memory_frame(gtt, table, layer=layer, wrt=wrt, measure=measure)
    rates = lecture_memory.survival_rates(memory) or [0.25, 0.5]  # no run with a per-step carried mask: an illustration
    show(lecture_plots.memory_figure(memory, measure=measure, rates=rates, font_size=font), "lecture_memory")
    if not memory.empty:
        st.caption(f"Runs of the {pick.preset} preset, one per placement, at the preset's own settings and the "
                   f"lowest seed, at epoch {', '.join(str(int(e)) for e in sorted(set(memory['epoch'])))}; the probe "
                   "takes the loss at the last steps of a validation window, averaged over several dropout draws. "
                   "Dotted: (1-p)^k, the share of units that survive k fresh masks of rate p, for the placements its "
                   "legend names. In a trained model the gradient also fades through the forget gates and reaches "
                   "back by other roads (a mask on h is routed around through c), so read each line against none's.")
    if pick.other_settings:  # where no run at the preset's own settings was there to draw
        st.caption("Drawn at other settings: " + " ".join(common.escape_markdown(line) for line in pick.other_settings))
    gaps = lecture_memory.memory_gaps(gtt, pick.runs, table, layer=layer, wrt=wrt, measure=measure)
    left_out = list(pick.left_out) + gaps
    if left_out:
        st.caption("Not drawn: " + " ".join(common.escape_markdown(line) for line in left_out))
    memory_task(font)


def launch_memory_runs() -> None:
    launch_together(lecture_memory.live_memory_configs(), MEMORY_REQUEST, MEMORY_LIVE)


def memory_task(font: int) -> None:
    """The same lesson as behaviour: recall after T steps, per placement, from memory-task runs."""
    st.subheader("What the model can remember")
    live = st.session_state.get(MEMORY_LIVE, [])
    table = common.run_table()
    states = table.set_index("run").loc[[r for r in live if r in set(table["run"])], "state"] if live else None
    active = states is not None and states.isin(["queued", "running"]).any()

    @st.fragment(run_every=3 if active else None)
    def figure() -> None:
        recall = lecture_memory.recall_frame(common.run_table())
        show(lecture_plots.recall_figure(recall, chance=lecture_memory.MEMORY_CHANCE, font_size=font), "lecture_recall")
        common.rerun_once_ended(live, active)

    figure()
    c1, c2 = st.columns([2, 3], vertical_alignment="center")
    c1.button("Run the memory task live", key="lecture_memory_live", on_click=launch_memory_runs,
              icon=":material/play_arrow:", disabled=active,
              help="recurrent-cell and zaremba at p = 0.25, delays 2, 5, 10 and 20: eight runs, as many at "
                   "once as there are CPUs (about 50 s on a free 2-core CPU); each replaces its shipped point "
                   "when it ends")
    if LIVE_ERROR in st.session_state:
        st.error(st.session_state.pop(LIVE_ERROR))
    if states is not None and len(states):
        c2.caption(f"Live memory runs: {int((states == 'finished').sum())} of {len(live)} finished"
                   + (", the rest queued or running" if active else ""))
    st.caption("Each sequence shows a key, then up to T distractors, then asks for the key again (8 keys: chance "
               "is 12.5%). A fresh mask on the cell each step erases the key with probability p per step, (1-p)^T "
               "over the gap; masks on the inputs (zaremba) leave the path through time alone, and a mask on h "
               "(recurrent) is routed around through c. Variational's per-sequence masks only slow learning here: "
               "at T = 10 and 20 it had not left chance within the 30 epochs.")


def step_evidence(font: int) -> lecture.Step | None:
    """The evidence chart; returns the step as it reads where it must say otherwise (no runs to show)."""
    table = common.run_table()
    own = not table.empty and bool((~table["read_only"].astype(bool) & (table["state"] == "finished")).any())
    include_own = st.toggle("Also my finished runs", key="lecture_own", disabled=not own,
                            help="runs in the store besides the shipped reference runs" if own
                            else "no finished runs of your own yet: only the shipped reference runs are here")
    runs, left_out = lecture_evidence.at_paper_sizes(lecture_evidence.evidence_frame(table, include_own=include_own))
    if runs.empty:
        st.info("No reference runs yet (`runs/reference/`): the chart shows the published numbers only.")
    if left_out:
        st.caption(f"Runs at the paper's sizes only: {left_out} configuration(s) of the CPU `demo` preset (a "
                   "30,000-token subset, perplexities in the hundreds) are left out of this chart.")
    if elsewhere := lecture_evidence.off_corpus(table, include_own=include_own):
        st.caption(f"{elsewhere} run(s) trained on another corpus than the vendored Penn Treebank are left out "
                   "of this chart.")
    show(lecture_plots.evidence_figure(runs, font_size=font), "lecture_evidence")
    if "mc_seeds" in runs and (runs["mc_seeds"] > 0).any():
        st.caption("Green circles (MC in a test bar's label): the test perplexity of the same model with its "
                   "dropout left on, the mean of the predictions of many stochastic passes (`python -m rnnreg "
                   "evaluate RUN --mc-samples N`); the hover says over which seeds, and their test with dropout off.")
    if runs.empty:  # the detail's last words point at runs this chart cannot show
        step = lecture.STEPS[-1]
        return dataclasses.replace(step, detail=step.detail.replace(lecture.OWN_RUNS_CLAIM, lecture.NO_RUNS_CLAIM))
    return None


st.session_state.setdefault(STEP, 0)
# On a projector every line counts: no page title, the step's heading between Back and Next, and the
# toggle at the foot of the page, so that the sentence, the controls and the chart fit one screen.
present = bool(st.session_state.get(PRESENT, False))
font = lecture_plots.PRESENTATION_FONT if present else lecture_plots.FONT
step = lecture.STEPS[st.session_state[STEP]]
if present:
    st.markdown(PRESENTATION_CSS, unsafe_allow_html=True)
    navigation("top", heading=step.title)
else:
    st.title("Why recurrent dropout hurts")
    presentation_toggle()
    navigation("top")
    st.header(step.title)
takeaway = st.container()  # the step's sentence above its figure: what to see before how
# each step draws its figure, and returns the step as it reads here where that differs from lecture.STEPS
said = {"overfitting": step_overfitting, "masks": step_masks, "memory": step_memory,
        "evidence": step_evidence}[step.key](font) or step
takeaway.success(said.takeaway, icon=":material/lightbulb:")
if said.detail:  # a caption: presentation mode hides it, the slide keeps its one sentence
    st.caption(said.detail)
if present:
    presentation_toggle()
