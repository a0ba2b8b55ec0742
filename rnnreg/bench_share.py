"""`rnnreg bench --share 1,2,4`: what several training processes sharing one device buy, in one run.

A medium run is bound by latency, not by the GPU's arithmetic (README, "Where the time
goes"), so several runs at once could each keep part of the chip busy.  Whether they do
depends on how the device shares itself: processes on one GPU take turns (time slicing)
unless NVIDIA's MPS daemon runs, which lets their kernels overlap.  This bench measures it
instead of assuming it: it starts the largest number of worker processes asked for, each
holding its own copy of one placement's training step (rnnreg.bench: the trainer's own
step, eager or replayed as a CUDA graph), and then, in interleaved rounds, lets 1, 2, ... K
of them train at once for a fixed window.  Throughput in all (words/s summed over the
processes) at K against one process alone is the figure `benchmarks/gpu_runs.py` plans with.

Workers talk JSON lines over their stdin/stdout: "ready" once warm, then one reply per
window.  A worker that dies or stays silent is an error naming its stderr, never a hang.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

STEP_KINDS = ("eager", "graph")
MAX_PROCESSES = 32  # each level starts that many worker processes at once
CUDA_SYNC_EVERY = 10  # graph replays are queued ahead of the GPU: sync every few steps to count done work


@dataclass(frozen=True)
class ShareResult:
    processes: int  # K: workers training at once
    ms_per_batch: float  # one worker's time per step while K train (median over workers and rounds)
    words_per_s: float  # summed over the K workers (median over rounds)
    ratio: float  # words_per_s relative to one worker alone: what sharing buys


def parse_levels(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4]; the levels must be distinct whole numbers >= 1 and include 1 (the baseline)."""
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--share: {text!r} is not a comma-separated list of process counts, e.g. 1,2,4") from None
    if not levels or min(levels) < 1 or len(set(levels)) != len(levels) or 1 not in levels:
        raise ValueError(f"--share: {text!r}: distinct counts >= 1, including 1 (one process alone is the baseline)")
    if max(levels) > MAX_PROCESSES:
        raise ValueError(f"--share: {text!r}: at most {MAX_PROCESSES} processes at once")
    return sorted(levels)


class _Worker:
    """One worker process and its pipes; stderr goes to a temporary file for error messages."""

    def __init__(self, index: int, command: list[str], env: dict[str, str]) -> None:
        self.index = index
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, env=env)

    def send(self, message: dict) -> None:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(message) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:  # it died after its last answer (out of memory, a CUDA error): say what it said
            raise RuntimeError(f"bench worker {self.index}: exited ({self.process.poll()}){self._tail()}") from None

    def receive(self, timeout: float) -> dict:
        """The worker's next JSON line, or a RuntimeError naming what went wrong (exit, silence)."""
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise RuntimeError(f"bench worker {self.index}: no answer in {timeout:g} s{self._tail()}")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise RuntimeError(f"bench worker {self.index} exited with code {self.process.returncode}{self._tail()}")
        return json.loads(line)

    def _tail(self) -> str:
        self.stderr.seek(0)
        text = self.stderr.read().strip()
        return f"; its stderr ends:\n{text[-1500:]}" if text else ""

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send({"quit": True})
                self.process.wait(timeout=10)
            except (OSError, RuntimeError, subprocess.TimeoutExpired):  # (a dead worker: RuntimeError)
                self.process.kill()
                self.process.wait()
        self.stderr.close()


def run_share_bench(preset: str, placement: str, device: str = "cpu", step: str = "eager",
                    levels: Sequence[int] = (1, 2), seconds: float = 5.0, rounds: int = 2, warmup: int = 3,
                    threads: int | None = None, start_timeout: float = 600.0) -> list[ShareResult]:
    """Throughput of 1..K worker processes training `placement`'s step at once (see the module docstring)."""
    if step not in STEP_KINDS:
        raise ValueError(f"step: {step!r}; allowed: {', '.join(STEP_KINDS)}")
    if seconds <= 0 or rounds < 1:
        raise ValueError("seconds must be > 0 and rounds >= 1")
    command = [sys.executable, "-m", "rnnreg.bench_share", "--worker", "--preset", preset, "--placement", placement,
               "--device", device, "--step", step, "--warmup", str(warmup)]
    if threads is not None:
        command += ["--threads", str(threads)]
    package_root = str(Path(__file__).resolve().parent.parent)  # so `-m rnnreg...` imports this very code
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    workers = [_Worker(i, command, env) for i in range(max(levels))]
    try:
        began = time.monotonic()
        for worker in workers:  # they warm up side by side (compiles and captures included)
            if worker.receive(max(1.0, start_timeout - (time.monotonic() - began))) != {"ready": True}:
                raise RuntimeError(f"bench worker {worker.index}: expected its ready line")
        words: dict[int, list[float]] = {k: [] for k in levels}
        ms: dict[int, list[float]] = {k: [] for k in levels}
        order = list(levels)
        for r in range(rounds):
            # interleaved and rotated, as in rnnreg.bench: a slow spell hits every level alike
            for k in order[r % len(order):] + order[:r % len(order)]:
                for worker in workers[:k]:
                    worker.send({"seconds": seconds})
                replies = [worker.receive(seconds * 20 + 60) for worker in workers[:k]]
                words[k].append(sum(reply["words"] / reply["seconds"] for reply in replies))
                ms[k].extend(1000 * reply["seconds"] / reply["steps"] for reply in replies)
    finally:
        for worker in workers:
            worker.close()
    alone = statistics.median(words[1])
    return [ShareResult(k, statistics.median(ms[k]), statistics.median(words[k]), statistics.median(words[k]) / alone)
            for k in levels]


def format_share_results(results: Sequence[ShareResult], preset: str, placement: str, device: str, step: str) -> str:
    lines = [f"preset {preset} on {device}, placement {placement}, {step} step: K processes each training its own"
             " model at once, for the same window",
             f"{'processes':>9} {'ms/batch each':>14} {'words/s in all':>15} {'vs one alone':>13}"]
    for r in results:
        lines.append(f"{r.processes:>9} {r.ms_per_batch:>14.2f} {r.words_per_s:>15.0f} {r.ratio:>12.2f}x")
    lines.append("vs one alone: throughput in all relative to one process training alone (> 1: sharing pays)")
    return "\n".join(lines)


def _worker_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="rnnreg.bench_share --worker")
    parser.add_argument("--worker", action="store_true", required=True)
    parser.add_argument("--preset", required=True)
    parser.add_argument("--placement", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--step", required=True, choices=STEP_KINDS)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)

    # The protocol owns stdout; anything a library prints goes to stderr instead.
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def say(message: dict) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    import torch

    from rnnreg.bench import build_steps
    from rnnreg.config import PRESETS

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    (_path, step), = build_steps(args.preset, [args.placement], device, [args.step], baseline=False).values()
    train = PRESETS[args.preset].train
    words_per_step = train.batch_size * train.bptt
    sync_every = CUDA_SYNC_EVERY if device.type == "cuda" else 1

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(args.warmup):
        step()
    sync()
    say({"ready": True})
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("quit"):
            break
        steps, start = 0, time.perf_counter()
        while True:
            step()
            steps += 1
            if steps % sync_every == 0:
                sync()
                if time.perf_counter() - start >= message["seconds"]:
                    break
        elapsed = time.perf_counter() - start
        say({"steps": steps, "seconds": elapsed, "words": steps * words_per_step})
    return 0


if __name__ == "__main__":
    raise SystemExit(_worker_main(sys.argv[1:]))
