"""Poke a trained model: type a sentence, see each word's next-word guesses and gates; sample text."""

import os

import streamlit as st

from rnnreg import lecture, lecture_plots
from pages.shared import common

common.require_app()

MEMORY_EXAMPLE = "k3 d1 d4 d0 d6 d2 ="  # rnnreg.tasks.memory: key, distractors, query
GATE_LABELS = {"i": "input gate i", "f": "forget gate f", "o": "output gate o", "g": "cell update g",
               "c": "cell state c", "h": "hidden state h"}


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load(path: str, mtime: float):
    from rnnreg import inspect_model  # torch only here: the dashboard itself opens without it

    return inspect_model.load_run_model(path)


def model_for(path: str):
    return load(path, os.path.getmtime(os.path.join(path, "checkpoint.safetensors")))


def inspect(path: str, text: str, top: int):
    from rnnreg import inspect_model

    return inspect_model.inspect_text(model_for(path), text, top=top)


def sample(path: str, prompt: str, temperature: float, words: int, seed: int) -> tuple[str, str]:
    from rnnreg import inspect_model

    return inspect_model.continue_prompt(model_for(path), prompt, temperature, words, seed)


def written_markdown(prompt: str, continuation: str) -> str:
    """The prompt's words in bold, the model's after them, `<eos>` as a line break; each word as
    itself (they are the run's vocab.json: `common.word_markdown`)."""
    words = [(w, True) for w in prompt.split()] + [(w, False) for w in continuation.split()]
    eos = "<eos>"  # rnnreg.data.EOS, which imports torch (this page loads it only for a model)
    parts = ["  \n" if w == eos else (f"**{common.word_markdown(w)}** " if mine else f"{common.word_markdown(w)} ")
             for w, mine in words]
    return "".join(parts).strip()


def predictions(inspection):
    from rnnreg import inspect_model

    return inspect_model.prediction_table(inspection)


st.title("Poke a trained model")
table = common.run_table()
candidates = lecture.checkpoint_runs(table)
if not candidates:
    st.info("No run with a checkpoint yet: a run writes `checkpoint.safetensors` after its first epoch "
            "(or 10 minutes into it, or where it is cancelled).")
    st.page_link(common.PAGE_FILES["launch"], label="Go to Launch", icon=":material/rocket_launch:")
    st.stop()

by_run = table.set_index("run")
paths, states, labels = by_run["path"].to_dict(), by_run["state"].to_dict(), by_run["label"].to_dict()
common.hold_pick("poke_run", candidates)  # a training run's state (in its label) changes under it
run = st.selectbox("Run", candidates, key="poke_run", format_func=lambda r: f"{labels[r]} · {states.get(r, '?')}")
weightless = by_run["read_only"].astype(bool) & ~by_run.index.isin(candidates)
if weightless.any():
    st.caption(f"{int(weightless.sum())} shipped runs are not listed: their weights are not in the repository, "
               "to keep it small (a medium model's are 80 MB). Train one to poke it.")
path = str(paths[run])
c1, c2 = st.columns([4, 1])
if by_run.at[run, "task"] == "memory":  # its words are symbols: an English sentence is all <unk>
    text = c1.text_input("A sequence", value=MEMORY_EXAMPLE, key="poke_text_memory",
                         help="memory task: a key (k0, k1, ...), distractors (d0, d1, ...), then `=`: "
                              "after `=` the model should name the key")
else:
    text = c1.text_input("A sentence", value="the company said it expects to report a loss", key="poke_text",
                         help="split on spaces, each word lower-cased unless the model knows it as typed; "
                              "words the model never saw become <unk>")
top = c2.number_input("Top guesses", 1, 10, 5, key="poke_top")
if not text.strip():
    st.warning("Type at least one word.")
    st.stop()
try:
    inspection = inspect(path, text, int(top))
except ValueError as err:  # rnnreg.inspect_model.InspectError: a run that cannot be loaded, an empty text
    st.error(common.escape_markdown(err))
    st.stop()

st.caption(f"The weights of its checkpoint: {model_for(path).trained()}.")  # a running run's move on
unknown = [w for w, k in zip(inspection.words, inspection.known) if not k]
if unknown:
    st.caption(f"Not in the vocabulary (read as <unk>): {common.escape_markdown(', '.join(unknown))}")
st.subheader("What the model expects next, after each word")
st.dataframe(predictions(inspection), hide_index=True, width="stretch")

st.subheader("Gates at each word")
layers = sorted({layer for layer, _gate in inspection.units})
c1, c2 = st.columns(2)
layer = c1.segmented_control("Layer", layers, default=layers[0], required=True, key="poke_layer",
                             format_func=lambda i: f"layer {i + 1}")
gate = c2.selectbox("Gate for the unit view", list(GATE_LABELS), index=1, format_func=GATE_LABELS.get,
                    key="poke_gate")
st.plotly_chart(lecture_plots.gate_means_figure(inspection.gate_means, layer=layer), key="poke_means", theme=None)
st.plotly_chart(lecture_plots.gate_units_figure(inspection.units[(layer, gate)], inspection.words, gate=gate,
                                                layer=layer), key="poke_units", theme=None)

st.subheader("Let it write")
c1, c2, c3 = st.columns(3)
temperature = c1.slider("Temperature", 0.1, 2.0, 1.0, 0.1, key="poke_temperature",
                        help="below 1: safer, more repetitive; above 1: wilder")
n_words = c2.number_input("Words", 1, 200, 30, key="poke_words")
seed = c3.number_input("Seed", 0, 10_000, 0, key="poke_seed")
asked = (run, text, float(temperature), int(n_words), int(seed))  # a sample belongs to the run and settings
if st.button("Generate", key="poke_generate", icon=":material/edit_note:"):
    try:
        st.session_state["poke_sample"] = (asked, sample(path, text, *asked[2:]))
    except ValueError as err:
        st.error(common.escape_markdown(err))
made_for, written = st.session_state.get("poke_sample") or (None, None)
if made_for == asked and written:
    st.container(border=True).markdown(written_markdown(*written))
    st.caption("In bold: your words, as the model read them; after them, what it wrote.")
