"""The explicit LSTM layer as one autograd function, its per-step arithmetic in one kernel.

Written gate by gate (rnnreg.lstm), a training step of the explicit path is ~25 small kernels
per time step and layer (sigmoids, tanhs, mask products, their backward), and at batch 20 each
costs a launch, not arithmetic.  Here a step is: [h_{t-1} * mask] -> one addmm -> one fused
cell kernel forward; one fused cell kernel -> one matmul [-> mask] backward; the gradient of
W_hh for all steps is one matmul at the end.  The function is the same LSTM cell as the loop in
rnnreg.lstm, with every site a placement can use inside the recurrence:

    i, f, g, o = sigm(a_i), sigm(a_f), tanh(a_g), sigm(a_o)        a = x_proj_t + h_in W_hh^T
    c_raw = f * c_{t-1} + i * (g * m_update)                       h_in = h_{t-1} * m_hidden
    c_new = c_raw * m_cell                                          (Moon et al.: carried cell)
    h_new = o * tanh(c_new)
    c_t = c_new + k_c * (c_{t-1} - c_new),  h_t = h_new + k_h * (h_{t-1} - h_new)   (zoneout)

Absent sites are skipped.  The element-wise part runs as a Triton kernel on a GPU (where
Triton is installed, as with PyTorch's CUDA wheels) and as plain torch ops elsewhere; the
tests check both against autograd through the loop (tests/test_fused_cell.py, Triton in its
CPU interpreter).
"""

from __future__ import annotations

import os
from typing import Optional

import torch

Mask = Optional[torch.Tensor]  # (T, B, H) or None


# --- the element-wise step, in torch ops (reference, CPU) ---------------------------------


def cell_forward_torch(pre, c_prev, h_prev, um, cm, kc, kh, out):
    """pre (B, 4H) -> out = (act (B, 4H: i, f, g, o), c_new, c_out, h_out (B, H each)), written in place."""
    a_i, a_f, a_g, a_o = pre.chunk(4, dim=1)  # torch's gate order
    i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), torch.sigmoid(a_o)
    update = g * um if um is not None else g
    c_new = f * c_prev + i * update
    if cm is not None:
        c_new = c_new * cm
    h_out = o * torch.tanh(c_new)
    c_out = c_new + kc * (c_prev - c_new) if kc is not None else c_new
    if kh is not None:
        h_out = h_out + kh * (h_prev - h_out)
    for buffer, value in zip(out, (torch.cat([i, f, g, o], dim=1), c_new, c_out, h_out)):
        buffer.copy_(value)


def cell_backward_torch(dh_step, dh_next, dc_out, act, c_prev, c_new, um, cm, kc, kh, d_pre):
    """d(loss)/d(h_t) from the outputs (dh_step) and from step t+1 (dh_next) -> d(pre) written into
    d_pre (B, 4H); returns d(c_prev) and the direct d(h_prev) of zoneout (or None)."""
    dh_out = dh_step + dh_next
    i, f, g, o = act.chunk(4, dim=1)
    dh_direct = dh_out * kh if kh is not None else None
    dh_new = dh_out * (1 - kh) if kh is not None else dh_out
    dc_new = dc_out * (1 - kc) if kc is not None else dc_out
    tc = torch.tanh(c_new)
    do = dh_new * tc
    dc_new = dc_new + dh_new * o * (1 - tc * tc)
    dc_raw = dc_new * cm if cm is not None else dc_new
    update = g * um if um is not None else g
    di, df, dupdate = dc_raw * update, dc_raw * c_prev, dc_raw * i
    dg = dupdate * um if um is not None else dupdate
    dc_prev = dc_raw * f + (dc_out * kc if kc is not None else 0)
    d_pre.copy_(torch.cat([di * i * (1 - i), df * f * (1 - f), dg * (1 - g * g), do * o * (1 - o)], dim=1))
    return dc_prev, dh_direct


# --- the same in Triton ----------------------------------------------------------------------

try:  # Triton ships with PyTorch's CUDA wheels on Linux; without it the torch ops above serve
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None

