"""Train a list of runs on one lent GPU before a deadline, a few at a time, in priority order.

    python benchmarks/gpu_runs.py --runs-dir DIR --deadline SECONDS [--concurrent N] [--bench JSON] JOB...

JOB is `name:preset:placement:dropout:seed` (dropout `-` for the preset's own rates).  Each
job is an ordinary `python -m rnnreg train` process (no shell).  A job is started only if its
estimate (from the bench's ms per batch where one is given) and the work still owed to the
running jobs end before the deadline;
anything still running at the deadline gets SIGTERM, which the trainer turns into a clean
"cancelled".  Prints one JSON summary line per job, and a list of finished runs at the end.
A device session has 10 minutes per command; this is how it spends them on the most runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# Minibatches per epoch on full PTB (929,589 tokens, batch 20): unroll 20 (small) / 35 (others).
# (demo: 30,000 tokens at batch 20, unroll 20, for a dry run on a CPU with --device cpu.)
BATCHES = {"small": 2324, "medium": 1327, "large": 1327, "demo": 75}
EPOCHS = {"small": 13, "medium": 39, "large": 55, "demo": 10}
# When the bench has no figure: measured graphed steps (small/medium: this project's H200 runs;
# large: the whole-step graph of plain nn.LSTM, ../shared/REFERENCE.md section 3), rounded up.
FALLBACK_MS = {"small": 1.5, "medium": 4.5, "large": 5.5, "demo": 60.0}
OVERHEAD = 1.25  # evaluation, probes, checkpoints, start-up


def estimate_seconds(preset: str, placement: str, bench: dict) -> float:
    """GPU seconds the run needs alone (processes sharing the GPU take turns, so work adds up)."""
    ms = bench.get((preset, placement), FALLBACK_MS[preset])
    return BATCHES[preset] * EPOCHS[preset] * ms / 1000 * OVERHEAD


def epochs_done(runs_dir: Path, name: str) -> int:
    """Epoch records so far in the run named `name` (run ids are <time>-<name>-<hex>)."""
    for metrics in runs_dir.glob(f"*-{name}-*/metrics.jsonl"):
        try:
            return metrics.read_text().count('"kind":"epoch"')
        except OSError:
            return 0
    return 0


def run_id(runs_dir: Path, name: str) -> str | None:
    found = sorted(runs_dir.glob(f"*-{name}-*/config.json"))
    return found[0].parent.name if found else None


def evaluate_mc(runs_dir: Path, name: str, samples: list[int], device: str, seconds_left: float, report) -> None:
    """`rnnreg evaluate RUN --mc-samples N` for each N in turn, while time is left (each is recorded)."""
    run = run_id(runs_dir, name)
    for n in samples:
        if run is None or seconds_left < 10:
            report([name], event="mc-skipped", samples=n, left=round(seconds_left))
            continue
        began = time.monotonic()
        try:
            done = subprocess.run([sys.executable, "-m", "rnnreg", "evaluate", run, "--mc-samples", str(n),
                                   "--device", device, "--runs-dir", str(runs_dir)],
                                  capture_output=True, text=True, timeout=seconds_left)
            report([name], event="mc", samples=n, rc=done.returncode, out=(done.stdout + done.stderr)[-400:])
        except subprocess.TimeoutExpired:
            report([name], event="mc-timeout", samples=n)
        seconds_left -= time.monotonic() - began


def load_bench(paths: list[str]) -> dict:
    figures = {}
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        for result in doc.get("results", []):
            if result.get("step") == "cuda-graph":
                figures[(doc["preset"], result["name"])] = result["ms_per_batch"]
    return figures


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir", required=True)
    parser.add_argument("--deadline", type=float, required=True, help="seconds from now")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--bench", action="append", default=[])
    parser.add_argument("--step", default="auto", choices=["auto", "graph", "eager"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--mc", action="append", default=[], metavar="NAME=N[,N...]",
                        help="after job NAME finishes, `rnnreg evaluate --mc-samples N` for each N (recorded)")
    parser.add_argument("jobs", nargs="+")
    args = parser.parse_args()
    start = time.monotonic()
    deadline = start + args.deadline
    bench = load_bench(args.bench)
    pending = [job.split(":") for job in args.jobs]
    running: list[tuple[list[str], subprocess.Popen, float, float]] = []  # job, process, began, estimate
    runs_dir = Path(args.runs_dir)
    mc = {name: [int(n) for n in counts.split(",")] for name, counts in (item.split("=") for item in args.mc)}
    logs = Path(args.runs_dir).parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # Measured / estimated seconds of the last finished job per preset: later estimates of that
    # preset are scaled by it (the estimates' overhead factor is a guess; a finished run is not).
    scale: dict[str, float] = {}

    def estimate(job) -> float:
        return estimate_seconds(job[1], job[2], bench) * scale.get(job[1], 1.0)

    def report(job, **fields):
        print(json.dumps({"job": job[0], "t": round(time.monotonic() - start, 1), **fields}), flush=True)

    while pending or running:
        for entry in list(running):
            job, process, began, estimated = entry
            if process.poll() is not None:
                running.remove(entry)
                seconds = time.monotonic() - began
                if process.returncode == 0 and args.concurrent == 1:
                    scale[job[1]] = seconds / estimate_seconds(job[1], job[2], bench)
                report(job, event="ended", rc=process.returncode, seconds=round(seconds, 1),
                       estimated=round(estimated))
                if process.returncode == 0 and job[0] in mc:
                    evaluate_mc(runs_dir, job[0], mc[job[0]], args.device, deadline - time.monotonic(), report)
        while pending and len(running) < args.concurrent:
            # Start the first job that ends before the deadline without pushing a running job past
            # it: the GPU still owes the running jobs their remaining share of work.
            owed = sum(est * (1 - epochs_done(runs_dir, j[0]) / EPOCHS[j[1]]) for j, _p, _b, est in running)
            fits = [job for job in pending
                    if time.monotonic() + owed + estimate(job) <= deadline]
            if not fits:
                if not running:  # nothing will free up: what is left cannot be done in time
                    for job in pending:
                        report(job, event="skipped", estimate=round(estimate(job)),
                               left=round(deadline - time.monotonic()))
                    pending.clear()
                break
            job = fits[0]
            pending.remove(job)
            name, preset, placement, dropout, seed = job
            estimated = estimate(job)
            command = [sys.executable, "-m", "rnnreg", "train", "--preset", preset, "--placement", placement,
                       "--device", args.device, "--step", args.step, "--seed", seed, "--name", name,
                       "--runs-dir", args.runs_dir]
            if dropout != "-":
                command += ["--dropout", dropout]
            with open(logs / f"{name}.log", "w") as log:
                process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
            running.append((job, process, time.monotonic(), estimated))
            report(job, event="started", estimate=round(estimated), owed=round(owed))
        if time.monotonic() > deadline:
            for job, process, _began, _estimate in running:
                process.terminate()  # the trainer's SIGTERM handler marks the run cancelled
                report(job, event="deadline")
            for _job, process, _began, _estimate in running:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
            running.clear()
        time.sleep(1.0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
