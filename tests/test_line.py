"""The queue's line (rnnreg.line): waiting runs take the slots first in, first out."""

from __future__ import annotations

import json
import os
import time

from rnnreg import line
from rnnreg.launch import SLOTS_DIR, acquire_slot
from rnnreg.runs import RunWriter

CONFIG = {"preset": "demo", "name": None, "dropout": {"placement": "none", "rates": {}}, "train": {"epochs": 2}}


def queued(root, name: str, limit: int = 1, pid: int | None = None) -> RunWriter:
    """A run queued by a live trainer (this process), in the line."""
    writer = RunWriter.create(root, CONFIG, name=name, pid=os.getpid() if pid is None else pid)
    line.join(root, writer.dir, limit)
    return writer


def gives_up_after(seconds: float):
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end


def in_line(root) -> list[str]:
    return [t.name.split("-", 1)[1] for t in line._tickets(root)]


def test_a_free_slot_goes_to_the_first_in_line_not_to_whoever_asks_first(tmp_path):
    first, second, third = (queued(tmp_path, n) for n in ("first", "second", "third"))
    assert in_line(tmp_path) == [first.id, second.id, third.id]
    # the third asks first, while the slot is free: it waits, the slot is the first's
    assert acquire_slot(tmp_path, 1, poll=0.02, should_stop=gives_up_after(0.3), run_id=third.id) is None
    assert in_line(tmp_path) == [first.id, second.id]  # it stopped waiting: out of the line
    with acquire_slot(tmp_path, 1, should_stop=gives_up_after(5), run_id=first.id) as slot:
        assert slot.index == 0 and in_line(tmp_path) == [second.id]  # in its slot: out of the line


def test_a_run_does_not_wait_for_a_slot_that_those_ahead_never_take(tmp_path):
    held = acquire_slot(tmp_path, 1)  # slot 0 busy
    ahead = queued(tmp_path, "sweep run", limit=1)  # waits for slot 0 only
    lecture = queued(tmp_path, "lecture pair", limit=2)
    slot = acquire_slot(tmp_path, 2, should_stop=gives_up_after(5), run_id=lecture.id)
    assert slot is not None and slot.index == 1
    assert in_line(tmp_path) == [ahead.id]
    slot.release()
    held.release()


def test_a_run_that_no_longer_waits_leaves_the_line_to_the_next(tmp_path):
    gone = queued(tmp_path, "cancelled meanwhile")
    gone.set_status("cancelled", message="cancelled while queued")
    queued(tmp_path, "its trainer died", pid=2**22 + 12345)  # no such process
    deleted = queued(tmp_path, "deleted")
    os.rename(deleted.dir, tmp_path / ".deleted")
    (tmp_path / SLOTS_DIR / line.LINE_DIR / f"{1:020d}-garbage").write_text("{not json")  # first in line
    waiting = queued(tmp_path, "waiting")
    with acquire_slot(tmp_path, 1, should_stop=gives_up_after(5), run_id=waiting.id) as slot:
        assert slot is not None
    assert in_line(tmp_path) == []  # each stale ticket cleared by the run behind it
    (tmp_path / SLOTS_DIR / line.LINE_DIR / "notes.txt").write_text("not a ticket")  # no name of the line's
    assert in_line(tmp_path) == []


def test_a_launched_run_keeps_its_place_until_its_trainer_starts_but_not_for_ever(tmp_path):
    unstarted = RunWriter.create(tmp_path, CONFIG, name="launched, no pid yet")
    line.join(tmp_path, unstarted.dir, 1)
    later = queued(tmp_path, "later")
    assert acquire_slot(tmp_path, 1, poll=0.02, should_stop=gives_up_after(0.3), run_id=later.id) is None
    ticket = line._tickets(tmp_path)[0]  # as if it had joined longer ago than the launcher could take
    doc = json.loads(ticket.read_text())
    ticket.write_text(json.dumps({**doc, "joined_ns": time.time_ns() - int(line.UNSTARTED_GRACE_S * 1e9) - 10**9}))
    later_again = queued(tmp_path, "later again")
    assert acquire_slot(tmp_path, 1, should_stop=gives_up_after(5), run_id=later_again.id) is not None


def test_a_waiting_trainer_that_falls_silent_loses_its_place(tmp_path):
    """Stopped with Ctrl-Z, waiting on another machine, or its pid reused: alive to the status file,
    yet it never takes the slot; before, every run behind it waited for ever."""
    stopped = queued(tmp_path, "stopped with ctrl-z")
    ticket = line.heartbeat(tmp_path, stopped.id, None)  # it started to wait: its pid in its ticket
    assert json.loads(ticket.read_text())["pid"] == os.getpid()
    later = queued(tmp_path, "later")
    assert acquire_slot(tmp_path, 1, poll=0.02, should_stop=gives_up_after(0.3), run_id=later.id) is None
    long_ago = time.time() - line.HEARTBEAT_S - 1  # its last touch
    os.utime(ticket, (long_ago, long_ago))
    later = queued(tmp_path, "later again")
    with acquire_slot(tmp_path, 1, should_stop=gives_up_after(5), run_id=later.id) as slot:
        assert slot is not None
    assert line.heartbeat(tmp_path, stopped.id, ticket) is None  # woken up: out of the line, it takes any slot


def test_the_lectures_live_runs_wait_ahead_of_the_background_runs_in_the_order_they_came(tmp_path):
    """The room watches them train: before, they waited behind every limit-1 run already queued."""
    background = [queued(tmp_path, f"sweep run {i}") for i in range(2)]
    live = []
    for name in ("live none", "live zaremba"):  # as launch(..., live=True) makes them: no trainer's pid yet
        writer = RunWriter.create(tmp_path, CONFIG, name=name)
        line.join(tmp_path, writer.dir, 2, live=True)
        live.append(writer)
    assert in_line(tmp_path) == [live[0].id, live[1].id, background[0].id, background[1].id]
    assert line.places(tmp_path) == {r.id: i for i, r in enumerate(live + background, start=1)}  # none stale yet
    assert acquire_slot(tmp_path, 1, poll=0.02, should_stop=gives_up_after(0.3), run_id=background[0].id) is None


def test_a_resumed_run_queues_again_from_the_end(tmp_path):
    resumed = queued(tmp_path, "resumed")
    other = queued(tmp_path, "other")
    line.join(tmp_path, resumed.dir, 1)
    assert in_line(tmp_path) == [other.id, resumed.id]


def test_a_run_not_in_the_line_takes_any_free_slot_as_before(tmp_path):
    queued(tmp_path, "in line, waiting")
    with acquire_slot(tmp_path, 1, should_stop=gives_up_after(5), run_id="20260101-000000-not-in-line") as slot:
        assert slot is not None
    with acquire_slot(tmp_path, 1, should_stop=gives_up_after(5)) as slot:  # no run id: no line
        assert slot is not None


def test_places_in_line_read_as_english():
    from rnnreg.runs.table import place_text

    assert [place_text(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101, 111)] == [
        f"{n} in line" for n in ("1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "101st", "111th")]


def test_the_command_lines_list_says_where_a_queued_run_stands_too(tmp_path, capsys):
    from rnnreg.cli import main

    first = queued(tmp_path, "first")
    queued(tmp_path, "second")
    first.set_status("running")
    assert main(["list", "--runs-dir", str(tmp_path)]) == 0
    rows = {row.split()[1]: row for row in capsys.readouterr().out.splitlines()[1:]}
    assert "queued (1st in line)" in rows["second"] and "in line" not in rows["first"]
