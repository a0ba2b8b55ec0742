"""The fused explicit layer (rnnreg.fused_cell) is the gate-by-gate loop of rnnreg.lstm: same
outputs, same gradients, for every site a placement can put inside the recurrence.  The torch
kernel runs here; the Triton kernel runs in Triton's CPU interpreter where Triton is installed
(a CUDA install), and on a GPU in tests/test_gpu.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rnnreg.config import build_run_config
from rnnreg.model import LanguageModel
from rnnreg.placements import PLACEMENT_NAMES

ROOT = Path(__file__).resolve().parents[1]
RECURRENT = [name for name in PLACEMENT_NAMES if build_run_config("small", placement=name).dropout.placement == name
             and LanguageModel(5, build_run_config("small").model,
                               build_run_config("small", placement=name).dropout).placement.touches_recurrence]


def outputs_and_grads(placement: str, fuse: bool, seed: int = 0):
    config = build_run_config("small", placement=placement)
    torch.manual_seed(0)
    model = LanguageModel(40, config.model, config.dropout).double().train()
    model.lstm.fuse_cells = fuse
    tokens = torch.randint(0, 40, (7, 3), generator=torch.Generator().manual_seed(1))
    h0 = torch.randn(2, 3, config.model.hidden, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    c0 = torch.randn_like(h0)
    state = (h0.clone().requires_grad_(), c0.clone().requires_grad_())
    torch.manual_seed(seed)  # the same masks for both
    out = model(tokens, state, path="explicit")
    loss = (out.logits * torch.linspace(-1, 1, 40, dtype=torch.float64)).sum() + 0.3 * out.state[1].sum() \
        + 0.7 * out.state[0].sum()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    return out.logits.detach(), out.state, grads, (state[0].grad, state[1].grad)


def test_every_recurrent_placement_is_covered():
    assert set(RECURRENT) >= {"recurrent", "both", "variational", "semeniuta", "moon", "weight-drop", "zoneout"}


@pytest.mark.parametrize("placement", RECURRENT)
def test_the_fused_layer_is_the_loop_forward_and_backward(placement):
    loop = outputs_and_grads(placement, fuse=False)
    fused = outputs_and_grads(placement, fuse=True)
    torch.testing.assert_close(fused[0], loop[0], rtol=1e-10, atol=1e-12)
    for a, b in zip(fused[1], loop[1]):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-10, atol=1e-12)
    for name in loop[2]:
        torch.testing.assert_close(fused[2][name], loop[2][name], rtol=1e-9, atol=1e-12, msg=name)
    for a, b in zip(fused[3], loop[3]):  # into the initial state too
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_the_fused_layer_is_used_only_to_train(monkeypatch):
    config = build_run_config("small", placement="recurrent")
    model = LanguageModel(40, config.model, config.dropout).train()
    tokens = torch.randint(0, 40, (5, 2))
    out = model(tokens, model.init_state(2))
    assert out.logits.grad_fn is not None
    names = set()

    def walk(fn, depth=0):
        if fn is None or depth > 60:
            return
        names.add(type(fn).__name__)
        for child, _ in fn.next_functions:
            walk(child, depth + 1)

    walk(out.logits.grad_fn)
    assert any("FusedLSTMLayer" in name for name in names)
    from rnnreg import lstm

    calls, fused = [], lstm.fused_layer
    monkeypatch.setattr(lstm, "fused_layer", lambda *args: calls.append(1) or fused(*args))
    model(tokens, model.init_state(2))
    assert len(calls) == 2  # training with gradients: one fused call per layer
    calls.clear()
    with torch.no_grad():
        model(tokens, model.init_state(2))  # no gradients wanted: the loop
    traced = model(tokens, model.init_state(2), trace=True)
    assert traced.trace is not None and len(traced.trace[0].i) == 5  # traces come from the loop
    model.eval()
    model(tokens, model.init_state(2))  # evaluation: the loop (or cuDNN), never the training kernel
    assert calls == []


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed (CPU install)")
def test_the_triton_kernel_matches_in_the_interpreter():
    script = (
        "import torch\n"
        "from tests.test_fused_cell import outputs_and_grads, RECURRENT\n"
        "from rnnreg.fused_cell import cell_kernel\n"
        "assert cell_kernel(torch.device('cpu')) == 'triton'\n"
        "for placement in RECURRENT:\n"
        "    loop, fused = outputs_and_grads(placement, False), outputs_and_grads(placement, True)\n"
        "    torch.testing.assert_close(fused[0], loop[0], rtol=1e-9, atol=1e-11)\n"
        "    for name in loop[2]:\n"
        "        torch.testing.assert_close(fused[2][name], loop[2][name], rtol=1e-8, atol=1e-11)\n"
        "print('ok', len(RECURRENT))\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
