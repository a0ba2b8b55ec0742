"""The hostile-input catalogue: bad configs, corpora, run stores and launches, as data.

Every case must give one clear line (the CLI: exit status 2, no traceback; the run store:
the run listed with its reason, never an exception) and change no other run: a finished
sibling run's files are hashed before and after each case.

`catalogue()` is the table; `python tests/test_hostile_inputs.py` prints its counts per
category (the README cites them).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from crash_trainer import tiny_config, write_corpus  # noqa: E402

from rnnreg import cli  # noqa: E402
from rnnreg.config import to_dict  # noqa: E402
from rnnreg.runs import RunStoreError, RunWriter, list_runs, load_run  # noqa: E402


@dataclass
class Ctx:
    root: Path  # the runs root, holding the sibling run
    corpus: Path  # a good corpus, the case may spoil it
    tmp: Path
    monkeypatch: pytest.MonkeyPatch
    created: set[str] = field(default_factory=set)  # run ids the case itself makes (allowed)


@dataclass(frozen=True)
class Case:
    category: str
    name: str
    action: Callable[[Ctx], str]  # does the hostile thing; returns the one line the user sees
    expect: str  # a part of that line


# --------------------------------------------------------------------------- actions


def run_cli(*argv: str, status: int = 2) -> str:
    """`rnnreg ARGV` in this process: must exit `status` (2, a refusal; 1, a run that failed) with one
    line on stderr and no traceback."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = cli.main([str(a) for a in argv])
    text = err.getvalue().strip()
    assert code == status, (code, text, out.getvalue())
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    return text


def train_cli(*options: str) -> Callable[[Ctx], str]:
    return lambda ctx: run_cli("train", *options, "--data", ctx.corpus, "--runs-dir", ctx.root)


def bad_config(change: Callable[[dict], None]) -> Callable[[Ctx], str]:
    """A run whose config.json is spoiled, trained as the dashboard does (`train --run-dir`)."""

    def action(ctx: Ctx) -> str:
        writer = RunWriter.create(ctx.root, to_dict(tiny_config(ctx.corpus, epochs=1)))
        ctx.created.add(writer.id)
        doc = writer.read_config()
        change(doc)
        writer.config_path.write_text(json.dumps(doc))  # Python's json writes NaN / Infinity too
        run_cli("train", "--run-dir", writer.dir, status=1)  # the run is there, and failed
        status = writer.read_status()
        assert status["state"] == "failed", status
        [summary] = [s for s in list_runs(ctx.root) if s.id == writer.id]
        assert summary.state == "failed"
        return status["message"]

    return action


def setter(path: str, value) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        *parents, key = path.split(".")
        target = doc["config"]
        for part in parents:
            target = target[part]
        target[key] = value

    return change


def bad_corpus(spoil: Callable[[Path], None]) -> Callable[[Ctx], str]:
    def action(ctx: Ctx) -> str:
        spoil(ctx.corpus)
        return train_cli("--preset", "small", "--epochs", "1")(ctx)

    return action


def write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda d: (d / name).write_bytes(data)


def planted(files: dict[str, bytes | str | None], *, state: str | None = None) -> Callable[[Ctx], str]:
    """A run directory with these files (None: a directory of that name); the store must list it."""

    def action(ctx: Ctx) -> str:
        run_dir = ctx.root / "20261126-000000-planted-abcdef"
        run_dir.mkdir()
        ctx.created.add(run_dir.name)
        for name, data in files.items():
            if data is None:
                (run_dir / name).mkdir()
            else:
                (run_dir / name).write_bytes(data.encode() if isinstance(data, str) else data)
        return check_listed(ctx, run_dir.name, state)

    return action


def check_listed(ctx: Ctx, run_id: str, state: str | None) -> str:
    summaries = {s.id: s for s in list_runs(ctx.root)}
    summary = summaries[run_id]
    if state is not None:
        assert summary.state == state, summary
    with contextlib.suppress(RunStoreError):  # opening it for viewing works, or says why in one line
        run = load_run(ctx.root, run_id)
        run.epochs_frame(), run.steps_frame(), run.gates_frame()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["list", "--runs-dir", str(ctx.root)]) == 0
    assert run_id in out.getvalue()
    return "; ".join([summary.state, *summary.problems])


