"""The LSTM stack: one set of weights, two ways to run it.

* fused    - each layer is a `torch.nn.LSTM` call (cuDNN on a GPU).  Dropout can only sit
             between layers, so this path serves placements with no site in the recurrence
             and no mask per gate.
* explicit - a per-step loop written out gate by gate.  It takes any placement (masks on
             h_{t-1}, g_t, c_t, DropConnect on W_hh, zoneout) and can record i, f, o, g, c, h
             at every step for probes.  To train, rnnreg.fused_cell runs the same function as
             one autograd function with the per-step arithmetic fused.

Both paths read the same parameters (each layer is an `nn.LSTM` module: weight_ih_l0,
weight_hh_l0, bias_ih_l0, bias_hh_l0, gates stacked in torch's order i, f, g, o), so with
dropout off they compute the same function (tests/test_lstm.py checks outputs and gradients).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from rnnreg.dropout import Placement
from rnnreg.dropout.weight_drop import drop_connect
from rnnreg.fused_cell import fused_layer, gatewise_matmul, recurrent_preactivation

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, H)
PATHS = ("fused", "explicit")
GATES = ("i", "f", "o", "g", "c", "h")


@dataclass
class LayerTrace:
    """What one layer computed at each step: lists of (B, H) tensors, still in the graph."""

    i: list[torch.Tensor] = field(default_factory=list)
    f: list[torch.Tensor] = field(default_factory=list)
    o: list[torch.Tensor] = field(default_factory=list)
    g: list[torch.Tensor] = field(default_factory=list)
    c: list[torch.Tensor] = field(default_factory=list)
    h: list[torch.Tensor] = field(default_factory=list)

    def stacked(self, name: str) -> torch.Tensor:
        """(T, B, H) values of gate/state `name` (one of GATES)."""
        return torch.stack(getattr(self, name))


class LSTMStack(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, layers: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        sizes = [input_size] + [hidden_size] * (layers - 1)
        self.layers = nn.ModuleList(nn.LSTM(size, hidden_size) for size in sizes)
        # Train the explicit path through rnnreg.fused_cell (same function, ~5x fewer kernels per
        # step); the loop below still serves evaluation, traces, and comparisons in tests.
        self.fuse_cells = True

    def init_state(self, batch: int, like: torch.Tensor) -> State:
        shape = (len(self.layers), batch, self.hidden_size)
        zeros = torch.zeros(shape, dtype=like.dtype, device=like.device)
        return zeros, zeros.clone()

    def forward(
        self, x: torch.Tensor, state: State, placement: Placement, *, path: str, trace: bool = False
    ) -> tuple[torch.Tensor, State, list[LayerTrace] | None]:
        """x: (T, B, input_size) -> outputs (T, B, H), final state, per-layer traces (or None)."""
        if path not in PATHS:
            raise ValueError(f"path must be one of {PATHS}, got {path!r}")
        if path == "fused" and trace:
            raise ValueError("gate traces need the explicit path")
        if path == "fused" and self.training and placement.touches_recurrence:
            raise ValueError(f"placement {placement.name!r} masks the recurrence; it needs the explicit path")
        h0, c0 = state
        hs, cs, traces = [], [], []
        for index, layer in enumerate(self.layers):
            if self.training and placement.input is not None and placement.input.gates == 1:
                x = placement.input(x)  # Zaremba et al. 2014: dropout on every layer's input
            if path == "fused":
                x, (h, c) = layer(x, (h0[index : index + 1], c0[index : index + 1]))
                h, c = h[0], c[0]
            else:
                layer_trace = LayerTrace() if trace else None
                x, h, c = self._explicit_layer(layer, x, h0[index], c0[index], placement, layer_trace)
                traces.append(layer_trace)
            hs.append(h)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs)), (traces if trace else None)

    def _explicit_layer(
        self,
        layer: nn.LSTM,
        x: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        placement: Placement,
        trace: LayerTrace | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        steps, batch, _ = x.shape
        size = self.hidden_size
        training = self.training
        w_hh = layer.weight_hh_l0
        if training and placement.weight:
            w_hh = drop_connect(w_hh, placement.weight)  # Merity et al. 2017: one mask per forward pass
        # Input projections for all steps in one matmul: (T, B, 4H).
        bias = layer.bias_ih_l0 + layer.bias_hh_l0
        flat = x.reshape(steps * batch, -1)
        if training and placement.input is not None and placement.input.gates > 1:
            # Gal & Ghahramani's untied masks: each gate projects its own masked copy of x.
            masks = placement.input.masks(steps, batch, x.size(-1), x).reshape(steps * batch, -1)
            x_proj = gatewise_matmul(flat, masks, layer.weight_ih_l0) + bias
        else:
            x_proj = torch.addmm(bias, flat, layer.weight_ih_l0.t())
        x_proj = x_proj.view(steps, batch, 4 * size)

        def draw(site):  # (T, B, H) masks for a site inside the recurrence ((T, B, 4H) per gate), or None
            return site.masks(steps, batch, size, x) if (training and site is not None) else None

        hidden_masks, update_masks, cell_masks = draw(placement.hidden), draw(placement.cell_update), draw(placement.cell)
        if cell_masks is not None:
            # The cell mask acts on the carried c at every step, so inverted-dropout scaling
            # would compound to (1/(1-p))^k over k steps: keep units at their value instead
            # (a 0/1 mask; dropped units hold no memory for the sequence).  Nothing at evaluation
            # stands in for it: without a mask every unit is on (README, "Dropout placements").
            cell_masks = cell_masks * (1.0 - placement.cell.p)
        zc, zh = placement.zoneout_c, placement.zoneout_h
        keep_c = (zc.keep_previous(steps, batch, size, x) if training else None) if zc else None
        keep_h = (zh.keep_previous(steps, batch, size, x) if training else None) if zh else None
        if self.fuse_cells and training and trace is None and torch.is_grad_enabled():
            return fused_layer(x_proj, w_hh, h, c, hidden_masks, update_masks, cell_masks, keep_c, keep_h)

        outputs = []
        for t in range(steps):
            gates = recurrent_preactivation(x_proj[t], h, hidden_masks[t] if hidden_masks is not None else None, w_hh)
            i, f, g, o = gates.chunk(4, dim=1)  # torch's gate order
            i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
            update = g * update_masks[t] if update_masks is not None else g
            c_new = f * c + i * update  # c_t = f * c_{t-1} + i * g_t
            if cell_masks is not None:
                c_new = c_new * cell_masks[t]  # Moon et al. 2015: the carried cell is masked
            h_new = o * torch.tanh(c_new)  # h_t = o * tanh(c_t)
            if zc is not None:  # Krueger et al. 2016: h's candidate uses the un-zoned cell
                c_new = zc.mix(c, c_new, keep_c[t] if keep_c is not None else zc.p)
            if zh is not None:
                h_new = zh.mix(h, h_new, keep_h[t] if keep_h is not None else zh.p)
            h, c = h_new, c_new
            outputs.append(h)
            if trace is not None:
                for name, value in (("i", i), ("f", f), ("o", o), ("g", g), ("c", c), ("h", h)):
                    getattr(trace, name).append(value)
        return torch.stack(outputs), h, c
