"""Train a list of runs on one lent GPU before a deadline, a few at a time, in priority order.

    python benchmarks/gpu_runs.py --runs-dir DIR --deadline SECONDS [--concurrent N] [--bench JSON]
        [--sharing JSON] JOB...

JOB is `name:preset:placement:dropout:seed[:OPTIONS]` (dropout `-` for the preset's own rates;
OPTIONS: more `rnnreg train` options, comma-separated, each `--option=value`, e.g.
`--dropout-site=hidden=0.3,--weight-decay=1e-7`).  Each
job is an ordinary `python -m rnnreg train` process (no shell).  A job is started only if it
and every running job still end before the deadline (`admits`): the estimates come from the
bench's ms per batch where one is given, and what sharing the GPU costs each job from the
sharing bench (`rnnreg bench --share 1,2,4 --json`) where one is given - without it, jobs
sharing the GPU are assumed to take turns, so their work adds up.  With a sharing bench,
--concurrent is a ceiling and the number of jobs at once is the measured level that buys
the most (the smallest within 5% of the best).  A running job whose own epochs say it cannot
end in time even with the GPU to itself is stopped at once (`seconds_to_finish`), so that its
share goes to jobs that can.  Anything still running at the deadline gets SIGTERM, which the
trainer turns into a clean "cancelled".  Prints one JSON summary line
per job, and a list of finished runs at the end.  A device session has 10 minutes per
command; this is how it spends them on the most runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# torch-free: the scheduler imports no torch
from rnnreg.runs import CONFIG_FILE, METRICS_FILE, read_json, read_jsonl  # noqa: E402

# Minibatches per epoch (full windows) on PTB (929,589 tokens, batch 20): unroll 20 (small) / 35 (others).
# (demo: 30,000 tokens at batch 20, unroll 20, for a dry run on a CPU with --device cpu.)
BATCHES = {"small": 2323, "medium": 1327, "large": 1327, "demo": 74}
EPOCHS = {"small": 13, "medium": 39, "large": 55, "demo": 10}
# When the bench has no figure: measured graphed steps (this project's H200 runs; large: zaremba
# 0.65 seed 0 took 536.5 s in all for 55 x 1327 steps: 6.23 ms a step with OVERHEAD below), rounded up.
FALLBACK_MS = {"small": 1.5, "medium": 4.5, "large": 6.3, "demo": 60.0}
# Eager steps where a graphed one has no figure: the H200 bench of 2026-11-26 at medium took 7-8 ms
# eager for the fused placements against 3.9 graphed, 19-25 ms for the recurrent ones (per-step
# loop) against 4.0-4.3: the recurrent ratio, erring long, stands for all.
EAGER_FACTOR = 6.0
# Placements not yet benched on a GPU, against that figure: a guess, erring long (a run that
# overruns the deadline is cancelled and its time lost).  variational-untied adds a batched
# matmul, a mask product and a copy per step and layer where the others have one addmm.
UNBENCHED_FACTOR = {"variational-untied": 1.4}
# Evaluation, probes, checkpoints, start-up, on top of the steps: the graphed medium runs shipped
# took 243 and 251 s for 1327 x 39 steps at 4.23 / 4.26 ms (1.10x, 1.14x); a little margin on top.
OVERHEAD = 1.18


class Job(NamedTuple):
    name: str
    preset: str
    placement: str
    dropout: str  # a rate, or "-" for the preset's (placement's) own rates
    seed: str
    options: tuple[str, ...]  # further `rnnreg train` options, each "--option=value"


def parse_job(text: str) -> Job:
    """`name:preset:placement:dropout:seed[:--opt=v,--opt=v]` -> Job, or ValueError saying what is wrong."""
    parts = text.split(":", 5)
    if len(parts) < 5 or not all(parts[:5]):
        raise ValueError(f"job {text!r}: expected name:preset:placement:dropout:seed[:OPTIONS]")
    options = tuple(o for o in parts[5].split(",") if o) if len(parts) == 6 else ()
    bad = [o for o in options if not (o.startswith("--") and "=" in o)]
    if bad:
        raise ValueError(f"job {text!r}: each option is --option=value, got {', '.join(bad)}")
    if parts[1] not in EPOCHS:
        raise ValueError(f"job {text!r}: preset {parts[1]!r}; allowed: {', '.join(EPOCHS)}")
    return Job(*parts[:5], options)


def estimate_seconds(preset: str, placement: str, bench: dict, epochs: int | None = None,
                     step: str = "graph") -> float:
    """GPU seconds the run needs alone (on full PTB; `epochs` overrides the preset's), at `step`:
    `bench` holds the figures of that step (load_bench), the fallbacks are graphed steps'."""
    fallback = FALLBACK_MS[preset] * UNBENCHED_FACTOR.get(placement, 1.0) * (EAGER_FACTOR if step == "eager" else 1.0)
    ms = bench.get((preset, placement), fallback)
    return BATCHES[preset] * (epochs or EPOCHS[preset]) * ms / 1000 * OVERHEAD


def load_sharing(paths: list[str]) -> dict[int, float]:
    """{K: throughput of K processes at once / one alone} from `rnnreg bench --share --json` files;
    {1: 1.0} when none is readable (then sharing is assumed to buy nothing: turns)."""
    sharing = {1: 1.0}
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
            sharing.update({int(r["processes"]): float(r["ratio"]) for r in doc["results"]})
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sharing


def best_concurrency(sharing: dict[int, float], ceiling: int) -> int:
    """The smallest measured K (<= ceiling) whose throughput is within 5% of the best such K."""
    levels = {k: ratio for k, ratio in sharing.items() if k <= ceiling} or {1: 1.0}
    best = max(levels.values())
    return min(k for k, ratio in levels.items() if ratio >= 0.95 * best)


def slowdown(sharing: dict[int, float], k: int) -> float:
    """How many times longer a job takes while k jobs share the GPU, at worst: k / speedup(k), taken at
    the smallest measured level >= k (one job's speed only falls as more share); turns (k) if none is."""
    measured = [level for level in sharing if level >= k]
    if not measured:
        return float(k)
    level = min(measured)
    return level / sharing[level]


def admits(new_seconds: float, running_left: list[float], seconds_left: float, sharing: dict[int, float]) -> bool:
    """Do a new job (`new_seconds` of GPU time alone) and every running job (the alone-seconds each
    still needs) all end within `seconds_left` if the new one starts now?

    Two bounds, and each job gets the smaller: while k jobs share, each runs at least 1/slowdown(k)
    of its alone speed; and as long as no level of sharing is slower in all than one job alone
    (speedup >= 1), the GPU finishes all the work owed, one job's worth of speed at a time.
    """
    k = len(running_left) + 1
    slow = slowdown(sharing, k)
    floor = min([1.0] + [ratio for level, ratio in sharing.items() if level <= k])
    serial = (sum(running_left) + new_seconds) / floor
    return all(min(serial, need * slow) <= seconds_left for need in [new_seconds, *running_left])


def run_dir(runs_dir: Path, name: str) -> Path | None:
    """The run whose config.json names it `name` (each job's run is named after the job).

    Not by its id (<time>-<slug of name>-<hex>): the slug is cut to 40 characters, and a job's name
    can sit inside another's (`...-s1` in `...-s10`), so a glob on the id finds none or the wrong run.
    """
    for config in sorted(runs_dir.glob(f"*/{CONFIG_FILE}")):
        doc, _problem = read_json(config)
        if isinstance(doc, dict) and isinstance(doc.get("config"), dict) and doc["config"].get("name") == name:
            return config.parent
    return None


def epoch_records(runs_dir: Path, name: str) -> list[dict]:
    """The epoch records so far in the run named `name`; a line still being written is skipped,
    as the run store reads it."""
    found = run_dir(runs_dir, name)
    return read_jsonl(found / METRICS_FILE, "epoch") if found is not None and (found / METRICS_FILE).is_file() else []


def epochs_done(runs_dir: Path, name: str) -> int:
    return len(epoch_records(runs_dir, name))


def epoch_seconds(runs_dir: Path, name: str) -> list[float]:
    """The `seconds` each finished epoch of the run named `name` took."""
    return [float(r["seconds"]) for r in epoch_records(runs_dir, name) if isinstance(r.get("seconds"), (int, float))]


def seconds_to_finish(seconds: list[float], epochs_total: int, slow: float) -> float | None:
    """The least a run still needs, from the epochs it has done (`seconds` each): its faster recent
    epoch (the first holds the warm-up: graph capture, compilation) for every epoch left, as if it
    had the GPU to itself from now on (today's pace / `slow`, what sharing costs it now).  None
    before two epochs."""
    if len(seconds) < 2:
        return None
    return min(seconds[-2:]) / slow * (epochs_total - len(seconds))


def run_id(runs_dir: Path, name: str) -> str | None:
    found = run_dir(runs_dir, name)
    return found.name if found is not None else None


class Evaluations:
    """`rnnreg evaluate RUN --mc-samples N` (recorded in the run) for finished jobs, one process at
    a time beside the training jobs: the queue of runs never waits for an evaluation."""

    def __init__(self, runs_dir: Path, logs: Path, device: str, env: dict[str, str], report) -> None:
        self.runs_dir, self.logs, self.device, self.env, self.report = runs_dir, logs, device, env, report
        self.waiting: list[tuple[str, int]] = []  # (job name, samples)
        self.current: tuple[str, int, subprocess.Popen, Path] | None = None

    @property
    def busy(self) -> bool:
        return bool(self.waiting) or self.current is not None

    def add(self, name: str, samples: list[int]) -> None:
        self.waiting += [(name, n) for n in samples]

    def step(self, seconds_left: float) -> None:
        """Report a finished evaluation, start the next one while at least 10 s are left."""
        if self.current is not None:
            name, n, process, log = self.current
            if process.poll() is None:
                return
            self.current = None
            self.report(name, event="mc", samples=n, rc=process.returncode, out=log.read_text()[-400:])
        while self.waiting and self.current is None:
            name, n = self.waiting.pop(0)
            run = run_id(self.runs_dir, name)
            if run is None or seconds_left < 10:
                self.report(name, event="mc-skipped", samples=n, left=round(seconds_left))
                continue
            log = self.logs / f"{name}-mc{n}.log"
            with open(log, "w") as out:
                process = subprocess.Popen([sys.executable, "-m", "rnnreg", "evaluate", run, "--mc-samples", str(n),
                                            "--device", self.device, "--runs-dir", str(self.runs_dir)],
                                           stdout=out, stderr=subprocess.STDOUT, env=self.env)
            self.current = (name, n, process, log)

    def stop(self) -> subprocess.Popen | None:
        """At the deadline: end the evaluation under way (it records nothing then); returns its
        process, for the caller to wait for with the trainers' (stop_all), or None."""
        stopped = None
        if self.current is not None:
            name, n, stopped, _log = self.current
            stopped.terminate()
            self.report(name, event="mc-deadline", samples=n)
            self.current = None
        for name, n in self.waiting:
            self.report(name, event="mc-skipped", samples=n, left=0)
        self.waiting.clear()
        return stopped


def load_bench(paths: list[str], step: str = "graph") -> dict:
    """{(preset, placement): ms per batch} of `rnnreg bench --json` files, at the step the runs
    take: a job sent eager (its graph tests failed) must not be fitted by graphed figures, 5x less."""
    wanted = "eager" if step == "eager" else "cuda-graph"
    figures = {}
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError):
            continue
        for result in doc.get("results", []):
            if result.get("step") == wanted:
                figures[(doc["preset"], result["name"])] = result["ms_per_batch"]
    return figures


