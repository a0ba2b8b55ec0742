"""The run store: the on-disk contract between the trainer and the dashboard (stdlib only).

One run is one directory, either directly under the runs root or one group level down
(the shipped reference runs live in `<root>/reference/<id>/` and are read-only):

    <root>/<run_id>/
      config.json           {"format": 1, "id", "created_at", "request_id", "sweep",
                             "config": rnnreg.config.to_dict(...), "environment": {...}}
      status.json           {"state", "pid", "host", "created_at", "started_at", "updated_at",
                             "ended_at", "epoch", "epochs_total", "message", ...}; also
                             "pid_start" (the pid's start time, against pid reuse) and
                             "cancel_requested_at" (set by launch.cancel)
      metrics.jsonl         one JSON object per line, each with a "kind" (step, epoch, test, ...)
      probes.jsonl          one JSON object per line (gates, grad_through_time, ...)
      checkpoint.safetensors + checkpoint.json, vocab.json, train.log

Writers (`RunWriter`, one per training process) replace JSON documents atomically (temp
file in the same directory, fsync, rename, fsync the directory) and append one whole line
per record.  Readers never trust the files: a missing file, a torn line, a wrong type, a
huge line or a symlink out of the root gives a run listed with its problems, never a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from rnnreg.config import DEFAULT_DATA_DIR, MAX_NAME, ConfigError, from_dict, training_variant, valid_name

logger = logging.getLogger(__name__)

FORMAT = 1  # the version of config.json's layout this module writes and reads

RUN_STATES = ("queued", "running", "finished", "failed", "cancelled", "diverged", "interrupted")
ACTIVE_STATES = frozenset({"queued", "running"})
TERMINAL_STATES = frozenset({"finished", "failed", "cancelled", "diverged", "interrupted"})
# States a RunSummary may show beyond RUN_STATES: status.json unreadable / nothing readable.
UNKNOWN_STATE = "unknown"
CORRUPT_STATE = "corrupt"

RUNS_DIR_ENV = "RNNREG_RUNS_DIR"
REFERENCE_GROUP = "reference"  # <root>/reference/<id>/ runs are shipped and read-only

CONFIG_FILE = "config.json"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
PROBES_FILE = "probes.jsonl"
LOG_FILE = "train.log"
CHECKPOINT_FILE = "checkpoint.safetensors"
CHECKPOINT_STATE_FILE = "checkpoint.json"
VOCAB_FILE = "vocab.json"
LOCK_FILE = ".lock"  # flock'ed around read-modify-write of config.json / status.json
RUN_FILES = (CONFIG_FILE, STATUS_FILE, METRICS_FILE, PROBES_FILE, LOG_FILE,
             CHECKPOINT_FILE, CHECKPOINT_STATE_FILE, VOCAB_FILE)
# A directory holding any of these is a run (possibly a broken one), not a group.
RUN_MARKERS = (CONFIG_FILE, STATUS_FILE, METRICS_FILE)

MAX_JSON_BYTES = 1 << 20  # config.json / status.json larger than this are refused
MAX_LINE_BYTES = 1 << 20  # a JSONL line longer than this is skipped
MAX_RUN_ID = 128
_SLUG_MAX = 40
_ID_RE = re.compile(r"[A-Za-z0-9._-]+")


class RunStoreError(ValueError):
    """A user-caused problem with the run store; the message is one line meant for users."""


# --------------------------------------------------------------------------- roots and ids


def runs_root(cli_value: str | os.PathLike[str] | None = None) -> Path:
    """The runs root: the CLI value, else $RNNREG_RUNS_DIR, else `runs/` in the cwd."""
    if cli_value not in (None, ""):
        return Path(cli_value).expanduser()
    env = os.environ.get(RUNS_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path("runs")


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name)
    slug = re.sub(r"[-.]*-[-.]*", "-", slug)  # "a - . b" -> "a-b"
    slug = re.sub(r"\.{2,}", ".", slug)  # never ".." in an id
    return slug.strip("._-")[:_SLUG_MAX].strip("._-")


def new_run_id(name: str | None = None) -> str:
    """`YYYYMMDD-HHMMSS[-<slug of name>]-<6 hex>` (UTC time), only `[A-Za-z0-9._-]`."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    slug = _slug(name) if name else ""
    return "-".join(part for part in (stamp, slug, secrets.token_hex(3)) if part)


def validate_run_id(run_id: object) -> str:
    """Return `run_id` if it is a safe single path segment, else raise RunStoreError."""
    if not isinstance(run_id, str) or not run_id:
        raise RunStoreError("run id: must be non-empty text")
    shown = ascii(run_id[:60])
    if "\x00" in run_id or "/" in run_id or "\\" in run_id:
        raise RunStoreError(f"run id {shown}: must not contain '/', '\\' or NUL")
    if len(run_id) > MAX_RUN_ID:
        raise RunStoreError(f"run id {shown}...: longer than {MAX_RUN_ID} characters")
    if run_id.startswith(".") or ".." in run_id:
        raise RunStoreError(f"run id {shown}: must not start with '.' or contain '..'")
    if not _ID_RE.fullmatch(run_id):
        raise RunStoreError(f"run id {shown}: only letters, digits, '.', '_' and '-' are allowed")
    return run_id


def _valid_segment(name: str) -> bool:
    try:
        validate_run_id(name)
    except RunStoreError:
        return False
    return True


def _inside(root_resolved: Path, path: Path) -> bool:
    """Whether `path`, with every symlink resolved, lies inside `root_resolved`."""
    try:
        return path.resolve().is_relative_to(root_resolved)
    except (OSError, RuntimeError):  # unreadable, or a symlink loop
        return False


def _is_run_dir(path: Path) -> bool:
    base = os.fspath(path)
    return os.path.isdir(base) and any(os.path.lexists(os.path.join(base, marker)) for marker in RUN_MARKERS)


def _is_group_dir(path: Path) -> bool:
    """A directory that is not a run itself but holds at least one run."""
    if not path.is_dir() or _is_run_dir(path):
        return False
    try:
        return any(_valid_segment(c.name) and _is_run_dir(c) for c in path.iterdir())
    except OSError:
        return False


