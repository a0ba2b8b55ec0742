"""One row per run (RunSummary), read from its files without trusting them; the listing of a runs root."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from rnnreg.config import DEFAULT_DATA_DIR, ConfigError, from_dict, training_variant
from rnnreg.runs.layout import (
    ACTIVE_STATES, CONFIG_FILE, CORRUPT_STATE, CUT_SHORT_STATES, FORMAT, LOG_FILE, METRICS_FILE, PROBES_FILE,
    STATUS_FILE, UNKNOWN_STATE, NoSuchRun, RunStoreError,
    find_run_dir, is_read_only, _inside, _is_run_dir, _valid_segment,
)
from rnnreg.runs.files import (
    JsonlReport, read_json, read_log_tail, scan_jsonl, _dict, _int, finite_number, _parse_time, _str,
)
from rnnreg.runs.liveness import effective_state, last_words

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """One row of the run list: what the dashboard and `rnnreg list` show about a run."""

    id: str
    path: str
    name: str | None = None
    preset: str | None = None
    task: str | None = None
    placement: str | None = None
    rates: dict[str, float] = field(default_factory=dict, hash=False)
    state: str = UNKNOWN_STATE  # a RUN_STATES value, or "unknown" / "corrupt"
    epochs_done: int = 0
    epochs_total: int | None = None
    best_valid_ppl: float | None = None
    last_valid_ppl: float | None = None
    test_ppl: float | None = None
    mc_test_ppl: float | None = None  # Monte-Carlo dropout test perplexity (`rnnreg evaluate`), latest
    mc_samples: int | None = None
    mc_protocol: str | None = None  # "stream" (Gal & Ghahramani's MC test, the default) or how it differed
    test_accuracy: float | None = None  # recall accuracy of a memory-task run's test
    delay: int | None = None  # a memory-task run's longest gap (`--delay T`)
    # model and training settings that depart from the preset's (config.training_variant): '' for
    # none; runs of one preset, placement, rates and variant are seeds of one configuration.
    # None where config.json does not parse.
    variant: str | None = None
    # "penn-treebank" when the corpus it trained on is the vendored PTB, byte for byte (its
    # recorded checksums), "other" when it is not, None where none were recorded
    corpus: str | None = None
    wall_seconds: float | None = None
    device: str | None = None
    created_at: str | None = None
    read_only: bool = False
    group: str | None = None  # "reference" for shipped runs, None at the top level
    sweep: str | None = None
    request_id: str | None = None
    message: str | None = None  # status.json's message (why it failed, ...)
    problems: tuple[str, ...] = ()  # non-empty: the run is corrupt or partial

    @property
    def label(self) -> str:
        return self.name or self.id

    @property
    def why_stopped(self) -> str | None:
        """Why a run ended before its last epoch (diverged, failed, cancelled, died), as its trainer,
        its crash or its silence said; None for a run that finished or still trains."""
        return self.message if self.state in CUT_SHORT_STATES and self.message else None

    @property
    def dropout_label(self) -> str:
        """e.g. `zaremba(input=0.5, output=0.5)`; `none` without rates."""
        if not self.placement:
            return "?"
        if not self.rates:
            return self.placement
        return f"{self.placement}({', '.join(f'{k}={v:g}' for k, v in self.rates.items())})"

    @property
    def dropout_short(self) -> str:
        """e.g. `zaremba 0.5`, `zoneout 0.25/0.025`: the placement and its distinct non-zero rates in
        site order, as run names give them (`config.default_run_name`), for a narrow terminal."""
        rates = dict.fromkeys(f"{v:g}" for v in self.rates.values() if v)
        return " ".join([self.placement or "?"] + (["/".join(rates)] if rates else []))

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["rates"] = dict(self.rates)
        out["problems"] = list(self.problems)
        return out


def _corrupt_summary(run_dir: Path, problem: str, *, read_only: bool, group: str | None) -> RunSummary:
    return RunSummary(id=run_dir.name, path=str(run_dir), state=CORRUPT_STATE, read_only=read_only,
                      group=group, problems=(problem,))


def summarize_run(run_dir: str | os.PathLike[str], *, read_only: bool = False, group: str | None = None) -> RunSummary:
    """The summary of one run directory, built from whatever in it is readable."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    doc, problem = read_json(run_dir / CONFIG_FILE)
    if problem:
        problems.append(problem)
    status, problem = read_json(run_dir / STATUS_FILE)
    if problem:
        problems.append(problem)
    doc = doc or {}
    if doc and doc.get("format") != FORMAT:
        problems.append(f"{CONFIG_FILE}: format {doc.get('format')!r} is not the format {FORMAT} this rnnreg reads")
    if doc and not isinstance(doc.get("config"), dict):
        problems.append(f"{CONFIG_FILE}: no 'config' object")
    cfg = _dict(doc.get("config"))
    dropout, train, env = _dict(cfg.get("dropout")), _dict(cfg.get("train")), _dict(doc.get("environment"))
    rates = {k: float(v) for k, v in _dict(dropout.get("rates")).items() if finite_number(v) is not None}

    report = scan_jsonl(run_dir / METRICS_FILE, ("epoch", "test", "mc_test"))
    if report.problem and not report.problem.endswith(": missing"):
        problems.append(report.problem)
    if report.skipped:
        problems.append(f"{METRICS_FILE}: {report.skipped} unreadable line(s) skipped")
    epochs = [r for r in report.records if r.get("kind") == "epoch" and _int(r.get("epoch")) is not None]
    valids = [v for v in (finite_number(r.get("valid_ppl")) for r in epochs) if v is not None]
    tests = [v for v in (finite_number(r.get("test_ppl")) for r in report.records if r.get("kind") == "test")
             if v is not None]
    mc_tests = [r for r in report.records
                if r.get("kind") == "mc_test" and finite_number(r.get("mc_test_ppl")) is not None]
    accuracies = [r.get("test_accuracy") for r in report.records if r.get("kind") == "test"]
    memory = _dict(cfg.get("memory")) if cfg.get("task") == "memory" else {}

    if status is None:
        state = CORRUPT_STATE if not doc else UNKNOWN_STATE
        status = {}
    else:
        state = effective_state(status)
        if state == UNKNOWN_STATE:
            problems.append(f"{STATUS_FILE}: unknown state {status.get('state')!r}")

    if status.get("state") == "finished":  # its trainer wrote every record: one missing now was lost since
        problems += _records_lost(status, epochs, report)
    epochs_done = max([_int(status.get("epoch")) or 0] + [_int(r["epoch"]) for r in epochs])
    variant, problem = _variant(cfg) if cfg else (None, None)
    if problem:
        problems.append(problem)
    return RunSummary(
        id=run_dir.name,
        path=str(run_dir),
        name=_str(cfg.get("name")),
        preset=_str(cfg.get("preset")),
        task=_str(cfg.get("task")),
        placement=_str(dropout.get("placement")),
        rates=rates,
        state=state,
        epochs_done=epochs_done,
        epochs_total=_int(status.get("epochs_total")) or _int(train.get("epochs")),
        best_valid_ppl=min(valids) if valids else None,
        last_valid_ppl=finite_number(epochs[-1].get("valid_ppl")) if epochs else None,
        test_ppl=tests[-1] if tests else None,
        mc_test_ppl=finite_number(mc_tests[-1]["mc_test_ppl"]) if mc_tests else None,
        mc_samples=_int(mc_tests[-1].get("samples")) if mc_tests else None,
        mc_protocol=mc_protocol(mc_tests[-1]) if mc_tests else None,
        test_accuracy=finite_number(accuracies[-1]) if accuracies else None,
        delay=_int(memory.get("delay")),
        variant=variant,
        corpus=corpus_of(env.get("data_sha256")),
        wall_seconds=_wall_seconds(status, state, epochs, report.records),
        device=_str(env.get("device_name")) or _str(env.get("device")) or _str(train.get("device")),
        created_at=_str(doc.get("created_at")) or _str(status.get("created_at")),
        read_only=read_only,
        group=group,
        sweep=_str(doc.get("sweep")),
        request_id=_str(doc.get("request_id")),
        message=_message(run_dir, status, state),
        problems=tuple(problems),
    )


