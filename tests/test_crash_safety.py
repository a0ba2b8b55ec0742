"""Crash safety: real trainers SIGKILLed at chosen and random moments; cancel; divergence.

Every killed run must stay readable (list_runs, load_run, the dashboard's runs page), read
`interrupted`, keep its completed epochs intact, and hold either the previous or the new
checkpoint, never a torn one; then `--resume` finishes it with the numbers of a run that was
never killed.  Trainers are forked from one warm process (tests/crash_trainer.py).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from pathlib import Path

import pytest

from crash_trainer import REPO, ForkServer, alive, tiny_config, wait_exit, wait_until
from rnnreg import cli
from rnnreg.config import to_dict
from rnnreg.runs import RunWriter, list_runs, load_run, pid_alive, read_json, read_jsonl

EPOCHS = 4
TIMING = {"seconds", "time", "words_per_s"}
# status.json writes of a trainer: running, training, then one per epoch, then finished.
TRIALS = (
    [f"checkpoint:{n}" for n in (1, 1, 2, 3, 3, 4)]
    + [f"status:{n}" for n in (1, 2, 3, 4, 5, 6)]
    + [f"metrics:{n}" for n in (1, 9, 17, 26, 40, 51)]
    + ["probes:1", "probes:5"]
    + ["random"] * 8
)  # 28 trials
# With a checkpoint at every logged step (`--checkpoint-minutes` ~0) most checkpoint writes are
# within an epoch: kills inside those, and at random moments, must leave the same guarantees.
WITHIN_EPOCH = ["--checkpoint-minutes", "1e-9"]
TRIALS_WITHIN_EPOCH = [f"checkpoint:{n}" for n in (2, 5, 9, 14)] + ["random"] * 6


def start(server: ForkServer, writer: RunWriter, hook: str | None = None, extra: tuple[str, ...] = ()):
    """Start the run's trainer as `launch` does: fork it, then record its pid."""
    pid, marker = server.start(["train", "--run-dir", str(writer.dir), *extra], hook=hook)
    writer.update_status(pid=pid)
    return pid, marker


