"""Run configuration: frozen dataclasses, the paper's presets, validation (stdlib only).

One `RunConfig` describes a run completely; it is validated in one place (`validate`),
serialised to `config.json` (`to_dict` / `from_dict`) and built from command-line style
options in one function (`build_run_config`), which the CLI and the dashboard both call.
Every user-caused problem raises `ConfigError` with a one-line message that names the option
and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rnnreg.placements import PLACEMENT_NAMES, PLACEMENTS, resolve_rates, short_repr

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PACKAGE_ROOT / "data" / "ptb"  # the vendored Penn Treebank
DEVICES = ("auto", "cpu", "cuda")
STEP_MODES = ("auto", "graph", "eager")  # as rnnreg.steps (kept here so config stays torch-free)
TASKS = ("lm", "memory")
MAX_NAME = 200  # characters in a run's name
# Well beyond the paper's largest model (2 x 1500; 8 x 4096 is 1.1 G LSTM weights, 4.3 GB): a
# config.json asking for more is a mistake or hostile, and merely opening it (the Poke page builds
# its model) would allocate tens of GB.
MAX_LAYERS = 8
MAX_HIDDEN = 4096
FLOAT32_MAX = 3.4028234663852886e38  # no rate, clip or scale of a float32 model may exceed it


def valid_name(name: object) -> bool:
    """A run's name: text of at most MAX_NAME characters and no control characters (`rnnreg list`
    and the dashboard would print a newline or an escape sequence as it is)."""
    return isinstance(name, str) and len(name) <= MAX_NAME and not any(ord(c) < 32 or ord(c) == 127 for c in name)


class ConfigError(ValueError):
    """A user-caused configuration problem; the message is one line and names the option."""


@dataclass(frozen=True)
class ModelConfig:
    layers: int = 2  # LSTM layers stacked
    hidden: int = 200  # units per layer (= embedding size, as in the paper)
    init_scale: float = 0.1  # every parameter ~ U(-init_scale, init_scale) ...
    forget_bias: float = 0.0  # ... except the forget-gate bias, set to this: the paper adds no +1 offset, and
    # main.lua draws it like the rest (so 0 differs from it by at most init_scale; README, Presets)


@dataclass(frozen=True)
class DropoutConfig:
    placement: str = "none"  # a name from rnnreg.placements.PLACEMENTS
    rates: Mapping[str, float] = field(default_factory=dict)  # site -> p, every site of the placement


# Options where 0 stands for None: the whole split (`--max-train-tokens 0` trains demo on all of
# it), or torch's own thread count (`--threads 0`, where the memory preset takes 1).
ZERO_IS_NONE_OPTIONS = ("max_train_tokens", "max_eval_tokens", "threads")

# TrainConfig fields `rnnreg train` takes as options of their own (--lr, --lr-decay, ...).
TRAIN_SCHEDULE_OPTIONS = ("lr", "lr_decay", "decay_after", "clip", "batch_size", "bptt")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 13
    lr: float = 1.0  # plain SGD, no momentum, no weight decay (the paper) ...
    weight_decay: float = 0.0  # ... unless set: p <- (1 - wd) p after each step (Gal & Ghahramani's LM code)
    lr_decay: float = 2.0  # lr is divided by this once per epoch ...
    decay_after: int = 4  # ... for every epoch after this one (1-based)
    batch_size: int = 20
    bptt: int = 20  # unroll length
    clip: float = 5.0  # global gradient-norm clip
    max_train_tokens: int | None = None  # train on a prefix of the training split (CPU demos)
    max_eval_tokens: int | None = None  # evaluate on a prefix of valid/test (CPU demos); None = all
    test_batch_size: int = 1  # the paper streams the test set with its state carried throughout
    seed: int = 0
    device: str = "auto"  # auto = CUDA when present
    log_every: int = 10  # a "step" record every this many minibatches
    gate_probe: bool = True  # the probes (gate statistics, gradient through time) on a fixed validation
    # window, before training and after every epoch
    threads: int | None = None  # CPU threads for torch; None = torch's default (all cores)
    step: str = "auto"  # the minibatch step: auto (one CUDA graph on a GPU, else eager), graph or eager


@dataclass(frozen=True)
class MemoryTaskConfig:
    """The synthetic recall task (rnnreg.tasks.memory): remember a key across `delay` steps."""

    delay: int = 20  # the longest gap between key and query; each sequence draws 1..delay
    keys: int = 8  # distinct symbols to remember
    distractors: int = 8  # distinct symbols in between
    train_sequences: int = 2000
    eval_sequences: int = 1000  # for valid and for test each (~50 per delay at delay 20)
    data_seed: int = 0  # the generated data; the same for every run unless changed

    @property
    def sequence_length(self) -> int:
        return self.delay + 4  # key, up to `delay` distractors, query, key again, <eos>, padding


@dataclass(frozen=True)
class RunConfig:
    preset: str = "small"
    task: str = "lm"  # "lm": word-level language modelling on data_dir; "memory": the recall task
    data_dir: str = str(DEFAULT_DATA_DIR)
    model: ModelConfig = field(default_factory=ModelConfig)
    dropout: DropoutConfig = field(default_factory=DropoutConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str | None = None
    memory: MemoryTaskConfig = field(default_factory=MemoryTaskConfig)  # used when task == "memory"


# Zaremba et al. 2014, section 4.1 / Table 1 (../shared/REFERENCE.md section 1).
PRESETS: Mapping[str, RunConfig] = {
    "small": RunConfig(
        preset="small",
        model=ModelConfig(layers=2, hidden=200, init_scale=0.1),
        dropout=DropoutConfig("none", {}),
        # lr 1, /2 per epoch after epoch 4; 13 epochs; batch 20, unroll 20; clip 5
        train=TrainConfig(epochs=13, lr=1.0, lr_decay=2.0, decay_after=4, batch_size=20, bptt=20, clip=5.0),
    ),
    "medium": RunConfig(
        preset="medium",
        model=ModelConfig(layers=2, hidden=650, init_scale=0.05),
        dropout=DropoutConfig("zaremba", {"input": 0.5, "output": 0.5}),
        # lr 1, /1.2 per epoch after epoch 6; 39 epochs; batch 20, unroll 35; clip 5; dropout 0.5
        train=TrainConfig(epochs=39, lr=1.0, lr_decay=1.2, decay_after=6, batch_size=20, bptt=35, clip=5.0),
    ),
    "large": RunConfig(
        preset="large",
        model=ModelConfig(layers=2, hidden=1500, init_scale=0.04),
        dropout=DropoutConfig("zaremba", {"input": 0.65, "output": 0.65}),
        # lr 1, /1.15 per epoch after epoch 14; 55 epochs; batch 20, unroll 35; clip 10; dropout 0.65
        train=TrainConfig(epochs=55, lr=1.0, lr_decay=1.15, decay_after=14, batch_size=20, bptt=35, clip=10.0),
    ),
    # Not in the paper: the small model on a 30k-token prefix, so that a 2-core CPU shows
    # overfitting (and dropout curing it) live in a lecture.  No lr decay, so the
    # validation curve is free to turn upward.
    "demo": RunConfig(
        preset="demo",
        model=ModelConfig(layers=2, hidden=200, init_scale=0.1),
        dropout=DropoutConfig("none", {}),
        train=TrainConfig(
            epochs=10, lr=1.0, lr_decay=1.0, decay_after=10, batch_size=20, bptt=20, clip=5.0,
            max_train_tokens=30_000, max_eval_tokens=10_000, log_every=5,
        ),
    ),
    # Not in the paper: a synthetic task where recall after `delay` steps fails visibly under
    # per-step recurrent dropout (each step's mask must keep the memory: (1-p)^delay).  The
    # unroll is one whole sequence, so the key and its recall share a BPTT window.
    "memory": RunConfig(
        preset="memory",
        task="memory",
        # One layer: the lesson is about the recurrent path, and a 2-layer stack of 64 units
        # at init 0.1 sits on a long plateau before it learns to recall at all.
        model=ModelConfig(layers=1, hidden=64, init_scale=0.1),
        dropout=DropoutConfig("none", {}),
        train=TrainConfig(
            epochs=30, lr=1.0, lr_decay=1.0, decay_after=12, batch_size=20,
            bptt=MemoryTaskConfig().sequence_length, clip=5.0, test_batch_size=20, log_every=10, threads=1,
        ),
    ),
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
# Where lists of runs put the paper's models: the larger first, then demo, memory and the rest.
PAPER_MODEL_ORDER: Mapping[str, int] = {"large": 0, "medium": 1, "small": 2}


def browsing_rank(preset: str | None, read_only: bool) -> int:
    """Where a run goes in a list of runs (stable-sort by this): your own runs first, then the
    shipped ones, the paper's models (large, medium, small) before the demo and memory runs."""
    return PAPER_MODEL_ORDER.get(preset or "", len(PAPER_MODEL_ORDER)) if read_only else -1


