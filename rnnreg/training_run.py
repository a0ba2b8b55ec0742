"""One training run, end to end: options -> run directory -> trained, tested, recorded.

Used by `rnnreg train`.  Owns the run's lifecycle in status.json:

    queued -> running -> finished | diverged | cancelled | failed
                 ^          (interrupted: the process died; readers see that from its pid)
                 └── `--resume` ── interrupted | cancelled | failed

and what goes to the user: the run directory on stdout, a progress bar on a terminal,
log lines in train.log.
"""

from __future__ import annotations

import argparse
import dataclasses
import contextlib
import json
import logging
import os
import platform
import signal
import sys
import traceback
from pathlib import Path
from typing import Iterator

import torch

from rnnreg.cli import config_from_args
from rnnreg.config import ConfigError, RunConfig, default_run_name, from_dict, to_dict
from rnnreg.data import Corpus, DataError
from rnnreg.fused_cell import cell_kernel
from rnnreg import line
from rnnreg.launch import Slot, acquire_slot, usable_cpus
from rnnreg.provenance import git_commit
from rnnreg.probes import GateProbe, GradThroughTime, probe_batch, probe_window
from rnnreg.checkpoint import CheckpointError
from rnnreg.recording import DEFAULT_CHECKPOINT_MINUTES, ResumePoint, RunRecorder, restore_trainer
from rnnreg.tasks import load_task_data
from rnnreg.runs import (
    RESUMABLE_STATES,
    NoSuchRun,
    RunStoreError,
    RunWriter,
    atomic_write_bytes,
    corpus_dir,
    effective_state,
    find_run_dir,
    list_runs,
    open_in_run,
    ppl_text,
    resume_refusal,
    runs_root,
    utc_now,
)
from rnnreg.train import Cancelled, Diverged, Trainer, resolve_device

log = logging.getLogger("rnnreg")

EXIT_DIVERGED = 3
EXIT_CANCELLED = 4
EXIT_FAILED = 1
EXIT_USAGE = 2


class StopFlag:
    """Set by SIGTERM / SIGINT; the trainer checks it between minibatches."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Catch SIGTERM / SIGINT while inside; the previous handlers come back afterwards."""
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
        for sig in previous:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = signum


def environment(device: torch.device, trainer: Trainer, corpus: Corpus) -> dict[str, object]:
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu"),
        "cpu_threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "lstm_path": {"train": trainer.model.path_for(True), "eval": trainer.model.path_for(False)},
        # which minibatch step trained the run (rnnreg.steps), and why auto fell back if it did
        "train_step": trainer.training_step.name,
        # the explicit path's per-step arithmetic: a Triton kernel or torch ops (rnnreg.fused_cell)
        "cell_kernel": cell_kernel(device) if trainer.model.path_for(True) == "explicit" else None,
        **({"train_step_note": trainer.step_note} if trainer.step_note else {}),
        "vocab_size": len(corpus.vocab),
        "data_sha256": corpus.checksums,
        "train_tokens": int(trainer.train_data.numel()),
        "batches_per_epoch": trainer.batches_per_epoch,
    }


class _RunLogHandler(logging.StreamHandler):
    """logging.FileHandler's appending, without following a symlink planted as train.log."""

    def __init__(self, path: Path) -> None:
        super().__init__(open(open_in_run(path), "a", encoding="utf-8"))

    def close(self) -> None:
        try:
            self.stream.close()
        finally:
            super().close()


