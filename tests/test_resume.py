"""`rnnreg train --resume RUN`: an interrupted run, resumed, ends exactly as if never interrupted.

Every trainer here is a real one (tests/crash_trainer.py forks them from a process that has
imported torch once), on a 12-word corpus with a 16-unit model and Zaremba dropout, whose
masks draw from the RNG: the RNG states must come back exactly for the numbers to match.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from pathlib import Path

import pytest

from crash_trainer import ForkServer, tiny_config, wait_exit, wait_until
from rnnreg import cli
from rnnreg.checkpoint import load_checkpoint
from rnnreg.config import to_dict
from rnnreg.runs import RunStoreError, RunWriter, effective_state, list_runs, pid_alive, read_json, read_jsonl

EPOCHS = 4
TIMING = {"seconds", "time", "words_per_s"}  # wall-clock fields: the only ones allowed to differ


def new_run(root: Path, corpus: Path, **train) -> RunWriter:
    return RunWriter.create(root, to_dict(tiny_config(corpus, epochs=EPOCHS, **train)))


def train(server: ForkServer, writer: RunWriter, *, hook: str | None = None) -> int:
    """Start the trainer of `writer`'s run (like `launch` does); with a hook, return once it is held."""
    pid, marker = server.start(["train", "--run-dir", str(writer.dir)], hook=hook)
    writer.update_status(pid=pid)
    if hook:
        wait_until(marker.exists, what=f"the trainer to reach {hook}")
    return pid


def kill(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)


def resume(server: ForkServer, root: Path, run_id: str) -> None:
    pid, _ = server.start(["train", "--resume", run_id, "--runs-dir", str(root)])
    wait_exit(pid)


def records(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in read_jsonl(path)]


def state(writer: RunWriter) -> str:
    return effective_state(writer.read_status())


@pytest.fixture(scope="module")
def reference(server, corpus, tmp_path_factory) -> RunWriter:
    """The same run, never interrupted."""
    writer = new_run(tmp_path_factory.mktemp("reference"), corpus)
    wait_exit(train(server, writer))
    assert state(writer) == "finished", writer.read_status()
    return writer


def mid_epoch(reference: RunWriter, epoch: int) -> str:
    """The hook that holds a trainer writing its 3rd step record of `epoch` (a torn line)."""
    kinds = [(r["kind"], r["epoch"]) for r in read_jsonl(reference.metrics_path)]
    return f"metrics:{kinds.index(('step', epoch)) + 3}"


def probes_of_epoch(reference: RunWriter, epoch: int) -> str:
    """The hook that holds a trainer writing its first probe record of `epoch` (a torn line)."""
    epochs = [r["epoch"] for r in read_jsonl(reference.probes_path)]
    return f"probes:{epochs.index(epoch) + 1}"


# Where the first trainer dies: mid-epoch 3 with a torn metrics line; inside the third
# checkpoint write; amid epoch 3's probe records; in the first epoch (no checkpoint yet:
# resume starts over).
@pytest.mark.parametrize("where", ["epoch 3", "checkpoint:3", "probes of epoch 3", "epoch 1"])
def test_resumed_run_equals_uninterrupted_run(server, corpus, reference, tmp_path, where):
    root = tmp_path / "runs"
    writer = new_run(root, corpus)
    hook = (mid_epoch(reference, int(where[-1])) if where.startswith("epoch")
            else probes_of_epoch(reference, 3) if where.startswith("probes") else where)
    kill(train(server, writer, hook=hook))
    assert state(writer) == "interrupted"
    before = records(writer.metrics_path)
    assert before != records(reference.metrics_path)  # it really was cut short

    resume(server, root, writer.id)

    status = writer.read_status()
    assert status["state"] == "finished", status
    assert status["ended_at"] and status["resumed_from_epoch"] == {"epoch 3": 2, "checkpoint:3": 2, "epoch 1": 0,
                                                                   "probes of epoch 3": 2}[where]
    got, want = records(writer.metrics_path), records(reference.metrics_path)
    assert [r["epoch"] for r in got if r["kind"] == "epoch"] == list(range(1, EPOCHS + 1))  # none twice
    assert got == want  # every step, epoch and test record: losses, ppl, grad norms, lr, counters
    assert records(writer.probes_path) == records(reference.probes_path)
    assert read_jsonl(writer.metrics_path, "step")[-1]["time"] > 0
    earlier = writer.read_config()["environment"].get("earlier_segments", [])
    assert [e["until_epoch"] for e in earlier] == ([2] if status["resumed_from_epoch"] else [])  # none: started over


