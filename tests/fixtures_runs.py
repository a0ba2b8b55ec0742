"""Synthetic run directories written straight to the run-directory contract (DESIGN.md).

Used where the real trainer cannot produce the state a test needs (broken, torn, half-written
runs, a run frozen mid-training, fifty runs for the benchmark), and for the pure figure tests.
The curves are shaped like the real thing: without dropout the validation perplexity turns
upward after a few epochs while training keeps falling; with Zaremba dropout both fall.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from rnnreg.config import build_run_config, to_dict
from rnnreg.runs import process_start_time

SIGMOID_GATES = ("i", "f", "o")
TANH_GATES = ("g", "h")
LAYER_NAMES = ("embedding", "lstm.0", "lstm.1", "decoder")


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1))


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def _curves(epoch: int, overfit: bool, rate: float = 0.5) -> tuple[float, float]:
    """(train_ppl, valid_ppl) at the end of `epoch` (1-based); below p = 0.5 a run fits (and overfits) faster."""
    free_train = 60 + 380 * math.exp(-0.55 * epoch)
    free_valid = 170 + 260 * math.exp(-0.9 * epoch) + 9 * max(epoch - 3, 0) ** 1.3
    if overfit:
        return free_train, free_valid
    weight = min(rate / 0.5, 1.0)  # how regularised: 1 = the full dropout shape
    train = 120 + 360 * math.exp(-0.35 * epoch)
    valid = 140 + 300 * math.exp(-0.4 * epoch)
    return weight * train + (1 - weight) * free_train, weight * valid + (1 - weight) * free_valid


def _histogram(rng: random.Random, lo: float, hi: float, sharpness: float, bins: int = 20) -> list[int]:
    """Counts that pile up at both ends as `sharpness` grows (saturation)."""
    counts = []
    for b in range(bins):
        u = (b + 0.5) / bins  # 0..1 across the range
        edge = abs(2 * u - 1) ** (1 + 6 * sharpness)
        counts.append(int(200 * (0.3 + sharpness * 4 * edge) * (0.9 + 0.2 * rng.random())))
    return counts


def write_run(
    root: Path,
    run_id: str,
    *,
    preset: str = "demo",
    placement: str = "none",
    dropout: float | None = None,
    epochs_total: int = 8,
    epochs_done: int | None = None,
    state: str = "finished",
    name: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    steps_per_epoch: int = 30,
    probes: bool = True,
) -> Path:
    """A complete (or, with `epochs_done` < `epochs_total`, partial) run directory."""
    rng = random.Random(f"{run_id}-{seed}")
    done = epochs_total if epochs_done is None else epochs_done
    overfit = placement == "none"
    rate = max(to_dict(build_run_config(preset, placement=placement, dropout=dropout))["dropout"]["rates"].values(),
               default=0.0)
    config = to_dict(build_run_config(preset, placement=placement, dropout=dropout, epochs=epochs_total,
                                      seed=seed, device=device, name=name))
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = 1_780_000_000.0 + seed * 1000
    if state in ("running", "queued"):  # started a few epochs ago
        t0 = time.time() - done * 42.0
    _write_json(run_dir / "config.json", {
        "format": 1, "id": run_id, "created_at": _iso(t0), "request_id": f"req-{run_id}", "sweep": None,
        "config": config,
        "environment": {"torch": "2.13.0", "python": "3.11", "device": device,
                        "device_name": "synthetic CPU" if device == "cpu" else "NVIDIA H100",
                        "git_commit": "0000000", "lstm_path": "explicit"},
    })
    clip = config["train"]["clip"]
    metrics, gates, gtt = [], [], []
    words_per_epoch, seconds_per_epoch, step = 60_000, 40.0 + 5 * rng.random(), 0
    for epoch in range(1, done + 1):
        train_end, _ = _curves(epoch, overfit, rate)
        train_start, _ = _curves(epoch - 1, overfit, rate) if epoch > 1 else (900.0, 0)
        clipped = 0
        for s in range(steps_per_epoch):
            step += 1
            frac = (s + 1) / steps_per_epoch
            ppl = train_start * (train_end / train_start) ** frac
            grad = math.exp(rng.gauss(math.log(3.0 if epoch > 1 else 6.0), 0.5))
            clipped += grad > clip
            t = (epoch - 1 + frac) * seconds_per_epoch  # seconds since training started
            metrics.append({
                "kind": "step", "step": step, "epoch": epoch, "loss": math.log(ppl) + rng.gauss(0, 0.08),
                "grad_norm": grad, "clipped": grad > clip, "lr": 1.0, "words_per_s": 1500.0,
                "words": int((epoch - 1 + frac) * words_per_epoch), "time": t,
                "layer_grad_norms": {n: grad * w for n, w in zip(LAYER_NAMES, (0.2, 0.6, 0.5, 0.4))},
            })
        train, valid = _curves(epoch, overfit, rate)
        metrics.append({
            "kind": "epoch", "epoch": epoch, "train_ppl": train, "valid_ppl": valid, "lr": 1.0,
            "seconds": seconds_per_epoch, "clipped_fraction": clipped / steps_per_epoch,
            "words": epoch * words_per_epoch, "time": epoch * seconds_per_epoch,
        })
    if state == "finished" and done == epochs_total:
        metrics.append({"kind": "test", "test_ppl": _curves(epochs_total, overfit, rate)[1] * 0.96})
    if probes:
        for epoch in range(0, done + 1):
            sharp = min(1.0, epoch / 8) * (1.0 if overfit else 0.45)
            for layer in range(2):
                for gate in SIGMOID_GATES + TANH_GATES + ("c",):
                    lo, hi = (0.0, 1.0) if gate in SIGMOID_GATES else ((-3.0, 3.0) if gate == "c" else (-1.0, 1.0))
                    counts = _histogram(rng, lo, hi, sharp)
                    edges = [lo + (hi - lo) * b / len(counts) for b in range(len(counts) + 1)]
                    sat = 0.05 + 0.5 * sharp + 0.02 * layer + 0.1 * rate  # runs of other rates apart on a chart
                    gates.append({"kind": "gates", "epoch": epoch, "layer": layer, "gate": gate,
                                  "bin_edges": edges, "counts": counts, "mean": (lo + hi) / 2,
                                  "saturation": sat, "saturation_low": sat / 2, "saturation_high": sat / 2})
            if epoch > 0:
                ks = [1, 2, 4, 8, 16, 32]
                gtt.append({"kind": "grad_through_time", "epoch": epoch, "layer": 0, "wrt": "c",
                            "k": ks, "norm": [math.exp(-k / (6 + 2 * epoch + 10 * rate)) for k in ks]})
    with (run_dir / "metrics.jsonl").open("w") as f:
        f.writelines(json.dumps(m) + "\n" for m in metrics)
    with (run_dir / "probes.jsonl").open("w") as f:
        f.writelines(json.dumps(p) + "\n" for p in gates + gtt)
    ended = t0 + done * seconds_per_epoch
    active = state in ("running", "queued")
    # an active run must look alive: the pid is this (test) process, on this host
    _write_json(run_dir / "status.json", {
        "state": state, "pid": os.getpid() if active else None,
        "pid_start": process_start_time(os.getpid()) if active else None, "host": socket.gethostname(),
        "created_at": _iso(t0), "started_at": _iso(t0), "updated_at": _iso(ended),
        "ended_at": None if active else _iso(ended),
        "epoch": done, "epochs_total": epochs_total, "message": None,
    })
    return run_dir


def write_corrupt_run(root: Path, run_id: str) -> Path:
    """config.json is not JSON, and metrics.jsonl ends with a torn line."""
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text('{"format": 1, "id": "' + run_id + '", "config": {')
    (run_dir / "metrics.jsonl").write_text(
        json.dumps({"kind": "epoch", "epoch": 1, "train_ppl": 500.0, "valid_ppl": 480.0}) + '\n{"kind": "ep'
    )
    return run_dir


def write_half_written_run(root: Path, run_id: str) -> Path:
    """A run whose directory exists but whose trainer died before writing anything but status."""
    run_dir = Path(root) / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / "status.json", {"state": "running", "pid": 999_999, "epoch": 0})
    return run_dir


STANDARD_IDS = {
    "overfit": "20261201-100000-nodrop",
    "zaremba": "20261201-110000-zaremba",
    "running": "20261201-120000-running",
    "corrupt": "20261201-130000-corrupt",
    "half": "20261201-140000-half",
}


def make_store(root: Path) -> dict[str, str]:
    """The standard synthetic store: an overfitting run, a Zaremba run, a running run, two broken ones."""
    root = Path(root)
    write_run(root, STANDARD_IDS["overfit"], placement="none", name="no dropout", seed=1)
    write_run(root, STANDARD_IDS["zaremba"], placement="zaremba", dropout=0.5, name="zaremba 0.5", seed=2)
    write_run(root, STANDARD_IDS["running"], placement="zaremba", dropout=0.3, name="in progress", seed=3,
              epochs_done=3, state="running")
    write_corrupt_run(root, STANDARD_IDS["corrupt"])
    write_half_written_run(root, STANDARD_IDS["half"])
    return dict(STANDARD_IDS)


def make_many(root: Path, n: int = 50) -> list[str]:
    """`n` finished runs with varied placements and rates (for the benchmark)."""
    placements = ("none", "zaremba", "variational", "recurrent", "both")
    ids = []
    for i in range(n):
        placement = placements[i % len(placements)]
        rate = None if placement == "none" else round(0.1 + 0.1 * (i % 6), 2)
        run_id = f"20261202-{i:06d}-{placement}"
        write_run(root, run_id, placement=placement, dropout=rate, name=f"{placement} {rate or ''} #{i}".strip(),
                  seed=i, steps_per_epoch=40)
        ids.append(run_id)
    return ids


def train_tiny_runs(root: Path, timeout: float = 240.0) -> dict[str, str]:
    """Two real runs made by the trainer (no dropout vs Zaremba 0.5, 2 epochs on 4k tokens, CPU).

    Both train at once as separate processes, started the way the dashboard starts them
    (`rnnreg.launch`); takes some seconds.  Returns {"overfit": id, "zaremba": id}.
    """
    from rnnreg import launch  # the trainer side is only needed here

    ids = {}
    for key, placement, rate, name, seed in (("overfit", "none", None, "no dropout", 1),
                                             ("zaremba", "zaremba", 0.5, "zaremba 0.5", 2)):
        config = to_dict(build_run_config("demo", placement=placement, dropout=rate, epochs=2, max_train_tokens=4000,
                                          max_eval_tokens=2000, device="cpu", seed=seed, log_every=2, name=name))
        ids[key] = launch.launch(root, config, name=name, max_concurrent=2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {k: json.loads((Path(root) / i / "status.json").read_text()).get("state") for k, i in ids.items()}
        if all(s not in ("queued", "running") for s in states.values()):
            break
        time.sleep(0.2)
    bad = {k: s for k, s in states.items() if s != "finished"}
    if bad:
        logs = {k: (Path(root) / ids[k] / "train.log").read_text()[-1500:] for k in bad}
        raise RuntimeError(f"tiny training runs did not finish: {bad}\n{logs}")
    return ids
