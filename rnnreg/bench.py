"""`rnnreg bench`: training-step speed of every placement beside a plain torch.nn.LSTM, in one run.

A step is what the trainer does per minibatch (rnnreg.steps, the very code it trains with):
forward with the carried state, the paper's loss (summed over steps, averaged over the
batch), backward, global-norm clipping, SGD - run eagerly, or on CUDA replayed as one graph.
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
from torch import nn

from rnnreg.config import PRESETS, build_run_config
from rnnreg.model import LanguageModel
from rnnreg.placements import PLACEMENT_NAMES
from rnnreg.step_profile import StepProfile, profile_step
from rnnreg.steps import EagerStep, GraphedStep

BASELINE = "nn.LSTM"
BENCH_STEPS = ("eager", "graph")


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
    step: str  # how the step ran: eager, or cuda-graph (rnnreg.steps)
    ms_per_batch: float  # median over rounds
    words_per_s: float
    ratio: float  # words/s relative to the eager baseline (> 1: faster than nn.LSTM as people run it)


def _make_step(model: nn.Module, forward: Callable, step: str, clip: float, batch: int, bptt: int, vocab: int,
               device: torch.device, layers: int, hidden: int) -> Callable[[], None]:
    """The trainer's own minibatch step (rnnreg.steps) on one fixed random window."""
    tokens = torch.randint(0, vocab, (bptt + 1, batch), device=device)
    inputs, targets = tokens[:-1], tokens[1:]
    zeros = torch.zeros(layers, batch, hidden, device=device)
    parameters = list(model.parameters())
    groups = {"all": parameters}
    if step == "graph":
        runner = GraphedStep(forward, parameters, (zeros, zeros), clip, groups, (bptt, batch)).capture()
    else:
        runner = EagerStep(forward, parameters, (zeros, zeros), clip, groups)
    runner.start_epoch(0.01, 0)
    return lambda: runner(inputs, targets)


def _time(step: Callable[[], None], batches: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(batches):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / batches


def baseline_dropout(preset: str) -> float:
    """The baseline's dropout rate: Zaremba's rate for the preset (0.5 medium, 0.65 large, and the
    default 0.5 for presets trained without dropout), so that `zaremba` is compared with the same
    model written by hand and trained the same way - masks drawn at the same sites."""
    return max(build_run_config(preset, placement="zaremba").dropout.rates.values(), default=0.0)


Entries = dict[tuple[str, str], tuple[str, Callable[[], None]]]  # (name, step kind) -> (LSTM path, one step)


def build_steps(preset: str, placements: Sequence[str], device: torch.device, steps: Sequence[str],
                vocab: int = 10_000, baseline: bool = True) -> Entries:
    """The baseline's (unless `baseline` is False) and each placement's training step, ready to call;
    step kind eager or cuda-graph."""
    unknown = [s for s in steps if s not in BENCH_STEPS]
    if unknown or not steps:
        raise ValueError(f"steps: unknown {unknown}; allowed: {', '.join(BENCH_STEPS)}")
    if "graph" in steps and device.type != "cuda":
        raise ValueError("steps: graph needs a CUDA device")
    base = PRESETS[preset]
    batch, bptt, clip = base.train.batch_size, base.train.bptt, base.train.clip
    layers, hidden = base.model.layers, base.model.hidden
    rate = baseline_dropout(preset)
    torch.manual_seed(0)

    def add(name: str, path: str, model: nn.Module, forward: Callable) -> None:
        for step in (["eager"] + [s for s in steps if s != "eager"]) if name == BASELINE else steps:
            runner = _make_step(model, forward, step, clip, batch, bptt, vocab, device, layers, hidden)
            entries[(name, "cuda-graph" if step == "graph" else "eager")] = (path, runner)

    entries: Entries = {}
    if baseline:
        plain = PlainLSTM(vocab, hidden, layers, rate).to(device).train()
        add(BASELINE, "nn.LSTM", plain, plain)
    for name in placements:
        config = build_run_config(preset, placement=name)
        model = LanguageModel(vocab, config.model, config.dropout).to(device).train()

        def forward(tokens, state, model=model):
            out = model(tokens, state)
            return out.logits, out.state

        add(name, model.default_path, model, forward)
    return entries


def run_bench(preset: str = "medium", placements: Sequence[str] = PLACEMENT_NAMES, batches: int = 20,
              device: str = "cpu", rounds: int = 3, warmup: int = 3, vocab: int = 10_000,
              steps: Sequence[str] = ("eager",)) -> list[BenchResult]:
    """Median ms per batch of each placement's training step and of the nn.LSTM baseline.

    `steps`: eager and/or graph (a CUDA graph per step; CUDA only).  The baseline always runs
    eagerly, as people run it; with graph in `steps` it is also timed as a graph, for reference.
    """
    dev = torch.device(device)
    entries = build_steps(preset, placements, dev, steps, vocab)
    for _path, step in entries.values():
        for _ in range(warmup):
            step()
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in entries}
    keys = list(entries)
    for r in range(rounds):
        # interleaved, so noise on a shared machine hits every entry alike; the order rotates
        # each round, so no entry always runs first (or right after the same neighbour)
        for key in keys[r % len(keys):] + keys[:r % len(keys)]:
            samples[key].append(_time(entries[key][1], batches, dev))

    base = PRESETS[preset].train
    words = base.batch_size * base.bptt
    base_s = statistics.median(samples[(BASELINE, "eager")])
    results = []
    for (name, step), (path, _runner) in entries.items():
        seconds = statistics.median(samples[(name, step)])
        results.append(BenchResult(name, path, step, seconds * 1000, words / seconds, base_s / seconds))
    return results


def profile_bench(preset: str, placements: Sequence[str], device: str, steps: Sequence[str], *,
                  batches: int = 10, warmup: int = 3, vocab: int = 10_000) -> list[StepProfile]:
    """rnnreg.step_profile over every step `run_bench` times (fresh models, same shapes)."""
    dev = torch.device(device)
    profiles = []
    for (name, step), (_path, runner) in build_steps(preset, placements, dev, steps, vocab).items():
        for _ in range(warmup):
            runner()
        profiles.append(profile_step(name, step, runner, dev, steps=batches))
    return profiles


def format_results(results: Sequence[BenchResult], preset: str, device: str) -> str:
    width = max([len("placement"), *(len(r.name) for r in results)])
    lines = [f"preset {preset} on {device}: training step (forward, backward, clip, SGD), median of rounds;"
             f" baseline nn.LSTM with dropout {baseline_dropout(preset):g} at Zaremba's sites",
             f"{'placement':<{width}} {'path':<9} {'step':<11} {'ms/batch':>9} {'words/s':>10} {'vs nn.LSTM':>11}"]
    for r in results:
        lines.append(f"{r.name:<{width}} {r.path:<9} {r.step:<11} {r.ms_per_batch:>9.2f} {r.words_per_s:>10.0f}"
                     f" {r.ratio:>10.2f}x")
    lines.append("vs nn.LSTM: words/s relative to the eager nn.LSTM baseline (> 1 is faster)")
    return "\n".join(lines)