def _records_lost(status: dict, epochs: list[dict], report: JsonlReport) -> list[str]:
    """What a finished run's metrics.jsonl lacks that its trainer wrote: a file cut short, emptied
    or overwritten still reads as a run, with the figures of whatever is left."""
    last = _int(status.get("epoch")) or 0
    missing = set(range(1, last + 1)) - {_int(r["epoch"]) for r in epochs}
    lost = []
    if missing:
        lost.append(f"{METRICS_FILE}: the records of {len(missing)} of its {last} epochs are missing (the file was "
                    "cut short or damaged)")
    if not any(r.get("kind") == "test" for r in report.records):
        lost.append(f"{METRICS_FILE}: no test record, though the run finished")
    if report.unterminated:
        lost.append(f"{METRICS_FILE}: its last line is cut short")
    return lost


def _message(run_dir: Path, status: dict, state: str) -> str | None:
    """status.json's message; for a run whose trainer died without a word there, the crash its
    train.log ends with (it failed to import torch, say), else that nothing was said."""
    message = _str(status.get("message"))
    if state not in ("interrupted", "cancelled") or status.get("state") == state:
        return message  # the trainer (or `rnnreg cancel`) wrote this state itself, with its reason
    # it died unannounced: status.json still says queued or running
    words = last_words(read_log_tail(run_dir / LOG_FILE))
    if words:
        return f"its trainer died: {words}"
    # a SIGKILL, the OOM killer, a reboot: its status's message is only what it was doing
    said = ("a cancel was requested, and its process ended before it confirmed it" if state == "cancelled"
            else "its process ended without a word (killed, out of memory, or its machine stopped)")
    return said + (f"; its last status: {message}" if message else "")


