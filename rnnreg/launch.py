"""Start, queue, cancel and watch training processes (stdlib only, no daemon).

The dashboard never trains: `launch` creates the run directory (status `queued`) and spawns
`python -m rnnreg train --run-dir <dir>` as its own session, its output going to the run's
train.log.  The trainer then waits in `acquire_slot` until one of `max_concurrent` slots is
free, sets `running`, and holds the slot until it exits:

    <root>/.slots/slot-0.lock   flock'ed by the run now using slot 0
    <root>/.slots/slot-1.lock   ...

A flock belongs to the process, and the kernel drops it when the process dies (even by
SIGKILL), so the queue survives app restarts and never needs cleaning up.  Waiting runs take
the slots in the order they were queued (`rnnreg.line`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol

from rnnreg import line
from rnnreg.runs import (
    LOG_FILE,
    ACTIVE_STATES,
    ERROR_PREFIX,
    CONFIG_FILE,
    STATUS_FILE,
    RunStoreError,
    RunSummary,
    RunWriter,
    find_run_dir,
    is_read_only,
    last_words,
    list_runs,
    open_in_run,
    pid_alive,
    process_start_time,
    read_json,
    resume_refusal,
    utc_now,
    validate_run_id,
)

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent  # the trainer runs here, importing this rnnreg
SLOTS_DIR = ".slots"
LAUNCH_LOCK = ".launch.lock"  # serialises "find the request id, else create the run"

# Popen objects of the trainers this process started, kept so that they can be reaped
# (an unreaped child stays a zombie; `runs.pid_alive` already counts zombies as dead).
_children: dict[int, subprocess.Popen] = {}


class CommandFactory(Protocol):
    def __call__(self, run_dir: Path, *, max_concurrent: int, python: str) -> list[str]: ...


def trainer_command(run_dir: Path, *, max_concurrent: int = 1, python: str = sys.executable) -> list[str]:
    """The argv that trains the run in `run_dir` (no shell is ever involved)."""
    return [python, "-m", "rnnreg", "train", "--run-dir", str(run_dir), "--max-concurrent", str(max_concurrent)]


@contextlib.contextmanager
def _root_lock(root: Path) -> Iterator[None]:
    fd = open_in_run(root / LAUNCH_LOCK, os.O_RDWR)  # never through a symlink planted in the root
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def find_request(root: str | os.PathLike[str], request_id: str) -> str | None:
    """The id of the run created for `request_id` (a launch click), if there is one."""
    root = Path(root)
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return None
    for entry in entries:
        if entry.name.startswith(".") or entry.is_symlink() or not entry.is_dir():
            continue
        doc, _problem = read_json(entry / CONFIG_FILE)
        if doc is not None and doc.get("request_id") == request_id:
            return entry.name
    return None


def launch(
    root: str | os.PathLike[str],
    config: Mapping[str, Any],
    *,
    name: str | None = None,
    request_id: str | None = None,
    max_concurrent: int = 1,
    python: str = sys.executable,
    sweep: str | None = None,
    command: CommandFactory = trainer_command,
    live: bool = False,
) -> str:
    """Create a run (status `queued`) and start its trainer in the background; returns the run id.

    A second call with the same `request_id` (a double click, a Streamlit rerun) returns the
    first run's id and starts nothing.  `command` builds the argv (tests pass a fake trainer).
    `live`: a run someone watches train (the lecture's) waits ahead of the background runs.
    """
    if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
        raise RunStoreError(f"max concurrent runs: must be a whole number >= 1, got {max_concurrent!r}")
    root = Path(root).absolute()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with _root_lock(root):
            if request_id is not None:
                existing = find_request(root, request_id)
                if existing is not None:
                    logger.info("request %s already launched as run %s", request_id, existing)
                    return existing
            writer = RunWriter.create(root, config, name=name, request_id=request_id, sweep=sweep)
            try:  # its place in the queue: now, not when its trainer starts (torch takes seconds to import)
                line.join(root, writer.dir, max_concurrent, live=live)
            except RunStoreError as err:  # the trainer's own wait says so where it matters
                logger.warning("run %s is not in the queue's line: %s", writer.id, err)
    except OSError as err:  # a read-only or full runs directory: a message for the user, no run
        raise RunStoreError(f"cannot create a run in {root}: {err.strerror or err}") from None

    argv = command(writer.dir, max_concurrent=max_concurrent, python=python)
    try:
        proc = _spawn(argv, writer.log_path)
    except (OSError, RunStoreError) as err:
        writer.set_status("failed", message=f"could not start the trainer: {err}")
        raise RunStoreError(f"could not start the trainer for run {writer.id}: {err}") from None
    writer.update_status(pid=proc.pid)  # keeps the state: the trainer may already be running
    logger.info("launched run %s (pid %d): %s", writer.id, proc.pid, argv)
    return writer.id


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen:
    """Start `argv` in the background as its own session, its output appended to `log_path`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    with open(open_in_run(log_path), "ab") as log:  # a symlink planted as train.log is refused
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
            close_fds=True,
            start_new_session=True,  # its own process group: cancel signals it, not us
        )
    _children[proc.pid] = proc
    return proc


