"""Sweeps: a grid of run configs defined once, launched as ordinary runs tagged with the sweep.

A spec is a JSON file (YAML too, when PyYAML is installed):

    {
      "name": "demo-rates",                       # the sweep id: [A-Za-z0-9._-]
      "preset": "demo",
      "base": {"epochs": 4, "device": "cpu"},     # options every run shares
      "axes": {                                   # every combination becomes a run
        "placement": ["none", "zaremba", "variational"],
        "dropout": [0.25, 0.5],
        "seed": [0, 1, 2]
      }
    }

Options (in `base` and as axes) are those of `rnnreg train`: placement, dropout, epochs,
max_train_tokens, seed, device, data, delay, log_every, any other training field
(batch_size, bptt, lr, ...), and `site:NAME` for the rate of one dropout site.
Combinations that give the same config (e.g. placement none at every dropout rate) become
one run.  Each run remembers its place in the grid through a request id, so launching the
same sweep again starts only what is missing and resumes runs that were interrupted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from rnnreg.config import ConfigError, RunConfig, TrainConfig, build_run_config, to_dict
from rnnreg.placements import PLACEMENTS

SITE_PREFIX = "site:"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SweepError(ValueError):
    """A bad sweep spec: one line naming the key and what is allowed."""


@dataclass(frozen=True)
class SweepRun:
    request_id: str  # "sweep:<name>:<hash of the config>": the run's place in the grid
    name: str  # a readable run name: the sweep and the values of the axes
    config: RunConfig


@dataclass(frozen=True)
class Sweep:
    name: str
    preset: str
    runs: tuple[SweepRun, ...]
    points: int = 0  # grid points: more than runs where several give one configuration (none at any rate)


def load_spec(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SweepError(f"sweep spec {path}: cannot read it ({err})") from None
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SweepError(f"sweep spec {path}: YAML needs PyYAML (pip install pyyaml), or write it as JSON") from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise SweepError(f"sweep spec {path}: not valid YAML ({str(err).splitlines()[0]})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise SweepError(f"sweep spec {path}: not valid JSON (line {err.lineno}: {err.msg})") from None


# what a spec's base and axes take: `rnnreg train`'s options, as build_run_config names them
_NAMED = ("placement", "dropout", "epochs", "max_train_tokens", "seed", "device", "data", "delay")
OPTIONS = (*_NAMED, *sorted({f.name for f in dataclasses.fields(TrainConfig)} - set(_NAMED)))


# keys build_run_config knows by another name, which a spec writes its own way
_SPELLED = {"data_dir": " (written 'data')", "site_rates": " (written one 'site:SITE' key a site)",
            "name": " (a run's name is made from the axes)"}


def _options(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Spec keys -> build_run_config keyword arguments (site:NAME -> site_rates)."""
    options: dict[str, Any] = {}
    sites: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise SweepError(f"{where}: keys must be option names, got {key!r}")
        if not key.startswith(SITE_PREFIX) and key not in OPTIONS:
            hint = _SPELLED.get(key) or (f" (written {key.replace('-', '_')!r})" if key.replace("-", "_") in OPTIONS
                                         else "")
            raise SweepError(f"{where}: unknown option {key!r}{hint}; allowed: {', '.join(OPTIONS)}, "
                             f"{SITE_PREFIX}SITE")
        if key.startswith(SITE_PREFIX):
            sites[key[len(SITE_PREFIX):]] = value
        elif key == "data":
            options["data_dir"] = value
        else:
            options[key] = value
    if sites:
        options["site_rates"] = sites
    return options