def lr_at_epoch(train: TrainConfig, epoch: int) -> float:
    """The learning rate used throughout `epoch` (1-based).

    Zaremba et al. 2014, sec 4.1: lr stays at its initial value for `decay_after` epochs,
    then is divided by `lr_decay` once per epoch.
    """
    try:
        return train.lr / train.lr_decay ** max(epoch - train.decay_after, 0)
    except OverflowError:  # a schedule decayed past the largest float (2.0 ** 1024): nothing is left of it
        return 0.0


# How a run executes, not what it learns: runs that differ only in these are seeds of one configuration.
EXECUTION_FIELDS = frozenset({"seed", "device", "step", "log_every", "threads", "gate_probe"})


def training_variant(config: RunConfig) -> str:
    """The model and training settings of `config` that depart from its preset's, seed and execution aside.

    '' for the preset's own; else e.g. 'decay_after=7' or 'epochs=3 weight_decay=1e-07'.  Runs of
    one preset, placement, rates and variant are seeds of one configuration.  Not part of it: the
    dropout rates (a run shows its own), the corpus path (it differs between machines; the
    recorded checksums say which corpus), and a memory run's delay and the window that follows
    from it (the delay is a column of its own).
    """
    base = PRESETS.get(config.preset)
    if base is None:
        return ""
    parts = []
    for mine, theirs in ((config.model, base.model), (config.train, base.train)):
        for f in dataclasses.fields(mine):
            value = getattr(mine, f.name)
            if f.name in EXECUTION_FIELDS or value == getattr(theirs, f.name):
                continue
            if f.name == "bptt" and config.task == "memory":
                continue
            parts.append(f"{f.name}={value:g}" if isinstance(value, float) else f"{f.name}={value}")
    return " ".join(parts)