def _stderr_is(path: Path) -> bool:
    try:
        ours, theirs = os.fstat(sys.stderr.fileno()), os.stat(path, follow_symlinks=False)
    except (OSError, ValueError, AttributeError):  # no stderr descriptor (pytest's capture), no file yet
        return False
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _log_to(path: Path | None) -> None:
    """Log to stderr and to `path` (the run's train.log), unless stderr already goes to that file:
    a run the dashboard launched or resumed has its output appended there, and would log each line twice."""
    for handler in [h for h in log.handlers if getattr(h, "_rnnreg_run", False)]:  # a previous run's
        log.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path is not None and not _stderr_is(path):
        handlers.append(_RunLogHandler(path))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler._rnnreg_run = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def prepare(config: RunConfig, stop: StopFlag) -> Trainer:
    """Device, corpus and a fresh trainer for `config`; writes nothing.

    Raises ValueError (DataError among them) for what the user can fix: a missing or bad
    corpus, no CUDA, a corpus too short for the batch size.
    """
    device = resolve_device(config.train.device)
    corpus = load_task_data(config)
    return Trainer(config, corpus, device, should_stop=stop)


def _error(message: object, status: int = EXIT_USAGE) -> int:
    print(f"rnnreg: error: {message}", file=sys.stderr)
    return status


def train_from_cli(args: argparse.Namespace) -> int:
    stop = StopFlag()
    with stop.installed():
        if args.resume:
            return resume_from_cli(args, stop)
        if args.run_dir:
            return _train_queued(args, stop)
        config = config_from_args(args)
        if config.name is None:  # 'small-zaremba-0.5-s0' in every list and legend, not only a time stamp
            config = dataclasses.replace(config, name=default_run_name(config))
        if args.max_concurrent:
            config = share_cores(config, args.max_concurrent, usable_cpus())
        try:
            trainer = prepare(config, stop)  # a user error here leaves no run behind
        except ValueError as err:
            return _error(err)
        root = runs_root(args.runs_dir)
        writer = RunWriter.create(root, to_dict(config), pid=os.getpid())  # queued, with this pid: cancellable
        _log_to(writer.log_path)
        print(writer.dir, flush=True)
        slot = None
        if args.max_concurrent:  # the same queue as the dashboard's and the sweeps' runs
            writer.update_status(message=f"waiting until fewer than {args.max_concurrent} runs train")
            slot = _wait_for_slot(writer, root, args.max_concurrent, stop, waiting="queued")
            if slot is None:
                return EXIT_CANCELLED
        try:
            writer.set_status("running", epochs_total=config.train.epochs, message="starting")
            return _train_run(writer, trainer, checkpoint_seconds=checkpoint_interval(args))
        finally:
            if slot is not None:
                slot.release()


