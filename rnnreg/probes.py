"""Probes: what the LSTM's gates do, measured on a fixed batch with the current weights.

Gate statistics run one validation window through the explicit path (dropout off, state
starting at zero) and summarise i, f, o, g, c, h per layer with fixed-bin histograms, the
mean, and saturation fractions.  Records go to a sink (the run's probes.jsonl) as
`kind: "gates"` lines; epoch 0 is the untrained model.

Gradient through time (`grad_through_time`, `GradThroughTime`) measures on a fixed window
(`probe_window`) how far back the loss's gradient reaches: ||dL_t / d state_{t-k}|| against k,
for c and h of each layer, as `kind: "grad_through_time"` lines.
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


class EpochProbe:
    """Trainer listener base: measure before training (epoch 0) and after every epoch, timed."""

    def __init__(self, sink: Callable[[dict[str, object]], None]) -> None:
        self.sink = sink
        self.seconds = 0.0  # total time spent probing, to keep it honest (< 5% of training)

    def measure(self, trainer, epoch: int) -> list[dict[str, object]]:
        raise NotImplementedError

    def _probe(self, trainer, epoch: int) -> None:
        start = time.perf_counter()
        records = self.measure(trainer, epoch)
        seconds = time.perf_counter() - start
        self.seconds += seconds
        for record in records:
            self.sink({**record, "seconds": seconds})

    def on_train_start(self, trainer) -> None:
        if trainer.epoch == 0 and trainer.step == 0:  # before any training (not a resume within epoch 1)
            self._probe(trainer, 0)

    def on_epoch_end(self, trainer, event) -> None:
        self._probe(trainer, event.epoch)


class GateProbe(EpochProbe):
    """Gate statistics of a fixed batch before training (epoch 0) and after every epoch."""

    def __init__(self, tokens: torch.Tensor, sink: Callable[[dict[str, object]], None]) -> None:
        super().__init__(sink)
        self.tokens = tokens

    def measure(self, trainer, epoch: int) -> list[dict[str, object]]:
        return gate_statistics(trainer.model, self.tokens.to(trainer.device), epoch)


# --------------------------------------------------------------------------- gradient through time
#
# How far back does the gradient of the loss at step t reach?  For a window of T steps we take
# the loss at a few target positions t near its end and measure, for every distance k,
#
#     norm(k)    = mean over sequences b and targets t of  || d loss_{t,b} / d c_{t-k,b} ||_2
#     nonzero(k) = mean fraction of the H units of that gradient that are not exactly zero
#
# (and the same for h).  The forward pass runs in training mode, so the run's own dropout
# placement masks what it masks; the figures average several mask draws.
#
# What decays under per-step masks on the carried path: a fresh mask m_s at every step
# multiplies the gradient along a unit's own memory path (c_{t-k} -> c_t through the forget
# gates) by the product m_t ... m_{t-k+1}, which survives with probability (1-p)^k.  The cell
# masks (`recurrent-cell`) are 0/1, not inverted, so `norm` falls with k faster than without
# dropout.  `nonzero` does not show that decay: W_hh mixes the gradient back into every unit at
# each step, so it stays near 1 (or flat near 1-p for a mask on h).  One mask per sequence
# removes the same (1-p) share once and adds no further decay with k.

GTT_TARGETS = 4  # target positions t: the last GTT_TARGETS steps of the window
GTT_DRAWS = 4  # mask draws averaged (copies of the probe batch in one forward pass)
GTT_SEED = 1234  # the probe's masks are the same every epoch; training's RNG is left untouched


def probe_window(valid: torch.Tensor, batch_size: int, bptt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs, targets), each (bptt, batch_size): the first validation window, shifted by one."""
    data = batchify(valid, batch_size)
    steps = min(bptt, data.size(0) - 1)
    return data[:steps], data[1 : steps + 1]


def _one_target_per_sequence(steps: int, batch: int, targets: int, device: torch.device) -> torch.Tensor:
    """(batch,) target step of each sequence: the last `targets` steps, round robin.

    Sequences do not interact in the forward pass, so one backward pass of the summed
    per-sequence losses gives every sequence its own d loss_{t_b} / d state exactly.
    """
    positions = torch.arange(steps - targets, steps, device=device)
    return positions[torch.arange(batch, device=device) % targets]