def stop_all(processes: list[subprocess.Popen], grace: float = 20.0) -> None:
    """SIGTERM each (a trainer's handler checkpoints and marks its run cancelled), then one shared
    `grace` for all of them, not one each: six trainers must not take two minutes of the command."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    until = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(timeout=max(0.0, until - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs-dir", required=True)
    parser.add_argument("--deadline", type=float, required=True, help="seconds from now")
    parser.add_argument("--concurrent", type=int, default=2)
    parser.add_argument("--bench", action="append", default=[])
    parser.add_argument("--sharing", action="append", default=[],
                        help="`rnnreg bench --share ... --json` output: what K jobs at once buy")
    parser.add_argument("--step", default="auto", choices=["auto", "graph", "eager"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--data", metavar="DIR", help="corpus for every job (default: the trainer's, PTB)")
    parser.add_argument("--epochs", type=int, metavar="N", help="epochs for every job (a dry run on a CPU)")
    parser.add_argument("--skip-placement", action="append", default=[], metavar="PLACEMENT",
                        help="leave this placement's jobs out (its GPU tests failed)")
    parser.add_argument("--mc", action="append", default=[], metavar="NAME=N[,N...]",
                        help="after job NAME finishes, `rnnreg evaluate --mc-samples N` for each N (recorded)")
    parser.add_argument("jobs", nargs="+")
    args = parser.parse_args()
    start = time.monotonic()
    deadline = start + args.deadline
    bench = load_bench(args.bench, args.step)
    sharing = load_sharing(args.sharing)
    concurrent = best_concurrency(sharing, args.concurrent) if args.sharing else args.concurrent
    try:
        pending = [parse_job(text) for text in args.jobs]
    except ValueError as error:
        parser.error(str(error))
    running: list[tuple[Job, subprocess.Popen, float, float]] = []  # job, process, began, estimate
    peers: dict[str, int] = {}  # job name -> the most jobs that shared the GPU while it ran
    runs_dir = Path(args.runs_dir)
    mc = {name: [int(n) for n in counts.split(",")] for name, counts in (item.split("=") for item in args.mc)}
    logs = Path(args.runs_dir).parent / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    # Measured / estimated seconds of the last finished job per preset: later estimates of that
    # preset are scaled by it (the estimates' overhead factor is a guess; a finished run is not).
    scale: dict[str, float] = {}

    def estimate(job) -> float:
        return estimate_seconds(job.preset, job.placement, bench, args.epochs, args.step) * scale.get(job.preset, 1.0)

    def report(name: str, **fields):
        print(json.dumps({"job": name, "t": round(time.monotonic() - start, 1), **fields}), flush=True)

    print(json.dumps({"concurrent": concurrent, "sharing": sharing}), flush=True)
    for job in [j for j in pending if j.placement in args.skip_placement]:
        report(job.name, event="skipped", reason=f"the GPU tests of {job.placement} failed")
        pending.remove(job)
    evaluations = Evaluations(runs_dir, logs, args.device, env, report)

    doomed: set[str] = set()  # jobs stopped early: they could not end before the deadline

    try:
        while pending or running or evaluations.busy:
            for job, process, _began, _estimated in running:
                # A job that cannot end in time even alone is stopped now, not at the deadline: its
                # share of the GPU goes to jobs that can (the estimates are guesses; its pace is not).
                sharing_now = len(running) + (evaluations.current is not None)  # a running MC evaluation shares it too
                need = seconds_to_finish(epoch_seconds(runs_dir, job.name), args.epochs or EPOCHS[job.preset],
                                         slowdown(sharing, sharing_now))
                if job.name not in doomed and need is not None and need > deadline - time.monotonic():
                    process.terminate()  # the trainer's SIGTERM handler marks the run cancelled
                    doomed.add(job.name)
                    report(job.name, event="doomed", needs=round(need), left=round(deadline - time.monotonic()))
            for entry in list(running):
                job, process, began, estimated = entry
                if process.poll() is not None:
                    running.remove(entry)
                    seconds = time.monotonic() - began
                    if process.returncode == 0 and peers[job.name] == 1:  # it ran alone: a clean measurement
                        scale[job.preset] = seconds / estimate_seconds(job.preset, job.placement, bench, args.epochs,
                                                                       args.step)
                    report(job.name, event="ended", rc=process.returncode, seconds=round(seconds, 1),
                           estimated=round(estimated), shared_with=peers[job.name] - 1)
                    if process.returncode == 0 and job.name in mc:
                        evaluations.add(job.name, mc[job.name])
            evaluations.step(deadline - time.monotonic())
            while pending and len(running) < concurrent:
                # Start the first job that ends before the deadline without pushing a running job past
                # it: the GPU still owes the running jobs their remaining share of work.
                left = [est * (1 - epochs_done(runs_dir, j.name) / (args.epochs or EPOCHS[j.preset]))
                        for j, _p, _b, est in running]
                owed = sum(left)
                fits = [job for job in pending
                        if admits(estimate(job), left, deadline - time.monotonic(), sharing)]
                if not fits:
                    if not running:  # nothing will free up: what is left cannot be done in time
                        for job in pending:
                            report(job.name, event="skipped", estimate=round(estimate(job)),
                                   left=round(deadline - time.monotonic()))
                        pending.clear()
                    break
                job = fits[0]
                pending.remove(job)
                name, preset, placement, dropout, seed, options = job
                estimated = estimate(job)
                command = [sys.executable, "-m", "rnnreg", "train", "--preset", preset, "--placement", placement,
                           "--device", args.device, "--step", args.step, "--seed", seed, "--name", name,
                           "--runs-dir", args.runs_dir]
                if dropout != "-":
                    command += ["--dropout", dropout]
                if args.data:
                    command += ["--data", args.data]
                if args.epochs:
                    command += ["--epochs", str(args.epochs)]
                command += list(options)
                with open(logs / f"{name}.log", "w") as log:
                    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
                running.append((job, process, time.monotonic(), estimated))
                for other, _p, _b, _e in running:
                    peers[other.name] = max(peers.get(other.name, 0), len(running))
                report(job.name, event="started", estimate=round(estimated), owed=round(owed))
            if time.monotonic() > deadline:
                evaluation = evaluations.stop()
                for job, _process, _began, _estimate in running:
                    report(job.name, event="deadline")
                # one grace period for the evaluation and every trainer together
                stop_all([p for p in (*(process for _j, process, _b, _e in running), evaluation) if p is not None])
                running.clear()
            time.sleep(1.0)
    finally:  # an exception here must not leave trainers running while the session packs
        evaluation = evaluations.stop()
        stop_all([p for p in (*(process for _j, process, _b, _e in running), evaluation) if p is not None])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