def test_a_resumed_runs_wall_leaves_out_the_time_it_lay_interrupted(server, corpus, reference, tmp_path):
    """Killed in epoch 3 and resumed "an hour later" (its start moved back an hour): the wall the
    dashboard and the README quote is its training, not the hour, and still covers every epoch."""
    from datetime import datetime, timedelta

    root = tmp_path / "runs"
    writer = new_run(root, corpus)
    kill(train(server, writer, hook=mid_epoch(reference, 3)))
    started = datetime.fromisoformat(writer.read_status()["started_at"])
    writer.update_status(started_at=(started - timedelta(hours=1)).isoformat(timespec="milliseconds"))

    resume(server, root, writer.id)

    status = writer.read_status()
    assert status["state"] == "finished" and status["resumed_from_epoch"] == 2, status
    (summary,) = list_runs(root)
    recorded = max(r["time"] for r in read_jsonl(writer.metrics_path, "epoch"))  # its epochs' own clock
    assert recorded <= summary.wall_seconds < 600, (recorded, summary.wall_seconds)
    ended, resumed = (datetime.fromisoformat(status[key]) for key in ("ended_at", "resumed_at"))
    assert summary.wall_seconds > (ended - resumed).total_seconds()  # epochs 1-2 before the kill count too


def test_a_run_resumed_elsewhere_keeps_where_its_earlier_epochs_trained(server, corpus, reference, tmp_path):
    """Interrupted, then resumed by another checkout with another thread count (as in a later
    session): config.json says what the run ended on, and what epochs 1-2 trained on."""
    root = tmp_path / "runs"
    writer = new_run(root, corpus)
    kill(train(server, writer, hook=mid_epoch(reference, 3)))
    first = writer.read_config()["environment"]
    writer.update_config({"git_commit": "0123abc", "cpu_threads": 7})  # what an earlier session recorded

    resume(server, root, writer.id)

    env = writer.read_config()["environment"]
    assert env["git_commit"] == first["git_commit"] and env["cpu_threads"] == first["cpu_threads"]  # this process
    (segment,) = env["earlier_segments"]
    assert segment["until_epoch"] == 2 and segment["git_commit"] == "0123abc" and segment["cpu_threads"] == 7
    assert segment["device"] == first["device"] and segment["torch"] == first["torch"]


def test_resume_after_cancel(server, corpus, reference, tmp_path):
    """SIGTERM (what `rnnreg cancel` sends) mid-epoch 3: `cancelled`; resumed: as if never stopped."""
    import os

    root = tmp_path / "runs"
    writer = new_run(root, corpus)
    pid, marker = server.start(["train", "--run-dir", str(writer.dir)], hook=mid_epoch(reference, 3))
    writer.update_status(pid=pid)
    wait_until(marker.exists, what="the trainer to reach epoch 3")
    os.kill(pid, signal.SIGTERM)
    marker.unlink()  # let it carry on: it stops before the next minibatch
    wait_exit(pid)
    status = writer.read_status()
    assert status["state"] == "cancelled" and status["epoch"] == 2, status
    _, saved = load_checkpoint(writer.checkpoint_path)  # written where it stopped, within epoch 3
    assert saved["format"] == 2 and saved["epoch"] == 2 and f"at step {saved['step']};" in status["message"]
    assert saved["within_epoch"]["windows"] > 0
    resume(server, root, writer.id)
    status = writer.read_status()
    assert status["state"] == "finished" and status["resumed_from_step"] == saved["step"], status
    assert records(writer.metrics_path) == records(reference.metrics_path)


def test_a_run_cancelled_before_its_first_step_resumes_as_a_fresh_start(server, corpus, reference, tmp_path):
    """SIGTERM while it writes its "training" status, before any minibatch: its checkpoint is of
    step 0; the resume starts over, and the probes taken before training are not kept twice."""
    import os

    root = tmp_path / "runs"
    writer = new_run(root, corpus)
    pid, marker = server.start(["train", "--run-dir", str(writer.dir)], hook="status:2")
    writer.update_status(pid=pid)
    wait_until(marker.exists, what="the trainer to write its training status")
    os.kill(pid, signal.SIGTERM)
    marker.unlink()
    wait_exit(pid)
    _, saved = load_checkpoint(writer.checkpoint_path)
    assert (saved["format"], saved["epoch"], saved["step"]) == (2, 0, 0), saved
    assert read_jsonl(writer.probes_path)  # the probes before training were written

    resume(server, root, writer.id)

    assert writer.read_status()["state"] == "finished"
    assert records(writer.metrics_path) == records(reference.metrics_path)
    assert records(writer.probes_path) == records(reference.probes_path)
    assert "earlier_segments" not in writer.read_config()["environment"]  # nothing trained before


