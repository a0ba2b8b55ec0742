"""Is a run's process still there?  The state a run shows when its trainer died without saying so,
and what its log says of why."""

from __future__ import annotations

import contextlib
import os
import re
import socket
from pathlib import Path
from typing import Any, Mapping, Sequence

from rnnreg.runs.layout import ACTIVE_STATES, RUN_STATES, UNKNOWN_STATE


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


ERROR_PREFIX = "rnnreg: error: "  # how the command line reports an error it stops on (rnnreg.cli.main prints it)
_TRACEBACK = "Traceback (most recent call last):"
_LOG_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")  # a logging line: the trainer was still going


def last_words(lines: Sequence[str]) -> str | None:
    """Why a trainer's log says it stopped: its closing `rnnreg: error: ...` line (prefix dropped)
    or the exception line that closes a traceback; None when the log ends any other way (a
    SIGKILL, the OOM killer, a power cut say nothing)."""
    said = [line.rstrip() for line in lines if line.strip()]
    if not said:
        return None
    last = said[-1]
    if last.startswith(ERROR_PREFIX):
        return last.removeprefix(ERROR_PREFIX)
    if last[:1].isspace():  # a frame of a traceback cut short
        return None
    starts = [i for i, line in enumerate(said) if line.startswith(_TRACEBACK)]
    if not starts or any(_LOG_RECORD.match(line) for line in said[starts[-1]:]):
        return None  # no traceback, or training logged on after it (an earlier attempt's crash)
    return last.strip()