@functools.cache
def penn_treebank_checksums() -> dict[str, str]:
    """{split: sha256} of the vendored Penn Treebank (data/ptb/SHA256SUMS); {} where it is not there."""
    try:
        lines = (DEFAULT_DATA_DIR / "SHA256SUMS").read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    sums = {}
    for line in lines:  # "<sha256>  ptb.train.txt"
        digest, _, name = line.strip().partition("  ")
        match = re.fullmatch(r"ptb\.(train|valid|test)\.txt", name)
        if match:
            sums[match.group(1)] = digest
    return sums


def corpus_of(recorded: object) -> str | None:
    """'penn-treebank', 'other', or None: a run's recorded {split: sha256} against the vendored PTB's."""
    if not isinstance(recorded, dict) or not recorded:
        return None
    reference = penn_treebank_checksums()
    if not reference:
        return None  # nothing to compare with: the vendored copy is missing
    return "penn-treebank" if recorded == reference else "other"


def corpus_dir(recorded_dir: str | os.PathLike[str], environment: object) -> Path | None:
    """Where a run's corpus is on this machine: the directory its config names if it is here,
    else the vendored Penn Treebank if the run's config.json `environment` recorded that
    corpus's checksums (a run made on another machine, as every shipped run was); None if neither."""
    if Path(recorded_dir).is_dir():
        return Path(recorded_dir)
    checksums = environment.get("data_sha256") if isinstance(environment, dict) else None
    return DEFAULT_DATA_DIR if corpus_of(checksums) == "penn-treebank" else None