def expand(spec: Any) -> Sweep:
    """Validate a spec and expand its axes into run configs (deduplicated, in grid order)."""
    if not isinstance(spec, Mapping):
        raise SweepError("sweep spec: expected an object with name, preset, base and axes")
    unknown = set(spec) - {"name", "preset", "base", "axes"}
    if unknown:
        raise SweepError(f"sweep spec: unknown key(s) {sorted(unknown)}; allowed: name, preset, base, axes")
    name = spec.get("name")
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise SweepError(f"sweep spec: name must be 1-64 characters of [A-Za-z0-9._-], got {name!r}")
    preset = spec.get("preset")
    if not isinstance(preset, str):
        raise SweepError("sweep spec: preset is required (demo, small, medium, large, memory)")
    base = spec.get("base") or {}
    axes = spec.get("axes")
    if not isinstance(base, Mapping):
        raise SweepError("sweep spec: base must be an object of options")
    if not isinstance(axes, Mapping) or not axes:
        raise SweepError("sweep spec: axes must be a non-empty object of option -> list of values")
    for key, values in axes.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"sweep spec: axis {key!r} must be a non-empty list of values")
        if key in base:
            raise SweepError(f"sweep spec: {key!r} is both in base and an axis; keep one")
        if key == "name":
            raise SweepError("sweep spec: 'name' cannot be an axis (run names are made from the axes)")

    keys = list(axes)
    found: dict[str, tuple[RunConfig, list[dict]]] = {}  # digest -> its config and every point giving it
    for combo in itertools.product(*(axes[k] for k in keys)):
        point = dict(zip(keys, combo))
        where = "sweep spec: " + ", ".join(f"{k}={v}" for k, v in point.items())
        try:
            config = build_run_config(preset, **_options({**base, **point}, where))
        except ConfigError as err:
            raise SweepError(f"{where}: {err}") from None
        except TypeError as err:  # an option build_run_config does not take
            raise SweepError(f"{where}: {err}") from None
        doc = to_dict(config)
        doc.pop("name", None)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:12]
        found.setdefault(digest, (config, []))[1].append(point)  # e.g. placement none at every dropout rate
    runs = []
    for digest, (config, points) in found.items():
        # an axis whose values all give this config changes nothing here: it is no part of its name
        # ('rates-none-seed0', not 'rates-none-dropout0.3-seed0' for a run without dropout)
        # and a dropout axis names no run without primary sites, also where the axis has one value
        primary = PLACEMENTS[config.dropout.placement].primary_sites
        named = [k for k in keys if all(point[k] == points[0][k] for point in points)
                 and not (k == "dropout" and not primary)]
        label = "-".join([name, *(_label_part(k, points[0][k]) for k in named)])
        runs.append(SweepRun(f"sweep:{name}:{digest}", label[:200], config))
    return Sweep(name, preset, tuple(runs), sum(len(points) for _config, points in found.values()))


def _label_part(key: str, value: object) -> str:
    """A words axis names itself (`zaremba`), a numbers axis needs its key (`dropout0.5`, `delay20`)."""
    return str(value) if isinstance(value, str) else f"{key.replace(SITE_PREFIX, '')}{value}"


@dataclass(frozen=True)
class SweepLaunch:
    started: tuple[str, ...]  # run ids launched now
    resumed: tuple[str, ...]  # interrupted runs continued
    kept: tuple[str, ...]  # runs already queued, running or finished
    ended: tuple[str, ...]  # failed, diverged or cancelled runs left as they are


def run_local(sweep: Sweep, root: str | Path, *, max_concurrent: int = 1) -> SweepLaunch:
    """Start the sweep's missing runs through the launcher queue; resume interrupted ones."""
    from rnnreg.launch import find_request, launch, resume
    from rnnreg.runs import find_run_dir, summarize_run

    started, resumed, kept, ended = [], [], [], []
    for run in sweep.runs:
        existing = find_request(root, run.request_id)
        if existing is None:
            started.append(launch(root, to_dict(run.config), name=run.name, request_id=run.request_id,
                                  max_concurrent=max_concurrent, sweep=sweep.name))
            continue
        state = summarize_run(find_run_dir(root, existing)).state
        if state == "interrupted":
            resume(root, existing, max_concurrent=max_concurrent)
            resumed.append(existing)
        elif state in ("failed", "diverged", "cancelled"):
            ended.append(existing)
        else:
            kept.append(existing)
    return SweepLaunch(tuple(started), tuple(resumed), tuple(kept), tuple(ended))


