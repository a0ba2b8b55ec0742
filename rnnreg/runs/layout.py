"""Where runs live: the runs root, run ids, the files of a run directory, and paths kept inside the root."""

from __future__ import annotations

import os
import re
import secrets
import time
from pathlib import Path


FORMAT = 1  # the version of config.json's layout this module writes and reads

RUN_STATES = ("queued", "running", "finished", "failed", "cancelled", "diverged", "interrupted")
ACTIVE_STATES = frozenset({"queued", "running"})
TERMINAL_STATES = frozenset({"finished", "failed", "cancelled", "diverged", "interrupted"})
# What `rnnreg train --resume` continues: a run whose process died, a cancelled or a failed one.  A finished
# run has nothing left to do; a diverged one would repeat the same steps and diverge again.
RESUMABLE_STATES = frozenset({"interrupted", "cancelled", "failed"})
CUT_SHORT_STATES = TERMINAL_STATES - {"finished"}  # ended before its last epoch: its message says why
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


class NoSuchRun(RunStoreError):
    """No run has this id (or it is no valid id); not raised for one that is there but refused."""


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


def find_run_dir(root: str | os.PathLike[str], run_id: str) -> Path:
    """The directory of `run_id` (`<root>/<id>` or `<root>/<group>/<id>`), confined to the root.

    Raises RunStoreError for a bad id, a run that does not exist, or a path that leaves the
    root through a symlink (refused, never followed).
    """
    try:
        validate_run_id(run_id)
    except RunStoreError as err:
        raise NoSuchRun(str(err)) from None
    root = Path(root)
    try:
        root_resolved = root.resolve(strict=True)
    except OSError:
        raise RunStoreError(f"no run {run_id!r}: the runs directory {root} does not exist") from None
    top = root / run_id
    if os.path.lexists(top):
        if not _inside(root_resolved, top):
            raise RunStoreError(f"run {run_id!r}: its path leaves the runs directory {root}; refused")
        if _is_run_dir(top):  # what list_runs lists: a folder without a run's files is no run to delete
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
    raise NoSuchRun(f"no run {run_id!r} in {root}")


def is_read_only(run_dir: str | os.PathLike[str]) -> bool:
    """Runs in a `reference/` folder are shipped with rnnreg and never changed.

    Decided on the resolved path, so that no spelling gets past it: an absolute path, one
    relative to another directory, a link, or a runs root that is the reference folder itself.
    """
    try:
        return Path(run_dir).resolve().parent.name == REFERENCE_GROUP
    except (OSError, RuntimeError):  # a link loop: not a run anyone can write either
        return True
