"""The `rnnreg train` command that trains a run's configuration again.

A run's config.json holds every setting; the command is its preset plus an option for each
setting that departs from the preset's (and always the seed).  Some settings have no option
(a model's size, `test_batch_size`, ...): a config that changed one of them (a sweep spec can)
is reported with those settings rather than with a command that would train something else.
The run's name and corpus path are no part of what it trains: the command leaves out the name,
and names the corpus only where it is not the vendored Penn Treebank.
"""

from __future__ import annotations

import dataclasses
import functools
import shlex
from typing import Any, Mapping

from rnnreg.config import DEFAULT_DATA_DIR, PRESETS, ConfigError, RunConfig, from_dict
from rnnreg.placements import PLACEMENTS
from rnnreg.runs import corpus_of

# TrainConfig field -> its `rnnreg train` option, in the order a command lists them
TRAIN_OPTIONS: Mapping[str, str] = {
    "epochs": "--epochs", "max_train_tokens": "--max-train-tokens", "max_eval_tokens": "--max-eval-tokens",
    "lr": "--lr", "lr_decay": "--lr-decay", "decay_after": "--decay-after", "clip": "--clip",
    "batch_size": "--batch-size", "bptt": "--bptt", "weight_decay": "--weight-decay", "log_every": "--log-every",
    "step": "--step", "device": "--device", "threads": "--threads", "seed": "--seed",
}


@dataclasses.dataclass(frozen=True)
class TrainCommand:
    argv: tuple[str, ...]  # what follows `python -m rnnreg train`
    unreachable: tuple[str, ...]  # 'model.hidden=300': settings of the run that no option sets

    @property
    def text(self) -> str:
        return shlex.join(["python", "-m", "rnnreg", "train", *self.argv])

    def to_json(self) -> dict[str, Any]:
        return {"command": self.text, "not_settable": list(self.unreachable)}


def _value(value: Any) -> str:
    if value is None:  # only config.ZERO_IS_NONE_OPTIONS reach here: the whole split, torch's threads
        return "0"
    return repr(value) if isinstance(value, float) else str(value)  # repr: a float's shortest exact form


@functools.cache
def _parser() -> Any:
    from rnnreg.cli import build_parser  # torch-free, as the dashboard needs

    return build_parser()


def _build(argv: list[str]) -> RunConfig:
    """What `argv` would train, parsed by the command line itself (ConfigError if it refuses it)."""
    from rnnreg.cli import UsageError, config_from_args

    try:
        return config_from_args(_parser().parse_args(["train", *argv]))
    except UsageError as err:
        raise ConfigError(str(err)) from None


def train_command(config: RunConfig, environment: object = None, *, named: bool = False) -> TrainCommand:
    """The options that make `config` from its preset; `environment` (config.json's) says by its
    recorded checksums whether the run's corpus was the vendored Penn Treebank.  `named`: with
    `--name` (a run of the same name, as the Launch page's terminal equivalent)."""
    preset = PRESETS[config.preset]
    argv = ["--preset", config.preset]
    if config.dropout.placement != preset.dropout.placement:
        argv += ["--placement", config.dropout.placement]
    if config.task == "memory" and config.memory.delay != preset.memory.delay:
        argv += ["--delay", str(config.memory.delay)]
    rates = dict(config.dropout.rates)
    if dict(_build(argv).dropout.rates) != rates:
        primary = {rates.get(site) for site in PLACEMENTS[config.dropout.placement].primary_sites}
        if len(primary) == 1 and None not in primary:  # one rate on every primary site: --dropout
            argv += ["--dropout", _value(primary.pop())]
        built = _build(argv).dropout.rates
        for site, rate in rates.items():
            if built.get(site) != rate:
                argv += ["--dropout-site", f"{site}={_value(rate)}"]
    # the options above settle the preset's schedule and window (memory: the delay sets --bptt)
    base = _build(argv).train
    for field, option in TRAIN_OPTIONS.items():
        value = getattr(config.train, field)
        if field == "seed" or value != getattr(base, field):
            argv += [option, _value(value)]
    unsettable = []
    elsewhere = config.data_dir != str(DEFAULT_DATA_DIR) and corpus_of(_checksums(environment)) != "penn-treebank"
    if config.task == "lm" and elsewhere:  # the memory task reads no corpus
        if config.data_dir.isprintable():
            argv += [f"--data={config.data_dir}"]  # one word: a directory named '-x' is no option
        else:  # shell-quoted it runs as it is, but a line break or an escape would disguise the script
            unsettable.append("data_dir (it holds a control character)")
    if named and config.name:
        argv += [f"--name={config.name}"]
    return TrainCommand(tuple(argv), (*unsettable, *_unreachable(config, _build(argv))))


def _checksums(environment: object) -> object:
    return environment.get("data_sha256") if isinstance(environment, dict) else None


def _unreachable(config: RunConfig, built: RunConfig) -> tuple[str, ...]:
    """Settings of `config` that the command's run would not have: those no option sets."""
    out = [f"task={config.task}"] if config.task != built.task else []  # a hand-edited task its preset has not
    for part in ("model", "train", "memory", "dropout"):
        if part == "memory" and config.task != "memory":
            continue
        mine, theirs = getattr(config, part), getattr(built, part)
        for f in dataclasses.fields(mine):
            value = getattr(mine, f.name)
            if value != getattr(theirs, f.name):
                out.append(f"{part}.{f.name}={_value(dict(value) if isinstance(value, Mapping) else value)}")
    return tuple(out)


def run_command(config: object, environment: object = None) -> TrainCommand | None:
    """The command for config.json's `config` and `environment`; None where it is no valid run config
    (an unreadable config.json reads as {}, which `from_dict` would take for the small preset's)."""
    if not isinstance(config, dict) or "preset" not in config:
        return None
    try:
        return train_command(from_dict(config), environment)  # type: ignore[arg-type]
    except (ConfigError, TypeError, ValueError):  # torn, hand-edited or from a newer writer
        return None


def script(runs: list[tuple[str, TrainCommand | None]]) -> str:
    """A shell script of (label, command) pairs: each command under a comment naming its run."""
    lines = ["#!/bin/sh", "# the `rnnreg train` commands that train these runs again (rnnreg.reproduce)"]
    for label, command in runs:
        label = "".join(c if c.isprintable() else "?" for c in label)  # a comment ends at a line break
        lines.append("")
        if command is None:
            lines.append(f"# {label}: its config.json holds no readable run config, so no command")
            continue
        lines.append(f"# {label}")
        if command.unreachable:
            lines.append(f"# differs from this command in what no option sets: {', '.join(command.unreachable)}")
        lines.append(command.text)
    return "\n".join(lines) + "\n"
