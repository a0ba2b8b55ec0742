"""Probes: what the LSTM's gates do, measured on a fixed batch with the current weights.

Gate statistics run one validation window through the explicit path (dropout off, state
starting at zero) and summarise i, f, o, g, c, h per layer with fixed-bin histograms, the
mean, and saturation fractions.  Records go to a sink (the run's probes.jsonl) as
`kind: "gates"` lines; epoch 0 is the untrained model.
"""

from __future__ import annotations

import time
from typing import Callable

import torch

from rnnreg.data import batchify
from rnnreg.lstm import GATES
from rnnreg.model import LanguageModel

SIGMOID_GATES = ("i", "f", "o")
SATURATION = 0.9  # sigmoid gates: < 0.1 or > 0.9; tanh values: |x| > 0.9
# Fixed bins, so histograms of one gate line up across epochs and runs.
BIN_RANGES = {"i": (0.0, 1.0, 20), "f": (0.0, 1.0, 20), "o": (0.0, 1.0, 20),
              "g": (-1.0, 1.0, 20), "h": (-1.0, 1.0, 20), "c": (-4.0, 4.0, 32)}


def probe_batch(valid: torch.Tensor, batch_size: int, bptt: int) -> torch.Tensor:
    """The first (bptt, batch_size) window of the validation split: the same every epoch."""
    return batchify(valid, batch_size)[:bptt]


def gate_summary(name: str, values: torch.Tensor) -> dict[str, object]:
    """Histogram (values outside the bins are counted in the edge bins), mean, saturation."""
    low, high, bins = BIN_RANGES[name]
    flat = values.detach().float().flatten()
    counts = torch.histc(flat.clamp(low, high), bins=bins, min=low, max=high)
    edges = torch.linspace(low, high, bins + 1)
    # c is unbounded: its saturation is that of tanh(c), the value the output gate sees.
    squashed = torch.tanh(flat) if name == "c" else flat
    if name in SIGMOID_GATES:
        sat_low, sat_high = (squashed < 1 - SATURATION), (squashed > SATURATION)
    else:
        sat_low, sat_high = (squashed < -SATURATION), (squashed > SATURATION)
    return {
        "bin_edges": [round(float(e), 6) for e in edges],
        "counts": [int(c) for c in counts],
        "mean": float(flat.mean()),
        "saturation": float((sat_low | sat_high).float().mean()),
        "saturation_low": float(sat_low.float().mean()),
        "saturation_high": float(sat_high.float().mean()),
    }


@torch.no_grad()
def gate_statistics(model: LanguageModel, tokens: torch.Tensor, epoch: int) -> list[dict[str, object]]:
    """One `kind: "gates"` record per layer and gate, for `tokens` (T, B)."""
    was_training = model.training
    model.eval()
    out = model(tokens, model.init_state(tokens.size(1)), path="explicit", trace=True)
    model.train(was_training)
    records = []
    for layer, trace in enumerate(out.trace or []):
        for gate in GATES:
            records.append({"kind": "gates", "epoch": epoch, "layer": layer, "gate": gate,
                            **gate_summary(gate, trace.stacked(gate))})
    return records


class GateProbe:
    """Trainer listener: gate statistics before training (epoch 0) and after every epoch."""

    def __init__(self, tokens: torch.Tensor, sink: Callable[[dict[str, object]], None]) -> None:
        self.tokens, self.sink = tokens, sink
        self.seconds = 0.0  # total time spent probing, to keep it honest (< 5% of training)

    def _probe(self, trainer, epoch: int) -> None:
        start = time.perf_counter()
        records = gate_statistics(trainer.model, self.tokens.to(trainer.device), epoch)
        seconds = time.perf_counter() - start
        self.seconds += seconds
        for record in records:
            self.sink({**record, "seconds": seconds})

    def on_train_start(self, trainer) -> None:
        if trainer.epoch == 0:
            self._probe(trainer, 0)

    def on_epoch_end(self, trainer, event) -> None:
        self._probe(trainer, event.epoch)