def _ray_train(argv: list[str], log_path: str, repo_root: str) -> int:
    """One trial on a Ray worker: the ordinary trainer as a subprocess, output to the run's train.log."""
    import errno
    import os
    import stat
    import subprocess
    import sys

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH")) if p)
    # stdlib only (a Ray worker may not import rnnreg): rnnreg.runs.open_in_run's checks, no symlink
    # followed, and nothing but a regular file (a FIFO would block this task for ever)
    no_follow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    refusal = f"{log_path}: not a regular file; rnnreg writes a run's log only to one"
    try:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | no_follow, 0o644)
    except OSError as err:
        raise OSError(refusal) if err.errno == errno.ENXIO else err from None  # ENXIO: a FIFO nothing reads
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(refusal)
    with open(fd, "ab") as log:
        return subprocess.run([sys.executable, "-m", "rnnreg", "train", *argv], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT, env=env, cwd=repo_root).returncode


def run_ray(sweep: Sweep, root: str | Path, *, address: str | None = None, max_concurrent: int | None = None,
            gpus_per_run: float = 0.0, cpus_per_run: float = 1.0) -> SweepLaunch:
    """Train the sweep's missing runs as Ray tasks and wait for them; resume interrupted ones.

    Each task runs the normal trainer on a run directory that the driver created under `root`,
    so `root` must be a filesystem every node sees at the same path (and every node needs this
    package and the corpus).  `gpus_per_run` may be fractional: several latency-bound runs
    then share one GPU.  Ray is an optional dependency: `pip install -e .[ray]`.
    """
    try:
        import ray
    except ImportError:
        raise SweepError("the ray backend needs Ray: pip install 'ray==2.60.0' (or pip install -e .[ray])") from None
    from rnnreg.config import PACKAGE_ROOT
    from rnnreg.launch import find_request
    from rnnreg.runs import LOG_FILE, RunWriter, find_run_dir, process_start_time, resume_refusal, summarize_run

    root = Path(root).absolute()
    root.mkdir(parents=True, exist_ok=True)
    started, resumed, kept, ended = [], [], [], []
    jobs: list[tuple[list[str], Path]] = []  # (trainer argv, train.log) per task
    for run in sweep.runs:
        existing = find_request(root, run.request_id)
        if existing is None:
            writer = RunWriter.create(root, to_dict(run.config), name=run.name, request_id=run.request_id,
                                      sweep=sweep.name)
            # queued for this driver's tasks: if the driver dies first the run reads interrupted,
            # and launching the sweep again resumes it instead of counting it 'already there'
            writer.update_status(queued_by=os.getpid(), queued_by_start=process_start_time(os.getpid()))
            jobs.append((["--run-dir", str(writer.dir)], writer.log_path))
            started.append(writer.id)
            continue
        state = summarize_run(find_run_dir(root, existing)).state
        if state == "interrupted" and resume_refusal(find_run_dir(root, existing)) is not None:
            ended.append(existing)  # its files would make the trainer refuse it (a symlink, a FIFO, ...)
        elif state == "interrupted":
            run_dir = find_run_dir(root, existing)
            jobs.append(([f"--resume={existing}", "--runs-dir", str(root)], run_dir / LOG_FILE))
            resumed.append(existing)
        elif state in ("failed", "diverged", "cancelled"):
            ended.append(existing)
        else:
            kept.append(existing)

    owns_ray = not ray.is_initialized()
    if owns_ray:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(_ray_train).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run)
        limit = max_concurrent or len(jobs) or 1
        pending: list = []
        for argv, log_path in jobs:
            if len(pending) >= limit:  # keep at most `limit` runs in flight
                _done, pending = ray.wait(pending, num_returns=1)
            pending.append(task.remote(argv, str(log_path), str(PACKAGE_ROOT)))
        ray.get(pending)
    finally:
        if owns_ray:
            ray.shutdown()
    return SweepLaunch(tuple(started), tuple(resumed), tuple(kept), tuple(ended))
