"""Ship the finished runs of a GPU session's archive, or one run folder, as reference runs, safely.

    python benchmarks/ship_runs.py SOURCE [--into runs/reference] [--dry-run] [--any-corpus]

SOURCE is what benchmarks/gpu_session.sh returns (reference-runs-<device>-<date>.tar.gz), or
the folder of one run trained elsewhere (a long CPU run: `cpu-runs/<run id>`).
From an archive only `runs/<run id>/<file>` members are taken (logs and session files stay in
it); from a folder only the run files (rnnreg.runs.RUN_FILES, no links), and its resume
checkpoint stays behind, both of its files, where the weights are over the limit below.
A run is shipped only if it is finished, its id is not in the store already, and none of its
files is over the size a repository takes (checkpoints above 10 MB stay out, as #6 asks),
it trained on the vendored Penn Treebank byte for byte (its recorded checksums; a CPU dry
run's tiny corpus is no reference run: `--any-corpus` takes it all the same), and its config.json
records what made it: device, torch version and commit (a session started without
RNNREG_GIT_COMMIT, on a copy with no .git, records none).
Members are extracted with tarfile's "data" filter: no links, devices or paths outside the
target.  Prints one line per run with the figures the README rows need (recomputed from the
run's own files by rnnreg.runs, as tests/test_readme_results.py does).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rnnreg.runs import (  # noqa: E402
    CHECKPOINT_FILE, CHECKPOINT_STATE_FILE, CONFIG_FILE, RUN_FILES, RUN_MARKERS, read_json, summarize_run,
)

MAX_FILE_BYTES = 10 * 1024 * 1024  # no checkpoint above ~10 MB in the repository (issue 6)
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # as the trainer names run folders
PROVENANCE = ("device", "torch", "git_commit")  # config.json's "environment": what made the run (issue 6)


def unrecorded_provenance(run_dir: Path) -> list[str]:
    """The PROVENANCE keys that the run's config.json leaves empty."""
    doc, _ = read_json(run_dir / CONFIG_FILE)
    environment = doc.get("environment") if isinstance(doc, dict) else None
    environment = environment if isinstance(environment, dict) else {}
    return [key for key in PROVENANCE if not environment.get(key)]


def run_members(archive: tarfile.TarFile) -> dict[str, list[tarfile.TarInfo]]:
    """runs/<id>/<file> members by run id; anything else in the archive is left alone."""
    runs: dict[str, list[tarfile.TarInfo]] = {}
    for member in archive.getmembers():
        parts = Path(member.name).parts
        if len(parts) == 3 and parts[0] == "runs" and RUN_ID.fullmatch(parts[1]) and member.isfile():
            runs.setdefault(parts[1], []).append(member)
    return runs


def over_the_limit(sizes: dict[str, int]) -> str:
    """'over 10 MB: a, b' for the names whose size is over MAX_FILE_BYTES, '' where none is."""
    too_big = [name for name, size in sizes.items() if size > MAX_FILE_BYTES]
    return f"over {MAX_FILE_BYTES // 2**20} MB: {', '.join(too_big)}" if too_big else ""


class Staged(NamedTuple):
    """One run of the source: its files copied into scratch, or why it cannot be shipped."""

    run_id: str
    folder: Path | None  # None: left out, for `why`
    why: str = ""
    note: str = ""  # what the shipped line adds (a checkpoint left behind)


def stage_archive(archive_path: Path, scratch: Path) -> list[Staged]:
    """Each run of a session archive, its members extracted under scratch."""
    staged: list[Staged] = []
    with tarfile.open(archive_path) as archive:
        for run_id, members in sorted(run_members(archive).items()):
            too_big = over_the_limit({m.name: m.size for m in members})
            if too_big:
                staged.append(Staged(run_id, None, too_big))
                continue
            for member in members:
                archive.extract(member, scratch, filter="data")
            staged.append(Staged(run_id, scratch / "runs" / run_id))
    return staged


def stage_folder(run_dir: Path, scratch: Path) -> list[Staged]:
    """One run's folder, its run files copied under scratch; a resume checkpoint over
    the limit stays behind (weights and state together, so no checkpoint.json points at nothing)."""
    run_id = run_dir.resolve().name
    if not RUN_ID.fullmatch(run_id):
        return [Staged(ascii(run_id), None, "not a run folder's name")]
    files = {name: run_dir / name for name in RUN_FILES
             if (run_dir / name).is_file() and not (run_dir / name).is_symlink()}
    if not any(name in files for name in RUN_MARKERS):
        return [Staged(run_id, None, f"not a run folder (none of {', '.join(RUN_MARKERS)})")]
    note = ""
    weights = files.get(CHECKPOINT_FILE)
    if weights is not None and weights.stat().st_size > MAX_FILE_BYTES:
        note = f"; left behind: its checkpoint ({weights.stat().st_size / 2**20:.0f} MB)"
        files.pop(CHECKPOINT_FILE)
        files.pop(CHECKPOINT_STATE_FILE, None)
    too_big = over_the_limit({name: path.stat().st_size for name, path in files.items()})
    if too_big:
        return [Staged(run_id, None, too_big)]
    staged = scratch / "runs" / run_id
    staged.mkdir(parents=True)
    for name, path in files.items():
        shutil.copyfile(path, staged / name)
    return [Staged(run_id, staged, note=note)]


