"""Launch: start a training run as its own process, watch the queue, cancel or resume a run."""

import dataclasses
import json
import time
import uuid

import streamlit as st

from pages.shared import common, store
from rnnreg import config as cfg
from rnnreg import launch, line, plots, reproduce, runs
from rnnreg.placements import PLACEMENTS, SITE_DESCRIPTIONS
from rnnreg.runs.table import state_in_line

common.require_app()

REQUEST = "launch_request_id"  # the id of the launch the form would make next
LAST = "launch_last"  # settings and time of this session's last launch (double-click guard)
MINE = "launched_runs"  # runs started from this session, shown until dismissed
DOUBLE_CLICK_S = 10

st.title("Launch a run")
st.caption("Each run is its own process: it keeps training when you close the tab or restart the dashboard.")
st.session_state.setdefault(REQUEST, uuid.uuid4().hex)

c1, c2 = st.columns(2)
preset = c1.selectbox("Preset", cfg.PRESET_NAMES, index=cfg.PRESET_NAMES.index("demo"), key="launch_preset",
                      help="small / medium / large: Zaremba et al. 2014; demo: the small model on the first "
                           f"{cfg.PRESETS['demo'].train.max_train_tokens:,} training tokens (CPU); memory: a "
                           "synthetic recall task")
base = cfg.PRESETS[preset]
placement = c2.selectbox("Dropout placement", list(PLACEMENTS), key=f"launch_placement_{preset}",
                         index=list(PLACEMENTS).index(base.dropout.placement))
spec = PLACEMENTS[placement]
st.caption(f"**{placement}**: {spec.summary} — *{spec.source}*")
walls = store.shipped_walls(common.run_table(), preset)
if walls:
    st.caption(f"How long: the shipped `{preset}` runs took {common.escape_markdown(walls)}, "
               "at the preset's own settings.")
defaults = cfg.build_run_config(preset, placement=placement)

with st.form("launch_form", border=True):
    rates = {}
    if spec.sites:
        cols = st.columns(len(spec.sites))
        for col, site in zip(cols, spec.sites):
            rates[site.name] = col.number_input(
                f"p({site.name})", 0.0, 0.95, float(defaults.dropout.rates[site.name]), 0.05, format="%.2f",
                key=f"rate_{preset}_{placement}_{site.name}",
                help=f"{SITE_DESCRIPTIONS[site.name]}; one mask per {site.sampling}"
                     + (", one for each of the four gates" if site.per_gate else ""))
    c1, c2, c3 = st.columns(3)
    epochs = c1.number_input("Epochs", 1, 200, defaults.train.epochs, key=f"epochs_{preset}")
    delay, tokens = None, 0
    if defaults.task == "memory":  # what its lesson turns on (a token cut must keep whole sequences: Advanced)
        delay = c2.number_input("Delay T (longest gap between key and recall)", 1, 200, defaults.memory.delay,
                                key="launch_delay", help="each sequence draws a gap of 1 to T distractor steps; "
                                                         "the README's recall table has T = 2, 5, 10, 20")
    else:
        tokens = c2.number_input("Max training tokens (0 = all)", 0, 10_000_000,
                                 defaults.train.max_train_tokens or 0, step=10_000, key=f"tokens_{preset}")
    device = c3.selectbox("Device", cfg.DEVICES, index=cfg.DEVICES.index(defaults.train.device), key="launch_device",
                          help="auto: CUDA where this machine has a GPU, else the CPU")
    c1, c2 = st.columns([1, 2])
    seed = c1.number_input("Seed", 0, 2**31 - 1, 0, key="launch_seed")
    name = c2.text_input("Name (optional)", max_chars=200, key="launch_name",
                         placeholder=cfg.default_run_name(defaults),
                         help="left empty: named after its settings (preset, placement, rates, seed)")
    with st.expander("Advanced"):
        c1, c2, c3 = st.columns(3)
        eval_tokens = c1.number_input("Max evaluation tokens (0 = all)", 0, 1_000_000,
                                      defaults.train.max_eval_tokens or 0, step=1_000, key=f"eval_tokens_{preset}",
                                      help="validate and test on a prefix of each split (quick CPU runs)")
        max_concurrent = c2.number_input("Runs at once (queue limit)", 1, 16, 1, key="launch_concurrency",
                                         help="CPU: keep 1 (runs would share the cores). A GPU box can take more.")
        weight_decay = c3.number_input("Weight decay", 0.0, 0.1, 0.0, 1e-7, format="%g", key="launch_weight_decay",
                                       help="0: none, as the paper. Otherwise every weight shrinks by 1 - WD after "
                                            "each step (Gal & Ghahramani's variational runs: 1e-7)")
        t = defaults.train  # the preset's schedule (Zaremba et al. 2014, sec 4.1)
        c1, c2, c3, c4 = st.columns(4)
        lr = c1.number_input("Learning rate", 1e-4, 100.0, float(t.lr), format="%g", key=f"launch_lr_{preset}",
                             help="initial rate of plain SGD")
        lr_decay = c2.number_input("LR decay", 1.0, 10.0, float(t.lr_decay), 0.05, format="%g",
                                   key=f"launch_lr_decay_{preset}",
                                   help="the rate is divided by this at the start of every epoch after 'decay after'")
        decay_after = c3.number_input("Decay after (epochs)", 0, 500, t.decay_after, key=f"launch_decay_after_{preset}",
                                      help="epochs at the initial rate (the paper's main.lua keeps one more)")
        clip = c4.number_input("Gradient clip", 0.01, 1000.0, float(t.clip), format="%g", key=f"launch_clip_{preset}",
                               help="global gradient-norm clip")
    submitted = st.form_submit_button("Start run", type="primary", icon=":material/play_arrow:")

