"""Real tiny trainers for the robustness tests, started fast and stoppable at a chosen moment.

`python tests/crash_trainer.py serve` imports torch and rnnreg once, then for every JSON line
on stdin forks a child that runs `rnnreg.cli.main(argv)` and prints the child's pid.  A fork
costs milliseconds where a fresh `python -m rnnreg` costs seconds of imports, so dozens of
trainers can be started, killed and resumed within a test's time budget.  Children run with
one torch thread each, so every child computes bit for bit the same numbers.

A child can be held at a chosen moment (a "hook", `KIND:N`): when it gets there for the N-th
time it touches a marker file and sleeps, so that a SIGKILL sent after the marker appears
lands exactly there (deleting the marker lets it carry on):

    checkpoint:N   in the N-th checkpoint write, the file it writes half written
    status:N       in the N-th status.json write, the file it writes half written
    metrics:N      in the N-th metrics.jsonl append, half the line written (a torn line)
    probes:N       in the N-th probes.jsonl append, half the line written

This file is also imported by the tests (ForkServer, write_corpus, tiny_config); importing it
does not import torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rnnreg.config import ModelConfig, RunConfig, build_run_config  # noqa: E402

HOLD_SECONDS = 120.0
WORDS = [f"w{i}" for i in range(12)]


# --------------------------------------------------------------------------- tiny runs


def write_corpus(directory: Path, *, lines: int = 160, seed: int = 0) -> Path:
    """train/valid/test.txt over a 12-word vocabulary: an epoch of a tiny model takes ~0.1 s."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", lines), ("valid", lines // 2), ("test", lines // 2)):  # valid: a full window
        # of the small preset's shape (20 x 20 tokens and one), else training refuses the corpus
        rows = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(count)]
        (directory / f"{split}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return directory


def tiny_config(data_dir: Path, *, epochs: int = 4, dropout: float = 0.3, **train) -> RunConfig:
    """A 1-layer, 16-unit model with Zaremba dropout (its masks draw from the RNG), on the CPU."""
    config = build_run_config("small", placement="zaremba", dropout=dropout, epochs=epochs, data_dir=data_dir,
                              device="cpu", **{"batch_size": 4, "bptt": 6, "log_every": 3, "lr_decay": 1.5,
                                               "decay_after": 2, **train})
    return dataclasses.replace(config, model=ModelConfig(layers=1, hidden=16, init_scale=0.1))


# --------------------------------------------------------------------------- the server (test side)


class ForkServer:
    """The test's handle on a `serve` process."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "serve"], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.count = 0

    def start(self, argv: list[str], *, hook: str | None = None) -> tuple[int, Path]:
        """Fork a trainer running `rnnreg <argv>`; returns (pid, marker path of the hook)."""
        self.count += 1
        marker = self.log_dir / f"held-{self.count}"
        spec = {"argv": argv, "hook": hook, "marker": str(marker), "log": str(self.log_dir / f"child-{self.count}.log")}
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(spec) + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline()), marker

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(predicate, timeout: float = 60.0, what: str = "condition", poll: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def wait_exit(pid: int, timeout: float = 60.0) -> None:
    wait_until(lambda: not alive(pid), timeout, f"process {pid} to exit")


# --------------------------------------------------------------------------- the server (its side)


def _hold(marker: str) -> None:
    """Stay here until killed, or until the test deletes the marker (then carry on)."""
    path = Path(marker)
    path.touch()
    deadline = time.monotonic() + HOLD_SECONDS
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def _install_hook(hook: str | None, marker: str) -> None:
    if not hook:
        return
    import rnnreg.checkpoint
    import rnnreg.runs

    kind, _, nth = hook.partition(":")
    target = int(nth)
    seen = 0

    def due() -> bool:
        nonlocal seen
        seen += 1
        return seen == target

    if kind in ("checkpoint", "status"):
        # Slow down the product's own atomic write (rnnreg.runs.atomic_write_bytes), not a copy
        # of it: the file object it writes through holds halfway through its write.
        wanted = rnnreg.runs.CHECKPOINT_FILE if kind == "checkpoint" else rnnreg.runs.STATUS_FILE
        real_fdopen = os.fdopen

        class HalfThenHold:
            def __init__(self, handle):
                self._handle = handle

            def write(self, data):
                half = len(data) // 2
                self._handle.write(data[:half])
                self._handle.flush()
                _hold(marker)
                return half + self._handle.write(data[half:])

            def __getattr__(self, name):
                return getattr(self._handle, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return self._handle.__exit__(*exc)

        def fdopen(fd, mode="r", *args, **kwargs):
            handle = real_fdopen(fd, mode, *args, **kwargs)
            with contextlib.suppress(OSError):
                if "w" in mode and wanted in os.readlink(f"/proc/self/fd/{fd}") and due():
                    return HalfThenHold(handle)
            return handle

        class OsWithSlowWrites:  # rnnreg.runs.files's view of `os` (its atomic writes)
            def __getattr__(self, name):
                return fdopen if name == "fdopen" else getattr(os, name)

        rnnreg.runs.files.os = OsWithSlowWrites()
    elif kind in ("metrics", "probes"):
        filename = rnnreg.runs.METRICS_FILE if kind == "metrics" else rnnreg.runs.PROBES_FILE
        real_append, real_write = rnnreg.runs.RunWriter._append, os.write

        def append(self, name, record):
            if name == filename and due():
                def torn_write(fd, data):
                    os.write = real_write  # hold once
                    written = real_write(fd, bytes(data)[: len(data) // 2])
                    _hold(marker)
                    return written + real_write(fd, bytes(data)[written:])
                os.write = torn_write
            try:
                real_append(self, name, record)
            finally:
                os.write = real_write
        rnnreg.runs.RunWriter._append = append
    else:
        raise ValueError(f"unknown hook {hook!r}")


def _child(spec: dict) -> None:
    code = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        out = os.open(spec["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        _install_hook(spec.get("hook"), spec["marker"])
        import rnnreg.cli

        code = rnnreg.cli.main(spec["argv"])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    import torch
    import torch._dynamo  # noqa: F401  (torch.optim imports it lazily: 2-3 s per process otherwise)

    import rnnreg.cli  # noqa: F401  (imported once here, inherited by every child)
    import rnnreg.training_run  # noqa: F401

    torch.set_num_threads(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children: no zombies
    for line in sys.stdin:
        spec = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(spec)
        print(pid, flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["serve"]:
    serve()