def find_run_dir(root: str | os.PathLike[str], run_id: str) -> Path:
    """The directory of `run_id` (`<root>/<id>` or `<root>/<group>/<id>`), confined to the root.

    Raises RunStoreError for a bad id, a run that does not exist, or a path that leaves the
    root through a symlink (refused, never followed).
    """
    validate_run_id(run_id)
    root = Path(root)
    try:
        root_resolved = root.resolve(strict=True)
    except OSError:
        raise RunStoreError(f"no run {run_id!r}: the runs directory {root} does not exist") from None
    top = root / run_id
    if os.path.lexists(top):
        if not _inside(root_resolved, top):
            raise RunStoreError(f"run {run_id!r}: its path leaves the runs directory {root}; refused")
        if top.is_dir() and not _is_group_dir(top):
            return top
    try:
        groups = sorted(p for p in root.iterdir() if _valid_segment(p.name))
    except OSError:
        groups = []
    for group in groups:
        candidate = group / run_id
        if not os.path.lexists(candidate):
            continue
        if not _inside(root_resolved, candidate):
            raise RunStoreError(f"run {run_id!r}: its path leaves the runs directory {root}; refused")
        if _is_run_dir(candidate):
            return candidate
    raise RunStoreError(f"no run {run_id!r} in {root}")


def is_read_only(run_dir: str | os.PathLike[str]) -> bool:
    """Runs in a `reference/` folder are shipped with rnnreg and never changed.

    Decided on the resolved path, so that no spelling gets past it: an absolute path, one
    relative to another directory, a link, or a runs root that is the reference folder itself.
    """
    try:
        return Path(run_dir).resolve().parent.name == REFERENCE_GROUP
    except (OSError, RuntimeError):  # a link loop: not a run anyone can write either
        return True


# --------------------------------------------------------------------------- writing