def resume(root: str | os.PathLike[str], run_id: str, *, max_concurrent: int = 1,
           python: str = sys.executable, wait: float = 0.0) -> int:
    """Continue an interrupted, cancelled or failed run in the background (`rnnreg train --resume`);
    returns its pid.

    A run whose state forbids it is refused here, with the reason (`runs.resume_refusal`).  The
    trainer then checks the config, corpus and checkpoint as it loads them: with `wait` seconds it
    is watched until it claims the run (queued or running under its pid), and its error raised if
    it exits first; without, such an error is only in the run's train.log.
    """
    root = Path(root).absolute()
    run_dir = find_run_dir(root, validate_run_id(run_id))
    refusal = resume_refusal(run_dir)
    if refusal:
        raise RunStoreError(f"cannot resume {run_id}: {refusal}")
    # the runs root, not the run's folder: a run in a group (<root>/<group>/<id>) waits in the same queue
    argv = [python, "-m", "rnnreg", "train", f"--resume={run_id}", "--runs-dir", str(root),
            "--max-concurrent", str(max_concurrent)]
    log_path = run_dir / LOG_FILE
    log_start = log_path.stat().st_size if log_path.is_file() else 0
    try:
        proc = _spawn(argv, log_path)
    except OSError as err:
        raise RunStoreError(f"could not resume run {run_id}: {err}") from None
    logger.info("resuming run %s (pid %d)", run_id, proc.pid)
    if wait > 0:
        _wait_for_claim(run_dir, proc, log_path, log_start, wait)
    return proc.pid


def _wait_for_claim(run_dir: Path, proc: subprocess.Popen, log_path: Path, log_start: int, timeout: float) -> None:
    """Return once `proc` has claimed its run, or after `timeout` s (still loading); raise
    RunStoreError with the trainer's own message if it exited with an error first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, _ = read_json(run_dir / STATUS_FILE)
        if status is not None and status.get("pid") == proc.pid and status.get("state") in ACTIVE_STATES:
            return
        code = proc.poll()
        if code is not None:
            if code == 0:
                return  # it trained to the end already
            raise RunStoreError(_trainer_error(log_path, log_start, code))
        time.sleep(0.1)


def _trainer_error(log_path: Path, start: int, code: int) -> str:
    """What a trainer that exited with `code` wrote to `log_path` after byte `start`: its
    `rnnreg: error: ...` line or a crash's exception (`runs.last_words`), else its last line."""
    try:
        with open(log_path, "rb") as log:
            log.seek(start)
            lines = log.read(1 << 20).decode("utf-8", "replace").splitlines()
    except OSError:
        lines = []
    said = [line.strip() for line in lines if line.strip()]
    if said and said[-1].startswith(ERROR_PREFIX):  # it refused, and said why
        return said[-1].removeprefix(ERROR_PREFIX)
    words = last_words(lines) or (said[-1] if said else None)
    return f"the resumed trainer exited with code {code}" + (f": {words}" if words else "")


def _reap_children() -> None:
    for pid, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[pid]


# --------------------------------------------------------------------------- the queue


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity: a container's or `taskset`'s share of a
    larger host), which runs training at once divide among themselves (`share_cores`)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


@dataclass
class Slot:
    """One of the `limit` concurrency slots, held (flock) until `release()` or process exit."""

    index: int
    path: Path
    fd: int | None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_slot(path: Path, index: int) -> Slot | None:
    fd = open_in_run(path, os.O_RDWR)  # a symlink planted as a slot would have its target truncated
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # for people looking; the flock is the truth
    return Slot(index, path, fd)


