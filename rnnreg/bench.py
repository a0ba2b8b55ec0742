"""`rnnreg bench`: training-step speed of every placement beside a plain torch.nn.LSTM, in one run.

A step is what the trainer does per minibatch: forward with the carried state, the paper's
loss (summed over steps, averaged over the batch), backward, global-norm clipping, SGD.
The baseline is the model people write by hand: Embedding -> nn.LSTM(num_layers=L,
dropout=p) -> Linear, with dropout on the embedding output and the softmax input (Zaremba's
sites, cuDNN on a GPU).  Every measurement excludes warm-up and synchronises the device
around the timed loop; baseline and placements are timed alternately in rounds, so that a
slow spell of a shared machine hits both.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rnnreg.config import PRESETS, build_run_config
from rnnreg.model import LanguageModel
from rnnreg.placements import PLACEMENT_NAMES
from rnnreg.train import sgd_update

BASELINE = "nn.LSTM"


class PlainLSTM(nn.Module):
    """The hand-written baseline: one multi-layer torch.nn.LSTM with dropout between layers."""

    def __init__(self, vocab: int, hidden: int, layers: int, dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.drop = nn.Dropout(dropout)
        self.lstm = nn.LSTM(hidden, hidden, layers, dropout=dropout if layers > 1 else 0.0)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor, state):
        out, state = self.lstm(self.drop(self.embedding(tokens)), state)
        return self.decoder(self.drop(out)), state


@dataclass(frozen=True)
class BenchResult:
    name: str  # a placement, or BASELINE
    path: str  # which LSTM path the step used
    ms_per_batch: float  # median over rounds
    words_per_s: float
    ratio: float  # words/s relative to the baseline (> 1: faster than nn.LSTM)


def _step_fn(model: nn.Module, forward: Callable, state, clip: float, batch: int, bptt: int, vocab: int,
             device: torch.device) -> Callable[[], None]:
    tokens = torch.randint(0, vocab, (bptt + 1, batch), device=device)
    inputs, targets = tokens[:-1], tokens[1:]
    parameters = list(model.parameters())
    carried = [state]

    def step() -> None:
        h, c = carried[0]
        logits, new_state = forward(inputs, (h.detach(), c.detach()))
        loss = F.cross_entropy(logits.view(-1, vocab), targets.reshape(-1), reduction="sum") / batch
        for parameter in parameters:
            parameter.grad = None
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, clip, foreach=True)
        sgd_update(parameters, 0.01)
        carried[0] = new_state

    return step


def _time(step: Callable[[], None], batches: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(batches):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / batches


def run_bench(preset: str = "medium", placements: Sequence[str] = PLACEMENT_NAMES, batches: int = 20,
              device: str = "cpu", rounds: int = 3, warmup: int = 3, vocab: int = 10_000) -> list[BenchResult]:
    """Median ms per batch of each placement's training step and of the nn.LSTM baseline."""
    dev = torch.device(device)
    base = PRESETS[preset]
    batch, bptt, clip = base.train.batch_size, base.train.bptt, base.train.clip
    layers, hidden = base.model.layers, base.model.hidden
    rate = max(base.dropout.rates.values(), default=0.0)
    torch.manual_seed(0)

    steps: dict[str, tuple[str, Callable[[], None]]] = {}
    plain = PlainLSTM(vocab, hidden, layers, rate).to(dev).train()
    zeros = torch.zeros(layers, batch, hidden, device=dev)
    steps[BASELINE] = ("nn.LSTM", _step_fn(plain, plain, (zeros, zeros), clip, batch, bptt, vocab, dev))
    for name in placements:
        config = build_run_config(preset, placement=name)
        model = LanguageModel(vocab, config.model, config.dropout).to(dev).train()

        def forward(tokens, state, model=model):
            out = model(tokens, state)
            return out.logits, out.state

        steps[name] = (model.default_path, _step_fn(model, forward, model.init_state(batch), clip, batch, bptt,
                                                    vocab, dev))

    for _path, step in steps.values():
        for _ in range(warmup):
            step()
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):  # interleaved, so noise on a shared machine hits every entry alike
        for name, (_path, step) in steps.items():
            samples[name].append(_time(step, batches, dev))

    words = batch * bptt
    base_s = statistics.median(samples[BASELINE])
    results = []
    for name, (path, _step) in steps.items():
        seconds = statistics.median(samples[name])
        results.append(BenchResult(name, path, seconds * 1000, words / seconds, base_s / seconds))
    return results


def format_results(results: Sequence[BenchResult], preset: str, device: str) -> str:
    lines = [f"preset {preset} on {device}: training step (forward, backward, clip, SGD), median of rounds",
             f"{'placement':<13} {'path':<9} {'ms/batch':>9} {'words/s':>10} {'vs nn.LSTM':>11}"]
    for r in results:
        lines.append(f"{r.name:<13} {r.path:<9} {r.ms_per_batch:>9.2f} {r.words_per_s:>10.0f} {r.ratio:>10.2f}x")
    return "\n".join(lines)
