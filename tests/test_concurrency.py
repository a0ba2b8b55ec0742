"""Concurrency: 8 real tiny trainers launched at once through the queue (2 slots), read by two
readers while they write.  Each run ends with its own files, never more than 2 train at once
(from status.json's started_at/ended_at), and both readers see the same, consistent truth.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path

from crash_trainer import REPO, tiny_config, wait_until, write_corpus
from rnnreg.config import to_dict
from rnnreg.launch import active_runs, launch
from rnnreg.runs import list_runs, load_run

RUNS, SLOTS, EPOCHS = 8, 2, 2
ORDER = {"queued": 0, "running": 1, "finished": 2}


def seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    now = peak = 0
    for _, step in events:  # at equal times an end (-1) sorts before a start (+1)
        now += step
        peak = max(peak, now)
    return peak


class Reader(threading.Thread):
    """Lists the runs again and again while they train, recording what it saw."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.stop, self.snapshots, self.errors = root, threading.Event(), [], []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.snapshots.append({s.id: s for s in list_runs(self.root)})
            except Exception as err:  # a reader must never fail: record it for the assertion
                self.errors.append(repr(err))
            time.sleep(0.02)


def test_eight_launched_runs_share_two_slots_and_readers_agree(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    config = to_dict(tiny_config(write_corpus(tmp_path / "corpus"), epochs=EPOCHS))
    readers = [Reader(root), Reader(root)]
    for reader in readers:
        reader.start()
    ids = [launch(root, config, name=f"run {i}", max_concurrent=SLOTS) for i in range(RUNS)]
    wait_until(lambda: not active_runs(root), 180, "all runs to end", poll=0.2)
    for reader in readers:
        reader.stop.set()
        reader.join()

    # every run finished, with its own files
    runs = [load_run(root, rid) for rid in ids]
    assert len(set(ids)) == RUNS
    for i, run in enumerate(runs):
        assert run.status["state"] == "finished", (run.id, run.status, run.log_tail())
        assert run.config_doc["id"] == run.id and run.summary.name == f"run {i}"
        assert [r["epoch"] for r in run.metrics("epoch")] == list(range(1, EPOCHS + 1))
        assert len(run.metrics("test")) == 1 and run.summary.problems == ()
        assert (run.dir / "checkpoint.safetensors").is_file()
    assert len({run.status["pid"] for run in runs}) == RUNS
    assert len({tuple(r["valid_ppl"] for r in run.metrics("epoch")) for run in runs}) == 1  # same config, seed

    # the queue kept its limit, and was used
    intervals = [(seconds(r.status["started_at"]), seconds(r.status["ended_at"])) for r in runs]
    assert most_at_once(intervals) == SLOTS, intervals
    # first in, first out (rnnreg.line): no run started before one launched ahead of it, though
    # each trainer imports torch at its own pace (a run writes its start a moment after leaving
    # the line, hence the tenth of a second)
    starts = [start for start, _ in intervals]
    assert all(a <= b + 0.1 for a, b in zip(starts, starts[1:])), starts

    # the readers: never an error or a broken run, never more than SLOTS running, no run
    # going backwards (queued -> running -> finished, epochs only growing)
    for reader in readers:
        assert reader.errors == [] and len(reader.snapshots) > 5
        last: dict[str, tuple[int, int]] = {}
        for snapshot in reader.snapshots:
            assert sum(s.state == "running" for s in snapshot.values()) <= SLOTS
            for rid, summary in snapshot.items():
                assert summary.state in ORDER and summary.problems == (), summary
                now = (ORDER[summary.state], summary.epochs_done)
                assert now >= last.get(rid, (0, 0)), (rid, last.get(rid), now)
                last[rid] = now

    # and, once it is all written, two readers see exactly the same
    first, second = ([s.to_json() for s in list_runs(root)] for _ in range(2))
    assert first == second

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    tables = []
    for _session in range(2):
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
        at.switch_page("pages/runs.py").run()
        assert not at.exception, [e.value for e in at.exception]
        tables.append(at.dataframe[0].value.sort_values("id").reset_index(drop=True))
    assert tables[0].equals(tables[1]) and len(tables[0]) == RUNS
    assert set(tables[0]["state"]) == {"finished"}


# --- the queue from the command line --------------------------------------------------------


def _waiting_trainer(root: Path, *argv: str):
    """`rnnreg train ARGV --max-concurrent 1 --runs-dir ROOT` while this test holds the only slot."""
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "rnnreg", "train", *argv, "--max-concurrent", "1",
                             "--runs-dir", str(root)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _status(root: Path, run_id: str) -> dict:
    return load_run(root, run_id).status or {}


def test_a_cli_run_waits_for_a_slot_and_cancel_stops_it_there(tmp_path):
    from rnnreg.launch import acquire_slot, cancel
    from rnnreg.training_run import EXIT_CANCELLED

    root, corpus = tmp_path / "runs", write_corpus(tmp_path / "corpus")
    held = acquire_slot(root, 1)
    try:
        trainer = _waiting_trainer(root, "--preset", "demo", "--epochs", "1", "--data", str(corpus),
                                   "--device", "cpu")
        run_id = Path(wait_until(lambda: trainer.stdout.readline().strip(), 60, "the run's directory")).name
        status = wait_until(lambda: (s := _status(root, run_id)).get("message") and s["message"].startswith("waiting") and s,
                            60, "the run waiting for a slot")
        assert status["state"] == "queued" and status["pid"] == trainer.pid  # queued, not training beside us
        assert "asked run" in cancel(root, run_id)
        assert trainer.wait(60) == EXIT_CANCELLED
        assert _status(root, run_id)["state"] == "cancelled"
    finally:
        held.release()


def test_cancel_stops_a_resume_waiting_for_a_slot(tmp_path):
    from rnnreg.launch import acquire_slot, cancel
    from rnnreg.runs import RunWriter
    from rnnreg.training_run import EXIT_CANCELLED

    root = tmp_path / "runs"
    writer = RunWriter.create(root, to_dict(tiny_config(write_corpus(tmp_path / "corpus"), epochs=2)))
    writer.set_status("cancelled", message="cancelled by the user")  # resumable; no checkpoint: from epoch 0
    writer.update_status(started_at="2026-01-01T00:00:00+00:00")  # it stopped long ago
    held = acquire_slot(root, 1)
    try:
        resumer = _waiting_trainer(root, "--resume", writer.id)
        wait_until(lambda: _status(root, writer.id).get("pid") == resumer.pid, 60, "the resume claiming the run")
        assert _status(root, writer.id)["state"] == "queued"
        assert "asked run" in cancel(root, writer.id)  # before, it only marked the run and the resume trained it
        assert resumer.wait(60) == EXIT_CANCELLED
        status = _status(root, writer.id)
        assert status["state"] == "cancelled" and status["message"] == "cancelled while waiting to resume"
    finally:
        held.release()
    assert not load_run(root, writer.id).epochs_frame().shape[0]  # it never trained
    assert load_run(root, writer.id).summary.wall_seconds < 60  # and the months since it stopped are no wall