def acquire_slot(
    root: str | os.PathLike[str],
    limit: int,
    *,
    poll: float = 0.2,
    should_stop: Callable[[], bool] = lambda: False,
    run_id: str | None = None,
) -> Slot | None:
    """Wait for one of `limit` slots under `<root>/.slots/`; None if `should_stop()` first.

    Runs that ask with the same limit never run more than `limit` at once, across processes
    and app restarts.  The slot is freed by `release()` or by the holder's death.  `run_id`: the
    run, in the queue's line (`rnnreg.line`), that waits: a free slot goes to the first in line
    that can take it, and the run leaves the line when this returns.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"acquire_slot: limit must be a whole number >= 1, got {limit!r}")
    slots = Path(root) / SLOTS_DIR
    slots.mkdir(parents=True, exist_ok=True)
    if slots.is_symlink():  # its slot files would be made (and truncated) wherever it points
        raise RunStoreError(f"{slots} is a symlink; rnnreg keeps its queue's slots only in a directory of its own")
    ticket = None
    try:
        while True:
            if run_id is not None:  # here, still waiting: the runs behind keep holding its place for it
                ticket = line.heartbeat(Path(root), run_id, ticket)
            for index in range(limit):
                slot = _try_slot(slots / f"slot-{index}.lock", index)
                if slot is not None and run_id is not None and line.someone_ahead(Path(root), run_id, index):
                    slot.release()  # it is theirs: a run queued earlier waits for it
                    slot = None
                if slot is not None:
                    return slot
            if should_stop():
                return None
            time.sleep(poll)
    finally:
        if run_id is not None:
            line.leave(Path(root), run_id)


# --------------------------------------------------------------------------- cancel and watch


def _terminate(pid: int) -> None:
    """SIGTERM the run's process group when it leads a session of its own (launched runs do:
    start_new_session), else only the process: started from a shell, its group is the shell's,
    or (a job-control shell) its pipeline's, and `| tee` must not be signalled with it."""
    if os.getsid(pid) == pid:
        os.killpg(pid, signal.SIGTERM)
    else:
        os.kill(pid, signal.SIGTERM)


def trainer_doubt(pid: int, status: Mapping[str, Any], run_id: str) -> str | None:
    """Why live process `pid` may not be the trainer of run `run_id`, whose status.json names it, else None.

    Anyone who can write the runs root can edit a status.json, and a run copied in brings its own:
    its pid must never let Cancel signal another process.  A trainer records its host and its
    start time (`pid_start`, against pid reuse) with its pid, and runs `rnnreg train`, naming the
    run where it was started for one (`--run-dir`, `--resume`); /proc must show all of it.
    Without /proc (macOS) the host and a live pid are all there is to go by.
    """
    if status.get("host") is None:
        return "without the host that tells its trainer from another process"
    if pid == os.getpid():
        return "which is this dashboard's own process, never a trainer"
    started = process_start_time(pid)
    if started is None:
        return None  # no /proc here, or it ended just now (then the signal finds nothing)
    recorded = status.get("pid_start")
    if isinstance(recorded, bool) or recorded != started:
        return "without the start time of the process now using that pid" if recorded is None else \
            "but that process started at another time (its pid was reused)"
    argv = _command_line(pid)
    if not argv:  # ended between the two reads (a kernel thread has none either)
        return None if not pid_alive(pid, started) else "whose command line cannot be read"
    trainer = trainer_arguments(argv)
    if trainer is None:
        return "which is not an rnnreg trainer (rnnreg train)"
    named = _run_named(trainer)
    if named is not None and named != run_id:
        return f"which trains run {named}"
    return None


def trainer_arguments(argv: list[str]) -> list[str] | None:
    """The arguments after `train` where `argv` runs the trainer, else None: `python [options] -m
    rnnreg train ...` (also -mrnnreg, rnnreg.__main__) or the console script, `python .../rnnreg train ...`."""
    if argv and os.path.basename(argv[0]) == "rnnreg":  # the script itself, run by its #! line
        rest = argv[1:]
    else:
        i, target = 1, None
        while i < len(argv):
            arg = argv[i]
            if arg == "-m":
                target = argv[i + 1] if i + 1 < len(argv) else None
                i += 2
                break
            if arg.startswith("-m"):
                target, i = arg[2:], i + 1
                break
            if arg in ("-X", "-W"):  # interpreter options that take a value
                i += 2
            elif arg.startswith("-") and arg != "-" and not arg.startswith("-c"):
                i += 1
            else:  # a script (or -c CODE, or - for stdin: no trainer)
                target = "rnnreg" if os.path.basename(arg) == "rnnreg" else None
                i += 1
                break
        if target not in ("rnnreg", "rnnreg.__main__"):
            return None
        rest = argv[i:]
    return rest[1:] if rest[:1] == ["train"] else None