def killed_after_a_checkpoint_within(server, corpus, reference, root: Path, epoch: int = 3) -> tuple[RunWriter, int]:
    """A run checkpointing at every logged step (`--checkpoint-minutes` ~0), SIGKILLed while it
    writes its 3rd step record of `epoch`; returns it and the step of its last checkpoint."""
    writer = new_run(root, corpus)
    pid, marker = server.start(["train", "--run-dir", str(writer.dir), "--checkpoint-minutes", "1e-9"],
                               hook=mid_epoch(reference, epoch))
    writer.update_status(pid=pid)
    wait_until(marker.exists, what=f"the trainer to reach epoch {epoch}")
    kill(pid)
    logged = [r["step"] for r in read_jsonl(reference.metrics_path, "step") if r["epoch"] == epoch]
    return writer, logged[1]  # the 2nd logged step of the epoch: the 3rd was being written


# Within epoch 1 too: its checkpoint follows no completed epoch, and the probes taken before
# training must not be taken again.
@pytest.mark.parametrize("epoch", [3, 1])
def test_a_run_killed_within_an_epoch_resumes_from_its_checkpoint_there(server, corpus, reference, tmp_path, epoch):
    """Killed mid-epoch, it loses only the steps after its last checkpoint, and still ends with
    exactly the numbers of the run never killed (the state carried into the next window, the
    epoch's totals and the RNG are in the checkpoint)."""
    root = tmp_path / "runs"
    writer, step = killed_after_a_checkpoint_within(server, corpus, reference, root, epoch)
    _, saved = load_checkpoint(writer.checkpoint_path)
    assert (saved["format"], saved["epoch"], saved["step"]) == (2, epoch - 1, step)
    assert state(writer) == "interrupted"

    resume(server, root, writer.id)

    status = writer.read_status()
    assert status["state"] == "finished"
    assert (status["resumed_from_epoch"], status["resumed_from_step"]) == (epoch - 1, step)
    assert f"resuming after step {step} (window " in writer.log_path.read_text()
    assert records(writer.metrics_path) == records(reference.metrics_path)  # none twice, none missing
    assert records(writer.probes_path) == records(reference.probes_path)
    (segment,) = writer.read_config()["environment"]["earlier_segments"]
    assert (segment["until_epoch"], segment["until_step"]) == (epoch - 1, step)


def test_resume_refuses_a_mid_epoch_checkpoint_that_does_not_add_up(server, corpus, reference, tmp_path, capsys):
    from rnnreg.checkpoint import save_checkpoint

    root = tmp_path / "runs"
    writer, _ = killed_after_a_checkpoint_within(server, corpus, reference, root)
    tensors, saved = load_checkpoint(writer.checkpoint_path)
    within = saved["within_epoch"]
    cases = [
        ({**saved, "within_epoch": {**within, "windows": 10**6}}, tensors, "windows of an epoch of"),
        ({**saved, "within_epoch": {**within, "clipped": within["windows"] + 1}}, tensors, "within_epoch must hold"),
        ({**saved, "within_epoch": {**within, "nats": float("nan")}}, tensors, "within_epoch must hold"),
        ({key: v for key, v in saved.items() if key != "within_epoch"}, tensors, "within_epoch must hold"),
        (saved, {k: v for k, v in tensors.items() if k != "carry.h"}, "without its carried state"),
        (saved, {**tensors, "carry.h": tensors["carry.h"][:, :1], "carry.c": tensors["carry.c"][:, :1]},
         "its carried state is"),
        ({**saved, "epoch": EPOCHS}, tensors, f"within epoch {EPOCHS + 1} of a run of {EPOCHS} epochs"),
    ]
    for bad_state, bad_tensors, reason in cases:
        save_checkpoint(writer.checkpoint_path, bad_tensors, bad_state)
        before = digest(writer.dir)
        assert reason in resume_error(root, writer.id, capsys)
        assert digest(writer.dir) == before and state(writer) == "interrupted"