def variant_label(preset: str, variant: str) -> str:
    """How a chart names a variant: "main.lua's schedule" where it is only the rate cut one epoch
    later than the paper's text (its main.lua keeps the initial rate for decay_after + 1 epochs;
    the README's "How the paper's own code counts"), else the settings themselves ('' stays '')."""
    base = PRESETS.get(preset)
    if base is not None and variant == f"decay_after={base.train.decay_after + 1}":
        return "main.lua's schedule"
    return variant


def default_run_name(config: RunConfig) -> str:
    """The name a run gets when it is given none, in the shipped runs' style: preset, placement,
    its distinct non-zero rates, a memory run's delay, the seed ('demo-zaremba-0.5-s0')."""
    parts = [config.preset, config.dropout.placement]
    rates = [p for p in config.dropout.rates.values() if p]
    parts += [f"{p:g}" for p in dict.fromkeys(rates)]  # each distinct rate once, in site order
    if config.task == "memory":
        parts.append(f"delay{config.memory.delay}")
    return "-".join(parts + [f"s{config.train.seed}"])


def build_run_config(
    preset: str,
    *,
    placement: str | None = None,
    dropout: float | None = None,
    site_rates: Mapping[str, float] | None = None,
    epochs: int | None = None,
    max_train_tokens: int | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    seed: int | None = None,
    name: str | None = None,
    delay: int | None = None,
    **train_overrides: Any,
) -> RunConfig:
    """The one place where user options become a validated `RunConfig`.

    Starts from `preset`.  Rates: `site_rates` > `dropout` (the placement's primary sites) >
    the preset's own rates when the placement is the preset's (medium: zaremba 0.5, large:
    zaremba 0.65) > the placement's documented defaults.  Raises ConfigError naming the
    option on any bad value.
    """
    if preset not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {preset!r}; allowed: {', '.join(PRESET_NAMES)}")
    base = PRESETS[preset]
    chosen = placement if placement is not None else base.dropout.placement
    try:
        if chosen == base.dropout.placement and dropout is None:
            rates = resolve_rates(chosen, None, {**base.dropout.rates, **(site_rates or {})})
        else:
            rates = resolve_rates(chosen, dropout, site_rates)
    except ValueError as err:
        raise ConfigError(str(err)) from None

    train_changes: dict[str, Any] = dict(train_overrides)
    for key, value in (("epochs", epochs), ("max_train_tokens", max_train_tokens), ("device", device), ("seed", seed)):
        if value is not None:
            train_changes[key] = value
    for key in ZERO_IS_NONE_OPTIONS:  # e.g. 0 tokens: the whole split, undoing a preset's prefix (demo's)
        value = train_changes.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value == 0:
            train_changes[key] = None
    unknown = set(train_changes) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise ConfigError(f"unknown training option(s) {sorted(unknown)}")
    memory = base.memory
    if delay is not None:
        if base.task != "memory":
            raise ConfigError(f"--delay: only the memory task has a delay; use --preset memory (not {preset!r})")
        _check_int("--delay", delay, 1)
        memory = dataclasses.replace(memory, delay=delay)
    if base.task == "memory":  # one window per sequence (validate refuses any other --bptt)
        train_changes.setdefault("bptt", memory.sequence_length)
    config = dataclasses.replace(
        base,
        data_dir=str(Path(data_dir).expanduser().resolve()) if data_dir is not None else base.data_dir,
        dropout=DropoutConfig(chosen, rates),
        train=dataclasses.replace(base.train, **train_changes),
        name=name,
        memory=memory,
    )
    validate(config)
    return config