def grad_through_time(
    model: LanguageModel,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    epoch: int,
    *,
    n_targets: int = GTT_TARGETS,
    draws: int = GTT_DRAWS,
    seed: int = GTT_SEED,
) -> list[dict[str, object]]:
    """`kind: "grad_through_time"` records (one per layer and wrt in c, h) for a (T, B) window.

    k runs from 0 to T - n_targets, the distances every target position can reach.  Model
    parameters' `.grad` are left untouched (torch.autograd.grad), and so is the global RNG
    (the masks come from a forked generator seeded with `seed`).
    """
    steps, batch = inputs.shape
    n_targets = max(1, min(n_targets, steps))
    placement = model.placement
    # Masks drawn once per forward pass (DropConnect, word dropout) would be shared by copies
    # of the batch in one pass: such placements get one pass per draw instead.
    per_forward = bool(placement.weight or placement.embedding)
    passes, copies = (draws, 1) if per_forward else (1, draws)
    device = inputs.device
    sums: dict[tuple[int, str], torch.Tensor] = {}
    alive: dict[tuple[int, str], torch.Tensor] = {}
    counts = 0
    was_training = model.training
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(seed)
        model.train()
        try:
            for _ in range(passes):
                x, y = inputs.repeat(1, copies), targets.repeat(1, copies)
                rows = x.size(1)
                t_of = _one_target_per_sequence(steps, rows, n_targets, device)  # (rows,)
                out = model(x, model.init_state(rows), path="explicit", trace=True)
                columns = torch.arange(rows, device=device)
                logits = out.logits[t_of, columns]  # (rows, V): each sequence's target step only
                loss = torch.nn.functional.cross_entropy(logits, y[t_of, columns], reduction="sum")
                tensors = [value for trace in out.trace for value in (*trace.c, *trace.h)]
                grads = torch.autograd.grad(loss, tensors, allow_unused=True)
                # distance of step s from each sequence's target: k = t_b - s, valid for 0 <= k <= K
                k_max = steps - n_targets
                index = t_of.unsqueeze(0) - torch.arange(k_max + 1, device=device).unsqueeze(1)  # (K+1, rows)
                for layer in range(len(out.trace)):
                    for j, wrt in enumerate(("c", "h")):
                        start = (2 * layer + j) * steps
                        g = torch.stack([gr if gr is not None else torch.zeros_like(tensors[start])
                                         for gr in grads[start : start + steps]])  # (T, rows, H)
                        picked = g[index, columns]  # (K+1, rows, H): d loss_{t_b} / d state_{t_b - k}
                        norms = torch.linalg.vector_norm(picked, dim=-1).sum(dim=1)
                        nonzero = (picked != 0).float().mean(dim=-1).sum(dim=1)
                        key = (layer, wrt)
                        sums[key] = sums.get(key, 0) + norms.detach()
                        alive[key] = alive.get(key, 0) + nonzero
                counts += rows
        finally:
            model.train(was_training)
    records = []
    for (layer, wrt), total in sums.items():
        records.append({
            "kind": "grad_through_time", "epoch": epoch, "layer": layer, "wrt": wrt,
            "k": list(range(total.numel())),
            "norm": [float(v) for v in (total / counts).cpu()],
            "nonzero": [round(float(v), 6) for v in (alive[(layer, wrt)] / counts).cpu()],
            "targets": n_targets, "draws": draws,
        })
    return records


class GradThroughTime(EpochProbe):
    """Gradient-through-time profiles before training (epoch 0) and after every epoch."""

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, sink: Callable[[dict[str, object]], None]) -> None:
        super().__init__(sink)
        self.inputs, self.targets = inputs, targets

    def measure(self, trainer, epoch: int) -> list[dict[str, object]]:
        return grad_through_time(trainer.model, self.inputs.to(trainer.device), self.targets.to(trainer.device),
                                 epoch)
