"""Poke a trained model: run text through any run's checkpoint (finished, or written after an
epoch, within one, or at a cancel).

    load_run_model(run_dir)  config.json + vocab.json + checkpoint.safetensors -> a model in eval mode
    load_run_corpus(...)     the corpus the run was trained on, here or where it was made
    inspect_text(...)        per word: the top next-word predictions and the gates of every layer
    generate(...)            sample a continuation of a prompt

Text is lower-cased and split on white space (the Penn Treebank's own tokens); a word the
vocabulary lacks becomes `<unk>`.  Nothing here is unpickled: weights come through
rnnreg.checkpoint (safetensors only).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnreg.checkpoint import CheckpointError, load_checkpoint, load_error_text
from rnnreg.config import ConfigError, RunConfig, from_dict
from rnnreg.data import EOS, UNK, Corpus, Vocabulary, load_corpus
from rnnreg.lstm import GATES
from rnnreg.model import LanguageModel
from rnnreg.runs import (CHECKPOINT_FILE, CONFIG_FILE, VOCAB_FILE, corpus_dir, count_or_none, is_read_only, read_json,
                         read_json_value)

MODEL_PREFIX = "model."  # checkpoint tensor names: model.<state_dict key>, rng.*
MAX_VOCAB_BYTES = 64 << 20  # a vocab.json larger than this is refused (10,000 PTB words: 80 kB)
MAX_WEIGHT_BYTES = 16 * 10**9  # a model larger than this is not built (the paper's large one: 0.26 GB)


class InspectError(ValueError):
    """A user-caused problem (no checkpoint, empty prompt, bad temperature); one line."""


@dataclass
class RunModel:
    run_dir: Path
    config: RunConfig
    vocab: Vocabulary
    model: LanguageModel
    epoch: int  # the epochs completed when the checkpoint was written
    weights_dtype: str = "float32"  # float16 once `rnnreg compact` has halved them for shipping
    minibatches_into_next: int = 0  # a checkpoint written within epoch `epoch` + 1: its minibatches done

    def trained(self) -> str:
        """How far these weights are trained, in the run's own epochs ("after epoch 7 of 39")."""
        planned = self.config.train.epochs
        if self.minibatches_into_next:
            return f"{self.minibatches_into_next} minibatches into epoch {self.epoch + 1} of {planned}"
        return f"after epoch {self.epoch} of {planned}"