def _variant(cfg: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(what the run's training departs from its preset in, None) or (None, why its config is invalid)."""
    try:
        return training_variant(from_dict(cfg)), None
    except ConfigError as err:  # e.g. edited by hand: it can neither resume nor be poked
        return None, f"{CONFIG_FILE}: not a valid run config ({err})"
    except (TypeError, ValueError) as err:
        return None, f"{CONFIG_FILE}: not a valid run config ({type(err).__name__})"


def _run_dirs(root: Path) -> Iterator[tuple[Path, str | None, str | None]]:
    """(run dir, group, problem) for every run under `root`; problem set = do not open it."""
    root_resolved = root.resolve()

    def entries(folder: Path) -> list[os.DirEntry]:
        with os.scandir(folder) as listing:
            return sorted((e for e in listing if _valid_segment(e.name)), key=lambda e: e.name)

    def inside(entry: os.DirEntry) -> bool:
        # a directory entry that is no symlink lies where its parent does; only links need resolving
        return not entry.is_symlink() or _inside(root_resolved, Path(entry.path))

    outside = "symlink pointing outside the runs directory (not followed)"
    for entry in entries(root):  # hidden (.slots, .creating-*, .trash-*) or unaddressable names skipped
        path = Path(entry.path)
        if not inside(entry):
            yield path, None, outside
        elif _is_run_dir(path):
            yield path, None, None
        elif entry.is_dir():
            with contextlib.suppress(OSError):
                for child in entries(path):
                    if not inside(child):
                        yield Path(child.path), entry.name, outside
                    elif _is_run_dir(Path(child.path)):
                        yield Path(child.path), entry.name, None


def unlisted_folders(root: str | os.PathLike[str]) -> list[str]:
    """Folders in `root`, or in a group folder of it (`reference/`), that hold a config.json but are
    left out of the listing: their names are no run id (a space, an accent, a copy named 'run
    (copy)'), so no command could address them.  As paths relative to `root`."""
    def folders(folder: Path) -> list[os.DirEntry]:
        try:
            with os.scandir(folder) as listing:
                return [e for e in listing if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        except OSError:
            return []

    def misnamed(entry: os.DirEntry) -> bool:
        return not _valid_segment(entry.name) and (Path(entry.path) / CONFIG_FILE).is_file()

    found = []
    for entry in folders(Path(root)):
        if misnamed(entry):
            found.append(entry.name)
        elif _valid_segment(entry.name) and not _is_run_dir(Path(entry.path)):  # a group: its runs one level down
            found += [f"{entry.name}/{child.name}" for child in folders(Path(entry.path)) if misnamed(child)]
    return sorted(found)


def find_run_arg(root: str | os.PathLike[str], run: str, *, paths: bool = True) -> Path:
    """RUN as a command takes it: a run's directory written as a path (with a '/'; only with
    `paths`), a run id in the runs root (`find_run_dir`), or the name of exactly one run there
    (`rnnreg list` shows both; an id wins, and a path that is no directory falls back to a name:
    names may hold a '/').  A bare name is never looked up in the current directory, where a
    folder of that name would stand in for the run."""
    if not run:
        raise RunStoreError("RUN: empty; give a run id or name (rnnreg list shows both)")
    if paths and ("/" in run or os.sep in run) and Path(run).is_dir():
        return Path(run)
    try:
        return find_run_dir(root, run)
    except NoSuchRun as not_an_id:  # a run there but refused (its path leaves the root) stays refused
        named = [s for s in list_runs(root) if s.name == run]
        if len(named) == 1:
            return Path(named[0].path)
        if named:
            raise RunStoreError(f"{len(named)} runs are named {run!r}; give one's id: "
                                f"{', '.join(s.id for s in named)}") from None
        if paths and ("/" in run or os.sep in run):
            raise RunStoreError(f"RUN: no run directory {run}, and no run is named so") from None
        raise RunStoreError(f"{not_an_id}; no run is named {run!r} either") from None


def list_runs(root: str | os.PathLike[str]) -> list[RunSummary]:
    """Every run under `root`, newest first; a broken run is listed with its problems, never raised."""
    root = Path(root)
    if not root.is_dir():
        return []
    summaries = []
    try:
        found = list(_run_dirs(root))
    except OSError as err:
        logger.warning("cannot list runs in %s: %s", root, err)
        return []
    addressed = _addressed_copies(found)
    for run_dir, group, problem in found:
        read_only = is_read_only(run_dir)
        winner = addressed.get(run_dir.name)
        if winner is not None and winner != run_dir:
            # `<root>/<id>` copied beside `<root>/reference/<id>`: one id, two runs.  Commands reach
            # the first (find_run_dir's order), so the other is listed under its path, as broken.
            problem = (f"the same run id as {winner.relative_to(root)}, which every command addresses;"
                       " rename or remove one of the two directories")
            summaries.append(dataclasses.replace(
                _corrupt_summary(run_dir, problem, read_only=read_only, group=group), id=f"{group}/{run_dir.name}"))
            continue
        if problem:
            summaries.append(_corrupt_summary(run_dir, problem, read_only=read_only, group=group))
            continue
        try:
            summaries.append(summarize_run(run_dir, read_only=read_only, group=group))
        except Exception as err:  # one bad run must not hide the others: list it with the reason
            logger.exception("cannot summarise run %s", run_dir)
            summaries.append(_corrupt_summary(run_dir, f"unreadable: {type(err).__name__}: {err}",
                                              read_only=read_only, group=group))

    def newest_first(s: RunSummary) -> tuple[float, str]:
        created = _parse_time(s.created_at)
        if created is None:
            with contextlib.suppress(OSError):
                created = os.lstat(s.path).st_mtime
        return (created or 0.0, s.id)

    return sorted(summaries, key=newest_first, reverse=True)


def _addressed_copies(found: list[tuple[Path, str | None, str | None]]) -> dict[str, Path]:
    """run id -> the directory `find_run_dir` returns for it (the top level first, then groups
    by name), for the ids that more than one directory under the root carries."""
    by_id: dict[str, list[tuple[Path, str | None]]] = {}
    for run_dir, group, problem in found:
        if problem is None:
            by_id.setdefault(run_dir.name, []).append((run_dir, group))
    return {run_id: min(copies, key=lambda c: (c[1] is not None, c[1] or ""))[0]
            for run_id, copies in by_id.items() if len(copies) > 1}


def run_signature(run_dir: str | os.PathLike[str]) -> tuple[tuple[str, int, int], ...]:
    """(file, mtime_ns, size) of a run's files: a cheap cache key that changes when they do."""
    base = os.fspath(run_dir)
    out = []
    for name in (CONFIG_FILE, STATUS_FILE, METRICS_FILE, PROBES_FILE):
        try:
            st = os.stat(os.path.join(base, name), follow_symlinks=False)
            out.append((name, st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((name, 0, -1))
    return tuple(out)


def root_signature(root: str | os.PathLike[str]) -> tuple:
    """`run_signature` of every run under `root`: a cache key for `list_runs`."""
    root = Path(root)
    if not root.is_dir():
        return ()
    try:
        return tuple((d.name if g is None else f"{g}/{d.name}", run_signature(d)) for d, g, p in _run_dirs(root)
                     if p is None)
    except OSError:
        return ()


def mc_protocol(record: dict) -> str:
    """How an mc_test record's passes drew their masks (rnnreg.mc_eval); records written before the
    protocol was recorded used masks per window with word dropout on."""
    masks = record.get("masks", "window")
    words = record.get("word_dropout", True)
    return str(masks) + (", word dropout on" if words else "")


def mc_passes_text(samples: int | None, protocol: str | None) -> str | None:
    """'N=20, masks per window': how a run's latest MC evaluation drew its passes, in the words
    `rnnreg list`, the Runs page and the Compare page share; None for a run without one."""
    if not protocol:
        return None
    return (f"N={samples}, " if samples else "") + f"masks per {protocol}"


def _wall_seconds(status: dict, state: str, epochs: list[dict], records: list[dict]) -> float | None:
    """How long the run took, its pauses left out: status.json's start to end (or to now, while it runs).

    A resumed run (`rnnreg train --resume`) counts from its last resume instead, plus the training
    time its checkpoint had recorded by then (status.json's `resumed_from_time`; from runs resumed
    before it was recorded, the `time` of the epoch it resumed after; it carries on across resumes):
    the hours it lay interrupted are not its wall, and neither is the work after its last
    checkpoint that was lost and done again.  While it waits for a slot to resume, its wall is
    what its checkpoint carried; cancelled there, that plus the wait.
    """
    started, ended = _parse_time(status.get("started_at")), _parse_time(status.get("ended_at"))
    resumed = _parse_time(status.get("resumed_at"))
    carried = finite_number(status.get("resumed_from_time"))
    resumed_after = _int(status.get("resumed_from_epoch"))
    if carried is None and resumed_after == 0:  # started over from scratch: nothing carried
        carried = 0.0
    elif carried is None and resumed_after:
        before = [finite_number(r.get("time")) for r in epochs if _int(r.get("epoch")) == resumed_after]
        carried = before[-1] if before else None
    if state == "queued" and resumed is not None and carried is not None:
        return carried  # waiting for a slot to resume: only what it trained so far
    if carried is not None and carried >= 0 and resumed is not None:
        started = resumed - carried
    if started is not None and ended is not None:
        return max(ended - started, 0.0)
    if started is not None and state in ACTIVE_STATES:
        return max(time.time() - started, 0.0)
    times = [t for t in (finite_number(r.get("time")) for r in records) if t is not None]
    return max(times) if times else None
