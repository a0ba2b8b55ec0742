"""The run store: ids, confinement, atomic writes, the writer, tolerant readers, mutations."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rnnreg import runs
from rnnreg.runs import RunStoreError, RunWriter

CONFIG = {
    "preset": "small",
    "task": "lm",
    "name": None,
    "model": {"layers": 2, "hidden": 200, "init_scale": 0.1},
    "dropout": {"placement": "zaremba", "rates": {"input": 0.5, "output": 0.5}},
    "train": {"epochs": 13, "lr": 1.0, "seed": 0, "device": "cpu"},
}


def make_run(root, name=None, **kwargs) -> RunWriter:
    return RunWriter.create(root, CONFIG, name=name, **kwargs)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# --------------------------------------------------------------------------- ids and paths


def test_runs_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNREG_RUNS_DIR", str(tmp_path / "env"))
    assert runs.runs_root(tmp_path / "cli") == tmp_path / "cli"
    assert runs.runs_root() == tmp_path / "env"
    monkeypatch.delenv("RNNREG_RUNS_DIR")
    assert runs.runs_root() == Path("runs")


def test_new_run_id_shape_and_safety():
    rid = runs.new_run_id("my ../weird/ name" + "x" * 80)
    assert re.fullmatch(r"\d{8}-\d{6}-[A-Za-z0-9._-]{1,40}-[0-9a-f]{6}", rid), rid
    assert runs.validate_run_id(rid) == rid
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", runs.new_run_id())
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{6}", runs.new_run_id(".."))  # nothing usable in the name
    assert runs.new_run_id("a") != runs.new_run_id("a")


@pytest.mark.parametrize(
    "bad", ["", "..", ".", "a/b", "/abs", "a\\b", "a\x00b", ".hidden", "a..b", "sp ace", "é", "x" * 129, None, 5]
)
def test_validate_run_id_refuses(bad):
    with pytest.raises(RunStoreError):
        runs.validate_run_id(bad)


def test_validate_run_id_accepts_plain_ids():
    for good in ("20260101-000000-abc123", "a.b_c-d", "x" * 128):
        assert runs.validate_run_id(good) == good


def test_find_run_dir_top_level_and_group(tmp_path):
    top = make_run(tmp_path)
    ref = make_run(tmp_path / "reference")
    assert runs.find_run_dir(tmp_path, top.id) == tmp_path / top.id
    assert runs.find_run_dir(tmp_path, ref.id) == tmp_path / "reference" / ref.id
    with pytest.raises(RunStoreError, match="no run"):
        runs.find_run_dir(tmp_path, "20990101-000000-000000")
    with pytest.raises(RunStoreError):
        runs.find_run_dir(tmp_path, "..")
    with pytest.raises(RunStoreError):  # a group is not a run
        runs.find_run_dir(tmp_path, "reference")


def test_a_folder_without_a_run_s_files_is_no_run_to_find_or_delete(tmp_path):
    root = tmp_path / "runs"
    (root / "my-notes").mkdir(parents=True)  # a user's own folder beside the runs
    (root / "my-notes" / "todo.txt").write_text("keep me\n")
    (root / "reference" / "figures").mkdir(parents=True)  # a reference folder with no run in it (yet)
    (root / "reference" / "README.md").write_text("shipped runs\n")
    for name in ("my-notes", "reference"):
        with pytest.raises(RunStoreError, match=f"no run '{name}'"):
            runs.find_run_dir(root, name)
        with pytest.raises(RunStoreError, match=f"no run '{name}'"):
            runs.delete_run(root, name)  # it used to remove the whole folder
    assert (root / "my-notes" / "todo.txt").exists() and (root / "reference" / "README.md").exists()
    assert runs.list_runs(root) == []


def test_symlink_outside_root_is_refused(tmp_path):
    root, outside = tmp_path / "runs", tmp_path / "outside"
    make_run(root)
    victim = make_run(outside)
    (root / "escape").symlink_to(outside / victim.id)
    (root / "group").symlink_to(outside)
    with pytest.raises(RunStoreError, match="leaves the runs directory"):
        runs.find_run_dir(root, "escape")
    with pytest.raises(RunStoreError, match="leaves the runs directory"):
        runs.find_run_dir(root, victim.id)  # through a symlinked group
    listed = {s.id: s for s in runs.list_runs(root)}
    assert listed["escape"].state == "corrupt"
    assert "outside" in listed["escape"].problems[0]
    assert listed["group"].state == "corrupt"  # the symlinked group is listed, never entered
    assert victim.id not in listed


def test_symlinked_file_inside_a_run_is_not_followed(tmp_path):
    w = make_run(tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"state": "finished"}))
    os.unlink(w.status_path)
    os.symlink(secret, w.status_path)
    status, problem = runs.read_json(w.status_path)
    assert status is None and "symlink" in problem


# --------------------------------------------------------------------------- writing


def test_atomic_writes_leave_no_temp_files(tmp_path):
    runs.atomic_write_json(tmp_path / "a.json", {"x": float("nan"), "y": [1, (2, float("inf"))]})
    runs.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    runs.atomic_write_json(tmp_path / "a.json", {"x": 2})  # replace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin"]
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 2}
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_atomic_write_failure_keeps_old_file_and_cleans_up(tmp_path):
    target = tmp_path / "a.json"
    runs.atomic_write_json(target, {"old": True})
    with pytest.raises(TypeError):
        runs.atomic_write_json(target, {"bad": object()})
    with pytest.raises(TypeError):
        runs.atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert json.loads(target.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_nan_written_as_null(tmp_path):
    runs.atomic_write_json(tmp_path / "a.json", {"x": float("nan")})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None}


@pytest.mark.parametrize("value, number, count", [
    (3, 3.0, 3), (0, 0.0, 0), (2.5, 2.5, None), (-1, -1.0, None), (2**53, float(2**53), 2**53),
    (2**53 + 1, None, None), (10**400, None, None), (float("nan"), None, None), (float("inf"), None, None),
    (True, None, None), ("3", None, None), (None, None, None), ([3], None, None),
])
def test_values_read_from_a_run_are_checked_for_type_and_range(value, number, count):
    # what every page and checkpoint reader relies on: a hand-edited value is None, never an exception
    assert runs.finite_number(value) == number
    assert runs.count_or_none(value) == count


def test_strict_json_writes_non_finite_floats_as_null_and_tuples_as_lists():
    shown = {"a": [1.5, (float("nan"), 2)], "b": {"c": float("-inf"), "d": "x"}}
    assert runs.strict_json(shown) == {"a": [1.5, [None, 2]], "b": {"c": None, "d": "x"}}


def test_create_writes_config_and_queued_status(tmp_path):
    w = make_run(tmp_path, name="base", request_id="req-1", sweep="s1")
    assert w.dir == tmp_path / w.id and "-base-" in w.id
    doc = json.loads(w.config_path.read_text())
    assert doc["format"] == 1 and doc["id"] == w.id and doc["request_id"] == "req-1" and doc["sweep"] == "s1"
    assert doc["config"]["name"] == "base" and doc["config"]["dropout"] == CONFIG["dropout"]
    assert doc["environment"] == {} and doc["created_at"].endswith("+00:00")
    status = json.loads(w.status_path.read_text())
    assert status["state"] == "queued" and status["pid"] is None and status["epochs_total"] == 13
    assert status["host"] == socket.gethostname() and status["epoch"] == 0
    assert CONFIG["name"] is None  # the caller's dict is not changed
    # nothing but the run itself is left in the root (no staging directory)
    assert [p.name for p in tmp_path.iterdir()] == [w.id]


def test_create_never_overwrites(tmp_path):
    w = make_run(tmp_path, run_id="fixed-id")
    w.set_status("running", epoch=3)
    with pytest.raises(RunStoreError, match="already exists"):
        make_run(tmp_path, run_id="fixed-id")
    assert json.loads(w.status_path.read_text())["epoch"] == 3
    with pytest.raises(RunStoreError):
        make_run(tmp_path, run_id="../escape")


def test_create_failure_leaves_nothing_behind(tmp_path):
    with pytest.raises(TypeError):
        RunWriter.create(tmp_path, {**CONFIG, "bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_open_existing_and_refuse_non_runs(tmp_path):
    w = make_run(tmp_path)
    assert RunWriter.open(w.dir).id == w.id
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunStoreError):
        RunWriter.open(tmp_path / "empty")


def test_update_config_merges_environment(tmp_path):
    w = make_run(tmp_path)
    w.update_config({"torch": "2.13", "device": "cpu"})
    w.update_config({"device": "cuda", "git_commit": "abc"})
    doc = json.loads(w.config_path.read_text())
    assert doc["environment"] == {"torch": "2.13", "device": "cuda", "git_commit": "abc"}
    assert doc["config"] == CONFIG


def test_set_status_lifecycle(tmp_path):
    w = make_run(tmp_path)
    with pytest.raises(RunStoreError, match="unknown state"):
        w.set_status("exploded")
    s = w.set_status("running")
    assert s["pid"] == os.getpid() and s["started_at"] and s["ended_at"] is None
    assert s["pid_start"] == runs.process_start_time(os.getpid())
    started = s["started_at"]
    s = w.set_status("running", epoch=2, custom="kept")
    assert s["started_at"] == started and s["epoch"] == 2
    s = w.set_status("finished", message="done")
    assert s["ended_at"] and s["epoch"] == 2 and s["custom"] == "kept" and s["message"] == "done"
    assert json.loads(w.status_path.read_text()) == s
    s = w.update_status(note=1)
    assert s["state"] == "finished"
    with pytest.raises(TypeError):
        w.update_status(state="running")


def test_append_records_one_line_each(tmp_path):
    w = make_run(tmp_path)
    w.append_metric({"kind": "step", "step": 1, "loss": float("inf"), "layer_grad_norms": {"l0": float("nan")}})
    w.append_metric({"kind": "epoch", "epoch": 1, "valid_ppl": 120.5})
    w.append_probe({"kind": "gates", "epoch": 1, "layer": 0, "gate": "f", "counts": [1, 2]})
    w.sync()
    lines = w.metrics_path.read_text().splitlines()
    assert [json.loads(x) for x in lines] == [
        {"kind": "step", "step": 1, "loss": None, "layer_grad_norms": {"l0": None}},
        {"kind": "epoch", "epoch": 1, "valid_ppl": 120.5},
    ]
    assert json.loads(w.probes_path.read_text())["gate"] == "f"
    with pytest.raises(ValueError):
        w.append_metric({"step": 1})  # no kind
    w.close()


def test_append_after_torn_line_starts_a_new_line(tmp_path):
    w = make_run(tmp_path)
    w.metrics_path.write_text('{"kind":"epoch","epoch":1}\n{"kind":"epo')  # a crash mid-record
    w2 = RunWriter.open(w.dir)
    w2.append_metric({"kind": "epoch", "epoch": 2})
    w2.close()
    assert [r["epoch"] for r in runs.read_jsonl(w.metrics_path)] == [1, 2]


def test_paths(tmp_path):
    w = make_run(tmp_path)
    assert w.log_path == w.dir / "train.log"
    assert w.checkpoint_path == w.dir / "checkpoint.safetensors"
    assert w.checkpoint_state_path == w.dir / "checkpoint.json"


# --------------------------------------------------------------------------- tolerant reading


def test_read_json_problems(tmp_path):
    (tmp_path / "torn.json").write_text('{"state": "runn')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "big.json").write_bytes(b'{"x": "' + b"a" * (runs.MAX_JSON_BYTES + 10) + b'"}')
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    for name, fragment in [("missing.json", "missing"), ("torn.json", "not valid JSON"),
                           ("list.json", "not a JSON object"), ("big.json", "larger than"),
                           ("deep.json", "not valid JSON"), ("dir.json", ""), ("bin.json", "not valid JSON")]:
        obj, problem = runs.read_json(tmp_path / name)
        assert obj is None and fragment in problem and problem.startswith(name), (name, problem)


def test_read_jsonl_tolerates_everything(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(
        b'{"kind":"epoch","epoch":1}\n'
        b"not json\n"
        b"[1,2]\n"
        b"\n"
        b'{"kind":"step","step":1,"future_key":{"a":1}}\n'
        + b'{"kind":"epoch","pad":"' + b"x" * (10 * 1024 * 1024) + b'"}\n'
        + b'{"kind":"future_kind"}\n'
        b'{"kind":"epoch","epoch":2}\n'
        b'{"kind":"epoch","ep'  # torn last line
    )
    report = runs.scan_jsonl(path)
    assert [r["kind"] for r in report.records] == ["epoch", "step", "future_kind", "epoch"]
    assert report.skipped == 3 and report.torn_tail  # "not json", [1,2], the 10 MB line
    assert [r["epoch"] for r in runs.read_jsonl(path, "epoch")] == [1, 2]
    assert runs.read_jsonl(path, ["step", "future_kind"])[0]["future_key"] == {"a": 1}
    assert runs.read_jsonl(tmp_path / "missing.jsonl") == []


def test_kind_filter_accepts_spaced_json(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"epoch": 1, "kind" : "epoch"}\n{"kind": "step", "epoch": 1}\n')
    assert runs.read_jsonl(path, "epoch") == [{"epoch": 1, "kind": "epoch"}]


def test_effective_state(tmp_path):
    host = socket.gethostname()
    me = {"state": "running", "pid": os.getpid(), "host": host}
    assert runs.effective_state(me) == "running"
    assert runs.effective_state({**me, "pid": dead_pid()}) == "interrupted"
    assert runs.effective_state({**me, "state": "queued", "pid": dead_pid()}) == "interrupted"
    assert runs.effective_state({**me, "pid": dead_pid(), "cancel_requested_at": "x"}) == "cancelled"
    assert runs.effective_state({**me, "pid": dead_pid(), "host": "elsewhere"}) == "running"
    assert runs.effective_state({**me, "pid_start": runs.process_start_time(os.getpid()) + 1}) == "interrupted"
    assert runs.effective_state({**me, "pid": None, "state": "queued"}) == "queued"
    assert runs.effective_state({**me, "state": "finished", "pid": dead_pid()}) == "finished"
    assert runs.effective_state({"state": "weird"}) == "unknown"
    assert runs.effective_state({"state": ["running"]}) == "unknown"


def test_zombie_counts_as_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        import time

        for _ in range(100):
            if not runs.pid_alive(proc.pid):
                break
            time.sleep(0.05)
        assert not runs.pid_alive(proc.pid)  # exited but not yet reaped by us
    finally:
        proc.wait()


# --------------------------------------------------------------------------- summaries and listing


def finished_run(root, name="done", valids=(300.0, 200.0, 250.0), test=240.0) -> RunWriter:
    w = make_run(root, name=name)
    w.update_config({"device_name": "NVIDIA H100"})
    w.set_status("running")
    for i, v in enumerate(valids, 1):
        w.append_metric({"kind": "step", "step": i, "epoch": i, "loss": 5.0, "time": i * 10.0})
        w.append_metric({"kind": "epoch", "epoch": i, "valid_ppl": v, "train_ppl": v - 50, "time": i * 10.0})
    if test is not None:
        w.append_metric({"kind": "test", "test_ppl": test})
    w.set_status("finished", epoch=len(valids))
    w.close()
    return w


@pytest.mark.parametrize("damage, said", [
    (lambda p: p.write_bytes(b""), ["the records of 3 of its 3 epochs are missing", "no test record"]),
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),  # a copy cut short mid-line
     ["epochs are missing", "no test record", "its last line is cut short"]),
    (lambda p: p.write_bytes(os.urandom(4000).replace(b"\n", b" ") + b"\n"),
     ["the records of 3 of its 3 epochs are missing", "no test record"]),
])
def test_a_finished_runs_metrics_cut_short_or_overwritten_show_as_damaged(tmp_path, damage, said):
    """Before, such a copy listed as finished with no problem, its figures those of what was left."""
    w = finished_run(tmp_path)
    damage(w.dir / "metrics.jsonl")
    (s,) = runs.list_runs(tmp_path)
    assert s.state == "finished" and all(any(part in p for p in s.problems) for part in said), s.problems
    assert all(p.startswith("metrics.jsonl: ") for p in s.problems)
    w2 = finished_run(tmp_path / "intact")
    w2.append_metric({"kind": "mc_test", "mc_test_ppl": 230.0})  # evaluate appends to a finished run: still whole
    assert [s.problems for s in runs.list_runs(tmp_path / "intact")] == [()]


def test_summary_of_a_finished_run(tmp_path):
    w = finished_run(tmp_path)
    (s,) = runs.list_runs(tmp_path)
    assert (s.id, s.name, s.preset, s.placement, s.rates) == (w.id, "done", "small", "zaremba", {"input": 0.5, "output": 0.5})
    assert (s.state, s.epochs_done, s.epochs_total) == ("finished", 3, 13)
    assert (s.best_valid_ppl, s.last_valid_ppl, s.test_ppl) == (200.0, 250.0, 240.0)
    assert s.device == "NVIDIA H100" and s.problems == () and not s.read_only and s.task == "lm"
    assert s.wall_seconds is not None and s.wall_seconds >= 0
    data = s.to_json()
    json.dumps(data)
    for key in ("id", "name", "preset", "placement", "state", "epochs_done", "best_valid_ppl", "test_ppl"):
        assert key in data
    assert s.dropout_label == "zaremba(input=0.5, output=0.5)"


def test_list_runs_newest_first_and_reference_read_only(tmp_path):
    old = make_run(tmp_path, name="old")
    ref = make_run(tmp_path / "reference", name="ref")
    new = make_run(tmp_path, name="new")
    for w, when in ((old, "2026-01-01"), (ref, "2026-02-01"), (new, "2026-03-01")):
        doc = json.loads(w.config_path.read_text())
        doc["created_at"] = when + "T00:00:00+00:00"
        runs.atomic_write_json(w.config_path, doc)
    listed = runs.list_runs(tmp_path)
    assert [s.name for s in listed] == ["new", "ref", "old"]
    assert [s.read_only for s in listed] == [False, True, False]
    assert listed[1].group == "reference"


def test_one_run_id_in_two_directories_lists_the_shadowed_copy_as_broken(tmp_path):
    # "a run directory copied into the runs folder shows up": here a copy of a shipped run
    ref = make_run(tmp_path / "reference", name="ref")
    other = make_run(tmp_path / "zzz", name="other group")
    shutil.copytree(ref.dir, tmp_path / ref.id)
    shutil.copytree(ref.dir, tmp_path / "zzz" / ref.id)
    listed = {s.id: s for s in runs.list_runs(tmp_path)}
    assert set(listed) == {ref.id, f"reference/{ref.id}", f"zzz/{ref.id}", other.id}  # unique keys
    assert runs.find_run_dir(tmp_path, ref.id) == tmp_path / ref.id == Path(listed[ref.id].path)
    assert listed[ref.id].problems == () and not listed[ref.id].read_only
    for group in ("reference", "zzz"):
        shadowed = listed[f"{group}/{ref.id}"]
        assert shadowed.state == runs.CORRUPT_STATE and shadowed.group == group
        assert shadowed.problems == (f"the same run id as {ref.id}, which every command addresses;"
                                     " rename or remove one of the two directories",)
    assert listed[other.id].problems == ()
    shutil.rmtree(tmp_path / ref.id)  # without the top-level copy, reference/ is the one addressed
    listed = {s.id: s for s in runs.list_runs(tmp_path)}
    assert listed[ref.id].read_only and listed[ref.id].problems == ()
    assert f"reference/{ref.id}" not in listed and listed[f"zzz/{ref.id}"].problems[0].startswith(
        f"the same run id as reference/{ref.id},")


def test_a_run_queued_by_a_sweep_driver_that_died_reads_interrupted(tmp_path):
    # `rnnreg sweep --backend ray` queues every run up front; its tasks train them later
    me = {"state": "queued", "pid": None, "host": socket.gethostname()}
    alive = {**me, "queued_by": os.getpid(), "queued_by_start": runs.process_start_time(os.getpid())}
    assert runs.effective_state(alive) == "queued"
    assert runs.effective_state({**me, "queued_by": dead_pid()}) == "interrupted"
    assert runs.effective_state({**alive, "queued_by_start": alive["queued_by_start"] + 1}) == "interrupted"  # reused
    assert runs.effective_state(me) == "queued"  # launch's own queued runs: pid not yet recorded



CRASH_AT_IMPORT = """Traceback (most recent call last):
  File "<frozen runpy>", line 198, in _run_module_as_main
  File "/x/rnnreg/data.py", line 17, in <module>
    import torch