def share_cores(config: RunConfig, max_concurrent: int, cpus: int) -> RunConfig:
    """Runs sharing the CPUs get a core share each instead of one OpenMP team per core each.

    Teams spinning against each other on 2 busy cores made a demo run 4x slower here.  An
    explicit `threads` in the config is kept; so is torch's default for a run alone.
    """
    if max_concurrent <= 1 or config.train.threads is not None:
        return config
    return dataclasses.replace(config, train=dataclasses.replace(config.train, threads=max(1, cpus // max_concurrent)))


def _wait_for_slot(writer: RunWriter, root: Path, limit: int, stop: StopFlag, *, waiting: str,
                   joined: bool = False) -> Slot | None:
    """One of `limit` training slots of `root` (the queue the dashboard's, the sweeps' and the
    command line's runs share), first in, first out; or None after marking the run cancelled:
    `rnnreg cancel` stopped this process while it waited.  `joined`: `launch` put the run in the
    line when it made it; otherwise it joins now."""
    try:
        if not joined:
            line.join(root, writer.dir, limit)
        slot = acquire_slot(root, limit, should_stop=stop, run_id=writer.id)
    except RunStoreError as err:  # a symlink planted in the queue's folder: the run says why it stopped
        writer.set_status("failed", message=f"could not wait in the queue: {err}")
        raise
    if slot is None:
        writer.set_status("cancelled", message=f"cancelled while {waiting}")
    return slot


def _train_queued(args: argparse.Namespace, stop: StopFlag) -> int:
    """Launched by the dashboard: the run exists, its output already goes to train.log."""
    writer = RunWriter.open(args.run_dir)
    _log_to(None)
    try:
        config = from_dict(writer.read_config().get("config") or {})
    except ConfigError as err:
        writer.set_status("failed", message=f"invalid config: {err}")
        return _error(err, EXIT_FAILED)
    status = writer.read_status()
    state = effective_state(status)
    if state == "cancelled":  # cancelled before it started
        print(f"rnnreg: run {writer.id} was cancelled before it started", file=sys.stderr)
        return EXIT_CANCELLED
    if state != "queued" or status.get("pid") not in (None, os.getpid()):
        # only the queued run launch made for this process: anything else would train over its records
        owner = f" (pid {status['pid']})" if state == "queued" else ""
        refusal = resume_refusal(writer.dir)  # the advice only where a resume would be taken
        advice = (f"continue it with rnnreg train --resume {writer.id}" if refusal is None
                  else f"and it cannot be resumed either: {refusal}")
        return _error(f"--run-dir: run {writer.id} is {state}{owner}, not a queued run waiting for this process; "
                      f"{advice}")
    slot = None
    if args.max_concurrent:
        config = share_cores(config, args.max_concurrent, usable_cpus())
        slot = _wait_for_slot(writer, writer.dir.parent, args.max_concurrent, stop, waiting="queued", joined=True)
        if slot is None:
            return EXIT_CANCELLED
    try:
        writer.set_status("running", epochs_total=config.train.epochs, message="loading data")
        try:
            trainer = prepare(config, stop)
        except ValueError as err:
            writer.set_status("failed", message=str(err))
            log.error("%s", err)
            return _error(err, EXIT_FAILED)  # a run that exists and failed, not a refused option
        return _train_run(writer, trainer, checkpoint_seconds=checkpoint_interval(args))
    finally:
        if slot is not None:
            slot.release()


QUEUED = frozenset({"queued"})  # a resume's own claim while it waits for a slot


def resume_from_cli(args: argparse.Namespace, stop: StopFlag) -> int:
    """`rnnreg train --resume RUN`: continue from the run's checkpoint (after its last completed
    epoch, or within an epoch: `--checkpoint-minutes`, a cancel).

    Everything is checked before the run is touched (its state, config, corpus, checkpoint);
    then the run is claimed (`running`, under its lock: of two resumes one wins), records
    written after the checkpoint are dropped from metrics.jsonl / probes.jsonl (so no step or
    epoch is ever recorded twice), and training goes on.  With the same device and seed the
    result equals an uninterrupted run's, record for record.  No checkpoint (the run died in
    its first epoch before any): it starts over from epoch 0.
    """
    root = runs_root(args.runs_dir)
    try:
        run_dir = find_run_dir(root, args.resume)
    except NoSuchRun:  # a name: --resume takes the id, which Cancel finds on a trainer's command line
        named = [s.id for s in list_runs(root) if s.name == args.resume]
        if not named:
            raise
        raise RunStoreError(f"--resume takes a run id, not a name: the run named {args.resume!r} is "
                            f"{' or '.join(named)}") from None
    refusal = resume_refusal(run_dir)
    if refusal:
        raise RunStoreError(f"cannot resume {args.resume}: {refusal}")
    writer = RunWriter.open(run_dir)
    recorded = writer.read_config()
    environment = recorded.get("environment") if isinstance(recorded.get("environment"), dict) else {}
    try:
        config = from_dict(recorded.get("config") or {})
    except ConfigError as err:
        raise RunStoreError(f"cannot resume {writer.id}: invalid config.json: {err}") from None
    if config.task == "lm":
        # A run copied from another machine names a directory that is not here; the vendored PTB
        # serves if the run recorded its checksums (and the check below compares them again).
        found = corpus_dir(config.data_dir, environment)
        if found is None:
            raise RunStoreError(f"cannot resume {writer.id}: its corpus {config.data_dir} is not on this machine; "
                                "put it back there (config.json's data_dir)")
        config = dataclasses.replace(config, data_dir=str(found))
    try:
        trainer = prepare(config, stop)
    except ValueError as err:
        raise RunStoreError(f"cannot resume {writer.id}: {err}") from None
    if os.path.lexists(writer.checkpoint_path):
        changed = _changed_splits(environment, trainer.corpus.checksums)
        if changed:  # its trained epochs saw other text: going on would mix two corpora in one run
            raise RunStoreError(f"cannot resume {writer.id}: its corpus is not the one its epochs trained on "
                                f"(the sha256 of {', '.join(changed)} differs from config.json's record); "
                                "restore those files or start a new run")
        try:
            point = restore_trainer(trainer, writer.checkpoint_path)
        except CheckpointError as err:
            raise RunStoreError(f"cannot resume {writer.id}: {err}") from None
    else:
        point = ResumePoint(0, 0, None, 0.0)
    epoch = point.epoch
    where = f"epoch {epoch}" if point.windows is None else \
        f"step {point.step} (window {point.windows} of epoch {epoch + 1})"
    slot, claimable = None, RESUMABLE_STATES
    if args.max_concurrent:
        # Claimed before the wait, with this pid: `rnnreg cancel` then stops this process (and the
        # run ends cancelled), where before it marked the run and the resume trained it anyway.
        try:
            # the resume's start and what its checkpoint carried, now: the days it lay interrupted are no
            # part of its wall, also if it is cancelled while it waits
            writer.set_status_if(RESUMABLE_STATES, "queued", pid=os.getpid(), ended_at=None, cancel_requested_at=None,
                                 resumed_from_epoch=epoch, resumed_from_step=point.step,
                                 resumed_from_time=point.seconds, resumed_at=utc_now(),
                                 message=f"waiting for a slot to resume after {where}")
        except RunStoreError as err:
            raise RunStoreError(f"cannot resume: {err}") from None
        slot, claimable = _wait_for_slot(writer, root, args.max_concurrent, stop, waiting="waiting to resume"), QUEUED
        if slot is None:
            return EXIT_CANCELLED
    try:
        try:
            writer.set_status_if(
                claimable, "running", pid=os.getpid(), epoch=epoch, ended_at=None, cancel_requested_at=None,
                resumed_from_epoch=epoch, resumed_from_step=point.step, resumed_from_time=point.seconds,
                resumed_at=utc_now(),
                message=f"resuming after {where}",
            )
        except RunStoreError as err:
            raise RunStoreError(f"cannot resume: {err}") from None
        if point.windows is None or point.step == 0:  # (a checkpoint before the first step: starting over)
            dropped = writer.rewind(epoch if epoch > 0 else -1)
        else:
            dropped = writer.rewind(epoch, step=point.step)
        _log_to(writer.log_path)
        print(writer.dir, flush=True)
        log.info("run %s: resuming after %s (%d later records dropped)", writer.id, where, dropped)
        return _train_run(writer, trainer, resumed_after=point, checkpoint_seconds=checkpoint_interval(args))
    finally:
        if slot is not None:
            slot.release()


def _changed_splits(environment: object, checksums: dict[str, str]) -> list[str]:
    """The splits whose sha256 differs from the one `environment` recorded (none recorded: none)."""
    recorded = environment.get("data_sha256") if isinstance(environment, dict) else None
    if not isinstance(recorded, dict):
        return []
    return sorted(split for split, digest in recorded.items() if checksums.get(split) != digest)


# What a resume keeps of the environment its run's earlier epochs trained in (another commit,
# another machine or thread count: a run resumed in a later session).
SEGMENT_FIELDS = ("git_commit", "torch", "device", "device_name", "cpu_threads", "train_step", "platform")


def _earlier_segments(writer: RunWriter, resumed_after: ResumePoint) -> dict[str, object]:
    """config.json's `earlier_segments` for a run resumed at `resumed_after`: the recorded
    environment of the epochs before (`until_epoch`; `until_step` too, where it stopped within
    an epoch), added to the list earlier resumes wrote."""
    env = writer.read_config().get("environment")
    env = env if isinstance(env, dict) else {}
    earlier = env.get("earlier_segments") if isinstance(env.get("earlier_segments"), list) else []
    if resumed_after.step <= 0:  # started over: nothing of an earlier segment is left
        return {"earlier_segments": []} if earlier else {}
    within = {} if resumed_after.windows is None else {"until_step": resumed_after.step}
    return {"earlier_segments": [*earlier, {"until_epoch": resumed_after.epoch, **within,
                                            **{key: env[key] for key in SEGMENT_FIELDS if key in env}}]}


def checkpoint_interval(args: argparse.Namespace) -> float | None:
    """`--checkpoint-minutes` in seconds; None (0 minutes): no checkpoints within an epoch."""
    minutes = getattr(args, "checkpoint_minutes", None)
    minutes = DEFAULT_CHECKPOINT_MINUTES if minutes is None else minutes
    return 60.0 * minutes if minutes > 0 else None


def _train_run(writer: RunWriter, trainer: Trainer, *, resumed_after: ResumePoint | None = None,
               checkpoint_seconds: float | None = None) -> int:
    """Train, test and record `trainer`'s run into `writer`'s directory (status already `running`).

    config.json's environment is this process's; a resumed run keeps the one its earlier epochs
    trained in under `earlier_segments`."""
    config, device, corpus = trainer.config, trainer.device, trainer.corpus
    try:
        atomic_write_bytes(writer.vocab_path, json.dumps(list(corpus.vocab.words)).encode("utf-8"))
        if config.train.gate_probe:
            tokens = probe_batch(corpus.valid, config.train.batch_size, config.train.bptt)
            trainer.listeners.append(GateProbe(tokens, writer.append_probe))
            # gradient-through-time profiles (how far back dL_t reaches) on the same window
            inputs, targets = probe_window(corpus.valid, config.train.batch_size, config.train.bptt)
            trainer.listeners.append(GradThroughTime(inputs, targets, writer.append_probe))
        # After every listener that writes records: an epoch's checkpoint then comes after all of
        # that epoch's records, so a run killed in between resumes from the epoch before and
        # writes them again (with the recorder first, a kill amid an epoch's probe records lost
        # them for good).
        trainer.listeners.append(RunRecorder(writer, checkpoint_seconds))
        if sys.stderr.isatty():
            from rnnreg.progress import ProgressBar

            trainer.listeners.append(ProgressBar())
        earlier = _earlier_segments(writer, resumed_after) if resumed_after is not None else {}
        writer.update_config({**environment(device, trainer, corpus), **earlier})
        writer.update_status(message="training")
        log.info("run %s: %s, %s on %s (%s path)", writer.id, config.preset, config.dropout.placement, device,
                 trainer.model.default_path)
        result = trainer.run()
    except Diverged as err:
        writer.set_status("diverged", message=str(err), diverged_step=err.step)
        log.error("%s", err)
        return EXIT_DIVERGED
    except Cancelled as err:
        writer.set_status("cancelled", message=f"{err}; its checkpoint is from there")
        log.warning("%s", err)
        return EXIT_CANCELLED
    except (DataError, ConfigError, ValueError) as err:
        writer.set_status("failed", message=str(err))
        log.error("%s", err)
        return _error(err, EXIT_FAILED)  # a run that exists and failed, not a refused option
    except BaseException as err:
        writer.set_status("failed", message=f"{type(err).__name__}: {err}")
        log.error("run failed:\n%s", traceback.format_exc())
        raise
    finally:
        writer.close()
    writer.set_status("finished", message=finished_message(result), pid=os.getpid())
    return 0


def finished_message(result) -> str:
    """A finished run's status line: its test perplexity, and first its recall on a recall task."""
    recall = f"test recall {result.test_accuracy:.1%}, " if result.test_accuracy is not None else ""
    return f"{recall}test ppl {ppl_text(result.test_ppl)}"