def digest(run_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(run_dir.iterdir()) if p.is_file()}


def resume_error(root: Path, run_id: str, capsys, *extra: str) -> str:
    assert cli.main(["train", "--resume", run_id, "--runs-dir", str(root), *extra]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_resume_refusals_leave_the_run_untouched(corpus, reference, tmp_path, capsys):
    import os
    import shutil

    root = tmp_path / "runs"
    finished = Path(shutil.copytree(reference.dir, root / reference.id))
    cases = {}
    for state_, extra in (("running", {"pid": os.getpid()}), ("queued", {"pid": os.getpid()}),
                          ("diverged", {"message": "loss became non-finite at step 7"}), ("finished", {})):
        writer = new_run(root, corpus)
        writer.set_status(state_, **extra)
        cases[writer.id] = state_
    cases[finished.name] = "finished"
    before = {rid: digest(root / rid) for rid in cases}
    expected = {"running": "is running", "queued": "is queued", "diverged": "diverged", "finished": "already finished"}
    for rid, state_ in cases.items():
        assert expected[state_] in resume_error(root, rid, capsys)
    assert "no run" in resume_error(root, "no-such-run", capsys)
    assert "'..'" in resume_error(root, "a..b", capsys)
    assert "drop --epochs" in resume_error(root, finished.name, capsys, "--epochs", "9")
    assert "drop --preset" in resume_error(root, finished.name, capsys, "--preset", "demo")
    assert {rid: digest(root / rid) for rid in cases} == before


def test_resume_refusal_says_why_from_the_status_and_the_config(corpus, tmp_path):
    import os

    from rnnreg.runs import resume_refusal

    root = tmp_path / "runs"
    said = {}
    for state_, extra in (("running", {"pid": os.getpid()}), ("queued", {"pid": os.getpid()}),
                          ("diverged", {"message": "loss became non-finite at step 7"}),
                          ("finished", {"message": "test ppl 99.1"}), ("cancelled", {}), ("failed", {}),
                          ("running", {"pid": 2 ** 22 + 12345})):  # its process is gone: interrupted
        writer = new_run(root, corpus)
        writer.set_status(state_, **extra)
        said[state(writer)] = resume_refusal(writer.dir)
    assert said["running"].startswith("it is running (pid ") and "rnnreg cancel" in said["running"]
    assert said["queued"].startswith("it is queued")
    assert said["diverged"].startswith("it diverged (loss became non-finite at step 7)")
    assert said["finished"] == "it already finished (test ppl 99.1); start a new run to train longer"
    assert said["cancelled"] is None and said["failed"] is None and said["interrupted"] is None
    shipped = Path(shutil.copytree(writer.dir, root / "reference" / writer.id))
    assert resume_refusal(shipped) == "reference runs are read-only"
    (writer.dir / "config.json").unlink()  # a half-written run: nothing to go on with
    assert resume_refusal(writer.dir) == "config.json: missing"
    (writer.dir / "status.json").write_text("{not json")
    assert "status.json" in resume_refusal(writer.dir)


def interrupted_run(root: Path, corpus: Path, **train) -> RunWriter:
    writer = new_run(root, corpus, **train)
    writer.set_status("running", pid=2 ** 22 + 12345)  # a pid that is not alive
    assert state(writer) == "interrupted"
    return writer


def test_launch_resume_refuses_at_once_and_starts_nothing(corpus, tmp_path):
    from rnnreg import launch

    root = tmp_path / "runs"
    writer = new_run(root, corpus)
    writer.set_status("finished", message="test ppl 99.1")
    before = digest(writer.dir)
    with pytest.raises(RunStoreError, match="already finished"):
        launch.resume(root, writer.id, wait=30)
    assert digest(writer.dir) == before  # no trainer was started: not even train.log changed


def test_launch_resume_waits_for_the_trainer_and_says_its_error(corpus, tmp_path):
    """What the dashboard's Resume button calls: a trainer that refuses on loading says why."""
    from rnnreg import launch

    root = tmp_path / "runs"
    broken = interrupted_run(root, corpus)
    doc = broken.read_config()
    doc["config"]["model"]["hidden"] = -1
    broken.config_path.write_text(json.dumps(doc))
    with pytest.raises(RunStoreError, match=f"cannot resume {broken.id}: invalid config.json"):
        launch.resume(root, broken.id, wait=120)
    assert state(broken) == "interrupted"

    fine = interrupted_run(root, corpus)  # no checkpoint: it starts over, and is claimed first
    pid = launch.resume(root, fine.id, wait=120)
    assert fine.read_status()["pid"] == pid
    wait_until(lambda: not pid_alive(pid), 120, "the resumed trainer to end")  # (a zombie child counts as ended)
    assert state(fine) == "finished"
    lines = fine.log_path.read_text().splitlines()  # its stderr already goes there: no second copy of each line
    assert sum("resuming after epoch 0" in line for line in lines) == 1, lines
    assert len([line for line in lines if " INFO epoch 1/" in line]) == 1, lines


def test_a_run_whose_files_are_symlinks_out_of_the_store_is_not_resumed_through_them(corpus, tmp_path, capsys):
    from rnnreg import launch

    root = tmp_path / "runs"
    run = interrupted_run(root, corpus)
    outside = tmp_path / "precious.txt"
    outside.write_text("precious\n")
    (run.dir / "train.log").unlink(missing_ok=True)
    (run.dir / "train.log").symlink_to(outside)
    before = digest(run.dir)
    with pytest.raises(RunStoreError, match="its train.log is a symlink; rnnreg writes a run's files only in"):
        launch.resume(root, run.id, wait=30)
    assert "symlink" in resume_error(root, run.id, capsys)  # the command line says the same
    assert outside.read_text() == "precious\n" and digest(run.dir) == before and state(run) == "interrupted"


def test_the_writers_refuse_a_symlink_planted_after_the_checks(corpus, tmp_path):
    from rnnreg.training_run import _log_to

    run = interrupted_run(tmp_path / "runs", corpus)
    outside = tmp_path / "precious.txt"
    outside.write_text("precious\n")
    for name in ("metrics.jsonl", "train.log", ".lock"):
        (run.dir / name).unlink(missing_ok=True)
        (run.dir / name).symlink_to(outside)
    with pytest.raises(RunStoreError, match="metrics.jsonl in .* is a symlink"):
        run.append_metric({"kind": "epoch", "epoch": 9})
    with pytest.raises(RunStoreError, match="train.log in .* is a symlink"):
        _log_to(run.log_path)
    with pytest.raises(RunStoreError, match=".lock in .* is a symlink"):
        run.update_status(message="x")
    assert outside.read_text() == "precious\n"


def test_resume_refuses_a_checkpoint_of_another_model(server, corpus, reference, tmp_path, capsys):
    root = tmp_path / "runs"
    writer = new_run(root, corpus)
    kill(train(server, writer, hook=mid_epoch(reference, 3)))
    doc = writer.read_config()
    doc["config"]["model"]["hidden"] = 8  # the config no longer fits the checkpoint's weights
    writer.config_path.write_text(json.dumps(doc))
    before = digest(writer.dir)
    err = resume_error(root, writer.id, capsys)
    assert "does not fit this run's model" in err
    assert digest(writer.dir) == before and state(writer) == "interrupted"


def test_resume_refuses_when_the_corpus_changed_under_the_run(server, corpus, reference, tmp_path, capsys):
    own = Path(shutil.copytree(corpus, tmp_path / "corpus"))  # the module's corpus stays as it is
    root = tmp_path / "runs"
    writer = new_run(root, own)
    kill(train(server, writer, hook=mid_epoch(reference, 3)))
    valid = own / "valid.txt"
    valid.write_text(" ".join(reversed(valid.read_text().split())) + "\n")  # the same words, other text
    before = digest(writer.dir)
    err = resume_error(root, writer.id, capsys)
    assert "its corpus is not the one its epochs trained on (the sha256 of valid differs" in err
    assert digest(writer.dir) == before and state(writer) == "interrupted"


def test_two_resumes_of_one_run_one_wins(tmp_path, corpus):
    """The claim is checked and set under the run's lock (RunWriter.set_status_if)."""
    import os

    writer = new_run(tmp_path, corpus)
    writer.set_status("running", pid=2 ** 22 + 12345)  # a pid that is not alive: interrupted
    assert state(writer) == "interrupted"
    writer.set_status_if({"interrupted"}, "running")  # the first resume: now ours, alive
    with pytest.raises(RunStoreError, match="is running"):
        writer.set_status_if({"interrupted"}, "running")
    assert writer.read_status()["pid"] == os.getpid()


def test_rewind_to_a_step_keeps_that_epochs_steps_up_to_it(tmp_path, corpus):
    writer = new_run(tmp_path, corpus)
    lines = [{"kind": "step", "epoch": 1, "step": 3}, {"kind": "epoch", "epoch": 1},
             {"kind": "step", "epoch": 2, "step": 6}, {"kind": "step", "epoch": 2, "step": 9},
             {"kind": "epoch", "epoch": 2}, {"kind": "step", "epoch": 3, "step": 12}, {"kind": "test", "epoch": 3}]
    writer.metrics_path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in lines))
    writer.probes_path.write_text('{"kind": "gates", "epoch": 1}\n{"kind": "gates", "epoch": 2}\n')
    assert writer.rewind(1, step=6) == 5
    assert read_jsonl(writer.metrics_path) == lines[:3]
    assert read_jsonl(writer.probes_path) == [{"kind": "gates", "epoch": 1}]