def is_trainer_command(argv: list[str]) -> bool:
    """Whether `argv` runs the trainer (see trainer_arguments)."""
    return trainer_arguments(argv) is not None


def _run_named(arguments: list[str]) -> str | None:
    """The run a trainer's arguments name (`--run-dir DIR`: its last part, `--resume ID`), None for a new run."""
    for i, arg in enumerate(arguments):
        for option in ("--run-dir", "--resume"):
            if arg == option and i + 1 < len(arguments):
                value = arguments[i + 1]
            elif arg.startswith(option + "="):
                value = arg[len(option) + 1:]
            else:
                continue
            return Path(value).name if option == "--run-dir" else value
    return None


def _command_line(pid: int) -> list[str]:
    """The arguments of process `pid` (Linux /proc), [] if unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def cancel(root: str | os.PathLike[str], run_id: str) -> str:
    """Stop a queued or running run; returns what happened, in a sentence for the user.

    A live trainer gets SIGTERM (it checkpoints and ends `cancelled`); an active run whose
    process is gone is marked `cancelled` here.  Refuses reference runs and runs whose
    process lives on another host.
    """
    try:
        return _cancel(root, run_id)
    except OSError as err:  # a read-only disk, a directory of another user's: the page's one-line error
        raise RunStoreError(f"cannot cancel {run_id}: {err.strerror or type(err).__name__}") from None


def _cancel(root: str | os.PathLike[str], run_id: str) -> str:
    validate_run_id(run_id)
    run_dir = find_run_dir(root, run_id)
    if is_read_only(run_dir):
        raise RunStoreError(f"cannot cancel {run_id}: reference runs are read-only")
    status, problem = read_json(run_dir / STATUS_FILE)
    if status is None:
        raise RunStoreError(f"cannot cancel {run_id}: {problem}")
    state = status.get("state")
    if state not in ACTIVE_STATES:
        return f"run {run_id} is already {state}; nothing to cancel"
    host = status.get("host")
    if host is not None and host != socket.gethostname():
        raise RunStoreError(f"cannot cancel {run_id}: its process runs on host {host}; cancel it there")
    writer = RunWriter(run_dir)
    pid = status.get("pid")
    if pid_alive(pid, status.get("pid_start")):
        doubt = trainer_doubt(pid, status, run_id)
        if doubt is not None:
            raise RunStoreError(f"cannot cancel {run_id}: its status.json names pid {pid}, {doubt}; stop it yourself")
        writer.update_status(cancel_requested_at=utc_now())
        try:
            _terminate(pid)
        except ProcessLookupError:
            pass  # it ended just now: fall through and mark it
        except PermissionError:  # another user's trainer: no cancel is under way after all
            writer.update_status(cancel_requested_at=None)
            raise RunStoreError(f"cannot cancel {run_id}: not permitted to signal its process (pid {pid}); "
                                "stop it as the user who started it") from None
        else:
            _reap_children()
            return f"asked run {run_id} (pid {pid}) to stop; it saves a checkpoint and ends as cancelled"
    try:  # only if nothing wrote an end meanwhile: a trainer that finished just now keeps its `finished`
        writer.set_status_if(ACTIVE_STATES, "cancelled", recorded=True,
                             message="cancelled; its process was no longer running")
    except RunStoreError:
        ended, _problem = read_json(run_dir / STATUS_FILE)
        return f"run {run_id} is already {(ended or {}).get('state')} (it ended just now); nothing to cancel"
    return f"marked run {run_id} cancelled (its process was no longer running)"


def active_runs(root: str | os.PathLike[str]) -> list[RunSummary]:
    """Queued and running runs (by their effective state), newest first."""
    _reap_children()
    return [s for s in list_runs(root) if s.state in ACTIVE_STATES]