GOOD_CONFIG = json.dumps({"format": 1, "id": "x", "config": {"preset": "small", "train": {"epochs": 2}}})
GOOD_STATUS = json.dumps({"state": "finished", "epoch": 2})


def good(**overrides: bytes | str | None) -> dict[str, bytes | str | None]:
    return {"config.json": GOOD_CONFIG, "status.json": GOOD_STATUS, **overrides}


def symlink_outside(ctx: Ctx) -> str:
    outside = ctx.tmp / "elsewhere"
    outside.mkdir()
    (outside / "config.json").write_text(GOOD_CONFIG)
    link = ctx.root / "20261126-000000-link-abcdef"
    link.symlink_to(outside, target_is_directory=True)
    ctx.created.add(link.name)
    message = check_listed(ctx, link.name, "corrupt")
    with pytest.raises(RunStoreError, match="leaves the runs directory"):
        load_run(ctx.root, link.name)
    return message


def dead_pid(ctx: Ctx) -> str:
    status = {"state": "running", "pid": 2 ** 22 + 4321, "host": os.uname().nodename, "epoch": 1}
    return planted(good(**{"status.json": json.dumps(status)}), state="interrupted")(ctx)


def died_with_log(log: bytes | None) -> Callable[[Ctx], str]:
    """A run whose trainer died unannounced, its train.log these bytes (None: a FIFO, which a
    reader that opened it would wait on forever); the listing's reason comes from that log."""

    def action(ctx: Ctx) -> str:
        status = {"state": "running", "pid": 2 ** 22 + 4321, "host": os.uname().nodename, "epoch": 1}
        files = good(**{"status.json": json.dumps(status)})
        if log is not None:
            files["train.log"] = log
        listed = planted(files, state="interrupted")(ctx)
        run_dir = ctx.root / "20261126-000000-planted-abcdef"
        if log is None:
            os.mkfifo(run_dir / "train.log")
        (summary,) = [s for s in list_runs(ctx.root) if s.id == run_dir.name]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert cli.main(["list", "--runs-dir", str(ctx.root)]) == 0
        assert "\x1b" not in out.getvalue()  # a planted escape sequence is not passed to the terminal
        return f"{listed}: {summary.message}"

    return action


def huge_pid(ctx: Ctx) -> str:
    status = {"state": "running", "pid": 2 ** 32, "host": os.uname().nodename, "epoch": 1}
    message = planted(good(**{"status.json": json.dumps(status)}), state="interrupted")(ctx)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["show", "20261126-000000-planted-abcdef", "--runs-dir", str(ctx.root)]) == 0
    return message


def a_run(ctx: Ctx, state: str, *, group: str | None = None, checkpoint: bytes | None = b"") -> RunWriter:
    """A run of `state` (in `group`, e.g. reference/), with a checkpoint of these bytes (None: none)."""
    writer = RunWriter.create(ctx.root / group if group else ctx.root, to_dict(tiny_config(ctx.corpus)))
    ctx.created.add(writer.id)
    writer.set_status(state, pid=dead_process() if state == "running" else None)
    if checkpoint is not None:
        writer.checkpoint_path.write_bytes(checkpoint)
    return writer


def dead_process() -> int:
    import subprocess

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def reference_by_path(spelling: str) -> Callable[[Ctx], str]:
    """`rnnreg evaluate` must not record into a shipped run however its path is spelled."""

    def action(ctx: Ctx) -> str:
        writer = a_run(ctx, "finished", group="reference")
        before = digest(writer.dir)
        if spelling == "absolute path":
            message = run_cli("evaluate", writer.dir.resolve(), "--mc-samples", "1", "--runs-dir",
                              os.path.relpath(ctx.root))  # the root spelled relative, the run absolute
        else:  # the runs root is the reference folder itself
            message = run_cli("evaluate", writer.id, "--mc-samples", "1", "--runs-dir", ctx.root / "reference")
        assert digest(writer.dir) == before
        return message

    return action


def compact(state: str, **run: object) -> Callable[[Ctx], str]:
    def action(ctx: Ctx) -> str:
        writer = a_run(ctx, state, **run)
        before = digest(writer.dir)
        message = run_cli("compact", writer.id, "--runs-dir", ctx.root)
        assert digest(writer.dir) == before
        return message

    return action


