"""The training queue's line: runs waiting for a slot take them first in, first out.

A run joins the line when it is queued - `launch` before it starts the trainer, so a trainer
still importing torch keeps its place; a resume or the command line's `--max-concurrent` as its
trainer starts waiting - with a ticket named by that moment:

    <root>/.slots/line/<time_ns>-<run id>    {"limit": 2, "run": "<run folder, relative to root>", "joined_ns": ...}

(a live run, one the lecture trains while the room watches, is placed ahead of the runs waiting
in the background: its name's time less 10**18 ns).

A trainer that finds slot i free takes it only if no run ahead of it in the line could take
slot i too (its limit is above i) and still waits: a limit-2 run does not wait behind a limit-1
run for the second slot, which that one never takes.  A waiting trainer shows it is there: it
writes its pid into its ticket as it starts to wait, then touches the ticket at every poll.  A
ticket whose run no longer waits - cancelled or deleted, or its trainer silent for HEARTBEAT_S
(dead, stopped with Ctrl-Z, on another machine, or a pid reused) or never started - is cleared by
whoever finds it; a trainer leaves the line when it gets its slot or stops waiting.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

from rnnreg.runs import (
    STATUS_FILE,
    RunStoreError,
    atomic_write_json,
    effective_state,
    read_json,
)

LINE_DIR = "line"  # under launch.SLOTS_DIR
# A launched run whose trainer has not yet started to wait (torch takes seconds to import, more on a
# busy machine) keeps its place so long; a waiting trainer's ticket, touched every poll (0.2 s),
# so long after its last touch.
UNSTARTED_GRACE_S = 60.0
HEARTBEAT_S = 10.0
_TICKET = re.compile(r"\d{20}-.")


def _line(root: Path) -> Path:
    from rnnreg.launch import SLOTS_DIR  # (launch imports this module)

    line = Path(root) / SLOTS_DIR / LINE_DIR
    if line.is_symlink() or line.parent.is_symlink():  # tickets would be written wherever it points
        raise RunStoreError(f"{line} is a symlink; rnnreg keeps its queue only in a directory of its own")
    return line


# Subtracted from a live run's place (`join(..., live=True)`): it sorts before every ticket joined
# normally (time_ns is about 1.8e18 now), and in the order they joined among live runs.
_LIVE_AHEAD_NS = 10**18


def join(root: Path, run_dir: Path, limit: int, *, live: bool = False) -> Path:
    """Put the run in `run_dir` at the end of the line of `root`'s queue; returns its ticket.
    `live`: a run someone watches as it trains (the lecture's live runs) goes ahead of the runs
    waiting in the background, behind the live runs before it."""
    line = _line(root)
    try:
        line.mkdir(parents=True, exist_ok=True)
        leave(root, run_dir.name)  # a resumed run's old ticket: it queues again from now
        joined = time.time_ns()
        ticket = line / f"{joined - (_LIVE_AHEAD_NS if live else 0):020d}-{run_dir.name}"
        atomic_write_json(ticket, {"limit": limit, "run": os.path.relpath(run_dir, root), "joined_ns": joined})
    except OSError as err:  # a file where the line's folder belongs, a full or read-only disk
        raise RunStoreError(f"cannot queue {run_dir.name} in {line}: {err.strerror or err}") from None
    return ticket


def heartbeat(root: Path, run_id: str, ticket: Path | None) -> Path | None:
    """For the trainer waiting for `run_id`: its ticket, marked with its pid the first time (`ticket`
    None), touched every time after; None once it is no longer in the line (cleared while it was
    silent: it then takes any free slot, as a run in no line does)."""
    if ticket is None:
        mine = next((t for t in _tickets(root) if _run_of(t) == run_id), None)
        doc, _problem = read_json(mine) if mine is not None else (None, None)
        if doc is None:
            return None
        with contextlib.suppress(OSError):
            atomic_write_json(mine, {**doc, "pid": os.getpid()})
            return mine
        return None
    try:
        os.utime(ticket)
    except OSError:
        return None
    return ticket


def leave(root: Path, run_id: str) -> None:
    for ticket in _tickets(root):
        if _run_of(ticket) == run_id:
            with contextlib.suppress(OSError):
                ticket.unlink()


def _run_of(ticket: Path) -> str:
    """The run id a ticket is for: its name after the time it joined."""
    return ticket.name.split("-", 1)[1]


def _tickets(root: Path) -> list[Path]:
    """The line, first to last (names start with the time they joined, zero-padded)."""
    line = _line(root)
    try:
        names = sorted(n for n in os.listdir(line) if _TICKET.match(n))  # (not an atomic write's temp file)
    except OSError:  # no line yet
        return []
    return [line / n for n in names]


def someone_ahead(root: Path, run_id: str, slot: int) -> bool:
    """Whether a run ahead of `run_id` in the line still waits and could take `slot`: it gets it.
    False for a run not in the line (it takes any free slot, as before there was one)."""
    tickets = _tickets(root)
    mine = next((i for i, t in enumerate(tickets) if _run_of(t) == run_id), None)
    if mine is None:
        return False
    for ticket in tickets[:mine]:
        doc, _problem = read_json(ticket)
        limit = doc.get("limit") if doc else None
        if isinstance(limit, int) and limit <= slot:
            continue  # it never takes this slot: no reason to wait for it
        if doc is not None and isinstance(limit, int) and _waits(root, doc, ticket):
            return True
        with contextlib.suppress(OSError):
            ticket.unlink()  # no longer waiting (or not a ticket): out of the line
    return False


def places(root: Path) -> dict[str, int]:
    """run id -> its place in the line (1: next to get a slot), for the runs still waiting."""
    try:
        tickets = _tickets(root)
    except RunStoreError:  # a planted symlink: the trainers say so; a page only shows no places
        return {}
    waiting = []
    for ticket in tickets:
        doc, _problem = read_json(ticket)
        if doc is not None and _waits(root, doc, ticket):
            waiting.append(_run_of(ticket))
    return {run_id: place for place, run_id in enumerate(waiting, start=1)}


def _waits(root: Path, doc: dict, ticket: Path) -> bool:
    """The ticket's run is still queued, and its trainer polls (a touch within HEARTBEAT_S) or is
    about to start (UNSTARTED_GRACE_S from joining)."""
    run = doc.get("run")
    if not isinstance(run, str) or Path(run).is_absolute() or ".." in Path(run).parts:
        return False
    status, _problem = read_json(Path(root) / run / STATUS_FILE)
    if status is None or effective_state(status) != "queued":
        return False
    if "pid" in doc:  # its trainer waits: alive if it touched the ticket lately
        try:
            return time.time() - ticket.stat().st_mtime < HEARTBEAT_S
        except OSError:
            return False
    joined_ns = doc.get("joined_ns")
    if not isinstance(joined_ns, int):  # (its place in line is when it joined, but for a live run's)
        joined_ns = int(ticket.name.split("-", 1)[0])
    return time.time_ns() - joined_ns < UNSTARTED_GRACE_S * 1e9