if submitted:
    try:
        run_config = cfg.build_run_config(
            preset, placement=placement, site_rates=rates, epochs=int(epochs), max_train_tokens=int(tokens),
            max_eval_tokens=int(eval_tokens), device=device, seed=int(seed), name=name.strip() or None,
            weight_decay=float(weight_decay), lr=float(lr), lr_decay=float(lr_decay), decay_after=int(decay_after),
            clip=float(clip), delay=None if delay is None else int(delay))
        named = run_config.name is not None
        if not named:  # a legend reads 'demo-zaremba-0.5-s0', not a time stamp, as a CLI run without --name
            run_config = dataclasses.replace(run_config, name=cfg.default_run_name(run_config))
        config = cfg.to_dict(run_config)
    except cfg.ConfigError as err:
        st.error(f"Not started: {common.escape_markdown(err)}")
    else:
        settings = json.dumps(config, sort_keys=True)
        last = st.session_state.get(LAST)
        if last and last["settings"] == settings and time.time() - last["at"] < DOUBLE_CLICK_S:
            st.info(f"Already started {last['run']} with these settings a moment ago.")
        else:
            try:
                run_id = launch.launch(common.runs_root(), config, name=config["name"],
                                       request_id=st.session_state[REQUEST], max_concurrent=int(max_concurrent))
            except (runs.RunStoreError, OSError) as err:
                st.error(f"Could not start the run: {common.escape_markdown(err)}")
                # the next click is a new request: with this one's id it would get back the run that failed
                st.session_state[REQUEST] = uuid.uuid4().hex
            else:
                st.session_state[LAST] = {"settings": settings, "at": time.time(), "run": run_id}
                st.session_state[REQUEST] = uuid.uuid4().hex  # the next click is a new request
                st.session_state[MINE] = [run_id, *st.session_state.get(MINE, [])]
                st.success(f"Started run {run_id}.")
                st.caption("The same run from a terminal:")
                st.code(reproduce.train_command(run_config, named=named).text, language="bash", wrap_lines=True)


