"""The lecture's live runs, trained in turn against at once, through the real launcher.  (A measurement.)

    python benchmarks/live_pair.py [--what pair|memory] [--rounds 1]

`pair`: step 1's two demo runs (`rnnreg.lecture.live_demo_configs`); `memory`: step 3's eight
memory-task runs (`rnnreg.lecture_memory.live_memory_configs`).  Each way launches them as the
lecture page does (`rnnreg.launch.launch`, queued, in a scratch runs root) and waits until all
have finished:

    in turn   max_concurrent 1: one trainer at a time, with torch's own thread count
    at once   max_concurrent = the number of runs' CPUs share: each trainer gets cpus // N threads
              (rnnreg.training_run.share_cores), the memory preset keeps its 1

Prints, side by side, the wall seconds until every run had finished and until every run had
drawn its first epoch (what a lecture's audience waits for before both curves are on screen).
Rounds alternate the order of the two ways.  Needs the CPUs to itself to mean anything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rnnreg.launch import launch, usable_cpus  # noqa: E402
from rnnreg.lecture import live_demo_configs  # noqa: E402
from rnnreg.lecture_memory import live_memory_configs  # noqa: E402
from rnnreg.runs import effective_state, read_json, read_jsonl  # noqa: E402

ENDED = ("finished", "failed", "diverged", "cancelled", "interrupted")
TIMEOUT_S = 900  # per way: a lecture's live runs take a minute or two


def one_way(configs: list[tuple[str, dict]], max_concurrent: int) -> tuple[float, float]:
    """(seconds until all finished, seconds until each had written its first epoch)."""
    with tempfile.TemporaryDirectory(prefix="live-pair-") as scratch:
        root = Path(scratch)
        start = time.monotonic()
        ids = [launch(root, config, name=name, max_concurrent=max_concurrent) for name, config in configs]
        first_epoch: dict[str, float] = {}
        while True:
            states = {}
            for run_id in ids:
                status, _problem = read_json(root / run_id / "status.json")
                states[run_id] = effective_state(status or {})  # a trainer killed outright: interrupted
                if run_id not in first_epoch and any(r.get("kind") == "epoch"
                                                     for r in read_jsonl(root / run_id / "metrics.jsonl")):
                    first_epoch[run_id] = time.monotonic() - start
            if all(s in ENDED for s in states.values()):
                break
            if time.monotonic() - start > TIMEOUT_S:
                raise SystemExit(f"runs still not done after {TIMEOUT_S} s: {states} (see {root}/*/train.log)")
            time.sleep(0.25)
        wall = time.monotonic() - start
        bad = {r: s for r, s in states.items() if s != "finished"}
        if bad:
            raise SystemExit(f"runs did not finish: {bad} (see {root}/*/train.log)")
        return wall, max(first_epoch.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=("pair", "memory"), default="pair")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args(argv)
    configs = live_demo_configs() if args.what == "pair" else live_memory_configs()
    cpus = usable_cpus()
    ways = {"in turn": 1, "at once": min(len(configs), cpus)}
    results: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    for round_ in range(args.rounds):
        order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
        for way in order:
            results[way].append(one_way(configs, ways[way]))
            print(f"round {round_ + 1}, {way}: {results[way][-1][0]:.1f} s", file=sys.stderr, flush=True)
    print(f"lecture live {args.what}: {len(configs)} runs, {cpus} CPUs, {args.rounds} round(s), median")
    for way, limit in ways.items():
        wall = statistics.median(w for w, _ in results[way])
        first = statistics.median(f for _, f in results[way])
        print(f"  {way:8} (max_concurrent {limit}): all finished {wall:6.1f} s, every run's first epoch {first:6.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
