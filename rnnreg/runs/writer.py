"""RunWriter: the one writer of a run directory (one per training process)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

from rnnreg.runs.layout import (
    CHECKPOINT_FILE, CHECKPOINT_STATE_FILE, CONFIG_FILE, FORMAT, LOG_FILE, METRICS_FILE, PROBES_FILE, RUN_STATES,
    RunStoreError, STATUS_FILE, TERMINAL_STATES, VOCAB_FILE, new_run_id, validate_run_id,
)
from rnnreg.runs.files import (
    atomic_write_bytes, atomic_write_json, open_in_run, read_json, utc_now, _Unreadable, _dir_lock, strict_json,
    _fsync_dir, finite_number, _open_regular, _str,
)
from rnnreg.runs.liveness import effective_state, process_start_time


def _umask() -> int:
    """This process's umask, read without changing it (os.umask sets it, racing other threads)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _new_status(epochs_total: int | None) -> dict[str, Any]:
    now = utc_now()
    return {
        "state": "queued", "pid": None, "pid_start": None, "host": socket.gethostname(),
        "created_at": now, "started_at": None, "updated_at": now, "ended_at": None,
        "epoch": 0, "epochs_total": epochs_total, "message": None,
    }


def _before(record: dict, epoch: int, step: int | None) -> bool:
    """Whether `record` was written before the checkpoint `rewind` goes back to."""
    rec_epoch = finite_number(record.get("epoch"))
    if rec_epoch is None or rec_epoch <= epoch:
        return True
    rec_step = finite_number(record.get("step"))
    return (step is not None and record.get("kind") == "step" and rec_epoch == epoch + 1
            and rec_step is not None and rec_step <= step)


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

    def set_status_if(self, allowed: Iterable[str], state: str, *, recorded: bool = False,
                      **fields: Any) -> dict[str, Any]:
        """`set_status`, only if the run's effective state is one of `allowed`, else RunStoreError.

        `recorded`: compare the state as status.json has it instead (a `running` whose process
        died is then still `running`).  Checked and set under the run's lock, so of two
        processes racing (two `--resume` of one run) exactly one wins.
        """
        if state not in RUN_STATES:
            raise RunStoreError(f"status: unknown state {state!r}; allowed: {', '.join(RUN_STATES)}")
        if state == "running" and "pid" not in fields:
            fields["pid"] = os.getpid()
        return self._merge_status({**fields, "state": state}, allowed=frozenset(allowed), recorded=recorded)

    def _merge_status(self, fields: dict[str, Any], allowed: frozenset[str] | None = None,
                      recorded: bool = False) -> dict[str, Any]:
        with _dir_lock(self.dir):
            status = self.read_status()
            now_in = status.get("state") if recorded else effective_state(status)
            if allowed is not None and now_in not in allowed:
                raise RunStoreError(f"run {self.id} is {now_in}, not {' or '.join(sorted(allowed))}")
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
        line = (json.dumps(strict_json(record), allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")
        fd = self._fds.get(filename)
        if fd is None:
            fd = self._fds[filename] = self._open_append(self.dir / filename)
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view):]

    @staticmethod
    def _open_append(path: Path) -> int:
        fd = open_in_run(path, os.O_RDWR | os.O_APPEND)
        # A process that died mid-write left a torn last line: end it, so that our first
        # record is not glued onto it (readers then skip just the torn one).
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            os.write(fd, b"\n")
        return fd

    def rewind(self, epoch: int, step: int | None = None) -> int:
        """Forget every record written after completed `epoch` (to resume from its checkpoint), or
        with `step`, after global step `step` within epoch + 1 (a mid-epoch checkpoint).

        metrics.jsonl and probes.jsonl are rewritten atomically, keeping each record whose
        "epoch" is at most `epoch` (or has none), and with `step` the "step" records of epoch + 1
        up to that step; never a "test" record; torn and unreadable lines go too.  `epoch` -1
        drops every record that has an epoch.  Returns the number of lines dropped.  Call it
        before appending anything with this writer.
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
                if isinstance(rec, dict) and rec.get("kind") != "test" and _before(rec, epoch, step):
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
