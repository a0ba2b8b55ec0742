"""Where a training step's time goes: `rnnreg bench --profile`.

For each timed step (rnnreg.bench) this runs torch.profiler over a few steps and reports,
per step: the wall time (timed without the profiler), the time the device was busy (the
sum of kernel times on CUDA; of operator self times on a CPU), the number of kernels, and
the busy time by kind of work (matrix multiplies, cuDNN's LSTM, the fused cell, softmax and
loss, clipping and SGD, mask sampling, ...).  Wall minus busy is time the GPU sat waiting:
launch latency and gaps between dependent kernels, which is what bounds these small models.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

# (kind of work, pattern on the kernel or operator name, lowercase); the first match wins.
CATEGORIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern))
    for name, pattern in (
        ("fused cell (Triton)", r"_cell_(forward|backward)_kernel"),
        ("LSTM op (cuDNN)", r"lstm|rnn|cudnn|persistrnn"),  # cuDNN on a GPU, aten::lstm on a CPU
        ("softmax + loss", r"softmax|nll_loss|cross_entropy"),
        ("matmul", r"gemm|cutlass|xmma|cublas|sm\d+_|aten::(mm|addmm|bmm|matmul|linear)\b"),
        ("clip + SGD", r"foreach|multi_tensor|norm|clamp"),
        ("dropout masks", r"bernoulli|philox|uniform|rand|distribution"),
        ("copy + fill", r"copy|fill|memcpy|memset|cat|index|gather|scatter|embedding"),
        ("reduce", r"reduce|sum|mean"),
    )
)
OTHER = "other elementwise"


def category(name: str) -> str:
    lowered = name.lower()
    for kind, pattern in CATEGORIES:
        if pattern.search(lowered):
            return kind
    return OTHER


@dataclass(frozen=True)
class StepProfile:
    name: str
    step: str
    device: str  # cuda or cpu
    wall_ms: float  # per step, timed without the profiler
    busy_ms: float  # per step, device busy (kernel time on CUDA, operator self time on CPU)
    kernels: float  # kernels (CUDA) or aten operators (CPU) per step
    by_kind: dict[str, float] = field(default_factory=dict)  # busy ms per step by kind of work
    top: list[tuple[str, float, float]] = field(default_factory=list)  # (name, ms per step, calls per step)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def profile_step(name: str, step_kind: str, run: Callable[[], None], device: torch.device, *,
                 steps: int = 10, top: int = 8) -> StepProfile:
    """Profile `steps` calls of `run` (already warmed up) on `device`."""
    _sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        run()
    _sync(device)
    wall = (time.perf_counter() - began) / steps

    on_cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            run()
        _sync(device)
    rows = []  # (name, microseconds, calls)
    for event in prof.key_averages():
        if on_cuda:
            if event.device_type != DeviceType.CUDA:
                continue
            micros = event.self_device_time_total
        else:
            if not event.key.startswith("aten::"):
                continue
            micros = event.self_cpu_time_total
        if micros > 0:
            rows.append((event.key, micros, event.count))
    by_kind: dict[str, float] = {}
    for key, micros, _count in rows:
        kind = category(key)
        by_kind[kind] = by_kind.get(kind, 0.0) + micros / 1000 / steps
    rows.sort(key=lambda row: -row[1])
    return StepProfile(
        name=name, step=step_kind, device=device.type, wall_ms=wall * 1000,
        busy_ms=sum(micros for _k, micros, _c in rows) / 1000 / steps,
        kernels=sum(count for _k, _m, count in rows) / steps,
        by_kind=dict(sorted(by_kind.items(), key=lambda item: -item[1])),
        top=[(key[:90], micros / 1000 / steps, count / steps) for key, micros, count in rows[:top]],
    )


def format_profiles(profiles: Sequence[StepProfile]) -> str:
    lines = ["where a step's time goes (per step; busy = device busy, the rest is waiting on launches and gaps)"]
    for p in profiles:
        lines.append(f"{p.name} [{p.step}]: wall {p.wall_ms:.2f} ms, busy {p.busy_ms:.2f} ms "
                     f"({100 * p.busy_ms / p.wall_ms if p.wall_ms else 0:.0f}%), "
                     f"{p.kernels:.0f} {'kernels' if p.device == 'cuda' else 'operators'}")
        for kind, ms in p.by_kind.items():
            lines.append(f"    {kind:<20} {ms:8.3f} ms")
    return "\n".join(lines)