ModuleNotFoundError: No module named 'torch'
"""


def test_last_words_are_a_crash_or_an_error_the_trainer_ended_on_never_a_kill():
    log_line = "2026-12-05 22:45:00,445 INFO run x: medium, none on cpu (fused path)"
    assert runs.last_words(CRASH_AT_IMPORT.splitlines()) == "ModuleNotFoundError: No module named 'torch'"
    assert runs.last_words([log_line, "rnnreg: error: --run-dir: run x is running", ""]) == \
        "--run-dir: run x is running"
    assert runs.last_words([log_line, log_line]) is None  # SIGKILL mid-epoch: nothing said
    assert runs.last_words(CRASH_AT_IMPORT.splitlines() + [log_line]) is None  # it trained on after that crash
    assert runs.last_words(CRASH_AT_IMPORT.splitlines()[:-1]) is None  # killed mid-traceback
    assert runs.last_words([]) is None


def test_a_run_whose_trainer_died_unannounced_says_the_crash_its_log_ends_with(tmp_path):
    crashed, killed = make_run(tmp_path, name="crashed"), make_run(tmp_path, name="killed")
    for writer in (crashed, killed):  # queued by launch, the pid recorded; the process gone
        writer.update_status(pid=dead_pid())
        writer.close()
    killed.update_status(message="training")  # what it was doing, not why it stopped
    (crashed.dir / runs.LOG_FILE).write_text("x" * 40_000 + "\n" + CRASH_AT_IMPORT)  # only its tail is read
    (killed.dir / runs.LOG_FILE).write_text("2026-12-05 22:45:00,445 INFO epoch 1 step 200\n")
    listed = {s.name: s for s in runs.list_runs(tmp_path)}
    assert listed["crashed"].state == listed["killed"].state == "interrupted"
    assert listed["crashed"].message == "its trainer died: ModuleNotFoundError: No module named 'torch'"
    said_nothing = ("its process ended without a word (killed, out of memory, or its machine stopped); "
                    "its last status: training")
    assert listed["killed"].message == said_nothing  # no reason made up
    (killed.dir / runs.LOG_FILE).unlink()
    (killed.dir / runs.LOG_FILE).symlink_to(crashed.dir / runs.LOG_FILE)  # not followed
    assert runs.summarize_run(killed.dir).message == said_nothing
    os.mkfifo(tmp_path / "fifo")  # planted in a run directory: read, it would block the listing forever
    assert runs.read_log_tail(tmp_path / "fifo") == []
    (tmp_path / "log").write_text("first line\nsecond\n")
    assert runs.read_log_tail(tmp_path / "log", max_bytes=10) == ["second"]  # not "ne", a line cut in two
    table = runs.format_table(runs.list_runs(tmp_path)).splitlines()
    assert table[-3] == "why these stopped early:" and len(table) == 7  # header, 2 runs; blank, heading, 2 notes
    assert f"  {crashed.id} (interrupted): its trainer died: ModuleNotFoundError: No module named 'torch'" in table
    assert f"  {killed.id} (interrupted): {said_nothing}" in table

def test_a_run_that_died_after_a_cancel_request_says_so_not_its_stale_progress(tmp_path):
    writer = make_run(tmp_path, name="asked")
    writer.set_status("running", pid=dead_pid(), message="epoch 3: valid ppl 150.2")
    writer.update_status(cancel_requested_at="2026-12-06T01:00:00.000+00:00")  # then SIGKILLed mid-checkpoint
    writer.close()
    summary = runs.summarize_run(writer.dir)
    assert summary.state == "cancelled"
    assert summary.message == ("a cancel was requested, and its process ended before it confirmed it; "
                               "its last status: epoch 3: valid ppl 150.2")
    (writer.dir / runs.LOG_FILE).write_text(CRASH_AT_IMPORT)  # it crashed while it saved its checkpoint
    assert runs.summarize_run(writer.dir).message == "its trainer died: ModuleNotFoundError: No module named 'torch'"
    writer.set_status("cancelled", message="cancelled at epoch 3")  # the trainer's own word stands
    assert runs.summarize_run(writer.dir).message == "cancelled at epoch 3"


def test_list_runs_missing_root(tmp_path):
    assert runs.list_runs(tmp_path / "nope") == []
    (tmp_path / "file").write_text("x")
    assert runs.list_runs(tmp_path / "file") == []


def test_list_runs_survives_a_zoo_of_broken_runs(tmp_path):
    good = finished_run(tmp_path, name="good")

    def broken(label: str) -> RunWriter:
        return make_run(tmp_path, name=label)

    torn_config = broken("torn-config")
    torn_config.config_path.write_text('{"format": 1, "config": {"na')
    torn_status = broken("torn-status")
    torn_status.status_path.write_text('{"state": "runn')
    no_config = broken("no-config")
    os.unlink(no_config.config_path)
    nothing = broken("nothing")
    nothing.config_path.write_text("garbage")
    nothing.status_path.write_text("[]")
    wrong_types = broken("wrong-types")
    runs.atomic_write_json(wrong_types.config_path, {"format": 1, "config": {
        "name": 5, "preset": ["x"], "dropout": "zaremba", "train": {"epochs": "13"}}, "environment": 7})
    runs.atomic_write_json(wrong_types.status_path, {"state": 3, "epoch": "two", "pid": "x", "started_at": 5})
    huge = broken("huge")
    huge.metrics_path.write_bytes(b'{"kind":"epoch","x":"' + b"y" * (10 * 1024 * 1024) + b'"}\n')
    huge_config = broken("huge-config")
    huge_config.config_path.write_bytes(b"{" + b" " * (10 * 1024 * 1024) + b"}")
    bad_metrics = broken("bad-metrics")
    bad_metrics.metrics_path.write_text(
        '{"kind":"epoch","epoch":"one","valid_ppl":"low"}\n{"kind":"epoch","epoch":1,"valid_ppl":NaN}\n'
        '{"kind":"test","test_ppl":null}\n{"kind":"epoch","epoch":2,"valid_ppl":true}\n'
    )
    dead = broken("dead")
    dead.set_status("running", pid=dead_pid())
    metrics_dir = broken("metrics-is-dir")
    metrics_dir.metrics_path.mkdir()
    newer = broken("newer-format")
    doc = json.loads(newer.config_path.read_text())
    runs.atomic_write_json(newer.config_path, {**doc, "format": 99})
    (tmp_path / ".slots").mkdir()  # hidden directories are not runs
    (tmp_path / "stray-file.txt").write_text("x")
    (tmp_path / "not a valid id").mkdir()

    listed = {s.id: s for s in runs.list_runs(tmp_path)}
    assert "not a valid id" not in listed and ".slots" not in listed
    assert listed[good.id].problems == ()

    def check(w, state, fragment):
        s = listed[w.id]
        assert s.state == state, (w.id, s)
        assert any(fragment in p for p in s.problems), (w.id, s.problems)

    check(torn_config, "queued", "config.json: not valid JSON")
    check(torn_status, "unknown", "status.json: not valid JSON")
    check(no_config, "queued", "config.json: missing")
    check(nothing, "corrupt", "status.json: not a JSON object")
    check(wrong_types, "unknown", "unknown state")
    check(huge, "queued", "1 unreadable line")
    check(huge_config, "queued", "config.json: larger than")
    check(metrics_dir, "queued", "metrics.jsonl: not a regular file")
    check(newer, "queued", "format 99")
    assert listed[wrong_types.id].name is None and listed[wrong_types.id].epochs_done == 0
    assert listed[wrong_types.id].epochs_total is None and listed[wrong_types.id].device is None
    assert listed[dead.id].state == "interrupted"
    s = listed[bad_metrics.id]
    assert (s.best_valid_ppl, s.test_ppl, s.epochs_done) == (None, None, 2)
    assert runs.format_table(listed.values())  # the table copes with all of them


def test_one_exploding_run_does_not_hide_the_others(tmp_path, monkeypatch):
    a, b = make_run(tmp_path, name="a"), make_run(tmp_path, name="b")
    real = runs.summarize_run

    def flaky(run_dir, **kw):
        if run_dir.name == a.id:
            raise RuntimeError("boom")
        return real(run_dir, **kw)

    monkeypatch.setattr(runs.summary, "summarize_run", flaky)  # what list_runs calls
    listed = {s.id: s for s in runs.list_runs(tmp_path)}
    assert listed[b.id].state == "queued"
    assert listed[a.id].state == "corrupt" and "boom" in listed[a.id].problems[0]


def test_load_run_and_frames(tmp_path):
    w = finished_run(tmp_path)
    w2 = RunWriter.open(w.dir)
    w2.append_metric({"kind": "step", "step": 9, "epoch": 3, "loss": 4.0, "layer_grad_norms": {"lstm.0": 1.5}})
    w2.append_metric({"kind": "epoch", "epoch": 3, "valid_ppl": 245.0})  # a resumed run repeats epoch 3
    w2.append_probe({"kind": "gates", "epoch": 1, "layer": 0, "gate": "f", "bin_edges": [0, 1], "counts": [3],
                     "mean": 0.5, "saturation": 0.1})
    w2.append_probe({"kind": "grad_through_time", "epoch": 1, "layer": 0, "wrt": "c", "k": [1, 2], "norm": [1.0, 0.5]})
    w2.close()
    run = runs.load_run(tmp_path, w.id)
    assert run.id == w.id and run.config["name"] == "done" and run.environment["device_name"] == "NVIDIA H100"
    assert run.status["state"] == "finished" and run.summary.test_ppl == 240.0
    assert [r["epoch"] for r in run.metrics("epoch")] == [1, 2, 3, 3]
    epochs = run.epochs_frame()
    assert list(epochs["epoch"]) == [1, 2, 3] and list(epochs["valid_ppl"]) == [300.0, 200.0, 245.0]
    steps = run.steps_frame()
    assert list(steps["step"]) == [1, 2, 3, 9] and "kind" not in steps.columns
    assert run.layer_grad_norms_frame().to_dict("records") == [
        {"step": 9, "epoch": 3, "layer": "lstm.0", "grad_norm": 1.5}]
    gates = run.gates_frame()
    assert list(gates["gate"]) == ["f"] and gates["saturation_low"].isna().all()
    gtt = run.grad_through_time_frame()
    assert list(gtt["k"]) == [1, 2] and list(gtt["norm"]) == [1.0, 0.5]
    sig = run.signature()
    runs.RunWriter.open(w.dir).append_metric({"kind": "epoch", "epoch": 4})
    assert run.signature() != sig


def test_frames_of_an_empty_run_have_their_columns(tmp_path):
    run = runs.load_run(tmp_path, make_run(tmp_path).id)
    assert run.epochs_frame().empty and "valid_ppl" in run.epochs_frame().columns
    assert run.steps_frame().empty and "grad_norm" in run.steps_frame().columns
    assert run.gates_frame().empty and run.grad_through_time_frame().empty
    assert run.log_tail() == ""
    with pytest.raises(RunStoreError):
        runs.load_run(tmp_path, "20990101-000000-000000")


def test_root_signature_changes_with_a_new_run(tmp_path):
    before = runs.root_signature(tmp_path)
    make_run(tmp_path)
    assert runs.root_signature(tmp_path) != before
    assert runs.root_signature(tmp_path / "missing") == ()


def test_run_store_does_not_import_torch_or_pandas():
    code = "import sys, rnnreg.runs, rnnreg.launch; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.split() == ["False", "False"]


# --------------------------------------------------------------------------- mutations and the table


def test_rename_run(tmp_path):
    w = finished_run(tmp_path)
    runs.rename_run(tmp_path, w.id, "  better name ")
    doc = json.loads(w.config_path.read_text())
    assert doc["config"]["name"] == "better name" and doc["config"]["preset"] == "small"
    assert runs.list_runs(tmp_path)[0].name == "better name"
    for bad in ("", "   ", "a\nb", "x" * 201):
        with pytest.raises(RunStoreError):
            runs.rename_run(tmp_path, w.id, bad)
    ref = make_run(tmp_path / "reference")
    with pytest.raises(RunStoreError, match="read-only"):
        runs.rename_run(tmp_path, ref.id, "x")
    w.config_path.write_text("{torn")
    with pytest.raises(RunStoreError, match="cannot rename"):
        runs.rename_run(tmp_path, w.id, "x")


def test_delete_run_rules(tmp_path):
    done = finished_run(tmp_path)
    runs.delete_run(tmp_path, done.id)
    assert not done.dir.exists() and runs.list_runs(tmp_path) == []
    assert list(tmp_path.iterdir()) == []  # no trash left behind

    live = make_run(tmp_path)
    live.set_status("running")  # this very process: alive
    with pytest.raises(RunStoreError, match="cancel it first"):
        runs.delete_run(tmp_path, live.id)
    queued = make_run(tmp_path)
    with pytest.raises(RunStoreError, match="queued"):
        runs.delete_run(tmp_path, queued.id)
    dead = make_run(tmp_path)
    dead.set_status("running", pid=dead_pid())  # interrupted: may go
    runs.delete_run(tmp_path, dead.id)
    assert not dead.dir.exists()

    ref = finished_run(tmp_path / "reference")
    with pytest.raises(RunStoreError, match="read-only"):
        runs.delete_run(tmp_path, ref.id)
    assert ref.dir.exists()
    with pytest.raises(RunStoreError):
        runs.delete_run(tmp_path, "reference")
    with pytest.raises(RunStoreError):
        runs.delete_run(tmp_path, "../x")


def test_delete_symlinked_run_removes_only_the_link(tmp_path):
    root = tmp_path / "runs"
    target = finished_run(root / "elsewhere")
    (root / "alias").symlink_to(target.dir)
    runs.delete_run(root, "alias")
    assert not os.path.lexists(root / "alias") and target.dir.exists()


def test_a_disk_or_permission_error_in_rename_or_delete_is_a_one_line_store_error(tmp_path, monkeypatch):
    import errno

    from rnnreg.runs import mutations

    run = finished_run(tmp_path)

    def refused(*_args, **_kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(run.config_path))

    monkeypatch.setattr(mutations, "atomic_write_json", refused)
    with pytest.raises(RunStoreError, match=rf"^cannot rename {run.id}: Read-only file system \(.*config.json\)$"):
        runs.rename_run(tmp_path, run.id, "x")
    monkeypatch.setattr(mutations.shutil, "rmtree", lambda path: (_ for _ in ()).throw(PermissionError(
        errno.EACCES, os.strerror(errno.EACCES), str(path))))
    with pytest.raises(RunStoreError, match=rf"^cannot delete {run.id}: Permission denied"):
        runs.delete_run(tmp_path, run.id)


def test_format_table(tmp_path):
    finished_run(tmp_path, name="alpha")
    make_run(tmp_path, name="beta")
    table = runs.format_table(runs.list_runs(tmp_path))
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "PRESET"] and len(lines) == 3
    assert "zaremba(input=0.5, output=0.5)" in table and "200.00" in table and "240.00" in table
    assert "3/13" in table and "0/13" in table
    state_col = lines[0].index("STATE")
    assert all(line[state_col - 2: state_col] == "  " for line in lines)  # columns aligned
    assert [line[state_col:].split()[0] for line in lines] == ["STATE", "queued", "finished"]  # newest first
    assert runs.format_table([]) == "no runs"
    assert "OTHER SETTINGS" not in table  # only where some run has settings other than its preset's
    assert "DELAY" not in table  # only where some run is a memory-task run


def test_the_mc_column_reads_left_to_right_under_its_header(tmp_path):
    import dataclasses

    finished_run(tmp_path, name="alpha")
    (plain,) = runs.list_runs(tmp_path)
    noted = dataclasses.replace(plain, id="b", mc_test_ppl=88.41, mc_samples=1000, mc_protocol="window")
    lines = runs.format_table([plain, noted]).splitlines()
    column = lines[0].index("MC TEST")
    assert lines[1][column:].split()[0] == "-"
    assert lines[2][column:].startswith("88.41 (N=1000, masks per window)")


def test_a_terminal_too_narrow_for_the_table_gets_a_short_one_a_table_per_task(tmp_path):
    import dataclasses

    finished_run(tmp_path, name="alpha")
    (plain,) = runs.list_runs(tmp_path)
    lm = [dataclasses.replace(plain, id=f"20261101-00000{i}-{name}-abcdef", name=name, mc_test_ppl=mc,
                              mc_samples=1000 if mc else None, mc_protocol="window" if mc else None,
                              rates={"zoneout_c": 0.25, "zoneout_h": 0.025} if i == 1 else plain.rates,
                              placement="zoneout" if i == 1 else plain.placement)
          for i, (name, mc) in enumerate([("twin", None), ("medium-zoneout-s0", 132.51), ("twin", 88.41)])]
    memory = dataclasses.replace(plain, id="20261101-000009-memory-recall-none-delay20-abcdef", task="memory",
                                 name="memory-recall-none-delay20", preset="memory", delay=20, test_accuracy=1.0,
                                 placement="none", rates={})
    listed = lm + [memory]
    whole = runs.format_table(listed)
    assert runs.format_table(listed, width=len(max(whole.splitlines(), key=len))) == whole  # it fits: as before
    for width in (120, 100):
        table = runs.format_table(listed, width=width)
        lines = table.splitlines()
        assert max(map(len, lines)) <= width, table
        assert lines[0] == "language models" and "memory-task runs (recall after a delay)" in lines
        # by name where it is the run's alone (a command takes it), by id where two runs share it
        assert [line.split()[0] for line in lines[2:5]] == [lm[0].id, "medium-zoneout-s0", lm[2].id]
        assert "zoneout 0.25/0.025" in table and "(N=1000" not in table  # no MC notes
        assert "100.0%" in table and "20" in lines[lines.index("memory-task runs (recall after a delay)") + 2]
        assert "--wide" in table
    narrow = runs.format_table(listed, width=100).splitlines()
    assert "MC TEST" not in narrow[1] and "(left out here: MC TEST)" in narrow  # the rates are never cut
    assert narrow[1].split()[:2] == ["RUN", "PRESET"] and "132.51" not in "\n".join(narrow)
    # a 60-column terminal: as short as it gets is still wider, and the footer says so instead of claiming a fit
    stopped = dataclasses.replace(lm[1], state="diverged", message="loss blew up: 1.7e+05 nats a word, over 10 times "
                                  "a uniform guess's 9.2, at step 10 (epoch 1, lr 100); hint: lower the learning rate")
    tiny = runs.format_table([stopped, memory], width=60)
    assert "as short as it gets" in tiny and "for a 60-column terminal" in tiny
    reason = tiny[tiny.index("why these stopped early:"):]
    assert "hint: lower the learning" in reason.replace("\n      ", " ")  # wrapped, not cut at the edge
    assert all(len(line) <= 60 for line in reason.splitlines())
    assert "zoneout 0.25/0.025" in tiny  # no rate cut short ('zoneout 0.2…' read as another rate)


def test_a_run_off_its_presets_settings_says_so_in_summary_and_list(tmp_path):
    finished_run(tmp_path, name="preset")
    RunWriter.create(tmp_path, {**CONFIG, "train": {**CONFIG["train"], "decay_after": 5, "seed": 3}}, name="schedule")
    RunWriter.create(tmp_path, {**CONFIG, "train": {**CONFIG["train"], "lr": "fast"}}, name="invalid")
    by_name = {s.name: s for s in runs.list_runs(tmp_path)}
    assert by_name["preset"].variant == "" and by_name["schedule"].variant == "decay_after=5"
    assert by_name["invalid"].variant is None  # a config that does not validate has no variant to tell
    lines = runs.format_table(by_name.values()).splitlines()
    column = lines[0].index("OTHER SETTINGS")
    assert {line.split()[1]: line[column:].split()[0] for line in lines[1:]} == {
        "preset": "-", "schedule": "decay_after=5", "invalid": "-"}
    assert json.loads(json.dumps(by_name["schedule"].to_json()))["variant"] == "decay_after=5"


# --------------------------------------------------------------------------- frames


def test_frames_reads_each_record_file_once_and_equals_the_frames_one_by_one(tmp_path, monkeypatch):
    import pandas as pd

    from tests.fixtures_runs import write_run

    write_run(tmp_path, "20261201-000000-framed", placement="zaremba", dropout=0.5, epochs_done=3, state="running")
    run = runs.load_run(tmp_path, "20261201-000000-framed")
    one_by_one = {"epochs": run.epochs_frame(), "steps": run.steps_frame(), "layers": run.layer_grad_norms_frame(),
                  "gates": run.gates_frame(), "gtt": run.grad_through_time_frame()}
    assert all(not frame.empty for frame in one_by_one.values())  # the fixture has every kind of record
    reads = []
    real = runs.read_jsonl
    monkeypatch.setattr(runs.loading, "read_jsonl", lambda path, *a, **k: reads.append(os.path.basename(path)) or real(path, *a, **k))
    together = run.frames()
    assert sorted(reads) == ["metrics.jsonl", "probes.jsonl"]
    assert together.keys() == one_by_one.keys()
    for kind, frame in one_by_one.items():
        pd.testing.assert_frame_equal(together[kind], frame, obj=kind)


def test_a_run_knows_whether_it_trained_on_the_vendored_penn_treebank():
    reference = runs.penn_treebank_checksums()
    assert set(reference) == {"train", "valid", "test"} and all(len(v) == 64 for v in reference.values())
    assert runs.corpus_of(dict(reference)) == "penn-treebank"
    assert runs.corpus_of({**reference, "test": "0" * 64}) == "other"  # one split off is another corpus
    assert runs.corpus_of(None) is None and runs.corpus_of({}) is None and runs.corpus_of("x") is None
    shipped = {s.preset: s.corpus for s in runs.list_runs(Path(__file__).resolve().parent.parent / "runs")}
    assert shipped["small"] == shipped["medium"] == shipped["demo"] == "penn-treebank"
    assert shipped["memory"] == "other"  # the synthetic recall task


def test_a_resumed_runs_wall_is_its_last_resume_to_its_end_plus_what_its_checkpoint_carried():
    from rnnreg.runs.summary import _wall_seconds

    times = {"started_at": "2026-12-07T10:00:00+00:00", "resumed_at": "2026-12-07T12:00:00+00:00",
             "ended_at": "2026-12-07T12:30:00+00:00"}
    epochs = [{"epoch": 1, "time": 600.0}, {"epoch": 2, "time": 1200.0}]

    def wall(**status) -> float | None:
        return _wall_seconds({**times, **status}, "finished", epochs, epochs)

    assert wall() == 9000.0  # never resumed: start to end
    assert wall(resumed_from_epoch=2, resumed_from_step=40, resumed_from_time=1234.5) == 1800.0 + 1234.5
    assert wall(resumed_from_epoch=0, resumed_from_step=0, resumed_from_time=0.0) == 1800.0  # started over
    # runs resumed before resumed_from_time was recorded: the epoch's own time, or nothing when started over
    assert wall(resumed_from_epoch=2) == 1800.0 + 1200.0
    assert wall(resumed_from_epoch=0) == 1800.0
    # claimed by a resume that waits for a slot (days after it stopped): what it trained, not the days
    claimed = {"started_at": "2026-12-01T10:00:00+00:00", "resumed_at": "2026-12-07T12:00:00+00:00",
               "resumed_from_epoch": 2, "resumed_from_time": 1234.5}
    assert _wall_seconds({**claimed, "ended_at": None}, "queued", epochs, epochs) == 1234.5
    cancelled = {**claimed, "ended_at": "2026-12-07T12:01:00+00:00"}  # while it waited
    assert _wall_seconds(cancelled, "cancelled", epochs, epochs) == 1234.5 + 60.0


def test_a_perplexity_that_blew_up_reads_in_a_few_characters():
    # `--lr 1e30` finishes with a finite loss of ~700 nats: e^700, which %.2f printed as 300 digits
    # in `rnnreg list`, train.log and the status message every page shows
    from rnnreg.training_run import finished_message

    assert runs.ppl_text(112.7234) == "112.72" and runs.ppl_text(101.39, 1) == "101.4"
    assert runs.ppl_text(1.0142e304) == "1.01e+304" and runs.ppl_text(None) == "-"

    class Result:
        test_ppl, test_accuracy = 1.0142e304, None

    assert finished_message(Result()) == "test ppl 1.01e+304"
