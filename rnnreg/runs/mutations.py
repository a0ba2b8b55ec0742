"""Renaming and deleting a run (never a shipped, read-only one), and whether one may be resumed."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Iterator

from rnnreg.config import MAX_NAME, valid_name
from rnnreg.runs.layout import (ACTIVE_STATES, CONFIG_FILE, LOCK_FILE, RESUMABLE_STATES, RUN_FILES, RunStoreError,
                                STATUS_FILE, find_run_dir, is_read_only)
from rnnreg.runs.files import atomic_write_json, read_json, _dir_lock
from rnnreg.runs.liveness import effective_state


def _writable_run(root: str | os.PathLike[str], run_id: str, verb: str) -> Path:
    run_dir = find_run_dir(root, run_id)
    if is_read_only(run_dir):
        raise RunStoreError(f"cannot {verb} {run_id}: reference runs are read-only")
    return run_dir


@contextlib.contextmanager
def _said_as_store_error(verb: str, run_id: str) -> Iterator[None]:
    """An OSError (a read-only disk, a directory owned by another user) as the page's one-line RunStoreError."""
    try:
        yield
    except OSError as err:
        raise RunStoreError(f"cannot {verb} {run_id}: {err.strerror or type(err).__name__}"
                            f"{f' ({err.filename})' if err.filename else ''}") from None


def rename_run(root: str | os.PathLike[str], run_id: str, new_name: str) -> None:
    """Change a run's display name (config.json's config.name); the id and directory stay."""
    if not isinstance(new_name, str) or not new_name.strip():
        raise RunStoreError("name: must not be empty")
    new_name = new_name.strip()
    if not valid_name(new_name):
        raise RunStoreError(f"name: at most {MAX_NAME} characters, no control characters")
    run_dir = _writable_run(root, run_id, "rename")
    with _said_as_store_error("rename", run_id), _dir_lock(run_dir):
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
    with _said_as_store_error("delete", run_id):
        if run_dir.is_symlink():
            run_dir.unlink()  # remove the link, never what it points to
            return
        # Move it out of sight first, so that no reader ever sees a half-deleted run.
        trash = Path(root) / f".trash-{run_id}-{secrets.token_hex(3)}"
        os.rename(run_dir, trash)
        shutil.rmtree(trash)


def _exists_but_not_a_file(path: Path) -> bool:
    try:
        return not stat.S_ISREG(path.lstat().st_mode)
    except OSError:  # missing: the trainer makes it
        return False


def resume_refusal(run_dir: str | os.PathLike[str]) -> str | None:
    """Why `rnnreg train --resume` refuses this run, from its status and whether its config.json is
    there to read; None if it may try.

    Cheap (no torch), for a page to ask before it offers a resume; the trainer asks again under
    the run's lock, then checks its config, corpus and checkpoint as it loads them.
    """
    run_dir = Path(run_dir)
    if is_read_only(run_dir):
        return "reference runs are read-only"
    linked = [name for name in (*RUN_FILES, LOCK_FILE) if (run_dir / name).is_symlink()]
    if linked:  # a trainer would write through them, outside the store (the writers refuse them too)
        return (f"its {', '.join(linked)} {'is a symlink' if len(linked) == 1 else 'are symlinks'}; rnnreg writes "
                "a run's files only in its own directory (copy the files in instead of linking them)")
    odd = [name for name in (*RUN_FILES, LOCK_FILE) if _exists_but_not_a_file(run_dir / name)]
    if odd:  # a FIFO would hang the writer, a directory fail it
        return f"its {', '.join(odd)} {'is' if len(odd) == 1 else 'are'} not a regular file"
    status, problem = read_json(run_dir / STATUS_FILE)
    if status is None:
        return problem
    state, message = effective_state(status), status.get("message")
    said = f" ({message})" if message else ""
    if state == "finished":
        return f"it already finished{said}; start a new run to train longer"
    if state in ACTIVE_STATES:
        return (f"it is {state} (pid {status.get('pid')}); wait for it or stop it first with "
                f"rnnreg cancel {run_dir.name}")
    if state == "diverged":
        return f"it diverged{said}; resuming would repeat the same steps, so start a new run with a lower learning rate"
    if state not in RESUMABLE_STATES:
        return f"its state is {state}; only {', '.join(sorted(RESUMABLE_STATES))} runs can be resumed"
    doc, problem = read_json(run_dir / CONFIG_FILE)  # its settings: what the trainer would go on with
    if doc is None or not isinstance(doc.get("config"), dict):
        return problem or "config.json has no config object"
    return None