def train_over(state: str) -> Callable[[Ctx], str]:
    """`train --run-dir` (the dashboard's way in) on a run that is not queued for it: nothing written."""

    def action(ctx: Ctx) -> str:
        writer = a_run(ctx, state)
        before = digest(writer.dir)
        message = run_cli("train", "--run-dir", writer.dir)
        assert digest(writer.dir) == before
        return message

    return action


def dashboard_resume(state: str, *, group: str | None = None, nonsense_config: bool = False) -> Callable[[Ctx], str]:
    """A Resume button's click (`launch.resume(..., wait=)`) on a run that may not resume: refused at
    once from its status, or by the trainer it starts, whose message comes back to the page."""

    def action(ctx: Ctx) -> str:
        from rnnreg import launch

        writer = a_run(ctx, state, group=group, checkpoint=None)
        if nonsense_config:
            doc = writer.read_config()
            doc["config"]["model"]["hidden"] = -1
            writer.config_path.write_text(json.dumps(doc))
        before = digest(writer.dir)
        with pytest.raises(RunStoreError) as info:
            launch.resume(ctx.root, writer.id, wait=120)
        after = digest(writer.dir)
        if nonsense_config:  # its trainer said why in train.log, and touched nothing else
            before.pop("train.log", None), after.pop("train.log")
        assert after == before
        return str(info.value)

    return action


def fifo_checkpoint(ctx: Ctx) -> str:
    writer = a_run(ctx, "finished", checkpoint=None)
    os.mkfifo(writer.checkpoint_path)  # a reader that opened it blocking would wait for ever
    return run_cli("compact", writer.id, "--runs-dir", ctx.root)


def cancel_unidentified_pid(ctx: Ctx) -> str:
    import subprocess

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        status = {"state": "running", "pid": bystander.pid, "epoch": 1}  # no host, no start time
        planted(good(**{"status.json": json.dumps(status)}), state="running")(ctx)
        message = run_cli("cancel", "20261126-000000-planted-abcdef", "--runs-dir", ctx.root)
        assert bystander.poll() is None  # not signalled
        return message
    finally:
        bystander.kill()
        bystander.wait()


def run_id_refused(run_id: str) -> Callable[[Ctx], str]:
    def action(ctx: Ctx) -> str:
        for verb in ("show", "cancel"):
            message = run_cli(verb, run_id, "--runs-dir", ctx.root)
        with pytest.raises(RunStoreError):
            load_run(ctx.root, run_id)
        return message

    return action


def same_name_twice(ctx: Ctx) -> str:
    from rnnreg.launch import launch

    config = to_dict(tiny_config(ctx.corpus))
    fake = lambda run_dir, **_: [sys.executable, "-c", "pass"]  # noqa: E731 (no trainer needed here)
    first = launch(ctx.root, config, name="twin", command=fake)
    second = launch(ctx.root, config, name="twin", command=fake)
    ctx.created |= {first, second}
    assert first != second and {s.label for s in list_runs(ctx.root) if s.id in (first, second)} == {"twin"}
    return f"two runs named twin: {first}, {second}"


def double_submit(ctx: Ctx) -> str:
    from rnnreg.launch import launch

    config = to_dict(tiny_config(ctx.corpus))
    fake = lambda run_dir, **_: [sys.executable, "-c", "pass"]  # noqa: E731
    ids = {launch(ctx.root, config, request_id="click-1", command=fake) for _ in range(3)}
    ctx.created |= ids
    assert len(ids) == 1
    return f"one run for request click-1: {ids.pop()}"


def launch_fails(error: int, patch: str) -> Callable[[Ctx], str]:
    """The runs root refuses writes (read-only: EROFS on open/mkdir; full: ENOSPC on fsync)."""

    def action(ctx: Ctx) -> str:
        from rnnreg.launch import launch

        real = getattr(os, patch)

        def refuse(path, *args, **kwargs):
            if patch == "fsync" or str(path).startswith(str(ctx.root)):
                raise OSError(error, os.strerror(error))
            return real(path, *args, **kwargs)

        before = sorted(p.name for p in ctx.root.iterdir())
        ctx.monkeypatch.setattr(os, patch, refuse)
        try:
            with pytest.raises(RunStoreError) as info:
                launch(ctx.root, to_dict(tiny_config(ctx.corpus)), name="doomed")
        finally:
            ctx.monkeypatch.undo()
        assert sorted(p.name for p in ctx.root.iterdir() if p.name != ".launch.lock") == \
            [b for b in before if b != ".launch.lock"]  # nothing half made, not even hidden
        message = str(info.value)
        assert len(message.splitlines()) == 1
        return message

    return action


