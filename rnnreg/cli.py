"""The command line: `python -m rnnreg COMMAND ...` (also installed as `rnnreg`).

A mistake the user can make (an unknown preset, placement or site, a rate outside [0, 1),
a missing data directory, a bad run id) prints one line naming the option and what is
allowed, and exits with status 2.  Errors of the program itself are not swallowed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import textwrap
import sys
from pathlib import Path
from typing import Sequence

from rnnreg.config import PRESET_NAMES, PRESETS, TRAIN_SCHEDULE_OPTIONS, ConfigError, RunConfig, build_run_config
from rnnreg.placements import PLACEMENTS, SITE_DESCRIPTIONS

EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a tool whose reader went away
DEFAULT_PRESET = "demo"  # `rnnreg train` without --preset: a minute on a laptop's CPU


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message}")


def _site_rate(text: str) -> tuple[str, float]:
    site, sep, rate = text.partition("=")
    if not sep or not site:
        raise argparse.ArgumentTypeError(f"expected SITE=P (e.g. hidden=0.25), got {text!r}")
    try:
        return site.strip(), float(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate for site {site!r} is not a number: {rate!r}") from None


def _rate(text: str) -> float:
    """--dropout's P: a number (its range, 0 <= P < 1, is checked with the rest of the config)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}; a rate is a number with 0 <= P < 1") from None


_RUN_HELP = "run id, or the name of one run (rnnreg list shows both)"