def strip(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


@pytest.mark.parametrize("hooks, extra", [(TRIALS, ()), (TRIALS_WITHIN_EPOCH, WITHIN_EPOCH)],
                         ids=["epoch checkpoints", "checkpoints within epochs"])
def test_sigkill_at_random_moments_never_tears_a_run(server, corpus, tmp_path, monkeypatch, hooks, extra):
    from rnnreg.checkpoint import load_checkpoint

    started = time.monotonic()
    root = tmp_path / "runs"
    config = to_dict(tiny_config(corpus, epochs=EPOCHS))
    reference = RunWriter.create(tmp_path / "reference", config)
    pid, _ = start(server, reference)
    wait_exit(pid)
    # Random kills land at a random point of a run's progress (after a random number of its
    # metric lines, plus up to 20 ms): a fixed time window made most of them come after the
    # end on a quiet machine, and the test flaky.
    reference_lines = len(reference.metrics_path.read_bytes().splitlines())

    def lines(path: Path) -> int:
        return len(path.read_bytes().splitlines()) if path.exists() else 0
    assert reference.read_status()["state"] == "finished"

    rng = random.Random(7)
    trials = []  # (writer, hook)
    for batch in range(0, len(hooks), 7):
        running = []
        for hook in hooks[batch:batch + 7]:
            writer = RunWriter.create(root, config)
            pid, marker = start(server, writer, None if hook == "random" else hook, tuple(extra))
            running.append((writer, hook, pid, marker, rng.randint(1, reference_lines - 3)))
        for writer, hook, pid, marker, kill_at in running:  # kill_at: metric lines (random)
            if hook == "random":
                wait_until(lambda: lines(writer.metrics_path) >= kill_at or not alive(pid), 30, "progress")
                time.sleep(rng.uniform(0.0, 0.02))
            else:
                wait_until(lambda: marker.exists() or not alive(pid), 30, f"{hook} to be reached")
                assert marker.exists(), f"{hook}: the trainer ended before reaching it"
            with contextlib.suppress(ProcessLookupError):  # a random kill may come after the end
                os.kill(pid, signal.SIGKILL)
            trials.append((writer, hook))
        for writer, _hook, pid, _marker, _ in running:
            wait_exit(pid)

    summaries = {s.id: s for s in list_runs(root)}
    assert set(summaries) == {w.id for w, _ in trials}
    interrupted = []
    for writer, hook in trials:
        summary = summaries[writer.id]
        status, problem = read_json(writer.status_path)
        assert problem is None, (hook, problem)  # status.json is never torn
        assert summary.problems == (), (hook, summary.problems)
        if summary.state == "finished":
            assert hook == "random", hook  # only a random kill may come too late
            continue
        assert summary.state == "interrupted", (hook, summary.state, status)
        interrupted.append(writer.id)
        run = load_run(root, writer.id)
        epochs = run.metrics("epoch")
        done = [r["epoch"] for r in epochs]
        assert done == list(range(1, len(done) + 1)), (hook, done)  # complete records, in order, none twice
        reference_epochs = strip(read_jsonl(reference.metrics_path, "epoch"))
        assert strip(epochs) == reference_epochs[:len(done)], hook  # the completed epochs are intact
        if writer.checkpoint_path.exists():
            _tensors, state = load_checkpoint(writer.checkpoint_path)  # loads: never torn
            # after a completed epoch (format 1), or within the epoch after one (format 2, from 0)
            assert state["epoch"] in [*([0] if state["format"] == 2 else []), *done], (hook, state, done)
            assert state["epoch"] >= len(done) - 1, (hook, state["epoch"], done)
            assert state["format"] == 1 or extra, (hook, state)
        else:
            assert len(done) <= 1, (hook, done)  # only a kill within the first checkpoint write
    # every hooked kill interrupts its run; a random one may rarely land after the last write
    hooked = sum(1 for _, hook in trials if hook != "random")
    assert len(interrupted) >= hooked + (len(trials) - hooked) // 2, (len(interrupted), hooked)
    print(f"killed {len(trials)} trainers, {len(interrupted)} interrupted: {time.monotonic() - started:.1f} s")

    # The dashboard's runs page shows them all, interrupted, without an exception.
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RNNREG_RUNS_DIR", str(root))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=60).run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert sorted(table["id"]) == sorted(summaries)
    assert (table["state"] == "interrupted").sum() == len(interrupted)
    print(f"app checked: {time.monotonic() - started:.1f} s")

    # Every killed run resumes to exactly the reference's numbers.
    pids = [server.start(["train", "--resume", rid, "--runs-dir", str(root)])[0] for rid in interrupted]
    for pid in pids:
        wait_exit(pid)
    want = strip(read_jsonl(reference.metrics_path))
    want_probes = strip(read_jsonl(reference.probes_path))
    for rid in interrupted:
        run = load_run(root, rid)
        assert run.status["state"] == "finished", (rid, run.status)
        assert strip(run.metrics()) == want, rid
        assert strip(read_jsonl(root / rid / "probes.jsonl")) == want_probes, rid  # gates, gradient through time
    print(f"resumed {len(interrupted)} runs: {time.monotonic() - started:.1f} s")


def test_cancel_a_real_trainer_from_the_cli(corpus, tmp_path, capsys):
    """`rnnreg cancel RUN` -> SIGTERM -> the trainer stops between minibatches, ends `cancelled`,
    and its checkpoint is from the step where it stopped."""
    from rnnreg.checkpoint import load_checkpoint
    from rnnreg.launch import active_runs, launch

    root = tmp_path / "runs"
    run_id = launch(root, to_dict(tiny_config(corpus, epochs=500)), name="to cancel")
    run_dir = root / run_id
    wait_until(lambda: (read_json(run_dir / "status.json")[0] or {}).get("epoch", 0) >= 2, 90,
               "two completed epochs", poll=0.05)
    assert cli.main(["cancel", run_id, "--runs-dir", str(root)]) == 0
    assert "asked run" in capsys.readouterr().out
    pid = read_json(run_dir / "status.json")[0]["pid"]
    wait_until(lambda: not pid_alive(pid), 30, "the trainer to exit")  # our child: a zombie until reaped
    active_runs(root)  # reaps it
    run = load_run(root, run_id)
    assert run.status["state"] == "cancelled", run.status
    assert "cancelled during epoch" in run.status["message"] and run.summary.state == "cancelled"
    done = [r["epoch"] for r in run.metrics("epoch")]
    assert done == list(range(1, len(done) + 1)) and 2 <= len(done) < 500
    _tensors, state = load_checkpoint(run_dir / "checkpoint.safetensors")
    assert state["epoch"] == done[-1] and state["format"] == 2  # within the epoch after the last completed one
    assert f"during epoch {done[-1] + 1} at step {state['step']};" in run.status["message"]  # where it stopped


def test_divergence_ends_the_run_diverged_with_step_lr_and_hint(corpus, tmp_path, capsys):
    root = tmp_path / "runs"
    writer = RunWriter.create(root, to_dict(tiny_config(corpus, lr=1e38)))
    assert cli.main(["train", "--run-dir", str(writer.dir)]) == 3
    status = writer.read_status()
    assert status["state"] == "diverged", status
    message = status["message"]
    assert "non-finite at step" in message and f"step {status['diverged_step']}" in message
    assert "lr 1e+38" in message and "hint: lower the learning rate" in message
    assert status["ended_at"]
    [summary] = list_runs(root)
    assert summary.state == "diverged" and summary.message == message
    assert cli.main(["show", writer.id, "--runs-dir", str(root)]) == 0
    assert "non-finite" in capsys.readouterr().out


def test_a_cli_run_killed_before_training_reads_interrupted(server, corpus, tmp_path):
    """The CLI trainer records its pid when it creates the run, so a run whose process
    dies before it starts is never `queued` forever."""
    root = tmp_path / "runs"
    pid, marker = server.start(["train", "--data", str(corpus), "--device", "cpu", "--runs-dir", str(root)],
                               hook="status:2")  # status:1 is inside RunWriter.create
    wait_until(marker.exists, 30, "the first status write after creating the run")
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)
    [summary] = list_runs(root)
    assert summary.state == "interrupted" and summary.problems == (), summary