def cli_train_full_disk(ctx: Ctx) -> str:
    def refuse(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    ctx.monkeypatch.setattr(os, "fsync", refuse)
    try:
        return train_cli("--preset", "small", "--epochs", "1")(ctx)
    finally:
        ctx.monkeypatch.undo()


# --------------------------------------------------------------------------- the catalogue


def catalogue() -> list[Case]:
    C = Case
    cases = [
        # configs, from the command line
        C("config", "negative dropout", train_cli("--placement", "zaremba", "--dropout", "-0.1"), "0 <= p < 1"),
        C("config", "dropout 1", train_cli("--placement", "zaremba", "--dropout", "1"), "0 <= p < 1"),
        C("config", "dropout above 1", train_cli("--placement", "zaremba", "--dropout", "1.5"), "0 <= p < 1"),
        C("config", "dropout NaN", train_cli("--placement", "zaremba", "--dropout", "nan"), "nan"),
        C("config", "dropout inf", train_cli("--placement", "zaremba", "--dropout", "inf"), "inf"),
        C("config", "dropout not a number", train_cli("--dropout", "half"), "a rate is a number with 0 <= P < 1"),
        C("config", "site rate >= 1", train_cli("--placement", "zaremba", "--dropout-site", "input=1"), "0 <= p < 1"),
        C("config", "site rate not a number", train_cli("--dropout-site", "input=lots"), "not a number"),
        C("config", "site without a rate", train_cli("--dropout-site", "input"), "expected SITE=P"),
        C("config", "unknown preset", train_cli("--preset", "gigantic"), "unknown preset 'gigantic'"),
        C("config", "unknown placement", train_cli("--placement", "everywhere"), "unknown placement 'everywhere'"),
        C("config", "unknown site", train_cli("--placement", "zaremba", "--dropout-site", "gates=0.2"), "gates"),
        C("config", "epochs 0", train_cli("--epochs", "0"), "--epochs: must be a whole number >= 1"),
        C("config", "negative epochs", train_cli("--epochs", "-3"), "--epochs: must be a whole number >= 1"),
        C("config", "epochs not a number", train_cli("--epochs", "ten"), "invalid int value"),
        C("config", "max train tokens 1", train_cli("--max-train-tokens", "1"),
          "--max-train-tokens: must be a whole number >= 2"),
        # the test corpus's 1026 tokens in 20 columns of 51: 50 steps of (input, next word) each; it
        # blamed only --max-train-tokens, which this run does not even set
        C("config", "unroll longer than the tokens allow", train_cli("--bptt", "200", "--batch-size", "20"),
          "at most --bptt 50 here"),
        C("config", "negative seed", train_cli("--seed", "-1"), "--seed"),
        C("config", "unknown device", train_cli("--device", "tpu"), "unknown device 'tpu'"),
        C("config", "no CUDA here", train_cli("--device", "cuda"), "no CUDA GPU"),
        # the flag, not only the key
        C("config", "log every 0", train_cli("--log-every", "0"), "--log-every (train.log_every)"),
        C("config", "name of 300 characters", train_cli("--name", "n" * 300), "--name"),
        C("config", "resume with new options", lambda ctx: run_cli("train", "--resume", "x", "--epochs", "3"),
          "drop --epochs"),
        C("config", "resume with a new delay", lambda ctx: run_cli("train", "--resume", "x", "--delay", "50"),
          "drop --delay"),
        C("config", "dropout for a preset without dropout", train_cli("--preset", "small", "--dropout", "0.5"),
          "placement 'none' (the small preset's default) has no dropout sites"),
        C("config", "seed beyond 64 bits", train_cli("--seed", "99999999999999999999"), "--seed: must be below"),
        C("config", "name with a newline", train_cli("--name", "a\nb"), "without control characters"),
        C("config", "name with an escape sequence", train_cli("--name", "\x1b[31mred"), "without control characters"),
        C("config", "max concurrent -1", train_cli("--max-concurrent", "-1"), "--max-concurrent: must be >= 1"),
        C("config", "checkpoint minutes -1", train_cli("--checkpoint-minutes", "-1"),
          "--checkpoint-minutes: must be a number of minutes >= 0, got -1"),
        C("config", "checkpoint minutes NaN", train_cli("--checkpoint-minutes", "nan"), "--checkpoint-minutes"),
        C("config", "bench threads -1", lambda ctx: run_cli("bench", "--threads", "-1"), "--threads: must be >= 1"),
        C("config", "weight decay 1", train_cli("--weight-decay", "1"), "--weight-decay: must be below 1"),
        C("config", "bench share without one alone", lambda ctx: run_cli("bench", "--share", "2,4"), "including 1"),
        # configs, from config.json (the dashboard's way)
        C("config", "hidden 0", bad_config(setter("model.hidden", 0)), "hidden"),
        C("config", "negative layers", bad_config(setter("model.layers", -1)), "layers"),
        C("config", "unroll 0", bad_config(setter("train.bptt", 0)), "bptt"),
        C("config", "batch size 0", bad_config(setter("train.batch_size", 0)), "batch_size"),
        C("config", "lr NaN", bad_config(setter("train.lr", float("nan"))), "lr"),
        C("config", "lr infinite", bad_config(setter("train.lr", float("inf"))), "lr"),
        C("config", "lr not a number", bad_config(setter("train.lr", "fast")), "lr"),
        # whole numbers past a float's range: math.isfinite raised OverflowError, crashing every chart page
        C("config", "lr of 400 digits", bad_config(setter("train.lr", 10**400)), "lr"),
        C("config", "lr beyond float32 (a traceback mid-run)", train_cli("--lr", "1e300"), "largest float32"),
        C("config", "forget bias of 400 digits", bad_config(setter("model.forget_bias", 10**400)), "forget_bias"),
        C("config", "rate of 400 digits",
          bad_config(setter("dropout.rates", {"input": 10**400, "output": 0.2})), "input"),
        C("config", "hidden 10**6 (tens of GB to build)", bad_config(setter("model.hidden", 10**6)), "hidden: at most"),
        C("config", "9 layers", bad_config(setter("model.layers", 9)), "layers: at most"),
        C("config", "epochs as text", bad_config(setter("train.epochs", "3")), "--epochs"),
        C("config", "negative clip", bad_config(setter("train.clip", -1)), "clip"),
        C("config", "weight decay NaN", bad_config(setter("train.weight_decay", float("nan"))), "--weight-decay"),
        C("config", "lr decay below 1", bad_config(setter("train.lr_decay", 0.5)), "lr_decay"),
        C("config", "rate 1 in config.json", bad_config(setter("dropout.rates", {"input": 1.0, "output": 0.2})), "input"),
        C("config", "unknown placement in config.json", bad_config(setter("dropout.placement", "nope")), "nope"),
        C("config", "model not an object", bad_config(setter("model", [16])), "config.model"),
        # corpora
        C("corpus", "missing split", bad_corpus(lambda d: (d / "valid.txt").unlink()), "no valid split"),
        C("corpus", "empty train file", bad_corpus(write("train.txt", b"")), "holds no words"),
        C("corpus", "blank test file", bad_corpus(write("test.txt", b"  \n\n \t\n")), "holds no words"),
        C("corpus", "non-UTF-8 bytes", bad_corpus(write("valid.txt", b"good words \xff\xfe bad\n")), "not UTF-8"),
        C("corpus", "a single token", bad_corpus(write("train.txt", b"word\n")), "too short"),
        C("corpus", "valid split shorter than a window", bad_corpus(write("valid.txt", b"red fox\n" * 20)),
          "no full window"),
        C("corpus", "missing directory", lambda ctx: run_cli("train", "--data", ctx.tmp / "nowhere", "--runs-dir",
                                                             ctx.root), "no such directory"),
        C("corpus", "a file, not a directory", lambda ctx: run_cli("train", "--data", ctx.corpus / "train.txt",
                                                                   "--runs-dir", ctx.root), "no such directory"),
        C("corpus", "split is a directory", bad_corpus(lambda d: ((d / "test.txt").unlink(), (d / "test.txt").mkdir())),
          "no test split"),
        # run store: listed with a reason, never an exception
        C("store", "torn config.json", planted(good(**{"config.json": GOOD_CONFIG[:25]})), "config.json: not valid JSON"),
        C("store", "torn status.json", planted(good(**{"status.json": '{"state": "runn'}), state="unknown"),
          "status.json: not valid JSON"),
        C("store", "binary status.json", planted(good(**{"status.json": os.urandom(64) + b"\xff"})),
          "status.json: not valid JSON"),
        C("store", "status.json is a list", planted(good(**{"status.json": "[1, 2]"})), "not a JSON object"),
        C("store", "status.json is a directory", planted(good(**{"status.json": None})), "not a regular file"),
        C("store", "config is a list", planted(good(**{"config.json": '{"format": 1, "config": [1]}'})),
          "no 'config' object"),
        C("store", "wrong types everywhere", planted(good(**{
            "config.json": json.dumps({"format": 1, "config": {"train": "x", "dropout": {"rates": [1]}, "name": 5}}),
            "status.json": json.dumps({"state": "finished", "epoch": "two", "epochs_total": [], "started_at": 7}),
            "metrics.jsonl": '{"kind": "epoch", "epoch": "one", "valid_ppl": "low"}\n[1]\n"x"\n'}), state="finished"),
          "finished"),
        C("store", "missing config.json", planted({"status.json": GOOD_STATUS}), "config.json: missing"),
        C("store", "unknown state", planted(good(**{"status.json": '{"state": "exploded"}'}), state="unknown"),
          "unknown state 'exploded'"),
        C("store", "format from the future", planted(good(**{"config.json": '{"format": 99, "config": {}}'})),
          "format 99"),
        C("store", "config.json of 2 MB", planted(good(**{"config.json": " " * (2 << 20) + "{}"})), "larger than"),
        C("store", "deeply nested JSON", planted(good(**{"config.json": "[" * 100_000 + "]" * 100_000})),
          "not valid JSON"),
        C("store", "a 10 MB single line", planted(good(**{"metrics.jsonl": '{"kind": "epoch", "x": "'
                                                           + "y" * (10 << 20) + '"}\n'})),
          "1 unreadable line(s) skipped"),
        C("store", "torn last metrics line", planted(good(**{"metrics.jsonl": '{"kind": "epoch", "epoch": 1, '
                                                              '"valid_ppl": 9.5}\n{"kind": "ep'}), state="finished"),
          "finished"),
        C("store", "running with a dead pid", dead_pid, "interrupted"),
        C("store", "symlink outside the root", symlink_outside, "symlink pointing outside"),
        C("store", "pid beyond the system's range", huge_pid, "interrupted"),
        C("store", "train.log is a FIFO in a run that died", died_with_log(None),
          "interrupted: its process ended without a word"),
        C("store", "train.log ends in a planted escape sequence", died_with_log(
            b"Traceback (most recent call last):\n  File x\n\x1b[2J\x1b[31mError: \xff<b>gone</b>\n"),
          "its trainer died: \x1b[2J\x1b[31mError: \ufffd<b>gone</b>"),
        C("store", "cancel a pid with no start time", cancel_unidentified_pid,
          "without the host that tells its trainer"),
        C("store", "evaluate a reference run by its path", reference_by_path("absolute path"), "read-only"),
        C("store", "runs root is the reference folder", reference_by_path("root"), "read-only"),
        C("store", "compact an interrupted run", compact("running"), "is interrupted, not finished"),
        C("store", "compact a reference run", compact("finished", group="reference"), "read-only"),
        C("store", "compact without a checkpoint", compact("finished", checkpoint=None), "cannot read"),
        C("store", "checkpoint is a FIFO", fifo_checkpoint, "not a regular file"),
        C("store", "train --run-dir over an interrupted run", train_over("running"), "rnnreg train --resume"),
        C("store", "train --run-dir over a finished run", train_over("finished"),
          "cannot be resumed either: it already finished"),  # it no longer advises a --resume that is refused
        C("store", "run id with ..", run_id_refused("../../etc"), "'/'"),
        C("store", "run id with .. only", run_id_refused(".."), "'..'"),
        C("store", "run id with /", run_id_refused("a/b"), "'/'"),
        C("store", "run id with NUL", run_id_refused("a\x00b"), "NUL"),
        C("store", "run id too long", run_id_refused("r" * 300), "longer than"),
        # launching
        C("launch", "same name twice", same_name_twice, "two runs named twin"),
        C("launch", "double submit", double_submit, "one run for request click-1"),
        C("launch", "runs root read-only", launch_fails(errno.EROFS, "open"), "Read-only file system"),
        C("launch", "runs root full", launch_fails(errno.ENOSPC, "fsync"), "No space left on device"),
        C("launch", "CLI run, runs root full", cli_train_full_disk, "No space left on device"),
        C("launch", "max concurrent 0", lambda ctx: _launch_error(ctx, max_concurrent=0), "max concurrent"),
        C("launch", "Resume a finished run", dashboard_resume("finished"), "already finished"),
        C("launch", "Resume a reference run", dashboard_resume("cancelled", group="reference"), "read-only"),
        C("launch", "Resume a run whose config.json was edited into nonsense",
          dashboard_resume("cancelled", nonsense_config=True), "invalid config.json"),
    ]
    return cases


def _launch_error(ctx: Ctx, **kwargs) -> str:
    from rnnreg.launch import launch

    with pytest.raises(RunStoreError) as info:
        launch(ctx.root, to_dict(tiny_config(ctx.corpus)), **kwargs)
    return str(info.value)


CATEGORY_LABELS = {"config": "config (CLI flags and config.json)", "corpus": "corpus", "store": "run store",
                   "launch": "launching"}


def counts() -> dict[str, int]:
    out: dict[str, int] = {}
    for case in catalogue():
        out[case.category] = out.get(case.category, 0) + 1
    return out


# --------------------------------------------------------------------------- the test


def digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def sibling_template(tmp_path_factory) -> Path:
    """A finished run with metrics, probes and a checkpoint-sized file: what must not change."""
    root = tmp_path_factory.mktemp("template")
    writer = RunWriter.create(root, to_dict(tiny_config(root)), name="sibling")
    for epoch in (1, 2):
        writer.append_metric({"kind": "epoch", "epoch": epoch, "valid_ppl": 10.0 - epoch})
        writer.append_probe({"kind": "gates", "epoch": epoch, "layer": 0, "gate": "f", "mean": 0.5})
    writer.close()
    writer.checkpoint_path.write_bytes(os.urandom(4096))
    writer.set_status("finished", message="test ppl 8.00", pid=None)
    return writer.dir


@pytest.mark.parametrize("case", catalogue(), ids=lambda c: f"{c.category}: {c.name}")
def test_hostile_input(case: Case, tmp_path, sibling_template, monkeypatch):
    import shutil

    root = tmp_path / "runs"
    root.mkdir()
    sibling = Path(shutil.copytree(sibling_template, root / sibling_template.name, symlinks=True))
    ctx = Ctx(root=root, corpus=write_corpus(tmp_path / "corpus"), tmp=tmp_path, monkeypatch=monkeypatch)
    before = digest(sibling)

    message = case.action(ctx)

    assert case.expect in message, message
    assert len(message.splitlines()) == 1, message
    assert digest(sibling) == before  # no other run changed
    assert {s.id for s in list_runs(root)} == {sibling.name} | ctx.created  # and none appeared


def test_catalogue_is_large_enough():
    assert len(catalogue()) >= 40
    assert len({(c.category, c.name) for c in catalogue()}) == len(catalogue())
    assert set(counts()) == {"config", "corpus", "store", "launch"}


def readme_table() -> str:
    """The README's table of these cases, as this catalogue counts them."""
    total = counts()
    rows = [f"| {CATEGORY_LABELS[category]} | {count} |" for category, count in total.items()]
    return "\n".join(["| category | cases |", "|---|---|", *rows, f"| **total** | **{sum(total.values())}** |"])


def test_the_readme_counts_these_cases():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert readme_table() in readme, "update the README's table: python tests/test_hostile_inputs.py"


if __name__ == "__main__":
    print(readme_table())