def _flag(field: str) -> str:
    """How an error names a training field that is also a command-line option: '--lr-decay (train.lr_decay)'."""
    return f"--{field.replace('_', '-')} (train.{field})"


def _check_int(option: str, value: Any, minimum: int, maximum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{option}: must be a whole number >= {minimum}, got {short_repr(value)}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{option}: at most {maximum}, got {short_repr(value)}")


def _is_finite_number(value: Any) -> bool:
    """A number (not a bool) that is finite as a float; JSON's whole numbers past 1e308 are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_float(option: str, value: Any, minimum: float, inclusive: bool = False) -> None:
    ok = _is_finite_number(value)
    if not ok or value < minimum or (value == minimum and not inclusive):
        relation = ">=" if inclusive else ">"
        raise ConfigError(f"{option}: must be a finite number {relation} {minimum}, got {short_repr(value)}")
    if value > FLOAT32_MAX:  # the training tensors are float32: filling one with it raised mid-run
        raise ConfigError(f"{option}: at most {FLOAT32_MAX:.4g} (the largest float32), got {short_repr(value)}")


def validate(config: RunConfig) -> None:
    """Raise ConfigError (one line, naming the option) if any field is out of range."""
    if not _is_one_of(config.preset, PRESETS):
        raise ConfigError(f"preset: unknown preset {config.preset!r}; allowed: {', '.join(PRESET_NAMES)}")
    if not _is_one_of(config.task, TASKS):
        raise ConfigError(f"task: unknown task {config.task!r}; allowed: {', '.join(TASKS)}")
    if config.name is not None and not valid_name(config.name):
        raise ConfigError(f"--name: must be text of at most {MAX_NAME} characters, without control characters")
    m, t = config.model, config.train
    _check_int("layers", m.layers, 1, MAX_LAYERS)
    _check_int("hidden", m.hidden, 1, MAX_HIDDEN)
    _check_float("init_scale", m.init_scale, 0.0)
    if not _is_finite_number(m.forget_bias) or abs(m.forget_bias) > FLOAT32_MAX:
        raise ConfigError(f"forget_bias: must be a finite number, got {short_repr(m.forget_bias)}")
    if not _is_one_of(config.dropout.placement, PLACEMENTS):
        raise ConfigError(
            f"--placement: unknown placement {config.dropout.placement!r}; allowed: {', '.join(PLACEMENT_NAMES)}"
        )
    try:
        # re-resolving checks every site name and rate, and that every site has a rate
        resolved = resolve_rates(config.dropout.placement, None, config.dropout.rates)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if set(resolved) != set(config.dropout.rates):
        missing = sorted(set(resolved) - set(config.dropout.rates))
        raise ConfigError(f"dropout.rates: no rate for site(s) {missing} of placement {config.dropout.placement!r}")
    _check_int("--epochs", t.epochs, 1)
    _check_float(_flag("lr"), t.lr, 0.0)
    _check_float(_flag("lr_decay"), t.lr_decay, 1.0, inclusive=True)
    _check_int(_flag("decay_after"), t.decay_after, 0)
    _check_int(_flag("batch_size"), t.batch_size, 1)
    _check_int(_flag("bptt"), t.bptt, 1)
    _check_float(_flag("clip"), t.clip, 0.0)
    _check_float("--weight-decay", t.weight_decay, 0.0, inclusive=True)
    if t.weight_decay >= 1:
        raise ConfigError(f"--weight-decay: must be below 1 (each step keeps 1 - WD of every weight), "
                          f"got {t.weight_decay!r}")
    if t.max_train_tokens is not None:
        _check_int("--max-train-tokens", t.max_train_tokens, 2)
    if t.max_eval_tokens is not None:
        _check_int("--max-eval-tokens", t.max_eval_tokens, 2)
    _check_int("test_batch_size", t.test_batch_size, 1)
    _check_int("--seed", t.seed, 0)
    if t.seed >= 2**63:  # torch.manual_seed takes a signed 64-bit integer
        raise ConfigError(f"--seed: must be below 2**63, got {t.seed}")
    if not _is_one_of(t.device, DEVICES):
        raise ConfigError(f"--device: unknown device {t.device!r}; allowed: {', '.join(DEVICES)}")
    _check_int(_flag("log_every"), t.log_every, 1)
    if not _is_one_of(t.step, STEP_MODES):
        raise ConfigError(f"--step: unknown step mode {t.step!r}; allowed: {', '.join(STEP_MODES)}")
    if t.threads is not None:
        if isinstance(t.threads, bool) or not isinstance(t.threads, int) or t.threads < 1:
            raise ConfigError(f"--threads: 0 (torch's default) or a whole number >= 1, got {short_repr(t.threads)}")
    if config.task == "memory":  # a language model ignores these (and may use batches above 500)
        _validate_memory_task(config)
    if not isinstance(t.gate_probe, bool):
        raise ConfigError(f"gate_probe: must be true or false, got {t.gate_probe!r}")


def _is_one_of(value: Any, allowed: Any) -> bool:
    """`value in allowed` for a name read from JSON, which may be a list (unhashable) or a number."""
    return isinstance(value, str) and value in allowed


def _validate_memory_task(config: RunConfig) -> None:
    """The memory task reads one whole sequence per window, so every batch column must start at a key.

    batchify cuts a stream of N sequences into B columns of N * L // B tokens each; unless that
    is a whole number of L-token sequences, the columns (and so every window) start mid-sequence,
    a key and its recall fall into different windows, and the per-delay scores read wrong rows.
    """
    mem, t = config.memory, config.train
    for option, value, minimum in (("--delay", mem.delay, 1), ("memory.keys", mem.keys, 2),
                                   ("memory.distractors", mem.distractors, 1),
                                   ("memory.train_sequences", mem.train_sequences, t.batch_size * 2),
                                   ("memory.eval_sequences", mem.eval_sequences, t.batch_size * 2),
                                   ("memory.data_seed", mem.data_seed, 0)):
        _check_int(option, value, minimum)
    length = mem.sequence_length
    if t.bptt != length:
        raise ConfigError(f"--bptt: the memory task's window is one whole sequence ({length} steps with "
                          f"--delay {mem.delay}), got {t.bptt!r}; leave --bptt out")
    for split, sequences, limit_option, limit, batch_option, batch in (
        ("train", mem.train_sequences, "--max-train-tokens", t.max_train_tokens, "--batch-size", t.batch_size),
        ("valid", mem.eval_sequences, "--max-eval-tokens", t.max_eval_tokens, "--batch-size", t.batch_size),
        ("test", mem.eval_sequences, "--max-eval-tokens", t.max_eval_tokens, "test_batch_size", t.test_batch_size),
    ):
        cut = limit is not None and limit < sequences * length
        tokens = limit if cut else sequences * length
        if (tokens // batch) % length:
            fix = (f"make {limit_option} a multiple of {batch * length}" if cut
                   else f"choose a {batch_option} that divides {sequences}")
            raise ConfigError(f"{limit_option if cut else batch_option}: the memory task's {split} stream of "
                              f"{sequences} sequences of {length} tokens{f', cut to {tokens},' if cut else ''} "
                              f"gives {batch} batch columns of {tokens // batch} tokens, not whole sequences, so "
                              f"its windows would start mid-sequence; {fix}")


def to_dict(config: RunConfig) -> dict[str, Any]:
    """A JSON-ready dict (the `config` part of config.json)."""
    out = dataclasses.asdict(config)
    out["dropout"]["rates"] = dict(config.dropout.rates)
    return out


def from_dict(data: Mapping[str, Any]) -> RunConfig:
    """The inverse of `to_dict`, validated; unknown keys are ignored (newer writers), and a key or
    section left out (model, train, dropout, memory, task) is its preset's."""
    if not isinstance(data, Mapping):
        raise ConfigError("config: expected a JSON object")

    # what config.json leaves out (a key, a section: edited by hand, or written before the key
    # existed) is its preset's, not the dataclasses' defaults, which are the small model's
    preset = PRESETS.get(data.get("preset")) if isinstance(data.get("preset"), str) else None

    def part(cls: type, raw: Any, where: str) -> Any:
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"config.{where}: expected a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        given = {k: v for k, v in raw.items() if k in known}
        return dataclasses.replace(getattr(preset, where), **given) if preset is not None else cls(**given)

    dropout_raw = data.get("dropout")
    if dropout_raw is None and preset is not None:
        dropout_raw = to_dict(preset)["dropout"]
    dropout_raw = dropout_raw or {}
    if not isinstance(dropout_raw, Mapping) or not isinstance(dropout_raw.get("rates", {}), Mapping):
        raise ConfigError("config.dropout: expected {placement, rates}")
    config = RunConfig(
        preset=data.get("preset", "small"),
        task=data.get("task", preset.task if preset is not None else "lm"),
        data_dir=str(data.get("data_dir") or DEFAULT_DATA_DIR),
        model=part(ModelConfig, data.get("model"), "model"),
        dropout=DropoutConfig(dropout_raw.get("placement", "none"), dict(dropout_raw.get("rates", {}))),
        train=part(TrainConfig, data.get("train"), "train"),
        name=data.get("name"),
        memory=part(MemoryTaskConfig, data.get("memory"), "memory"),
    )
    validate(config)
    return config