if triton is not None:

    @triton.jit
    def _sigmoid(x):
        return 1.0 / (1.0 + tl.exp(-x))

    @triton.jit
    def _tanh(x):
        return 2.0 / (1.0 + tl.exp(-2.0 * x)) - 1.0

    @triton.jit
    def _cell_forward_kernel(pre, c_prev, h_prev, um, cm, kc, kh, act, c_new_out, c_out, h_out, n, H,
                             HAS_UM: tl.constexpr, HAS_CM: tl.constexpr, HAS_KC: tl.constexpr,
                             HAS_KH: tl.constexpr, BLOCK: tl.constexpr):
        e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)  # element of (B, H)
        live = e < n
        gate = (e // H) * 4 * H + e % H  # its i-gate column in the (B, 4H) rows
        i = _sigmoid(tl.load(pre + gate, mask=live))
        f = _sigmoid(tl.load(pre + gate + H, mask=live))
        g = _tanh(tl.load(pre + gate + 2 * H, mask=live))
        o = _sigmoid(tl.load(pre + gate + 3 * H, mask=live))
        cp = tl.load(c_prev + e, mask=live)
        update = g
        if HAS_UM:
            update = g * tl.load(um + e, mask=live)
        c = f * cp + i * update
        if HAS_CM:
            c = c * tl.load(cm + e, mask=live)
        h = o * _tanh(c)
        tl.store(act + gate, i, mask=live)
        tl.store(act + gate + H, f, mask=live)
        tl.store(act + gate + 2 * H, g, mask=live)
        tl.store(act + gate + 3 * H, o, mask=live)
        tl.store(c_new_out + e, c, mask=live)
        if HAS_KC:
            c = c + tl.load(kc + e, mask=live) * (cp - c)
        if HAS_KH:
            h = h + tl.load(kh + e, mask=live) * (tl.load(h_prev + e, mask=live) - h)
        tl.store(c_out + e, c, mask=live)
        tl.store(h_out + e, h, mask=live)

    @triton.jit
    def _cell_backward_kernel(dh_step, dh_next, dc_out, act, c_prev, c_new, um, cm, kc, kh, dpre, dc_prev, dh_direct, n, H,
                              HAS_UM: tl.constexpr, HAS_CM: tl.constexpr, HAS_KC: tl.constexpr,
                              HAS_KH: tl.constexpr, BLOCK: tl.constexpr):
        e = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        live = e < n
        gate = (e // H) * 4 * H + e % H
        i = tl.load(act + gate, mask=live)
        f = tl.load(act + gate + H, mask=live)
        g = tl.load(act + gate + 2 * H, mask=live)
        o = tl.load(act + gate + 3 * H, mask=live)
        dh = tl.load(dh_step + e, mask=live) + tl.load(dh_next + e, mask=live)
        dc_in = tl.load(dc_out + e, mask=live)
        dc = dc_in
        if HAS_KH:
            k = tl.load(kh + e, mask=live)
            tl.store(dh_direct + e, dh * k, mask=live)
            dh = dh * (1.0 - k)
        if HAS_KC:
            kcv = tl.load(kc + e, mask=live)
            dc = dc_in * (1.0 - kcv)
        tc = _tanh(tl.load(c_new + e, mask=live))
        do = dh * tc
        dc = dc + dh * o * (1.0 - tc * tc)
        if HAS_CM:
            dc = dc * tl.load(cm + e, mask=live)
        update = g
        if HAS_UM:
            m = tl.load(um + e, mask=live)
            update = g * m
        cp = tl.load(c_prev + e, mask=live)
        di = dc * update
        df = dc * cp
        dg = dc * i
        if HAS_UM:
            dg = dg * m
        dcp = dc * f
        if HAS_KC:
            dcp = dcp + dc_in * kcv
        tl.store(dpre + gate, di * i * (1.0 - i), mask=live)
        tl.store(dpre + gate + H, df * f * (1.0 - f), mask=live)
        tl.store(dpre + gate + 2 * H, dg * (1.0 - g * g), mask=live)
        tl.store(dpre + gate + 3 * H, do * o * (1.0 - o), mask=live)
        tl.store(dc_prev + e, dcp, mask=live)


_BLOCK = 256


def _or(tensor: Mask, like: torch.Tensor) -> torch.Tensor:
    return tensor if tensor is not None else like  # a dummy pointer the kernel never reads


def cell_forward_triton(pre, c_prev, h_prev, um, cm, kc, kh, out):
    n, size = c_prev.numel(), c_prev.size(1)
    act, c_new, c_out, h_out = out
    _cell_forward_kernel[(triton.cdiv(n, _BLOCK),)](
        pre, c_prev, h_prev, _or(um, c_prev), _or(cm, c_prev), _or(kc, c_prev), _or(kh, c_prev),
        act, c_new, c_out, h_out, n, size,
        HAS_UM=um is not None, HAS_CM=cm is not None, HAS_KC=kc is not None, HAS_KH=kh is not None, BLOCK=_BLOCK,
    )


def cell_backward_triton(dh_step, dh_next, dc_out, act, c_prev, c_new, um, cm, kc, kh, d_pre):
    n, size = c_prev.numel(), c_prev.size(1)
    dc_prev = torch.empty_like(c_prev)
    dh_direct = torch.empty_like(c_prev) if kh is not None else None
    _cell_backward_kernel[(triton.cdiv(n, _BLOCK),)](
        dh_step, dh_next, dc_out, act, c_prev, c_new, _or(um, c_prev), _or(cm, c_prev), _or(kc, c_prev),
        _or(kh, c_prev), d_pre, dc_prev, _or(dh_direct, c_prev), n, size,
        HAS_UM=um is not None, HAS_CM=cm is not None, HAS_KC=kc is not None, HAS_KH=kh is not None, BLOCK=_BLOCK,
    )
    return dc_prev, dh_direct


def cell_kernel(device: torch.device) -> str:
    """Which element-wise kernel a layer on `device` uses: "triton" or "torch".

    $RNNREG_CELL_KERNEL=torch forces the torch ops (to compare, or where Triton misbehaves).
    """
    if os.environ.get("RNNREG_CELL_KERNEL") == "torch" or triton is None:
        return "torch"
    if device.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1":
        return "triton"
    return "torch"


# --- masks per gate (Gal & Ghahramani's "untied" variational dropout) -------------------------


def gatewise_matmul(x: torch.Tensor, masks: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (N, K), masks (N, 4K), weight (4H, K) -> (N, 4H) whose gate block g is (x * masks_g) @ weight_g^T.

    Each of the four gates sees its own masked copy of x: one batched matmul, the same FLOPs as
    the single (x * m) @ weight^T of a mask shared by all gates.
    """
    n, k = x.shape
    copies = (x.unsqueeze(1) * masks.reshape(n, 4, k)).transpose(0, 1)  # (4, N, K)
    out = torch.bmm(copies, weight.reshape(4, -1, k).transpose(1, 2))  # (4, N, H)
    return out.transpose(0, 1).reshape(n, -1)


def per_gate(mask: Mask, size: int) -> bool:
    """True for masks with one (size,) block per gate, (..., 4 * size): gatewise_matmul applies them."""
    return mask is not None and mask.size(-1) == 4 * size


def recurrent_preactivation(x_proj: torch.Tensor, h: torch.Tensor, mask: Mask, w_hh: torch.Tensor) -> torch.Tensor:
    """One step's gate pre-activations (B, 4H): x_proj + D(h_{t-1}) @ W_hh^T, with `mask` (B, H)
    on h_{t-1}, or (B, 4H) for a separately masked copy per gate, or None."""
    if per_gate(mask, h.size(-1)):
        return x_proj + gatewise_matmul(h, mask, w_hh)
    return torch.addmm(x_proj, h * mask if mask is not None else h, w_hh.t())


# --- the layer -------------------------------------------------------------------------------


def _at(mask: Mask, t: int) -> Mask:
    return mask[t].contiguous() if mask is not None else None


class FusedLSTMLayer(torch.autograd.Function):
    """(x_proj (T, B, 4H) with biases, W_hh (4H, H), h0, c0 (B, H), masks) -> h (T, B, H), c_T (B, H)."""

    @staticmethod
    def forward(ctx, x_proj, w_hh, h0, c0, hm, um, cm, kc, kh, kernel):
        forward_cell = cell_forward_triton if kernel == "triton" else cell_forward_torch
        steps, batch, _ = x_proj.shape
        size = h0.size(1)
        acts = x_proj.new_empty(steps, batch, 4 * size)
        c_news = x_proj.new_empty(steps, batch, size)
        cs = x_proj.new_empty(steps, batch, size)
        hs = x_proj.new_empty(steps, batch, size)
        h, c = h0, c0
        for t in range(steps):
            pre = recurrent_preactivation(x_proj[t], h, _at(hm, t), w_hh)
            forward_cell(pre, c, h, _at(um, t), _at(cm, t), _at(kc, t), _at(kh, t),
                         (acts[t], c_news[t], cs[t], hs[t]))
            h, c = hs[t], cs[t]
        ctx.save_for_backward(w_hh, h0, c0, acts, c_news, cs, hs, hm, um, cm, kc, kh)
        ctx.kernel = kernel
        return hs, cs[-1].clone()

    @staticmethod
    def backward(ctx, d_hs, d_c_last):
        w_hh, h0, c0, acts, c_news, cs, hs, hm, um, cm, kc, kh = ctx.saved_tensors
        backward_cell = cell_backward_triton if ctx.kernel == "triton" else cell_backward_torch
        steps, batch, size = hs.shape
        untied = per_gate(hm, size)
        w_gates = w_hh.reshape(4, size, size)  # block g: the rows of W_hh that gate g reads
        d_pre = torch.empty_like(acts)
        dh = torch.zeros_like(h0)
        dc = d_c_last.contiguous() if d_c_last is not None else torch.zeros_like(c0)
        d_hs = d_hs.contiguous() if d_hs is not None else torch.zeros_like(hs)
        for t in range(steps - 1, -1, -1):
            c_prev = cs[t - 1] if t > 0 else c0
            dc, dh_direct = backward_cell(d_hs[t], dh, dc, acts[t], c_prev, c_news[t],
                                          _at(um, t), _at(cm, t), _at(kc, t), _at(kh, t), d_pre[t])
            if untied:  # each gate's copy of h_{t-1} had its own mask: sum the four paths back
                by_gate = torch.bmm(d_pre[t].reshape(batch, 4, size).transpose(0, 1), w_gates)  # (4, B, H)
                dh = (by_gate.transpose(0, 1) * hm[t].reshape(batch, 4, size)).sum(1)
            else:
                dh = d_pre[t] @ w_hh  # (B, 4H) @ (4H, H)
                if hm is not None:
                    dh = dh * hm[t]
            if dh_direct is not None:
                dh = dh + dh_direct
        h_prev = torch.cat([h0.unsqueeze(0), hs[:-1]])  # h_{t-1} for every t
        if untied:  # gate g's rows of W_hh saw gate g's copy of h: (4, H, T*B) @ (4, T*B, H)
            copies = (h_prev.unsqueeze(2) * hm.reshape(steps, batch, 4, size)).reshape(-1, 4, size).transpose(0, 1)
            d_w = torch.bmm(d_pre.reshape(-1, 4, size).permute(1, 2, 0), copies).reshape(4 * size, size)
        else:
            h_in = h_prev * hm if hm is not None else h_prev
            d_w = d_pre.reshape(-1, d_pre.size(-1)).t() @ h_in.reshape(-1, h_in.size(-1))  # all steps, one matmul
        return d_pre, d_w, dh, dc, None, None, None, None, None, None


def fused_layer(x_proj, w_hh, h0, c0, hm: Mask, um: Mask, cm: Mask, kc: Mask, kh: Mask):
    """The layer's outputs (T, B, H), final h and final c, through FusedLSTMLayer."""
    hs, c_last = FusedLSTMLayer.apply(x_proj, w_hh, h0.contiguous(), c0.contiguous(), hm, um, cm, kc, kh,
                                      cell_kernel(x_proj.device))
    return hs, hs[-1], c_last