def _name(run_dir: Path) -> str | None:
    doc, _problem = read_json(run_dir / CONFIG_FILE)
    config = doc.get("config") if isinstance(doc, dict) else None
    return config.get("name") if isinstance(config, dict) and isinstance(config.get("name"), str) else None


def shipped_names(into: Path) -> dict[str, str]:
    """name -> run id of the runs `into` holds (each job names its run; seeds differ in name)."""
    names = {}
    for run_dir in sorted(into.iterdir()) if into.is_dir() else []:
        name = _name(run_dir)
        if name is not None:
            names.setdefault(name, run_dir.name)
    return names


def ship(source: Path, into: Path, dry_run: bool = False, any_corpus: bool = False) -> list[str]:
    """Copy the source's finished runs into `into`; returns one line per run (shipped or why not)."""
    lines = []
    with tempfile.TemporaryDirectory() as scratch:
        stage = stage_folder if source.is_dir() else stage_archive
        for run_id, staged, why, note in stage(source, Path(scratch)):
            if (into / run_id).exists():
                lines.append(f"{run_id}: left out, already in {into}")
                continue
            if staged is None:
                lines.append(f"{run_id}: left out, {why}")
                continue
            summary = summarize_run(staged)
            if summary.state != "finished" or summary.problems:
                problems = "".join(f"; {problem}" for problem in summary.problems)
                lines.append(f"{run_id}: left out, {summary.state}{problems}")
                continue
            if summary.corpus != "penn-treebank" and not any_corpus:
                lines.append(f"{run_id}: left out, not trained on the vendored Penn Treebank "
                             f"(corpus: {summary.corpus or 'not recorded'}; --any-corpus takes it)")
                continue
            unrecorded = unrecorded_provenance(staged)
            if unrecorded:
                lines.append(f"{run_id}: left out, its config.json does not record {', '.join(unrecorded)}")
                continue
            missing = [label for label, value in (("final validation perplexity", summary.last_valid_ppl),
                                                  ("test perplexity", summary.test_ppl),
                                                  ("wall time", summary.wall_seconds)) if value is None]
            if missing:  # (a non-finite figure reads as none): a reference run must say what it reached
                lines.append(f"{run_id}: left out, finished but records no {' or '.join(missing)}")
                continue
            twin = shipped_names(into).get(_name(staged))
            if twin is not None:  # the same job run twice (on the CPU and on a lent GPU): one ships
                lines.append(f"{run_id}: left out, a run named {_name(staged)!r} is shipped already ({twin})")
                continue
            figures = (f"best valid {summary.best_valid_ppl:.2f}, final valid {summary.last_valid_ppl:.2f}, "
                       f"test {summary.test_ppl:.2f}, wall {summary.wall_seconds:.0f} s on {summary.device}")
            if summary.mc_test_ppl is not None:
                figures += f", MC {summary.mc_test_ppl:.2f} (N={summary.mc_samples}, masks per {summary.mc_protocol})"
            if summary.variant:  # not a seed of the preset's configuration: its README row names the run
                figures += f"; settings other than the preset's: {summary.variant}"
            if not dry_run:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copytree(staged, into / run_id)
            lines.append(f"{run_id}: {'would ship' if dry_run else 'shipped'} ({summary.name}): {figures}{note}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a session archive, or one run's folder")
    parser.add_argument("--into", type=Path, default=Path(__file__).resolve().parent.parent / "runs" / "reference")
    parser.add_argument("--dry-run", action="store_true", help="say what would be shipped, copy nothing")
    parser.add_argument("--any-corpus", action="store_true",
                        help="take runs on another corpus than the vendored PTB too (a CPU dry run's)")
    args = parser.parse_args(argv)
    if not args.source.exists():
        parser.error(f"{args.source}: no such file or folder")
    try:
        lines = ship(args.source, args.into, args.dry_run, args.any_corpus)
    except (tarfile.TarError, OSError) as err:
        parser.error(f"{args.source}: not a readable archive or run folder ({err})")
    print("\n".join(lines) or f"no runs in {args.source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
