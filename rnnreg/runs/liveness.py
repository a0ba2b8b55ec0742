"""Is a run's process still there?  The state a run shows when its trainer died without saying so."""

from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Any, Mapping

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