def utc_now() -> str:
    """Now as ISO-8601 UTC text, e.g. `2026-11-26T14:03:07.123+00:00`."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _finite(obj: Any) -> Any:
    """A copy of `obj` with NaN/inf floats as None and tuples as lists (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a directory; the rename still happened
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace `path` with `data` all at once: temp file beside it, fsync, rename, fsync dir."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """`atomic_write_bytes` of strict JSON (non-finite floats written as null)."""
    text = json.dumps(_finite(obj), allow_nan=False, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def _dir_lock(run_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write of a run's JSON documents across processes."""
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def process_start_time(pid: int) -> int | None:
    """The start time of `pid` in clock ticks since boot (Linux /proc), None if unknown."""
    try:
        raw = Path(f"/proc/{int(pid)}/stat").read_bytes()
        # fields after the parenthesised command name: state is field 3, starttime field 22
        return int(raw[raw.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: object, start_time: object = None) -> bool:
    """Whether process `pid` (on this host) is alive; a zombie or a reused pid counts as dead."""
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by someone else
    except (OSError, OverflowError):  # (a pid too large for the system: none of ours)
        return False
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True  # no /proc (macOS): os.kill is all we know
    fields = raw[raw.rindex(b")") + 2:].split()
    if fields and fields[0] == b"Z":
        return False  # exited, not yet reaped by its parent
    if isinstance(start_time, int) and not isinstance(start_time, bool):
        with contextlib.suppress(IndexError, ValueError):
            return int(fields[19]) == start_time
    return True


def _new_status(epochs_total: int | None) -> dict[str, Any]:
    now = utc_now()
    return {
        "state": "queued", "pid": None, "pid_start": None, "host": socket.gethostname(),
        "created_at": now, "started_at": None, "updated_at": now, "ended_at": None,
        "epoch": 0, "epochs_total": epochs_total, "message": None,
    }


class RunWriter:
    """Writes one run directory; the training process (and `launch`) hold one each.

    JSON documents are replaced atomically under a per-run lock; metric and probe records are
    appended as one whole line each (`os.write` on an O_APPEND descriptor, no user-space
    buffer), so a reader sees a record entirely or, if the process died mid-write, a torn
    last line that readers skip.  `sync()` fsyncs the appended files (call it at epoch ends).
    """

    def __init__(self, run_dir: str | os.PathLike[str]):
        self.dir = Path(run_dir)
        self.id = self.dir.name
        self._fds: dict[str, int] = {}

    # paths ---------------------------------------------------------------
    config_path = property(lambda self: self.dir / CONFIG_FILE)
    status_path = property(lambda self: self.dir / STATUS_FILE)
    metrics_path = property(lambda self: self.dir / METRICS_FILE)
    probes_path = property(lambda self: self.dir / PROBES_FILE)
    log_path = property(lambda self: self.dir / LOG_FILE)
    checkpoint_path = property(lambda self: self.dir / CHECKPOINT_FILE)
    checkpoint_state_path = property(lambda self: self.dir / CHECKPOINT_STATE_FILE)
    vocab_path = property(lambda self: self.dir / VOCAB_FILE)

    @classmethod
    def create(
        cls,
        root: str | os.PathLike[str],
        config: Mapping[str, Any],
        *,
        name: str | None = None,
        run_id: str | None = None,
        request_id: str | None = None,
        sweep: str | None = None,
        pid: int | None = None,
    ) -> RunWriter:
        """Make a new run directory (config.json + status `queued`); never overwrites one.

        `config` is `rnnreg.config.to_dict(run_config)`; `name`, when given, replaces its
        name.  An explicit `run_id` that exists already raises RunStoreError.  `pid`: the
        process that will train it, when known now (the CLI trainer itself), so that a run
        whose process dies before it starts is seen as interrupted, not queued forever.
        A root that cannot be written (read-only, full) raises RunStoreError, leaving no run.
        """
        try:
            return cls._create(root, config, name=name, run_id=run_id, request_id=request_id, sweep=sweep, pid=pid)
        except OSError as err:
            raise RunStoreError(f"cannot create a run in {root}: {err.strerror or err}") from None

    @classmethod
    def _create(cls, root, config, *, name, run_id, request_id, sweep, pid) -> RunWriter:
        if not isinstance(config, Mapping):
            raise TypeError("RunWriter.create: config must be a mapping (rnnreg.config.to_dict)")
        config = dict(config)
        if name is not None:
            config["name"] = name
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        train = config.get("train") if isinstance(config.get("train"), Mapping) else {}
        epochs = train.get("epochs")
        epochs_total = epochs if isinstance(epochs, int) and not isinstance(epochs, bool) else None
        for _attempt in range(5):
            rid = validate_run_id(run_id) if run_id is not None else new_run_id(_str(config.get("name")))
            final = root / rid
            try:
                os.mkdir(final)  # claims the id: exclusive, a clash is never an overwrite
            except FileExistsError:
                if run_id is not None:
                    raise RunStoreError(f"run {rid!r} already exists in {root}; choose another id") from None
                continue
            break
        else:
            raise RunStoreError(f"could not find a free run id in {root}")
        doc = {
            "format": FORMAT, "id": rid, "created_at": utc_now(), "request_id": request_id,
            "sweep": sweep, "config": config, "environment": {},
        }
        # Fill a hidden directory, then rename it over the (empty) claimed one, so a reader
        # never sees a run without its config.json and status.json.
        staging = Path(tempfile.mkdtemp(prefix=f".creating-{rid}-", dir=root))
        try:
            os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it 0700: a run is as readable as any folder
            atomic_write_json(staging / CONFIG_FILE, doc)
            status = {**_new_status(epochs_total), "created_at": doc["created_at"]}
            if pid is not None:
                status.update(pid=pid, pid_start=process_start_time(pid))
            atomic_write_json(staging / STATUS_FILE, status)
            os.replace(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(final)
            raise
        _fsync_dir(root)
        return cls(final)

    @classmethod
    def open(cls, run_dir: str | os.PathLike[str]) -> RunWriter:
        """A writer for an existing run directory (e.g. the trainer given `--run-dir`)."""
        run_dir = Path(run_dir)
        if not (run_dir / CONFIG_FILE).is_file():
            raise RunStoreError(f"{run_dir} is not a run directory (no {CONFIG_FILE})")
        validate_run_id(run_dir.name)
        return cls(run_dir)

    # JSON documents --------------------------------------------------------
    def read_config(self) -> dict[str, Any]:
        doc, problem = read_json(self.config_path)
        if doc is None:
            raise RunStoreError(f"run {self.id}: {problem}")
        return doc

    def read_status(self) -> dict[str, Any]:
        status, _problem = read_json(self.status_path)
        return status if status is not None else {}

    def update_config(self, environment: Mapping[str, Any]) -> None:
        """Merge `environment` (torch, python, device, device_name, git_commit, ...) into config.json."""
        with _dir_lock(self.dir):
            doc = self.read_config()
            env = doc.get("environment") if isinstance(doc.get("environment"), dict) else {}
            doc["environment"] = {**env, **dict(environment)}
            atomic_write_json(self.config_path, doc)

    def set_status(self, state: str, **fields: Any) -> dict[str, Any]:
        """Set the state and merge `fields` into status.json; returns the new status.

        Sets `updated_at`; `started_at` the first time the state is `running`; `ended_at` the
        first time it is terminal.  `running` is set by the training process itself, so its
        pid defaults to this process.  Whenever a pid is given its start time is recorded
        (`pid_start`) so that a reused pid is not mistaken for the run.
        """
        if state not in RUN_STATES:
            raise RunStoreError(f"status: unknown state {state!r}; allowed: {', '.join(RUN_STATES)}")
        if state == "running" and "pid" not in fields:
            fields["pid"] = os.getpid()
        return self._merge_status({**fields, "state": state})

    def update_status(self, **fields: Any) -> dict[str, Any]:
        """Merge `fields` into status.json keeping the state (e.g. launch recording the pid)."""
        if "state" in fields:
            raise TypeError("update_status: use set_status to change the state")
        return self._merge_status(fields)

    def set_status_if(self, allowed: Iterable[str], state: str, **fields: Any) -> dict[str, Any]:
        """`set_status`, only if the run's effective state is one of `allowed`, else RunStoreError.

        Checked and set under the run's lock, so of two processes racing (two `--resume` of
        one run) exactly one wins.
        """
        if state not in RUN_STATES:
            raise RunStoreError(f"status: unknown state {state!r}; allowed: {', '.join(RUN_STATES)}")
        if state == "running" and "pid" not in fields:
            fields["pid"] = os.getpid()
        return self._merge_status({**fields, "state": state}, allowed=frozenset(allowed))

    def _merge_status(self, fields: dict[str, Any], allowed: frozenset[str] | None = None) -> dict[str, Any]:
        with _dir_lock(self.dir):
            status = self.read_status()
            if allowed is not None and effective_state(status) not in allowed:
                raise RunStoreError(f"run {self.id} is {effective_state(status)}, not {' or '.join(sorted(allowed))}")
            if "pid" in fields:
                pid = fields["pid"]
                fields.setdefault("pid_start", process_start_time(pid) if isinstance(pid, int) else None)
                fields.setdefault("host", socket.gethostname())
            status.update(fields)
            now = utc_now()
            status["updated_at"] = now
            if status.get("state") == "running" and not status.get("started_at"):
                status["started_at"] = now
            if status.get("state") in TERMINAL_STATES and not status.get("ended_at"):
                status["ended_at"] = now
            atomic_write_json(self.status_path, status)
            return status

    # appended records ------------------------------------------------------
    def append_metric(self, record: Mapping[str, Any]) -> None:
        """Append one record (must have a "kind") to metrics.jsonl."""
        self._append(METRICS_FILE, record)

    def append_probe(self, record: Mapping[str, Any]) -> None:
        """Append one record (must have a "kind") to probes.jsonl."""
        self._append(PROBES_FILE, record)

    def _append(self, filename: str, record: Mapping[str, Any]) -> None:
        if not isinstance(record, Mapping) or not isinstance(record.get("kind"), str):
            raise ValueError(f"{filename}: a record must be a mapping with a 'kind' string")
        line = (json.dumps(_finite(record), allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = self._fds.get(filename)
        if fd is None:
            fd = self._fds[filename] = self._open_append(self.dir / filename)
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]

    @staticmethod
    def _open_append(path: Path) -> int:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        # A process that died mid-write left a torn last line: end it, so that our first
        # record is not glued onto it (readers then skip just the torn one).
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")
        return fd

    def rewind(self, epoch: int) -> int:
        """Forget every record written after completed `epoch` (to resume from its checkpoint).

        metrics.jsonl and probes.jsonl are rewritten atomically, keeping each record whose
        "epoch" is at most `epoch` (or has none) and is not a "test" record; torn and unreadable
        lines go too.  `epoch` -1 drops every record that has an epoch.  Returns the number of
        lines dropped.  Call it before appending anything with this writer.
        """
        if self._fds:
            raise RuntimeError("RunWriter.rewind: call it before appending")
        dropped = 0
        for name in (METRICS_FILE, PROBES_FILE):
            path = self.dir / name
            try:
                with _open_regular(path) as handle:
                    lines = handle.read().splitlines(keepends=True)
            except _Unreadable:
                continue
            kept = []
            for line in lines:
                try:
                    rec = json.loads(line) if line.endswith(b"\n") else None
                except (ValueError, RecursionError):
                    rec = None
                rec_epoch = _num(rec.get("epoch")) if isinstance(rec, dict) else None
                if isinstance(rec, dict) and rec.get("kind") != "test" and (rec_epoch is None or rec_epoch <= epoch):
                    kept.append(line)
            dropped += len(lines) - len(kept)
            if len(kept) != len(lines):
                atomic_write_bytes(path, b"".join(kept))
        return dropped

    def sync(self) -> None:
        """fsync the appended files (metrics, probes); cheap enough once per epoch."""
        for fd in self._fds.values():
            os.fsync(fd)

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


# --------------------------------------------------------------------------- tolerant reading


class _Unreadable(Exception):
    """Internal: why a file could not be read (the message is a problem string)."""


def _open_regular(path: Path):
    """Open `path` for reading if it is a regular file; symlinks are not followed."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise _Unreadable(f"{path.name}: missing") from None
    except OSError as err:
        if os.path.islink(path):
            raise _Unreadable(f"{path.name}: is a symlink (not followed)") from None
        raise _Unreadable(f"{path.name}: unreadable ({err.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Unreadable(f"{path.name}: not a regular file")
    return os.fdopen(fd, "rb")


def read_json(path: str | os.PathLike[str], *, max_bytes: int = MAX_JSON_BYTES) -> tuple[dict | None, str | None]:
    """(the JSON object in `path`, None) or (None, a one-line problem); never raises on content."""
    path = Path(path)
    try:
        with _open_regular(path) as handle:
            data = handle.read(max_bytes + 1)
    except _Unreadable as err:
        return None, str(err)
    except OSError as err:
        return None, f"{path.name}: unreadable ({err.strerror})"
    if len(data) > max_bytes:
        return None, f"{path.name}: larger than {max_bytes} bytes"
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return None, f"{path.name}: not valid JSON (torn or corrupt)"
    if not isinstance(obj, dict):
        return None, f"{path.name}: not a JSON object"
    return obj, None


@dataclass(frozen=True)
class JsonlReport:
    """What `scan_jsonl` found: the records, lines skipped, and a torn final line."""

    records: list[dict]
    skipped: int  # invalid / non-object / over-long lines before the end of the file
    torn_tail: bool  # the last line had no newline and did not parse (a writer mid-record)
    problem: str | None  # the file itself could not be read (missing, symlink, ...)


def _kinds_filter(kind: str | Iterable[str] | None) -> tuple[frozenset[str] | None, re.Pattern[bytes] | None]:
    if kind is None:
        return None, None
    kinds = frozenset([kind] if isinstance(kind, str) else kind)
    # A cheap byte-level prefilter so that listing runs does not parse thousands of step lines.
    alternatives = b"|".join(re.escape(json.dumps(k).encode()) for k in sorted(kinds))
    return kinds, re.compile(rb'"kind"\s*:\s*(?:' + alternatives + rb")")


def scan_jsonl(
    path: str | os.PathLike[str], kind: str | Iterable[str] | None = None, *, max_line_bytes: int = MAX_LINE_BYTES
) -> JsonlReport:
    """Read a JSONL file tolerantly: keep JSON objects (of `kind`, if given), skip the rest."""
    path = Path(path)
    kinds, prefilter = _kinds_filter(kind)
    records: list[dict] = []
    skipped = 0
    torn_tail = False
    try:
        with _open_regular(path) as handle:
            while True:
                line = handle.readline(max_line_bytes + 1)
                if not line:
                    break
                complete = line.endswith(b"\n")
                if len(line) > max_line_bytes and not complete:
                    while line and not line.endswith(b"\n"):  # drop the rest of the over-long line
                        line = handle.readline(1 << 16)
                    skipped += 1
                    continue
                if not line.strip() or (prefilter is not None and not prefilter.search(line)):
                    continue
                try:
                    rec = json.loads(line)
                except (ValueError, RecursionError):
                    rec = None
                if not isinstance(rec, dict):
                    if complete:
                        skipped += 1
                    else:
                        torn_tail = True
                    continue
                if kinds is None or rec.get("kind") in kinds:
                    records.append(rec)
    except _Unreadable as err:
        return JsonlReport(records, skipped, torn_tail, str(err))
    except OSError as err:
        return JsonlReport(records, skipped, torn_tail, f"{path.name}: unreadable ({err.strerror})")
    return JsonlReport(records, skipped, torn_tail, None)


def read_jsonl(
    path: str | os.PathLike[str], kind: str | Iterable[str] | None = None, *, max_line_bytes: int = MAX_LINE_BYTES
) -> list[dict]:
    """The JSON-object lines of `path` (of `kind`, if given); bad lines skipped, missing file = []."""
    return scan_jsonl(path, kind, max_line_bytes=max_line_bytes).records


def effective_state(status: Mapping[str, Any], *, hostname: str | None = None) -> str:
    """The state to show: an active run whose process died on this host is `interrupted`.

    (`cancelled` if a cancel had been requested.)  A status written on another host keeps
    its state: we cannot see that machine's processes.  An invalid state gives `unknown`.
    """
    state = status.get("state")
    if state not in RUN_STATES:
        return UNKNOWN_STATE
    if state not in ACTIVE_STATES:
        return state
    host = status.get("host")
    if host is not None and host != (hostname or socket.gethostname()):
        return state
    pid = status.get("pid")
    if pid is None:
        # queued by launch, pid not yet recorded, or written without one; a run queued by a
        # sweep's driver (Ray) names the driver instead: when it is gone, so is the queue
        driver = status.get("queued_by")
        if state == "queued" and driver is not None and not pid_alive(driver, status.get("queued_by_start")):
            return "interrupted"
        return state
    if pid_alive(pid, status.get("pid_start")):
        return state
    return "cancelled" if status.get("cancel_requested_at") else "interrupted"


# --------------------------------------------------------------------------- summaries


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _parse_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


@dataclass(frozen=True)
class RunSummary:
    """One row of the run list: what the dashboard and `rnnreg list` show about a run."""

    id: str
    path: str
    name: str | None = None
    preset: str | None = None
    task: str | None = None
    placement: str | None = None
    rates: dict[str, float] = field(default_factory=dict, hash=False)
    state: str = UNKNOWN_STATE  # a RUN_STATES value, or "unknown" / "corrupt"
    epochs_done: int = 0
    epochs_total: int | None = None
    best_valid_ppl: float | None = None
    last_valid_ppl: float | None = None
    test_ppl: float | None = None
    mc_test_ppl: float | None = None  # Monte-Carlo dropout test perplexity (`rnnreg evaluate`), latest
    mc_samples: int | None = None
    mc_protocol: str | None = None  # "stream" (Gal & Ghahramani's MC test, the default) or how it differed
    test_accuracy: float | None = None  # recall accuracy of a memory-task run's test
    delay: int | None = None  # a memory-task run's longest gap (`--delay T`)
    # model and training settings that depart from the preset's (config.training_variant): '' for
    # none; runs of one preset, placement, rates and variant are seeds of one configuration.
    # None where config.json does not parse.
    variant: str | None = None
    # "penn-treebank" when the corpus it trained on is the vendored PTB, byte for byte (its
    # recorded checksums), "other" when it is not, None where none were recorded
    corpus: str | None = None
    wall_seconds: float | None = None
    device: str | None = None
    created_at: str | None = None
    read_only: bool = False
    group: str | None = None  # "reference" for shipped runs, None at the top level
    sweep: str | None = None
    request_id: str | None = None
    message: str | None = None  # status.json's message (why it failed, ...)
    problems: tuple[str, ...] = ()  # non-empty: the run is corrupt or partial

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def dropout_label(self) -> str:
        """e.g. `zaremba(input=0.5, output=0.5)`; `none` without rates."""
        if not self.placement:
            return "?"
        if not self.rates:
            return self.placement
        return f"{self.placement}({', '.join(f'{k}={v:g}' for k, v in self.rates.items())})"

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["rates"] = dict(self.rates)
        out["problems"] = list(self.problems)
        return out


def _corrupt_summary(run_dir: Path, problem: str, *, read_only: bool, group: str | None) -> RunSummary:
    return RunSummary(id=run_dir.name, path=str(run_dir), state=CORRUPT_STATE, read_only=read_only,
                      group=group, problems=(problem,))


def summarize_run(run_dir: str | os.PathLike[str], *, read_only: bool = False, group: str | None = None) -> RunSummary:
    """The summary of one run directory, built from whatever in it is readable."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    doc, problem = read_json(run_dir / CONFIG_FILE)
    if problem:
        problems.append(problem)
    status, problem = read_json(run_dir / STATUS_FILE)
    if problem:
        problems.append(problem)
    doc = doc or {}
    if doc and doc.get("format") != FORMAT:
        problems.append(f"{CONFIG_FILE}: format {doc.get('format')!r} is not the format {FORMAT} this rnnreg reads")
    if doc and not isinstance(doc.get("config"), dict):
        problems.append(f"{CONFIG_FILE}: no 'config' object")
    cfg = _dict(doc.get("config"))
    dropout, train, env = _dict(cfg.get("dropout")), _dict(cfg.get("train")), _dict(doc.get("environment"))
    rates = {k: float(v) for k, v in _dict(dropout.get("rates")).items() if _num(v) is not None}

    report = scan_jsonl(run_dir / METRICS_FILE, ("epoch", "test", "mc_test"))
    if report.problem and not report.problem.endswith(": missing"):
        problems.append(report.problem)
    if report.skipped:
        problems.append(f"{METRICS_FILE}: {report.skipped} unreadable line(s) skipped")
    epochs = [r for r in report.records if r.get("kind") == "epoch" and _int(r.get("epoch")) is not None]
    valids = [v for v in (_num(r.get("valid_ppl")) for r in epochs) if v is not None]
    tests = [v for v in (_num(r.get("test_ppl")) for r in report.records if r.get("kind") == "test") if v is not None]
    mc_tests = [r for r in report.records if r.get("kind") == "mc_test" and _num(r.get("mc_test_ppl")) is not None]
    accuracies = [r.get("test_accuracy") for r in report.records if r.get("kind") == "test"]
    memory = _dict(cfg.get("memory")) if cfg.get("task") == "memory" else {}

    if status is None:
        state = CORRUPT_STATE if not doc else UNKNOWN_STATE
        status = {}
    else:
        state = effective_state(status)
        if state == UNKNOWN_STATE:
            problems.append(f"{STATUS_FILE}: unknown state {status.get('state')!r}")

    epochs_done = max([_int(status.get("epoch")) or 0] + [_int(r["epoch"]) for r in epochs])
    started, ended = _parse_time(status.get("started_at")), _parse_time(status.get("ended_at"))
    if started is not None and ended is not None:
        wall = max(ended - started, 0.0)
    elif started is not None and state in ACTIVE_STATES:
        wall = max(time.time() - started, 0.0)
    else:
        times = [t for t in (_num(r.get("time")) for r in report.records) if t is not None]
        wall = max(times) if times else None
    return RunSummary(
        id=run_dir.name,
        path=str(run_dir),
        name=_str(cfg.get("name")),
        preset=_str(cfg.get("preset")),
        task=_str(cfg.get("task")),
        placement=_str(dropout.get("placement")),
        rates=rates,
        state=state,
        epochs_done=epochs_done,
        epochs_total=_int(status.get("epochs_total")) or _int(train.get("epochs")),
        best_valid_ppl=min(valids) if valids else None,
        last_valid_ppl=_num(epochs[-1].get("valid_ppl")) if epochs else None,
        test_ppl=tests[-1] if tests else None,
        mc_test_ppl=_num(mc_tests[-1]["mc_test_ppl"]) if mc_tests else None,
        mc_samples=_int(mc_tests[-1].get("samples")) if mc_tests else None,
        mc_protocol=mc_protocol(mc_tests[-1]) if mc_tests else None,
        test_accuracy=_num(accuracies[-1]) if accuracies else None,
        delay=_int(memory.get("delay")),
        variant=_variant(cfg) if cfg else None,
        corpus=corpus_of(env.get("data_sha256")),
        wall_seconds=wall,
        device=_str(env.get("device_name")) or _str(env.get("device")) or _str(train.get("device")),
        created_at=_str(doc.get("created_at")) or _str(status.get("created_at")),
        read_only=read_only,
        group=group,
        sweep=_str(doc.get("sweep")),
        request_id=_str(doc.get("request_id")),
        message=_str(status.get("message")),
        problems=tuple(problems),
    )


@functools.cache
def penn_treebank_checksums() -> dict[str, str]:
    """{split: sha256} of the vendored Penn Treebank (data/ptb/SHA256SUMS); {} where it is not there."""
    try:
        lines = (DEFAULT_DATA_DIR / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    sums = {}
    for line in lines:  # "<sha256>  ptb.train.txt"
        digest, _, name = line.strip().partition("  ")
        match = re.fullmatch(r"ptb\.(train|valid|test)\.txt", name)
        if match:
            sums[match.group(1)] = digest
    return sums


def corpus_of(recorded: object) -> str | None:
    """'penn-treebank', 'other', or None: a run's recorded {split: sha256} against the vendored PTB's."""
    if not isinstance(recorded, dict) or not recorded:
        return None
    reference = penn_treebank_checksums()
    if not reference:
        return None  # nothing to compare with: the vendored copy is missing
    return "penn-treebank" if recorded == reference else "other"


def _variant(cfg: Mapping[str, Any]) -> str | None:
    try:
        return training_variant(from_dict(cfg))
    except (ConfigError, TypeError, ValueError):  # unreadable or invalid: the summary's problems say why
        return None


def _run_dirs(root: Path) -> Iterator[tuple[Path, str | None, str | None]]:
    """(run dir, group, problem) for every run under `root`; problem set = do not open it."""
    root_resolved = root.resolve()

    def entries(folder: Path) -> list[os.DirEntry]:
        with os.scandir(folder) as listing:
            return sorted((e for e in listing if _valid_segment(e.name)), key=lambda e: e.name)

    def inside(entry: os.DirEntry) -> bool:
        # a directory entry that is no symlink lies where its parent does; only links need resolving
        return not entry.is_symlink() or _inside(root_resolved, Path(entry.path))

    outside = "symlink pointing outside the runs directory (not followed)"
    for entry in entries(root):  # hidden (.slots, .creating-*, .trash-*) or unaddressable names skipped
        path = Path(entry.path)
        if not inside(entry):
            yield path, None, outside
        elif _is_run_dir(path):
            yield path, None, None
        elif entry.is_dir():
            with contextlib.suppress(OSError):
                for child in entries(path):
                    if not inside(child):
                        yield Path(child.path), entry.name, outside
                    elif _is_run_dir(Path(child.path)):
                        yield Path(child.path), entry.name, None


def list_runs(root: str | os.PathLike[str]) -> list[RunSummary]:
    """Every run under `root`, newest first; a broken run is listed with its problems, never raised."""
    root = Path(root)
    if not root.is_dir():
        return []
    summaries = []
    try:
        found = list(_run_dirs(root))
    except OSError as err:
        logger.warning("cannot list runs in %s: %s", root, err)
        return []
    addressed = _addressed_copies(found)
    for run_dir, group, problem in found:
        read_only = is_read_only(run_dir)
        winner = addressed.get(run_dir.name)
        if winner is not None and winner != run_dir:
            # `<root>/<id>` copied beside `<root>/reference/<id>`: one id, two runs.  Commands reach
            # the first (find_run_dir's order), so the other is listed under its path, as broken.
            problem = (f"the same run id as {winner.relative_to(root)}, which every command addresses;"
                       " rename or remove one of the two directories")
            summaries.append(dataclasses.replace(
                _corrupt_summary(run_dir, problem, read_only=read_only, group=group), id=f"{group}/{run_dir.name}"))
            continue
        if problem:
            summaries.append(_corrupt_summary(run_dir, problem, read_only=read_only, group=group))
            continue
        try:
            summaries.append(summarize_run(run_dir, read_only=read_only, group=group))
        except Exception as err:  # one bad run must not hide the others: list it with the reason
            logger.exception("cannot summarise run %s", run_dir)
            summaries.append(_corrupt_summary(run_dir, f"unreadable: {type(err).__name__}: {err}",
                                              read_only=read_only, group=group))

    def newest_first(s: RunSummary) -> tuple[float, str]:
        created = _parse_time(s.created_at)
        if created is None:
            with contextlib.suppress(OSError):
                created = os.lstat(s.path).st_mtime
        return (created or 0.0, s.id)

    return sorted(summaries, key=newest_first, reverse=True)


def _addressed_copies(found: list[tuple[Path, str | None, str | None]]) -> dict[str, Path]:
    """run id -> the directory `find_run_dir` returns for it (the top level first, then groups
    by name), for the ids that more than one directory under the root carries."""
    by_id: dict[str, list[tuple[Path, str | None]]] = {}
    for run_dir, group, problem in found:
        if problem is None:
            by_id.setdefault(run_dir.name, []).append((run_dir, group))
    return {run_id: min(copies, key=lambda c: (c[1] is not None, c[1] or ""))[0]
            for run_id, copies in by_id.items() if len(copies) > 1}


def _umask() -> int:
    """This process's umask, read without changing it (os.umask sets it, racing other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def run_signature(run_dir: str | os.PathLike[str]) -> tuple[tuple[str, int, int], ...]:
    """(file, mtime_ns, size) of a run's files: a cheap cache key that changes when they do."""
    base = os.fspath(run_dir)
    out = []
    for name in (CONFIG_FILE, STATUS_FILE, METRICS_FILE, PROBES_FILE):
        try:
            st = os.stat(os.path.join(base, name), follow_symlinks=False)
            out.append((name, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((name, 0, -1))
    return tuple(out)


def root_signature(root: str | os.PathLike[str]) -> tuple:
    """`run_signature` of every run under `root`: a cache key for `list_runs`."""
    root = Path(root)
    if not root.is_dir():
        return ()
    try:
        return tuple((d.name if g is None else f"{g}/{d.name}", run_signature(d)) for d, g, p in _run_dirs(root)
                     if p is None)
    except OSError:
        return ()


# --------------------------------------------------------------------------- one run, in full


@dataclass(frozen=True)
class Run:
    """A run opened for viewing: its documents, its summary and readers for its records.

    `metrics()` / `probes()` re-read the files on every call (they grow while training).
    """

    dir: Path
    config_doc: dict | None
    status: dict | None
    summary: RunSummary

    @property
    def id(self) -> str:
        return self.dir.name

    @property
    def config(self) -> dict:
        """The `config` part of config.json ({} if unreadable)."""
        return _dict((self.config_doc or {}).get("config"))

    @property
    def environment(self) -> dict:
        return _dict((self.config_doc or {}).get("environment"))

    def metrics(self, kind: str | Iterable[str] | None = None) -> list[dict]:
        return read_jsonl(self.dir / METRICS_FILE, kind)

    def probes(self, kind: str | Iterable[str] | None = None) -> list[dict]:
        return read_jsonl(self.dir / PROBES_FILE, kind)

    def signature(self) -> tuple[tuple[str, int, int], ...]:
        return run_signature(self.dir)

    def log_tail(self, max_bytes: int = 20_000) -> str:
        """The end of train.log ('' if missing)."""
        try:
            with _open_regular(self.dir / LOG_FILE) as handle:
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(size - max_bytes, 0))
                return handle.read().decode("utf-8", errors="replace")
        except (_Unreadable, OSError):
            return ""

    # DataFrames for the dashboard (pandas imported only when asked for) -------
    # Each takes the file's records when the caller has read them already (`frames()` reads
    # metrics.jsonl and probes.jsonl once for all of them); otherwise it reads its own.
    def frames(self) -> dict:
        """Every frame below, from one read of metrics.jsonl and one of probes.jsonl."""
        metrics, probes = self.metrics(("epoch", "step")), self.probes(("gates", "grad_through_time"))
        return {"epochs": self.epochs_frame(metrics), "steps": self.steps_frame(metrics),
                "layers": self.layer_grad_norms_frame(metrics), "gates": self.gates_frame(probes),
                "gtt": self.grad_through_time_frame(probes)}

    def _records(self, kind: str, records: list[dict] | None, reader) -> list[dict]:
        return reader(kind) if records is None else [r for r in records if r.get("kind") == kind]

    def epochs_frame(self, metrics: list[dict] | None = None):
        """One row per epoch (the last record wins if a resumed run repeated one)."""
        cols = ["epoch", "train_ppl", "valid_ppl", "lr", "seconds", "clipped_fraction", "words", "time"]
        frame = _frame(self._records("epoch", metrics, self.metrics), cols, numeric=cols)
        if not frame.empty:
            frame = frame.dropna(subset=["epoch"]).drop_duplicates("epoch", keep="last").sort_values("epoch")
        return frame.reset_index(drop=True)

    def steps_frame(self, metrics: list[dict] | None = None):
        cols = ["step", "epoch", "loss", "grad_norm", "clipped", "lr", "words_per_s", "words", "time"]
        frame = _frame(self._records("step", metrics, self.metrics), cols, numeric=[c for c in cols if c != "clipped"])
        return frame.dropna(subset=["step"]).reset_index(drop=True)

    def layer_grad_norms_frame(self, metrics: list[dict] | None = None):
        """Long format: step, epoch, layer, grad_norm (from each step's layer_grad_norms)."""
        columns: dict[str, list] = {"step": [], "epoch": [], "layer": [], "grad_norm": []}
        for r in self._records("step", metrics, self.metrics):  # column lists: half the time of a dict per row
            norms = _dict(r.get("layer_grad_norms"))
            columns["step"] += [r.get("step")] * len(norms)
            columns["epoch"] += [r.get("epoch")] * len(norms)
            columns["layer"] += [str(name) for name in norms]
            columns["grad_norm"] += list(norms.values())
        return _frame(columns, list(columns), numeric=["step", "epoch", "grad_norm"])

    def test_ppl(self) -> float | None:
        return self.summary.test_ppl

    def gates_frame(self, probes: list[dict] | None = None):
        """One row per (epoch, layer, gate): mean, saturation(s), bin_edges, counts."""
        cols = ["epoch", "layer", "gate", "mean", "saturation", "saturation_low", "saturation_high",
                "bin_edges", "counts"]
        return _frame(self._records("gates", probes, self.probes), cols,
                      numeric=["epoch", "layer", "mean", "saturation", "saturation_low", "saturation_high"])

    def grad_through_time_frame(self, probes: list[dict] | None = None):
        """Long format: epoch, layer, wrt, k, norm, nonzero (one row per distance k).

        `nonzero` (the share of units the gradient reaches) is NaN for records without it.
        """
        rows = []
        for r in self._records("grad_through_time", probes, self.probes):
            ks, norms, nonzero = r.get("k"), r.get("norm"), r.get("nonzero")
            if isinstance(ks, list) and isinstance(norms, list):
                shares = nonzero if isinstance(nonzero, list) and len(nonzero) == len(ks) else [None] * len(ks)
                rows += [{"epoch": r.get("epoch"), "layer": r.get("layer"), "wrt": r.get("wrt"), "k": k, "norm": n,
                          "nonzero": z} for k, n, z in zip(ks, norms, shares)]
        columns = ["epoch", "layer", "wrt", "k", "norm", "nonzero"]
        return _frame(rows, columns, numeric=["epoch", "layer", "k", "norm", "nonzero"])


def _frame(records: list[dict] | dict[str, list], columns: list[str], *, numeric: Iterable[str] = ()):
    """A DataFrame with at least `columns`; `numeric` ones coerced (bad values become NaN).

    `records`: one dict per row, or one list per column.
    """
    import pandas as pd  # lazy: `rnnreg list` and the run store itself never need pandas

    if isinstance(records, dict):
        frame = pd.DataFrame(records) if any(records.values()) else pd.DataFrame()
    else:
        frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for col in columns:
        if col not in frame.columns:
            frame[col] = pd.Series(dtype="float64" if col in numeric else "object", index=frame.index)
    for col in numeric:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame[columns + [c for c in frame.columns if c not in columns and c != "kind"]]


def load_run(root: str | os.PathLike[str], run_id: str) -> Run:
    """Open `run_id` for viewing; RunStoreError if there is no such run (or it leaves the root)."""
    run_dir = find_run_dir(root, run_id)
    read_only = is_read_only(run_dir)
    group = run_dir.parent.name if run_dir.parent != Path(root) else None
    doc, _ = read_json(run_dir / CONFIG_FILE)
    status, _ = read_json(run_dir / STATUS_FILE)
    return Run(run_dir, doc, status, summarize_run(run_dir, read_only=read_only, group=group))


# --------------------------------------------------------------------------- mutations


def _writable_run(root: str | os.PathLike[str], run_id: str, verb: str) -> Path:
    run_dir = find_run_dir(root, run_id)
    if is_read_only(run_dir):
        raise RunStoreError(f"cannot {verb} {run_id}: reference runs are read-only")
    return run_dir


def rename_run(root: str | os.PathLike[str], run_id: str, new_name: str) -> None:
    """Change a run's display name (config.json's config.name); the id and directory stay."""
    if not isinstance(new_name, str) or not new_name.strip():
        raise RunStoreError("name: must not be empty")
    new_name = new_name.strip()
    if not valid_name(new_name):
        raise RunStoreError(f"name: at most {MAX_NAME} characters, no control characters")
    run_dir = _writable_run(root, run_id, "rename")
    with _dir_lock(run_dir):
        doc, problem = read_json(run_dir / CONFIG_FILE)
        if doc is None or not isinstance(doc.get("config"), dict):
            raise RunStoreError(f"cannot rename {run_id}: {problem or 'config.json has no config object'}")
        doc["config"]["name"] = new_name
        atomic_write_json(run_dir / CONFIG_FILE, doc)


def delete_run(root: str | os.PathLike[str], run_id: str) -> None:
    """Delete a finished (or failed, cancelled, ...) run; refuses reference and active runs."""
    run_dir = _writable_run(root, run_id, "delete")
    status, _ = read_json(run_dir / STATUS_FILE)
    if status is not None:
        state = effective_state(status)
        if state in ACTIVE_STATES:
            raise RunStoreError(f"cannot delete {run_id}: it is {state}; cancel it first")
    if run_dir.is_symlink():
        run_dir.unlink()  # remove the link, never what it points to
        return
    # Move it out of sight first, so that no reader ever sees a half-deleted run.
    trash = Path(root) / f".trash-{run_id}-{secrets.token_hex(3)}"
    os.rename(run_dir, trash)
    shutil.rmtree(trash)


# --------------------------------------------------------------------------- `rnnreg list`


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _printable(text: str | None) -> str:
    """`text` for a terminal: a control character (a newline, an escape sequence planted in a
    config.json) shows as '?' instead of breaking the table or recolouring the screen."""
    return "".join(c if c.isprintable() else "?" for c in text or "")


def mc_protocol(record: dict) -> str:
    """How an mc_test record's passes drew their masks (rnnreg.mc_eval); records written before the
    protocol was recorded used masks per window with word dropout on."""
    masks = record.get("masks", "window")
    words = record.get("word_dropout", True)
    return str(masks) + (", word dropout on" if words else "")


def _mc_note(s: RunSummary) -> str:
    """' (N=1000)', and the masks where they were not Gal & Ghahramani's (drawn once per stream)."""
    notes = ([f"N={s.mc_samples}"] if s.mc_samples else []) + (
        [f"masks per {s.mc_protocol}"] if s.mc_protocol not in (None, "stream") else [])
    return f" ({', '.join(notes)})" if notes else ""


def format_table(summaries: Iterable[RunSummary]) -> str:
    """An aligned text table of runs for `rnnreg list`."""
    summaries = list(summaries)
    # a column only where some run has it
    with_mc = any(s.mc_test_ppl is not None for s in summaries)
    with_recall = any(s.test_accuracy is not None for s in summaries)  # memory-task runs
    with_variant = any(s.variant for s in summaries)  # settings other than the preset's
    header = ("ID", "NAME", "PRESET", "DROPOUT") + (("OTHER SETTINGS",) if with_variant else ()) \
        + ("STATE", "EPOCHS", "BEST VALID", "TEST") \
        + (("MC TEST",) if with_mc else ()) + (("TEST RECALL",) if with_recall else ())
    rows = [
        (
            s.id, _printable(s.name) or "-", _printable(s.preset) or "-", _printable(s.dropout_label),
        ) + ((_printable(s.variant) or "-",) if with_variant else ()) + (
            s.state + (" (read-only)" if s.read_only else "") + (" !" if s.problems else ""),
            f"{s.epochs_done}/{s.epochs_total if s.epochs_total is not None else '?'}",
            _fmt(s.best_valid_ppl), _fmt(s.test_ppl),
        ) + ((_fmt(s.mc_test_ppl) + _mc_note(s),) if with_mc else ())
        + ((f"{s.test_accuracy:.1%}" if s.test_accuracy is not None else "-",) if with_recall else ())
        for s in summaries
    ]
    if not rows:
        return "no runs"
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = set(range(header.index("EPOCHS"), len(header)))  # numbers align right
    lines = [
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))).rstrip()
        for r in [header, *rows]
    ]
    return "\n".join(lines)
