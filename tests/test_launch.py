"""Launching, queueing and cancelling training processes, with a fake trainer."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rnnreg import launch as launch_mod
from rnnreg import line
from rnnreg import runs
from rnnreg.launch import acquire_slot, active_runs, cancel, launch, trainer_command
from rnnreg.runs import RunStoreError, RunWriter

REPO = Path(__file__).resolve().parent.parent
CONFIG = {"preset": "demo", "name": None, "dropout": {"placement": "none", "rates": {}}, "train": {"epochs": 2}}

# Behaves like the real trainer as far as the run store is concerned: waits for a slot while
# queued, runs for `hold` seconds, ends finished - or cancelled on SIGTERM.
FAKE_TRAINER = textwrap.dedent(
    """
    import signal, sys, time
    from pathlib import Path
    from rnnreg.launch import acquire_slot
    from rnnreg.runs import RunWriter

    run_dir, limit, hold = Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])  # argv[1]: "train"
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    writer = RunWriter.open(run_dir)
    print("fake trainer starting", flush=True)
    with (run_dir.parent / "starts.txt").open("a") as f:
        f.write(run_dir.name + "\\n")
    slot = acquire_slot(run_dir.parent, limit, poll=0.05, should_stop=lambda: bool(stop))
    if slot is None:
        writer.set_status("cancelled", message="cancelled while queued")
        sys.exit(0)
    writer.set_status("running", slot=slot.index)
    end = time.time() + hold
    while time.time() < end and not stop:
        time.sleep(0.02)
    writer.set_status("cancelled" if stop else "finished", epoch=2)
    """
)


@pytest.fixture
def fake(tmp_path_factory):
    """A command factory for launch() that runs FAKE_TRAINER holding for `hold` seconds."""
    # `python .../rnnreg train ...`: what Cancel takes for a trainer; not in tmp_path, the tests' runs root
    script = tmp_path_factory.mktemp("fake") / "rnnreg"
    script.write_text(FAKE_TRAINER)

    def factory(hold: float = 0.0):
        def command(run_dir, *, max_concurrent, python):
            return [python, str(script), "train", str(run_dir), str(max_concurrent), str(hold)]

        return command

    yield factory
    for proc in list(launch_mod._children.values()):  # never leave a fake trainer behind
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    launch_mod._children.clear()


# A process that sleeps and whose command line reads as a trainer's (python -c ... -m rnnreg train)
STAND_IN = [sys.executable, str(REPO / "tests" / "stand_in" / "rnnreg"), "train"]


def wait_for(predicate, timeout=10.0, what="condition"):
    end = time.time() + timeout
    while time.time() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def status_of(root, run_id) -> dict:
    return json.loads((runs.find_run_dir(root, run_id) / "status.json").read_text())


def state_of(root, run_id) -> str:
    return runs.effective_state(status_of(root, run_id))


def test_trainer_command_is_argv_for_the_cli(tmp_path):
    assert trainer_command(tmp_path / "r", max_concurrent=3, python="/py") == [
        "/py", "-m", "rnnreg", "train", "--run-dir", str(tmp_path / "r"), "--max-concurrent", "3"]


def test_launch_starts_a_background_trainer(tmp_path, fake):
    root = tmp_path / "runs"
    run_id = launch(root, CONFIG, name="first", command=fake(0.0))
    run_dir = root / run_id
    assert "-first-" in run_id
    pid = wait_for(lambda: status_of(root, run_id).get("pid"), what="pid recorded")
    assert pid == launch_mod._children[pid].pid
    wait_for(lambda: status_of(root, run_id)["state"] == "finished", what="finished")
    status = status_of(root, run_id)
    assert status["pid"] == pid and status["started_at"] and status["ended_at"] and status["slot"] == 0
    assert "fake trainer starting" in (run_dir / "train.log").read_text()  # stdout goes to the log
    launch_mod._children[pid].wait()
    assert json.loads((run_dir / "config.json").read_text())["config"]["name"] == "first"


def test_launch_runs_in_its_own_session(tmp_path, fake):
    run_id = launch(tmp_path, CONFIG, command=fake(5.0))
    pid = wait_for(lambda: status_of(tmp_path, run_id).get("pid"))
    assert os.getsid(pid) == pid != os.getsid(0)


def test_same_request_id_launches_once(tmp_path, fake):
    first = launch(tmp_path, CONFIG, request_id="click-1", command=fake(0.0))
    again = launch(tmp_path, CONFIG, request_id="click-1", command=fake(0.0))
    other = launch(tmp_path, CONFIG, request_id="click-2", command=fake(0.0))
    assert again == first != other
    wait_for(lambda: len((tmp_path / "starts.txt").read_text().split()) == 2 if (tmp_path / "starts.txt").exists()
             else False, what="two starts")
    time.sleep(0.3)
    assert sorted((tmp_path / "starts.txt").read_text().split()) == sorted([first, other])
    assert len([p for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 2


def test_concurrent_launches_of_one_request_make_one_run(tmp_path, fake):
    ids: list[str] = []
    threads = [threading.Thread(target=lambda: ids.append(launch(tmp_path, CONFIG, request_id="r", command=fake(0.0))))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1 and len(ids) == 6


def test_launch_failure_marks_the_run_failed(tmp_path):
    with pytest.raises(RunStoreError, match="could not start"):
        launch(tmp_path, CONFIG, python=str(tmp_path / "no-such-python"))
    (summary,) = runs.list_runs(tmp_path)
    assert summary.state == "failed" and "could not start" in summary.message


@pytest.mark.parametrize("bad", [0, -1, True, "2"])
def test_launch_refuses_bad_max_concurrent(tmp_path, bad):
    with pytest.raises(RunStoreError, match="max concurrent"):
        launch(tmp_path, CONFIG, max_concurrent=bad)
    assert runs.list_runs(tmp_path) == []


def test_queue_runs_one_at_a_time(tmp_path, fake):
    first = launch(tmp_path, CONFIG, max_concurrent=1, command=fake(30.0))
    wait_for(lambda: state_of(tmp_path, first) == "running", what="first running")
    second = launch(tmp_path, CONFIG, max_concurrent=1, command=fake(0.0))
    wait_for(lambda: status_of(tmp_path, second).get("pid"), what="second started")
    time.sleep(0.5)
    assert state_of(tmp_path, second) == "queued"  # waiting for the slot
    assert {s.id: s.state for s in active_runs(tmp_path)} == {first: "running", second: "queued"}
    cancel(tmp_path, first)
    wait_for(lambda: status_of(tmp_path, second)["state"] == "finished", what="second finished after first")
    assert status_of(tmp_path, first)["state"] == "cancelled"
    assert active_runs(tmp_path) == []


# --------------------------------------------------------------------------- slots

HOLDER = "import sys, time; from rnnreg.launch import acquire_slot; s = acquire_slot(sys.argv[1], 1); " \
         "print('held', flush=True); time.sleep(60)"


def test_slot_waits_until_the_holder_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.time()
        assert acquire_slot(tmp_path, 1, poll=0.05, should_stop=lambda: time.time() - started > 0.5) is None
        assert time.time() - started >= 0.5
        holder.kill()  # SIGKILL: no cleanup code runs, the kernel drops the flock
        holder.wait()
        slot = acquire_slot(tmp_path, 1, poll=0.05, should_stop=lambda: time.time() - started > 10)
        assert slot is not None and slot.index == 0
        slot.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_slots_up_to_the_limit(tmp_path):
    never = lambda: True  # noqa: E731 - give up at once when all slots are taken
    a = acquire_slot(tmp_path, 2, should_stop=never)
    b = acquire_slot(tmp_path, 2, should_stop=never)
    assert {a.index, b.index} == {0, 1}
    assert acquire_slot(tmp_path, 2, should_stop=never) is None
    a.release()
    with acquire_slot(tmp_path, 2, should_stop=never) as c:
        assert c.index == a.index
    b.release()
    with pytest.raises(ValueError):
        acquire_slot(tmp_path, 0)


# --------------------------------------------------------------------------- cancel


def test_cancel_a_running_trainer_that_handles_sigterm(tmp_path, fake):
    run_id = launch(tmp_path, CONFIG, command=fake(30.0))
    wait_for(lambda: state_of(tmp_path, run_id) == "running", what="running")
    message = cancel(tmp_path, run_id)
    assert "asked" in message
    wait_for(lambda: status_of(tmp_path, run_id)["state"] == "cancelled", what="trainer wrote cancelled")
    pid = status_of(tmp_path, run_id)["pid"]
    assert launch_mod._children.get(pid) is None or launch_mod._children[pid].wait(timeout=5) == 0
    assert "already cancelled" in cancel(tmp_path, run_id)


def test_cancel_a_process_without_a_handler(tmp_path):
    writer = RunWriter.create(tmp_path, CONFIG)
    sleeper = subprocess.Popen(STAND_IN, start_new_session=True)
    try:
        writer.set_status("running", pid=sleeper.pid)
        assert "asked" in cancel(tmp_path, writer.id)
        assert sleeper.wait(timeout=5) == -signal.SIGTERM
        # the process could not say so itself, but the cancel request is on record
        assert state_of(tmp_path, writer.id) == "cancelled"
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


@pytest.mark.parametrize("trainer_leads", [
    False,  # started from a plain shell: the trainer shares the shell's group, which must not be signalled
    True,  # `rnnreg train ... | tee log` in a job-control shell: it leads the pipeline's group, not a session
])
def test_cancel_signals_only_the_trainer_when_it_leads_no_session(tmp_path, trainer_leads):
    writer = RunWriter.create(tmp_path, CONFIG)
    leader = subprocess.Popen(STAND_IN, process_group=0)
    other = subprocess.Popen(STAND_IN, process_group=leader.pid)
    trainer, bystander = (leader, other) if trainer_leads else (other, leader)
    try:
        writer.set_status("running", pid=trainer.pid)
        cancel(tmp_path, writer.id)
        assert trainer.wait(timeout=5) == -signal.SIGTERM
        time.sleep(0.2)
        assert bystander.poll() is None
    finally:
        for proc in (leader, other):
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_cancel_marks_a_dead_active_run(tmp_path):
    writer = RunWriter.create(tmp_path, CONFIG)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    writer.set_status("running", pid=gone.pid)
    assert "marked" in cancel(tmp_path, writer.id)
    status = status_of(tmp_path, writer.id)
    assert status["state"] == "cancelled" and status["ended_at"]
    queued = RunWriter.create(tmp_path, CONFIG)  # never started at all
    assert "marked" in cancel(tmp_path, queued.id)
    assert status_of(tmp_path, queued.id)["state"] == "cancelled"


def test_a_trainer_that_finishes_as_it_is_cancelled_stays_finished(tmp_path, monkeypatch):
    writer = RunWriter.create(tmp_path, CONFIG)
    sleeper = subprocess.Popen(STAND_IN, start_new_session=True)
    try:
        writer.set_status("running", pid=sleeper.pid)

        def finishes_first(pid):  # between cancel's read of status.json and its signal, the trainer ends
            writer.set_status("finished", message="test ppl 100.00")
            raise ProcessLookupError(pid)

        monkeypatch.setattr(launch_mod, "_terminate", finishes_first)
        said = cancel(tmp_path, writer.id)
        assert said == f"run {writer.id} is already finished (it ended just now); nothing to cancel"
        status = status_of(tmp_path, writer.id)
        assert (status["state"], status["message"]) == ("finished", "test ppl 100.00")
    finally:
        sleeper.kill()
        sleeper.wait()


def test_cancel_of_another_users_trainer_says_so_and_requests_nothing(tmp_path, monkeypatch):
    writer = RunWriter.create(tmp_path, CONFIG)
    trainer = subprocess.Popen(STAND_IN)
    try:
        writer.set_status("running", pid=trainer.pid)

        def not_ours(pid):
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(launch_mod, "_terminate", not_ours)
        with pytest.raises(RunStoreError, match=f"cannot cancel {writer.id}: not permitted to signal its process"):
            cancel(tmp_path, writer.id)
        status = status_of(tmp_path, writer.id)
        assert status["state"] == "running" and status["cancel_requested_at"] is None
    finally:
        trainer.kill()
        trainer.wait()


@pytest.mark.parametrize("command, forged", [
    (["sleep", "60"], {}),  # the host and true start time of a process that is no trainer
    (STAND_IN, {"pid_start": "x"}),  # a start time that is no number (it used to count as alive and pass)
    (STAND_IN, {"pid_start": None}),
    (STAND_IN, {"host": None}),
])
def test_cancel_never_signals_a_process_that_a_status_json_names_but_is_not_its_trainer(tmp_path, command, forged):
    writer = RunWriter.create(tmp_path, CONFIG)
    bystander = subprocess.Popen(command, start_new_session=True)
    try:
        writer.set_status("running", pid=bystander.pid)  # records the host and the sleep's own start time
        status = json.loads((writer.dir / "status.json").read_text())
        (writer.dir / "status.json").write_text(json.dumps({**status, **forged}))
        with pytest.raises(RunStoreError, match=f"cannot cancel {writer.id}: its status.json names pid "
                                                f"{bystander.pid}, .*; stop it yourself"):
            cancel(tmp_path, writer.id)
        time.sleep(0.2)
        assert bystander.poll() is None
        assert status_of(tmp_path, writer.id).get("cancel_requested_at") is None
    finally:
        bystander.kill()
        bystander.wait()


def test_cancel_never_signals_the_trainer_of_another_run(tmp_path):
    writer = RunWriter.create(tmp_path, CONFIG)
    other = subprocess.Popen([*STAND_IN, "--resume=20261101-000000-another-run"])  # a live trainer, not this run's
    try:
        writer.set_status("running", pid=other.pid)
        with pytest.raises(RunStoreError, match="which trains run 20261101-000000-another-run"):
            cancel(tmp_path, writer.id)
        time.sleep(0.2)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()
    mine = subprocess.Popen([*STAND_IN, "--run-dir", str(writer.dir)], start_new_session=True)
    try:
        writer.set_status("running", pid=mine.pid)
        assert "asked" in cancel(tmp_path, writer.id)
        assert mine.wait(timeout=5) == -signal.SIGTERM
    finally:
        if mine.poll() is None:
            mine.kill()
            mine.wait()


def test_cancel_never_signals_the_dashboard_itself():
    status = {"host": socket.gethostname(), "pid_start": launch_mod.process_start_time(os.getpid())}
    assert "dashboard's own process" in launch_mod.trainer_doubt(os.getpid(), status, "some-run")


@pytest.mark.parametrize("argv, trainer", [
    (["/usr/bin/python3", "-m", "rnnreg", "train", "--run-dir", "x"], True),
    (["/usr/bin/python3", "-X", "dev", "-u", "-m", "rnnreg", "train"], True),
    (["/usr/bin/python3", "-mrnnreg", "train"], True),
    (["/usr/bin/python3", "-m", "rnnreg.__main__", "train"], True),
    (["/usr/bin/python3", "/home/u/.local/bin/rnnreg", "train", "--preset", "demo"], True),  # the console script
    (["/home/u/.local/bin/rnnreg", "train"], True),  # the same, as /proc may show a #! script
    (["/usr/bin/python3", "-m", "rnnreg", "evaluate", "x"], False),
    (["/usr/bin/python3", "-c", "import time", "-m", "rnnreg", "train"], False),  # -c: the rest is its argv
    (["/usr/bin/python3", "notes.py", "-m", "rnnreg", "train"], False),
    (["sleep", "60"], False),
    (["/usr/bin/python3", "-m", "streamlit", "run", "app.py"], False),
    (["vim", "rnnreg"], False),
    ([], False),
])
def test_what_cancel_takes_for_a_trainer(argv, trainer):
    assert launch_mod.is_trainer_command(argv) is trainer


def test_cancel_refusals(tmp_path):
    ref = RunWriter.create(tmp_path / "reference", CONFIG)
    ref.set_status("running", pid=os.getpid())
    with pytest.raises(RunStoreError, match="read-only"):
        cancel(tmp_path, ref.id)
    foreign = RunWriter.create(tmp_path, CONFIG)
    foreign.set_status("running", pid=12345, host="gpu-box-" + socket.gethostname())
    with pytest.raises(RunStoreError, match="another host|on host"):
        cancel(tmp_path, foreign.id)
    assert status_of(tmp_path, foreign.id)["state"] == "running"
    done = RunWriter.create(tmp_path, CONFIG)
    done.set_status("finished")
    assert "already finished" in cancel(tmp_path, done.id)
    with pytest.raises(RunStoreError):
        cancel(tmp_path, "../etc")


def test_active_runs_uses_effective_state(tmp_path):
    live = RunWriter.create(tmp_path, CONFIG)
    live.set_status("running")  # this process
    dead = RunWriter.create(tmp_path, CONFIG)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead.set_status("running", pid=gone.pid)
    queued = RunWriter.create(tmp_path, CONFIG)
    finished = RunWriter.create(tmp_path, CONFIG)
    finished.set_status("finished")
    assert {s.id for s in active_runs(tmp_path)} == {live.id, queued.id}


def test_a_resumed_run_in_a_group_folder_waits_in_the_roots_queue(tmp_path, monkeypatch):
    # <root>/<group>/<id>: its trainer must take its slot in <root>/.slots like every other run
    writer = RunWriter.create(tmp_path / "mine", {"preset": "demo"})
    writer.set_status("cancelled")
    spawned = []
    monkeypatch.setattr(launch_mod, "_spawn", lambda argv, log: spawned.append(argv) or subprocess.Popen(["true"]))
    launch_mod.resume(tmp_path, writer.id, max_concurrent=2)
    argv = spawned[0]
    assert argv[argv.index("--runs-dir") + 1] == str(tmp_path.absolute())
    assert runs.find_run_dir(tmp_path, writer.id) == writer.dir  # which still finds the run


def test_a_resume_whose_trainer_crashes_says_the_crash(tmp_path):
    # an interpreter without torch, say: no "rnnreg: error:" line, only a traceback's last words
    crashing = tmp_path / "python"
    crashing.write_text("#!/bin/sh\necho 'Traceback (most recent call last):'\n"
                        "echo \"ModuleNotFoundError: No module named 'torch'\" >&2\nexit 1\n")
    crashing.chmod(0o755)
    writer = RunWriter.create(tmp_path / "runs", {"preset": "demo"})
    writer.set_status("cancelled")
    with pytest.raises(RunStoreError) as info:
        launch_mod.resume(tmp_path / "runs", writer.id, python=str(crashing), wait=30)
    assert str(info.value) == "the resumed trainer exited with code 1: ModuleNotFoundError: No module named 'torch'"
    assert runs.effective_state(writer.read_status()) == "cancelled"  # the run as it was


def test_a_new_run_is_as_readable_as_any_folder_the_user_makes(tmp_path):
    old = os.umask(0o022)
    try:
        writer = RunWriter.create(tmp_path, {"preset": "demo"})
    finally:
        os.umask(old)
    assert writer.dir.stat().st_mode & 0o777 == 0o755  # mkdtemp's 0700 kept other readers (a shared Ray root) out


# --------------------------------------------------------------------------- the queue's files


@pytest.mark.parametrize("planted", [".launch.lock", ".slots/slot-0.lock", ".slots"])
def test_the_queue_never_writes_through_a_symlink_planted_in_the_runs_root(tmp_path, planted):
    root, victim = tmp_path / "runs", tmp_path / "notes.txt"
    victim.write_text("important notes\n")
    (root / ".slots").mkdir(parents=True)
    link = root / planted
    if planted == ".slots":  # the slots would be made, and truncated, in the folder it points to
        link.rmdir()
        link.symlink_to(tmp_path)
        victim = tmp_path / "slot-0.lock"
        victim.write_text("important notes\n")
    else:
        link.symlink_to(victim)
    with pytest.raises(RunStoreError, match="symlink"):
        if planted == ".launch.lock":
            launch(root, CONFIG, command=lambda run_dir, **_: ["true"])
        else:
            acquire_slot(root, 1, should_stop=lambda: True)
    assert victim.read_text() == "important notes\n"


@pytest.mark.parametrize("planted", ["symlink", "file"])
def test_a_symlink_or_file_where_the_queues_line_belongs_is_refused_and_named(tmp_path, planted):
    root, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    (root / ".slots").mkdir(parents=True)
    elsewhere.mkdir()
    if planted == "symlink":
        (root / ".slots" / "line").symlink_to(elsewhere)
    else:
        (root / ".slots" / "line").write_text("notes\n")
    run_id = launch(root, CONFIG, command=lambda run_dir, **_: ["true"])  # the run is made; only its place is not
    assert (root / run_id / "config.json").is_file()
    writer = RunWriter.open(root / run_id)
    with pytest.raises(RunStoreError, match=r"\.slots/line"):  # the trainer's wait names it
        line.join(root, writer.dir, 1)
        acquire_slot(root, 1, should_stop=lambda: True, run_id=run_id)
    assert list(elsewhere.iterdir()) == [] and (planted == "symlink" or
                                               (root / ".slots" / "line").read_text() == "notes\n")
    if planted == "file":  # the trainer goes on without a line (launch logged why); a symlink is refused:
        return
    # the real trainer's run ends failed, saying why (before, it read interrupted, the reason in train.log only)
    from rnnreg.cli import main

    writer.update_status(pid=os.getpid())  # as if this process were the trainer launch started
    assert main(["train", "--run-dir", str(writer.dir), "--max-concurrent", "1"]) != 0
    status = writer.read_status()
    assert status["state"] == "failed" and "could not wait in the queue" in status["message"]
    assert ".slots/line" in status["message"]


def test_a_fifo_or_directory_in_a_runs_place_is_refused_and_hangs_nothing(tmp_path):
    writer = RunWriter.create(tmp_path, CONFIG)
    writer.set_status("cancelled", message="cancelled by the user")
    os.mkfifo(writer.dir / "train.log")
    assert runs.resume_refusal(writer.dir) == "its train.log is not a regular file"
    with pytest.raises(RunStoreError, match="train.log in .* is not a regular file"):
        runs.open_in_run(writer.dir / "train.log")  # before, it blocked until something read the FIFO
    with pytest.raises(RunStoreError, match="train.log in .* is not a regular file"):
        runs.open_in_run(writer.dir / "train.log", os.O_RDWR)
    running = RunWriter.create(tmp_path, CONFIG)
    trainer = subprocess.Popen(STAND_IN)
    try:
        running.set_status("running", pid=trainer.pid)
        (running.dir / ".lock").unlink(missing_ok=True)
        (running.dir / ".lock").mkdir()
        # before: an IsADirectoryError that crashed the page
        with pytest.raises(RunStoreError, match=f".lock in {running.id} is not a regular file"):
            cancel(tmp_path, running.id)
    finally:
        trainer.kill()
        trainer.wait()


def test_runs_training_at_once_share_the_cpus_this_process_may_use_not_the_hosts(monkeypatch):
    from rnnreg.config import build_run_config
    from rnnreg.launch import usable_cpus
    from rnnreg.training_run import share_cores

    monkeypatch.setattr("os.cpu_count", lambda: 64)  # the host
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})  # a container's share of it
    assert usable_cpus() == 4
    assert share_cores(build_run_config("demo"), 2, usable_cpus()).train.threads == 2