def _add_runs_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs-dir", help="runs root (default: $RNNREG_RUNS_DIR, else runs/ in the current "
                                           "directory)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rnnreg", description="LSTM language models with dropout placements (Zaremba et al. 2014).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a run (prints its directory)")
    train.add_argument("--preset", help=f"one of {', '.join(PRESET_NAMES)} (default: {DEFAULT_PRESET})")
    train.add_argument("--placement", help=f"dropout placement: {', '.join(PLACEMENTS)} (default: the preset's)")
    train.add_argument("--dropout", type=_rate, metavar="P", help="rate of the placement's primary sites, 0 <= P < 1")
    train.add_argument("--dropout-site", type=_site_rate, action="append", default=[], metavar="SITE=P",
                       help="rate of one site (repeatable), e.g. --dropout-site embedding=0.1")
    train.add_argument("--epochs", type=int, metavar="N")
    demo = PRESETS["demo"].train
    train.add_argument("--max-train-tokens", type=int, metavar="N",
                       help=f"train on the first N tokens only (0: all; demo's default is {demo.max_train_tokens:,})")
    train.add_argument("--max-eval-tokens", type=int, metavar="N",
                       help="validate and test on the first N tokens of each split only (0: all; demo's default "
                            f"is {demo.max_eval_tokens:,})")
    train.add_argument("--data", metavar="DIR", help="corpus directory (default: the vendored PTB in data/ptb)")
    train.add_argument("--device", help="auto (default: CUDA when present), cpu or cuda")
    train.add_argument("--seed", type=int)
    train.add_argument("--threads", type=int, metavar="N",
                       help="torch CPU threads (0: torch's default, all cores, or a core share with "
                            "--max-concurrent; memory's default is 1): the thread count can change a CPU run's "
                            "last digits")
    train.add_argument("--step", choices=["auto", "graph", "eager"],
                       help="minibatch step: auto (default: one CUDA graph per step on a GPU, eager on CPU), graph, eager")
    train.add_argument("--log-every", type=int, metavar="K", help="write a step record every K minibatches")
    schedule = train.add_argument_group("optimisation (default: the preset's, the paper's sec 4.1)")
    schedule.add_argument("--lr", type=float, metavar="LR", help="initial SGD learning rate")
    schedule.add_argument("--lr-decay", type=float, metavar="D",
                          help="divide the rate by D at the start of every epoch after the first E")
    schedule.add_argument("--decay-after", type=int, metavar="E",
                          help="epochs at the initial rate: small 4, medium 6, large 14 as the paper's text reads; "
                               "its main.lua keeps one more (E + 1)")
    schedule.add_argument("--clip", type=float, metavar="C", help="global gradient-norm clip")
    schedule.add_argument("--batch-size", type=int, metavar="B", help="columns of the training stream")
    schedule.add_argument("--bptt", type=int, metavar="T", help="unroll length (steps per window)")
    schedule.add_argument("--weight-decay", type=float, metavar="WD",
                          help="shrink every weight by 1 - WD after each step (default 0, as the paper; "
                               "Gal & Ghahramani's variational runs used 1e-7)")
    train.add_argument("--delay", type=int, metavar="T", help="memory task: distractor steps between key and recall")
    train.add_argument("--name", help="a human-readable name for the run")
    _add_runs_dir(train)
    train.add_argument("--run-dir", metavar="DIR", help="train an existing queued run (used by the dashboard)")
    train.add_argument("--max-concurrent", type=int, default=None, metavar="N",
                       help="wait until fewer than N queued runs of this runs root are training (N > 1 also "
                            "gives a new run cpus / N torch threads unless --threads sets them: the thread count "
                            "can change a CPU run's digits)")
    train.add_argument("--resume", metavar="RUN",
                       help="continue an interrupted, cancelled or failed run (its id) from its last checkpoint "
                            "(with --runs-dir; it keeps its own config: no option that defines a run, such as "
                            "--epochs, only --max-concurrent and --checkpoint-minutes)")
    train.add_argument("--checkpoint-minutes", type=float, default=None, metavar="M",
                       help="also checkpoint within an epoch, at the first logged step M minutes after the last "
                            "checkpoint, so a killed run loses at most about M minutes (default 10; 0: only "
                            "after each epoch and on a cancel)")

    listing = commands.add_parser("list", help="one row per run")
    _add_runs_dir(listing)
    listing.add_argument("--json", action="store_true", help="a JSON array of run summaries")
    listing.add_argument("--wide", action="store_true",
                         help="the whole table, however wide (on a terminal narrower than it, runs are listed by "
                              "name and long cells cut short; piped, the table is always whole)")

    show = commands.add_parser("show", help="a run's config, status, results and the command that trains it again")
    show.add_argument("run", metavar="RUN", help=_RUN_HELP + " (or a run directory, written with a '/')")
    _add_runs_dir(show)

    cancel = commands.add_parser("cancel", help="stop a queued or running run (it ends 'cancelled')")
    cancel.add_argument("run", metavar="RUN", help=_RUN_HELP)
    _add_runs_dir(cancel)

    commands.add_parser("placements", help="every dropout placement with its sites and sampling")

    sweep = commands.add_parser("sweep", help="launch a grid of runs from a spec (JSON or YAML) as one sweep")
    sweep.add_argument("spec", metavar="SPEC", help="the sweep spec, JSON (or YAML): name, preset, base options, axes "
                       "(option -> list of values); README, Sweeps")
    sweep.add_argument("--backend", default="local", choices=["local", "ray"],
                       help="local: this machine's launcher queue (returns at once); ray: Ray tasks (waits for them)")
    sweep.add_argument("--address", help="ray: the cluster to join (e.g. ray://head:10001); default a local instance")
    sweep.add_argument("--gpus-per-run", type=float, default=0.0, metavar="F",
                       help="ray: GPUs per run, fractional to share a GPU (e.g. 0.25)")
    sweep.add_argument("--max-concurrent", type=int, metavar="N",
                       help="runs training at once (default: 1 on the local backend; on ray, as many as the "
                            "cluster's CPUs and GPUs take at --gpus-per-run)")
    sweep.add_argument("--dry-run", action="store_true", help="list the runs the spec expands to, start nothing")
    _add_runs_dir(sweep)

    compact = commands.add_parser("compact", help="store a finished run's checkpoint weights as float16 (to ship it)")
    compact.add_argument("run", metavar="RUN", help=_RUN_HELP)
    _add_runs_dir(compact)

    bench = commands.add_parser("bench", help="training-step speed per placement beside a plain nn.LSTM")
    bench.add_argument("--preset", default="medium", help="shapes to time (default: medium)")
    bench.add_argument("--placements", default=",".join(PLACEMENTS), help="comma-separated (default: all)")
    bench.add_argument("--batches", type=int, default=20, metavar="N", help="timed batches per round (default 20)")
    bench.add_argument("--rounds", type=int, default=3, metavar="R",
                       help="interleaved rounds; the median counts (default 3)")
    bench.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    bench.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    bench.add_argument("--step", default="auto", choices=["auto", "eager", "graph", "both"],
                       help="how steps run: auto (default: both on CUDA, eager on CPU), eager, graph (CUDA), both")
    bench.add_argument("--profile", action="store_true",
                       help="also profile each step: device-busy time by kind of work, kernels per step")
    bench.add_argument("--share", metavar="K,K,...",
                       help="instead: throughput of K processes training one placement at once, e.g. 1,2,4"
                            " (against one alone; on a GPU, start NVIDIA's MPS daemon first to let them overlap)")
    bench.add_argument("--share-seconds", type=float, default=5.0, metavar="S",
                       help="with --share: seconds each timed window lasts (default 5)")
    bench.add_argument("--json", action="store_true", help="print the results as JSON")

    evaluate = commands.add_parser(
        "evaluate", help="a finished run's test perplexity, deterministic and Monte-Carlo dropout (recorded)")
    evaluate.add_argument("run", metavar="RUN", help=_RUN_HELP + " (or a run directory, written with a '/')")
    evaluate.add_argument("--mc-samples", type=int, required=True, metavar="N",
                          help="stochastic passes to average (Gal & Ghahramani 2016)")
    evaluate.add_argument("--device", default="auto", help="auto (default: CUDA if present), cpu or cuda")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--data", metavar="DIR", help="the corpus (default: the run's own data directory)")
    evaluate.add_argument("--mc-masks", default="stream", choices=["stream", "window"],
                          help="stream (default, Gal & Ghahramani's test): each sample's masks held over a window "
                               "or sequence are drawn once for the whole test stream; window: redrawn every window, "
                               "as in training. Per-step masks are fresh at every step either way")
    evaluate.add_argument("--mc-word-dropout", action="store_true",
                          help="keep word dropout on in the stochastic passes (off in Gal & Ghahramani's test)")
    evaluate.add_argument("--no-record", action="store_true", help="print only; do not append to metrics.jsonl")
    _add_runs_dir(evaluate)

    generate = commands.add_parser("generate", help="sample text from a run's checkpoint")
    generate.add_argument("run", metavar="RUN", help=_RUN_HELP + " (or a run directory, written with a '/')")
    generate.add_argument("--prompt", required=True, help="the words to continue (unknown words become <unk>)")
    generate.add_argument("--temperature", type=float, default=1.0, metavar="T", help="softmax temperature > 0 (default 1)")
    generate.add_argument("--words", type=int, default=30, metavar="N", help="words to sample (default 30)")
    generate.add_argument("--seed", type=int, default=0)
    _add_runs_dir(generate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rnnreg.data import DataError
    from rnnreg.runs import ERROR_PREFIX, RunStoreError

    try:
        args = build_parser().parse_args(argv)
        handler = {"train": _train, "list": _list, "show": _show, "cancel": _cancel, "placements": _placements,
                   "generate": _generate, "evaluate": _evaluate, "bench": _bench,
                   "compact": _compact, "sweep": _sweep}
        return handler[args.command](args)
    except (UsageError, ConfigError, DataError, RunStoreError) as err:
        print(f"{ERROR_PREFIX}{err}" if not str(err).startswith("rnnreg") else str(err), file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        if not _stdout_reader_gone():  # another pipe (a bench worker's, say): a real error, shown
            raise
        # `rnnreg list | head`: the reader left; stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python's own flush at exit fails too)
        return EXIT_BROKEN_PIPE


def _stdout_reader_gone() -> bool:
    """Whether stdout is a pipe whose reading end is closed (poll reports an error on its writing end)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _fd, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no descriptor
        return False


# Options that define a new run; `--resume` takes the run's own config.json instead.
_RUN_OPTIONS = ("preset", "placement", "dropout", "dropout_site", "epochs", "max_train_tokens", "max_eval_tokens",
                "data", "device", "seed", "threads", "log_every", "step", "weight_decay", "delay", "name",
                "run_dir") + TRAIN_SCHEDULE_OPTIONS


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run config `rnnreg train`'s options ask for (ConfigError naming the option if refused)."""
    overrides = {key: getattr(args, key) for key in ("log_every", "step", "weight_decay", "max_eval_tokens",
                                                     "threads", *TRAIN_SCHEDULE_OPTIONS)
                 if getattr(args, key, None) is not None}
    preset = args.preset or DEFAULT_PRESET
    sites = [site for site, _rate in args.dropout_site]
    if twice := sorted({site for site in sites if sites.count(site) > 1}):
        raise ConfigError(f"--dropout-site: {', '.join(twice)} given twice; give each site once")
    config = build_run_config(
        preset, placement=args.placement, dropout=args.dropout, site_rates=dict(args.dropout_site),
        epochs=args.epochs, max_train_tokens=args.max_train_tokens, data_dir=args.data, device=args.device,
        seed=args.seed, name=args.name or None, delay=args.delay, **overrides,  # --name '': named after its settings
    )
    placement = config.dropout.placement
    if args.dropout and not PLACEMENTS[placement].primary_sites:
        # `--preset small --dropout 0.5` would train the small preset's default, no dropout at all
        default = f" (the {preset} preset's default)" if args.placement is None else ""
        raise ConfigError(f"--dropout {args.dropout:g}: placement {placement!r}{default} has no dropout sites; "
                          "choose one with --placement, e.g. --placement zaremba")
    return config


def _train(args: argparse.Namespace) -> int:
    from rnnreg.training_run import train_from_cli

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"rnnreg train: --max-concurrent: must be >= 1, got {args.max_concurrent}")
    minutes = args.checkpoint_minutes
    if minutes is not None and not (math.isfinite(minutes) and minutes >= 0):
        raise UsageError(f"rnnreg train: --checkpoint-minutes: must be a number of minutes >= 0, got {minutes:g}")
    if args.resume is not None:
        given = [f"--{o.replace('_', '-')}" for o in _RUN_OPTIONS if getattr(args, o) not in (None, [])]
        if given:
            raise UsageError(f"rnnreg train: --resume continues a run with its own config; "
                             f"drop {', '.join(given)}")

    return train_from_cli(args)


def _list(args: argparse.Namespace) -> int:
    from rnnreg.config import browsing_rank
    from rnnreg import line
    from rnnreg.runs import format_table, list_runs, runs_root, unlisted_folders

    root = runs_root(args.runs_dir)
    if not root.exists() and not args.json:  # a typo in --runs-dir read as an empty store
        print(f"no runs: there is no {root}")
        return 0
    # as the dashboard lists them: your runs, then the shipped paper models, each newest first
    summaries = sorted(list_runs(root), key=lambda s: browsing_rank(s.preset, s.read_only))
    if args.json:
        print(json.dumps([s.to_json() for s in summaries], indent=2))
    else:  # on a terminal, a table that fits it; piped (to grep, a file), the whole table
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() and not args.wide else None
        print(format_table(summaries, width=width, places=line.places(root)))
        if unlisted := unlisted_folders(root):
            said = (f"not listed, their folder names are no run id (letters, digits, '.', '_' and '-' only; rename "
                    f"them to list them): {', '.join(ascii(name) for name in unlisted)}")
            print("\n" + ("\n".join(textwrap.wrap(said, width)) if width else said))
    return 0


def _show(args: argparse.Namespace) -> int:
    from rnnreg.reproduce import run_command
    from rnnreg.runs import CONFIG_FILE, find_run_arg, open_run, runs_root, strict_json

    root = runs_root(args.runs_dir)
    run_dir = find_run_arg(root, args.run)  # only read: a run directory anywhere will do
    # a folder named by its path must be a run (`show runs/` is none); a broken run named by its id is shown
    if run_dir == Path(args.run) and not (run_dir / CONFIG_FILE).is_file():
        raise UsageError(f"rnnreg show: {args.run} is no run directory (it has no {CONFIG_FILE})")
    run = open_run(run_dir, root)
    command = run_command(run.config, run.environment)
    shown = {"summary": run.summary.to_json(), "config": run.config_doc, "status": run.status,
             "reproduce": command.to_json() if command else None}  # the train command that makes it again
    # strict JSON, as the store writes it: a hand-edited file's NaN or 1e999 is shown as null
    print(json.dumps(strict_json(shown), indent=2, allow_nan=False))
    return 0


def _cancel(args: argparse.Namespace) -> int:
    from rnnreg.launch import cancel
    from rnnreg.runs import find_run_arg, runs_root

    root = runs_root(args.runs_dir)
    print(cancel(root, find_run_arg(root, args.run, paths=False).name))  # a store's own run only
    return 0


def _placements(args: argparse.Namespace) -> int:
    width = max(len(name) for name in PLACEMENTS)
    for spec in PLACEMENTS.values():
        print(f"{spec.name:<{width}} {spec.summary}  [{spec.source}]")
        for site in spec.sites:
            role = f"{'primary (--dropout), ' if site.primary else ''}default {site.default_rate:g}"
            sampling = f"{site.sampling}{', per gate' if site.per_gate else ''}"
            print(f"    {site.name:<12} mask per {sampling:<18} {role:<34} {SITE_DESCRIPTIONS[site.name]}")
    return 0


def _generate(args: argparse.Namespace) -> int:
    from rnnreg.inspect_model import InspectError, generate
    from rnnreg.runs import find_run_arg, runs_root

    run_dir = find_run_arg(runs_root(args.runs_dir), args.run)
    try:
        print(generate(run_dir, args.prompt, args.temperature, args.words, args.seed))
    except InspectError as err:
        raise UsageError(f"rnnreg generate: {err}") from None
    return 0


def _progress_every(seconds: float):
    """A `progress(done, total)` for long evaluations: on a terminal the progress bar training
    shows (tqdm, as rnnreg.progress); else (a log file) a line on stderr at most every `seconds`,
    with the time so far and about how much is left at that pace."""
    import time

    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = None

        def advance(done: int, total: int) -> None:
            nonlocal bar
            bar = bar or tqdm(total=total, unit="pass", desc="MC dropout", dynamic_ncols=True)
            bar.update(done - bar.n)
            if done >= total:
                bar.close()

        return advance
    began = last = time.monotonic()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < seconds or done >= total:
            return
        last = now
        left = (now - began) / done * (total - done)
        print(f"MC dropout: {done} of {total} passes, {now - began:.0f} s, about {left:.0f} s left",
              file=sys.stderr, flush=True)

    return report


def _evaluate(args: argparse.Namespace) -> int:
    from rnnreg.data import DataError
    from rnnreg.mc_eval import EvaluateError, evaluate_run, record
    from rnnreg.runs import find_run_arg, is_read_only, runs_root
    from rnnreg.train import resolve_device

    root = runs_root(args.runs_dir)
    run_dir = find_run_arg(root, args.run)
    if args.mc_samples < 1:
        raise UsageError(f"rnnreg evaluate: --mc-samples: must be >= 1, got {args.mc_samples}")
    if args.device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"rnnreg evaluate: --device: unknown {args.device!r}; allowed: auto, cpu, cuda")
    read_only = is_read_only(run_dir)
    if read_only and not args.no_record:
        raise UsageError(f"rnnreg evaluate: {run_dir.name} is a shipped reference run (read-only); "
                         "add --no-record to print the figures without recording them")
    from rnnreg.runs import summarize_run

    summary = summarize_run(run_dir)
    try:
        result = evaluate_run(run_dir, args.mc_samples, resolve_device(args.device), seed=args.seed,
                              data_dir=args.data, masks=args.mc_masks, word_dropout=args.mc_word_dropout,
                              progress=_progress_every(10.0))
    except (EvaluateError, DataError, ValueError) as err:
        raise UsageError(f"rnnreg evaluate: {err}") from None
    print(f"{run_dir.name}: test perplexity {result.test_ppl:.2f} (dropout off), "
          f"{result.mc_test_ppl:.2f} with MC dropout over {result.samples} samples "
          f"({result.tokens} tokens, {result.samples_per_pass} samples per pass, {result.seconds:.1f} s on {result.device}; "
          f"masks per {result.masks}, word dropout {'on' if result.word_dropout else 'off'}); "
          f"one pass alone: {result.single_pass_ppl:.2f} (geometric mean over the samples)")
    if summary.placement is not None and not any(rate > 0 for rate in summary.rates.values()):
        print(f"note: {run_dir.name} has no dropout ({summary.placement}): every pass is the same network, "
              "so the MC figure equals the dropout-off one")
    if result.weights_dtype != "float32":  # `rnnreg compact` halved them: close to the trainer's figure, not equal
        trained = summary.test_ppl
        print(f"note: these are the checkpoint's {result.weights_dtype} weights (rnnreg compact); the trainer "
              f"measured test perplexity {'?' if trained is None else f'{trained:.2f}'} with its float32 weights")
    if not args.no_record:
        record(run_dir, result)
        print(f"recorded in {run_dir / 'metrics.jsonl'} (kind mc_test)")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import platform

    import torch

    from rnnreg.bench import baseline_dropout, format_results, profile_bench, run_bench
    from rnnreg.step_profile import format_profiles
    from rnnreg.fused_cell import cell_kernel

    if args.preset not in PRESET_NAMES:
        raise UsageError(f"rnnreg bench: --preset: unknown preset {args.preset!r}; allowed: {', '.join(PRESET_NAMES)}")
    placements = [p.strip() for p in args.placements.split(",") if p.strip()]
    unknown = [p for p in placements if p not in PLACEMENTS]
    if unknown:
        raise UsageError(f"rnnreg bench: --placements: unknown {', '.join(unknown)}; allowed: {', '.join(PLACEMENTS)}")
    if args.device not in ("cpu", "cuda") or (args.device == "cuda" and not torch.cuda.is_available()):
        raise UsageError(f"rnnreg bench: --device: {args.device!r} is not available here; allowed: cpu"
                         + (", cuda" if torch.cuda.is_available() else ""))
    if args.batches < 1 or args.rounds < 1:
        raise UsageError("rnnreg bench: --batches and --rounds must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError(f"rnnreg bench: --threads: must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.step in ("graph", "both") and args.device != "cuda":
        raise UsageError(f"rnnreg bench: --step {args.step} needs --device cuda; allowed on CPU: auto, eager")
    steps = {"auto": ("eager", "graph") if args.device == "cuda" else ("eager",), "eager": ("eager",),
             "graph": ("graph",), "both": ("eager", "graph")}[args.step]
    if args.share is not None:
        return _bench_share(args, placements, steps)
    results = run_bench(args.preset, placements, batches=args.batches, device=args.device, rounds=args.rounds,
                        steps=steps)
    profiles = (profile_bench(args.preset, placements, args.device, steps, batches=args.batches)
                if args.profile else [])
    if args.json:
        device_name = torch.cuda.get_device_name() if args.device == "cuda" else (platform.processor() or "cpu")
        print(json.dumps({
            "preset": args.preset, "device": args.device, "device_name": device_name, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "batches": args.batches, "rounds": args.rounds, "steps": list(steps),
            "baseline_dropout": baseline_dropout(args.preset),
            "cell_kernel": cell_kernel(torch.device(args.device)),
            "results": [r.__dict__ for r in results],
            **({"profiles": [dataclasses.asdict(p) for p in profiles]} if args.profile else {}),
        }, indent=2))
    else:
        print(format_results(results, args.preset, args.device))
        if profiles:
            print(format_profiles(profiles))
    return 0


def _bench_share(args: argparse.Namespace, placements: list[str], steps: tuple[str, ...]) -> int:
    import os
    import platform

    import torch

    from rnnreg.bench_share import format_share_results, parse_levels, run_share_bench

    try:
        levels = parse_levels(args.share)
    except ValueError as error:
        raise UsageError(f"rnnreg bench: {error}") from None
    if len(placements) != 1:
        raise UsageError(f"rnnreg bench: --share times one placement; --placements names {len(placements)}")
    if args.step == "both" or args.profile:
        raise UsageError("rnnreg bench: --share takes one step kind (--step auto, eager or graph) and no --profile")
    if not 0 < args.share_seconds <= 3600:  # (inf passed '> 0' and then overflowed a select() timeout)
        raise UsageError(f"rnnreg bench: --share-seconds: must be > 0 and at most 3600, got {args.share_seconds:g}")
    step = steps[-1]  # the one kind --step names; auto: graph on CUDA, eager on a CPU
    results = run_share_bench(args.preset, placements[0], args.device, step, levels, args.share_seconds,
                              args.rounds, threads=args.threads)
    if args.json:
        device_name = torch.cuda.get_device_name() if args.device == "cuda" else (platform.processor() or "cpu")
        print(json.dumps({
            "preset": args.preset, "placement": placements[0], "device": args.device, "device_name": device_name,
            "torch": torch.__version__, "step": step, "seconds": args.share_seconds, "rounds": args.rounds,
            "threads": args.threads, "mps_pipe_directory": os.environ.get("CUDA_MPS_PIPE_DIRECTORY"),
            "results": [r.__dict__ for r in results],
        }, indent=2))
    else:
        print(format_share_results(results, args.preset, placements[0], args.device, step))
    return 0


def _compact(args: argparse.Namespace) -> int:
    from rnnreg.checkpoint import CheckpointError, compact_checkpoint
    from rnnreg.runs import CHECKPOINT_FILE, find_run_arg, is_read_only, runs_root, summarize_run

    run_dir = find_run_arg(runs_root(args.runs_dir), args.run, paths=False)
    if is_read_only(run_dir):
        raise UsageError(f"rnnreg compact: {run_dir.name} is a shipped reference run (read-only)")
    state = summarize_run(run_dir).state
    if state != "finished":  # a float16 checkpoint cannot be resumed: only a run that is over
        raise UsageError(f"rnnreg compact: {run_dir.name} is {state}, not finished; compacting its checkpoint "
                         "would keep it from ever resuming (rnnreg train --resume)")
    try:
        before, after = compact_checkpoint(run_dir / CHECKPOINT_FILE)
    except CheckpointError as err:
        raise UsageError(f"rnnreg compact: {err}") from None
    print(f"{run_dir / CHECKPOINT_FILE}: {before / 1e6:.1f} MB -> {after / 1e6:.1f} MB (float16 weights)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from rnnreg.runs import runs_root
    from rnnreg.sweeps import SweepError, expand, load_spec, run_local, run_ray

    try:
        sweep = expand(load_spec(args.spec))
    except SweepError as err:
        raise UsageError(f"rnnreg sweep: {err}") from None
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError("rnnreg sweep: --max-concurrent must be >= 1")
    count = len(sweep.runs)
    same = (f" ({sweep.points} grid points; {sweep.points - count} of them the same configuration as another)"
            if sweep.points > count else "")
    print(f"sweep {sweep.name}: {count} run{'' if count == 1 else 's'} of preset {sweep.preset}{same}")
    if args.dry_run:  # each run with what it trains, as the train command of that configuration
        from rnnreg.reproduce import train_command

        for run in sweep.runs:
            command = train_command(run.config)
            unsettable = f"  # and {', '.join(command.unreachable)}" if command.unreachable else ""
            print(f"  {run.name}: {command.text}{unsettable}")
        return 0
    if args.backend == "local" and (args.address or args.gpus_per_run):
        raise UsageError("rnnreg sweep: --address and --gpus-per-run go with --backend ray")
    if args.gpus_per_run < 0:
        raise UsageError("rnnreg sweep: --gpus-per-run must be >= 0")
    try:
        if args.backend == "ray":
            done = run_ray(sweep, runs_root(args.runs_dir), address=args.address,
                           max_concurrent=args.max_concurrent, gpus_per_run=args.gpus_per_run)
        else:
            done = run_local(sweep, runs_root(args.runs_dir), max_concurrent=args.max_concurrent or 1)
    except SweepError as err:
        raise UsageError(f"rnnreg sweep: {err}") from None
    print(f"started {len(done.started)}, resumed {len(done.resumed)}, already there {len(done.kept)}, "
          f"ended without finishing {len(done.ended)} (see rnnreg list)")
    return 0