def test_rewind_keeps_completed_epochs_only(tmp_path, corpus):
    writer = new_run(tmp_path, corpus)
    lines = [{"kind": "step", "epoch": 1, "step": 1}, {"kind": "epoch", "epoch": 1}, {"kind": "note"},
             {"kind": "step", "epoch": 2, "step": 2}, {"kind": "epoch", "epoch": 2},
             {"kind": "step", "epoch": 3, "step": 3}, {"kind": "test", "epoch": 2}]
    writer.metrics_path.write_bytes(b"".join(json.dumps(r).encode() + b"\n" for r in lines) + b'{"kind": "st')
    writer.probes_path.write_text('{"kind": "gates", "epoch": 0}\n{"kind": "gates", "epoch": 3}\n')
    assert writer.rewind(2) == 4
    assert read_jsonl(writer.metrics_path) == lines[:5]
    assert read_jsonl(writer.probes_path) == [{"kind": "gates", "epoch": 0}]
    assert writer.rewind(-1) == 5
    assert read_jsonl(writer.metrics_path) == [{"kind": "note"}]
    assert list_runs(tmp_path)[0].problems == ()
    assert read_json(writer.status_path)[0]["state"] == "queued"


def _copied_from_elsewhere(writer: RunWriter, checksums: dict[str, str] | None) -> None:
    """As if the run had been made on a machine whose corpus directory this one does not have."""
    doc = writer.read_config()
    doc["config"]["data_dir"] = "/the-gpu-box/rnnreg/data/ptb"
    if checksums is not None:
        doc.setdefault("environment", {})["data_sha256"] = checksums
    writer.config_path.write_text(json.dumps(doc))
    writer.set_status("running", pid=2 ** 22 + 12345)  # its process is gone: interrupted
    assert state(writer) == "interrupted"


