"""One training run, end to end: options -> run directory -> trained, tested, recorded.

Used by `rnnreg train`.  Owns the run's lifecycle in status.json:

    queued -> running -> finished | diverged | cancelled | failed

and what goes to the user: the run directory on stdout, a progress bar on a terminal,
log lines in train.log.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import traceback
from pathlib import Path

import torch

from rnnreg.config import PACKAGE_ROOT, ConfigError, RunConfig, build_run_config, from_dict, to_dict
from rnnreg.data import Corpus, DataError, load_corpus
from rnnreg.launch import acquire_slot
from rnnreg.probes import GateProbe, GradThroughTime, probe_batch, probe_window
from rnnreg.recording import RunRecorder
from rnnreg.runs import TERMINAL_STATES, RunWriter, runs_root
from rnnreg.train import Cancelled, Diverged, Trainer, resolve_device

log = logging.getLogger("rnnreg")

EXIT_DIVERGED = 3
EXIT_CANCELLED = 4
EXIT_FAILED = 1


class StopFlag:
    """Set by SIGTERM / SIGINT; the trainer checks it between minibatches."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal = signum


def config_from_args(args: argparse.Namespace) -> RunConfig:
    overrides = {"log_every": args.log_every} if args.log_every is not None else {}
    return build_run_config(
        args.preset, placement=args.placement, dropout=args.dropout, site_rates=dict(args.dropout_site),
        epochs=args.epochs, max_train_tokens=args.max_train_tokens, data_dir=args.data, device=args.device,
        seed=args.seed, name=args.name, **overrides,
    )


def git_commit() -> str | None:
    """The commit of the checkout rnnreg runs from (+ "-dirty" when it has local changes)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PACKAGE_ROOT,
                               capture_output=True, text=True, timeout=5)
        return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


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
        "vocab_size": len(corpus.vocab),
        "data_sha256": corpus.checksums,
        "train_tokens": int(trainer.train_data.numel()),
        "batches_per_epoch": trainer.batches_per_epoch,
    }


def _log_to(path: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path is not None:
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.INFO)


def train_from_cli(args: argparse.Namespace) -> int:
    stop = StopFlag()
    stop.install()
    if args.run_dir:  # launched by the dashboard: the run exists, its output already goes to train.log
        writer = RunWriter.open(args.run_dir)
        _log_to(None)
        try:
            config = from_dict(writer.read_config().get("config") or {})
        except ConfigError as err:
            writer.set_status("failed", message=f"invalid config: {err}")
            raise
        if writer.read_status().get("state") in TERMINAL_STATES:  # cancelled before it started
            return EXIT_CANCELLED
        root = writer.dir.parent
        if args.max_concurrent:
            slot = acquire_slot(root, args.max_concurrent, should_stop=stop)
            if slot is None:
                writer.set_status("cancelled", message="cancelled while queued")
                return EXIT_CANCELLED
    else:
        config = config_from_args(args)
        if not Path(config.data_dir).is_dir():
            raise DataError(f"--data: no such directory: {config.data_dir}")
        writer = RunWriter.create(runs_root(args.runs_dir), to_dict(config))
        _log_to(writer.log_path)
        print(writer.dir, flush=True)
    return _train_run(writer, config, stop)


def _train_run(writer: RunWriter, config: RunConfig, stop: StopFlag) -> int:
    writer.set_status("running", epochs_total=config.train.epochs, message="loading data")
    try:
        device = resolve_device(config.train.device)
        corpus = load_corpus(config.data_dir)
        writer.vocab_path.write_text(json.dumps(list(corpus.vocab.words)), encoding="utf-8")
        listeners = [RunRecorder(writer)]
        trainer = Trainer(config, corpus, device, listeners, should_stop=stop)
        if config.train.gate_probe:
            tokens = probe_batch(corpus.valid, config.train.batch_size, config.train.bptt)
            trainer.listeners.append(GateProbe(tokens, writer.append_probe))
            # gradient-through-time profiles (how far back dL_t reaches) on the same window
            inputs, targets = probe_window(corpus.valid, config.train.batch_size, config.train.bptt)
            trainer.listeners.append(GradThroughTime(inputs, targets, writer.append_probe))
        if sys.stderr.isatty():
            from rnnreg.progress import ProgressBar

            trainer.listeners.append(ProgressBar())
        writer.update_config(environment(device, trainer, corpus))
        writer.update_status(message="training")
        log.info("run %s: %s, %s on %s (%s path)", writer.id, config.preset, config.dropout.placement, device,
                 trainer.model.default_path)
        result = trainer.run()
    except Diverged as err:
        writer.set_status("diverged", message=str(err), diverged_step=err.step)
        log.error("%s", err)
        return EXIT_DIVERGED
    except Cancelled as err:
        writer.set_status("cancelled", message=f"{err}; the last checkpoint is from the last completed epoch")
        log.warning("%s", err)
        return EXIT_CANCELLED
    except (DataError, ConfigError, ValueError) as err:
        writer.set_status("failed", message=str(err))
        log.error("%s", err)
        print(f"rnnreg: error: {err}", file=sys.stderr)
        return 2
    except BaseException as err:
        writer.set_status("failed", message=f"{type(err).__name__}: {err}")
        log.error("run failed:\n%s", traceback.format_exc())
        raise
    finally:
        writer.close()
    writer.set_status("finished", message=f"test ppl {result.test_ppl:.2f}", pid=os.getpid())
    return 0
