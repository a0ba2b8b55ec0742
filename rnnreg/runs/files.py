"""JSON and JSONL on disk: written atomically, appended a whole line at a time, read without trusting them.

A missing file, a torn line, a wrong type, a huge line or a symlink gives a problem string, never a crash."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from rnnreg.runs.layout import LOCK_FILE, MAX_JSON_BYTES, MAX_LINE_BYTES, RunStoreError


def utc_now() -> str:
    """Now as ISO-8601 UTC text, e.g. `2026-11-26T14:03:07.123+00:00`."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def strict_json(obj: Any) -> Any:
    """A copy of `obj` with NaN/inf floats as None and tuples as lists (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
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
    text = json.dumps(strict_json(obj), allow_nan=False, indent=2, ensure_ascii=False) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def open_in_run(path: str | os.PathLike[str], flags: int = os.O_WRONLY | os.O_APPEND) -> int:
    """A descriptor for writing `path` in a run directory or the runs root (created 0o644 if missing).

    Anything but a regular file in its place is refused (RunStoreError), a symlink never followed:
    a run copied into the store with `metrics.jsonl -> ~/notes` must not make a resumed trainer
    write there, nor a FIFO planted as train.log hang it.  (The atomic writes above replace a
    link instead of following it.)
    """
    path = Path(path)
    no_follow = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | os.O_CREAT | no_follow, 0o644)
    except OSError as err:
        if os.path.islink(path):
            raise RunStoreError(f"{path.name} in {path.parent.name} is a symlink; "
                                "rnnreg never writes a run's files through one") from None
        if err.errno in (errno.EISDIR, errno.ENXIO):  # a directory; a FIFO nothing reads
            raise RunStoreError(f"{path.name} in {path.parent.name} is not a regular file") from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO opened read-write, a device
        os.close(fd)
        raise RunStoreError(f"{path.name} in {path.parent.name} is not a regular file")
    return fd


@contextlib.contextmanager
def _dir_lock(run_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write of a run's JSON documents across processes."""
    fd = open_in_run(run_dir / LOCK_FILE, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


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
    obj, problem = read_json_value(path, max_bytes=max_bytes)
    if problem is None and not isinstance(obj, dict):
        return None, f"{Path(path).name}: not a JSON object"
    return obj, problem


def read_json_value(path: str | os.PathLike[str], *, max_bytes: int = MAX_JSON_BYTES) -> tuple[Any, str | None]:
    """(the JSON value in `path`, None) or (None, a one-line problem): a regular file, never a
    symlink or a FIFO, of at most `max_bytes`; never raises on content."""
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
    return obj, None


def read_log_tail(path: str | os.PathLike[str], max_bytes: int = 16 * 1024) -> list[str]:
    """The lines of a log's last `max_bytes` bytes ([] where it cannot be read: missing, a
    symlink, not a regular file), the first dropped when it may be cut."""
    try:
        with _open_regular(Path(path)) as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(max(size - max_bytes, 0))
            lines = handle.read(max_bytes).decode("utf-8", "replace").splitlines()
    except (_Unreadable, OSError):
        return []
    return lines[1:] if size > max_bytes else lines


@dataclass(frozen=True)
class JsonlReport:
    """What `scan_jsonl` found: the records, lines skipped, and a torn final line."""

    records: list[dict]
    skipped: int  # invalid / non-object / over-long lines before the end of the file
    torn_tail: bool  # the last line had no newline and did not parse (a writer mid-record)
    problem: str | None  # the file itself could not be read (missing, symlink, ...)
    unterminated: bool = False  # the file does not end with a newline (whatever its last line's kind)


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
    complete = True
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
    return JsonlReport(records, skipped, torn_tail, None, unterminated=not complete)


def read_jsonl(
    path: str | os.PathLike[str], kind: str | Iterable[str] | None = None, *, max_line_bytes: int = MAX_LINE_BYTES
) -> list[dict]:
    """The JSON-object lines of `path` (of `kind`, if given); bad lines skipped, missing file = []."""
    return scan_jsonl(path, kind, max_line_bytes=max_line_bytes).records


# Tolerant reading of one value: the type it should have, or None


# JSON's whole numbers have no bound; one past 2**53 in a hand-edited or corrupt run would
# overflow the int64 and float columns every page builds from these (and crash them all).
_LARGEST_COUNT = 2**53


def finite_number(value: Any) -> float | None:
    """`value` as a float if it is a finite JSON number (not a bool, not a whole number past 2**53), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and abs(value) > _LARGEST_COUNT:
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and abs(value) <= _LARGEST_COUNT
    return value if ok else None


def count_or_none(value: Any) -> int | None:
    """`value` if it is a whole JSON number from 0 to 2**53 (not a bool), else None."""
    number = _int(value)
    return number if number is not None and number >= 0 else None


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