def test_a_run_copied_from_another_machine_resumes_on_the_vendored_penn_treebank(tmp_path):
    from rnnreg.config import DEFAULT_DATA_DIR
    from rnnreg.runs import penn_treebank_checksums

    root = tmp_path / "runs"
    # died in its first epoch (no checkpoint yet); a few hundred tokens of PTB keep it quick
    writer = RunWriter.create(root, to_dict(tiny_config(DEFAULT_DATA_DIR, epochs=1, max_train_tokens=400,
                                                        max_eval_tokens=400)))
    _copied_from_elsewhere(writer, penn_treebank_checksums())
    assert cli.main(["train", "--resume", writer.id, "--runs-dir", str(root)]) == 0
    assert state(writer) == "finished"
    assert writer.read_config()["environment"]["data_sha256"] == penn_treebank_checksums()
    assert writer.read_config()["config"]["data_dir"] == "/the-gpu-box/rnnreg/data/ptb"  # its record stays


def test_a_run_copied_from_another_machine_on_another_corpus_says_where_its_corpus_was(corpus, tmp_path, capsys):
    root = tmp_path / "runs"
    writer = new_run(root, corpus)
    _copied_from_elsewhere(writer, None)
    before = digest(writer.dir)
    err = resume_error(root, writer.id, capsys)
    assert "its corpus /the-gpu-box/rnnreg/data/ptb is not on this machine" in err
    assert digest(writer.dir) == before and state(writer) == "interrupted"