def cancel(run_id: str) -> None:
    try:
        st.toast(common.escape_markdown(launch.cancel(common.runs_root(), run_id)))
    except runs.RunStoreError as err:
        st.toast(f"Could not cancel: {common.escape_markdown(err)}", icon=":material/error:")


def resume(run_id: str) -> None:
    try:
        launch.resume(common.runs_root(), run_id, wait=common.RESUME_WAIT_S)
        st.toast("Resuming: it trains on from where it stopped.", icon=":material/play_circle:")
    except runs.RunStoreError as err:
        st.toast(f"Could not resume: {common.escape_markdown(err)}", icon=":material/error:")


def dismiss(run_ids: list[str]) -> None:
    st.session_state[MINE] = [r for r in st.session_state.get(MINE, []) if r not in run_ids]


@st.fragment(run_every=2)
def live_runs() -> None:
    """Queued and running runs (from here or the command line) and this session's runs; every 2 s."""
    table = common.run_table()
    mine = st.session_state.get(MINE, [])
    shown = table[table["state"].isin(["queued", "running"]) | table["run"].isin(mine)]
    st.subheader("Queue and running runs")
    if shown.empty:
        st.caption("Nothing queued or running.")
        return
    in_line = line.places(common.runs_root())  # queued runs start first in, first out
    for _, row in shown.iterrows():
        frames = common.run_frames(row["run"])
        epochs = frames.get("epochs")
        last = epochs.iloc[-1] if epochs is not None and len(epochs) else None
        c1, c2, c3, c4, c5 = st.columns([3, 2, 2, 1.5, 1.6], vertical_alignment="center")  # room for "Cancel"
        c1.markdown(f"**{common.escape_markdown(row['label'])}**  \n`{row['run']}`")
        state = state_in_line(row["state"], row["run"], in_line)
        c2.markdown(f"{state}  \nepoch {store.epochs_text(row['epochs_done'], row['epochs_total'])}")
        c3.markdown("train / valid ppl  \n" + ("—" if last is None else
                                                f"{last['train_ppl']:.1f} / {last['valid_ppl']:.1f}"))
        eta = common.seconds_left(row["run"], row["epochs_total"]) if row["state"] == "running" else float("nan")
        c4.markdown(f"ETA  \n{store.duration_text(eta)}")
        if row["state"] in ("queued", "running"):
            c5.button("Cancel", key=f"cancel_{row['run']}", on_click=cancel, args=(row["run"],),
                      icon=":material/stop_circle:")
        elif row["state"] in runs.RESUMABLE_STATES:  # one of this session's, cancelled or cut short
            refusal, _ = common.resume_offer(row["run"], row)  # its config.json gone, say: the library's reason
            c5.button("Resume", key=f"resume_{row['run']}", on_click=resume, args=(row["run"],),
                      icon=":material/play_circle:", disabled=refusal is not None,
                      help=f"Cannot resume: {common.escape_markdown(refusal)}" if refusal else
                      "train it on from its last checkpoint (from the start if it stopped before its first)")
        if row["message"]:
            st.caption(f"{common.escape_markdown(row['label'])}: {common.escape_markdown(row['message'])}")
    over = [r for r, state in zip(shown["run"], shown["state"]) if state not in runs.ACTIVE_STATES]
    if over:
        st.button(f"Clear the {len(over)} ended run(s) from this list", key="launch_dismiss", on_click=dismiss,
                  args=(over,), icon=":material/clear_all:", type="tertiary",
                  help="they stay in the run store: the Runs page and the chart pages still have them")
    ids = list(shown["run"])
    colors = plots.assign_colors(ids, st.session_state.get(common.COLORS))
    st.plotly_chart(plots.perplexity_figure(common.frames(ids, "epochs"), colors, log_y=True),
                    key="live_curves", theme=None)
    st.plotly_chart(plots.loss_figure(common.frames(ids, "steps"), colors, smoothing=0.6), key="live_loss",
                    theme=None)


live_runs()