def load_run_model(run_dir: str | os.PathLike[str]) -> RunModel:
    """The run's model on the CPU in eval mode; InspectError if the run cannot be loaded."""
    run_dir = Path(run_dir)
    doc, problem = read_json(run_dir / CONFIG_FILE)
    if doc is None:
        raise InspectError(f"run {run_dir.name}: {problem or 'no config.json'}")
    try:
        config = from_dict(doc.get("config") or {})
    except ConfigError as err:
        raise InspectError(f"run {run_dir.name}: config.json is not a valid run config ({err})") from None
    words, problem = read_json_value(run_dir / VOCAB_FILE, max_bytes=MAX_VOCAB_BYTES)  # no symlink, no FIFO
    if problem is not None:
        raise InspectError(f"run {run_dir.name}: no readable vocab.json ({problem})")
    if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
        raise InspectError(f"run {run_dir.name}: vocab.json is not a list of words")
    if UNK not in words:  # unknown words would have no id to map to
        raise InspectError(f"run {run_dir.name}: vocab.json has no {UNK}")
    vocab = Vocabulary(tuple(words))
    needed = _weight_bytes(len(words), config.model.layers, config.model.hidden)
    if needed > MAX_WEIGHT_BYTES:  # a hand-made vocab.json of millions of words: refuse, not allocate
        raise InspectError(f"run {run_dir.name}: its model ({len(words):,} words, {config.model.layers} x "
                           f"{config.model.hidden}) would take {needed / 1e9:.0f} GB; this viewer stops at "
                           f"{MAX_WEIGHT_BYTES / 1e9:.0f} GB")
    try:  # its float32 weights, the state carried within an epoch, the header: never twice the weights
        tensors, state = load_checkpoint(run_dir / CHECKPOINT_FILE, max_bytes=2 * needed + (64 << 20))
    except CheckpointError as err:
        if is_read_only(run_dir) and not (run_dir / CHECKPOINT_FILE).exists():
            raise InspectError(f"run {run_dir.name}: a shipped run without its weights (they are left out of the "
                               "repository to keep it small); train one like it first: `rnnreg show "
                               f"{run_dir.name}` prints its command (reproduce)") from None
        raise InspectError(f"run {run_dir.name}: {err}; a run writes one after its first epoch, 10 minutes "
                           "into it, or where it is cancelled") from None
    weights = {k[len(MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)}
    model = LanguageModel(len(words), config.model, config.dropout)  # built once its checkpoint is there
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        raise InspectError(f"run {run_dir.name}: checkpoint does not fit its config ({load_error_text(err)})") from None
    broken = [name for name, w in weights.items() if w.is_floating_point() and not torch.isfinite(w).all()]
    if broken:  # a model of NaNs writes 'aer aer aer' and scores nothing
        raise InspectError(f"run {run_dir.name}: its checkpoint's weights are not finite ({', '.join(broken[:3])}"
                           f"{', ...' if len(broken) > 3 else ''}): the run diverged, or the file is damaged")
    model.eval()
    within = state.get("within_epoch")
    windows = within.get("windows") if isinstance(within, dict) else 0
    # the counts only label the weights here: one that is not a count reads as 0
    return RunModel(run_dir, config, vocab, model, count_or_none(state.get("epoch")) or 0,
                    str(state.get("weights_dtype", "float32")), minibatches_into_next=count_or_none(windows) or 0)


def _weight_bytes(vocab_size: int, layers: int, hidden: int) -> int:
    """About the float32 bytes of such a model's weights: an embedding and a softmax of vocab x hidden,
    and per layer four gates' input and recurrent matrices with their biases."""
    return 4 * (2 * vocab_size * hidden + layers * 4 * hidden * (2 * hidden + 2))


def load_run_corpus(run: RunModel, data_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """The corpus `run` was trained on: `data_dir` if given, else the directory its config names.

    A run made on another machine (the shipped reference runs, a run copied from a GPU box)
    names a directory that is not here; if its recorded checksums are the vendored Penn
    Treebank's, that copy serves.  Otherwise InspectError names the missing directory; also
    where the corpus's vocabulary is not the run's.  DataError if the directory holds no corpus.
    """
    if data_dir is None:
        doc, _problem = read_json(run.run_dir / CONFIG_FILE)
        data_dir = corpus_dir(run.config.data_dir, (doc or {}).get("environment"))
        if data_dir is None:
            raise InspectError(f"run {run.run_dir.name} was trained on {run.config.data_dir}, which is not on this "
                               "machine (and its checksums are not the vendored Penn Treebank's); pass --data DIR")
    corpus = load_corpus(data_dir)
    if tuple(corpus.vocab.words) != tuple(run.vocab.words):
        raise InspectError(f"run {run.run_dir.name}: the corpus's vocabulary is not the one the run was trained on")
    return corpus


def tokenize(text: str, vocab: Vocabulary | None = None) -> list[str]:
    """Tokens split on white space, each as `vocab` has it: as typed if it knows that, else lower-cased
    (PTB's words are all lower case; a corpus of your own may keep capitals); `<eos>`/`<unk>` as they are."""
    return [w if w in (EOS, UNK) or (vocab is not None and w in vocab) else w.lower() for w in text.split()]


def encode(vocab: Vocabulary, text: str) -> tuple[list[str], list[int], list[bool]]:
    """(words, ids, known) for `text`; InspectError if it holds no words."""
    words = tokenize(text, vocab)
    if not words:
        raise InspectError("the prompt is empty: type at least one word")
    ids = vocab.encode(words)
    known = [vocab.words[i] == w for w, i in zip(words, ids)]
    return words, ids, known


@dataclass
class Inspection:
    words: list[str]  # the tokens as typed (lower-cased)
    known: list[bool]  # False where the word became <unk>
    predictions: pd.DataFrame  # position, word, rank, next_word, prob
    gate_means: pd.DataFrame  # layer, position, word, gate, mean
    units: dict[tuple[int, str], np.ndarray]  # (layer, gate) -> (words, H) activations


@torch.no_grad()
def inspect_text(run: RunModel, text: str, *, top: int = 5) -> Inspection:
    """Run `text` through the model (zero state) and read its predictions and gates at each word."""
    words, ids, known = encode(run.vocab, text)
    tokens = torch.tensor(ids, dtype=torch.long).view(-1, 1)  # (T, 1)
    model = run.model
    model.eval()
    out = model(tokens, model.init_state(1), path="explicit", trace=True)
    probs = torch.softmax(out.logits[:, 0].float(), dim=-1)  # (T, V)
    top_p, top_i = probs.topk(min(top, probs.size(-1)), dim=-1)
    predictions = pd.DataFrame([
        {"position": t, "word": words[t], "rank": r + 1, "next_word": run.vocab.words[int(top_i[t, r])],
         "prob": float(top_p[t, r])}
        for t in range(len(words)) for r in range(top_i.size(1))
    ])
    means, units = [], {}
    for layer, trace in enumerate(out.trace or []):
        for gate in GATES:
            values = trace.stacked(gate)[:, 0].float()  # (T, H)
            units[(layer, gate)] = values.numpy()
            means += [{"layer": layer, "position": t, "word": words[t], "gate": gate, "mean": float(v)}
                      for t, v in enumerate(values.mean(dim=1))]
    return Inspection(words, known, predictions, pd.DataFrame(means), units)


def prediction_table(inspection: Inspection) -> pd.DataFrame:
    """One row per word: the word (marked if unknown) and its top predictions as `word (p%)`."""
    rows = []
    for position, part in inspection.predictions.groupby("position", sort=True):
        word = inspection.words[position]
        shown = word if inspection.known[position] else f"{word} → {UNK}"
        rows.append({"word": shown, **{f"#{int(r.rank)}": f"{r.next_word} ({_percent(r.prob)})"
                                       for r in part.itertuples()}})
    return pd.DataFrame(rows)


def _percent(p: float) -> str:
    """'12%', or '<1%' for a guess a rounding would show as 0% (a top guess is never impossible)."""
    text = f"{p:.0%}"
    return "<1%" if text == "0%" else text


@torch.no_grad()
def generate(run: RunModel | str | os.PathLike[str], prompt: str, temperature: float = 1.0, n_words: int = 30,
             seed: int = 0) -> str:
    """The prompt followed by `n_words` sampled words (softmax at `temperature`); `<eos>` ends a line."""
    return _as_lines(" ".join(continue_prompt(run, prompt, temperature, n_words, seed)))


def continue_prompt(run: RunModel | str | os.PathLike[str], prompt: str, temperature: float = 1.0,
                    n_words: int = 30, seed: int = 0) -> tuple[str, str]:
    """(the prompt as the model read it, the words it wrote after it): `generate` in two parts,
    for a page that sets the model's words apart from yours.  Words, not yet lines."""
    if not (isinstance(temperature, (int, float)) and 0 < temperature < math.inf):
        raise InspectError(f"--temperature: must be a finite number > 0, got {temperature!r}")
    if isinstance(n_words, bool) or not isinstance(n_words, int) or n_words < 1:
        raise InspectError(f"--words: must be a whole number >= 1, got {n_words!r}")
    if not isinstance(run, RunModel):
        run = load_run_model(run)
    words, ids, known = encode(run.vocab, prompt)
    model = run.model
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    out = model(torch.tensor(ids, dtype=torch.long).view(-1, 1), model.init_state(1))
    sampled: list[str] = []
    for _ in range(n_words):
        probs = torch.softmax(out.logits[-1, 0].float() / temperature, dim=-1)
        if torch.isfinite(probs).all():
            next_id = int(torch.multinomial(probs, 1, generator=generator))
        else:  # a temperature so low the logits overflow: its limit, the likeliest word
            next_id = int(out.logits[-1, 0].argmax())
        sampled.append(run.vocab.words[next_id])
        out = model(torch.tensor([[next_id]]), out.state)
    read = [run.vocab.words[i] if not k else w for w, i, k in zip(words, ids, known)]
    return " ".join(read), " ".join(sampled)


def _as_lines(text: str) -> str:
    """`<eos>` as the end of a line."""
    return text.replace(f" {EOS} ", "\n").replace(f" {EOS}", "\n").replace(f"{EOS} ", "\n").strip()
