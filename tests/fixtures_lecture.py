"""Tiny real runs for the lecture and poke tests, trained by the trainer CLI the way the dashboard starts it."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from rnnreg.config import to_dict
from rnnreg.runs import RunWriter
from tests.conftest import tiny_config, write_tiny_corpus

REPO = Path(__file__).resolve().parent.parent
# key -> (placement, dropout): no dropout, zaremba, and a per-step mask on h_{t-1}
SPECS = {"none": ("none", None), "zaremba": ("zaremba", 0.5), "recurrent": ("recurrent", 0.5)}


_TRAINED: dict[str, dict[str, Path]] = {}  # one set of runs per test session (they are only read)


def lecture_runs(tmp_path_factory) -> dict[str, Path]:
    """The session's tiny runs, trained on first use (shared by the lecture and poke tests)."""
    if "runs" not in _TRAINED:
        _TRAINED["runs"] = train_lecture_runs(tmp_path_factory.mktemp("lecture") / "runs")
    return _TRAINED["runs"]


def train_lecture_runs(root: Path, corpus: Path | None = None, *, group: str | None = "reference") -> dict[str, Path]:
    """Three 2-epoch runs (2 x 32 units, demo preset label) trained at once; key -> run directory.

    In `<root>/reference/` by default, so that they count as shipped reference runs.
    """
    corpus = corpus or write_tiny_corpus(root.parent / "corpus", lines=1200)
    where = root / group if group else root
    procs = {}
    for key, (placement, dropout) in SPECS.items():
        config = dataclasses.replace(tiny_config(corpus, placement=placement, dropout=dropout, epochs=2, hidden=32),
                                     preset="demo", name=f"tiny {key}")
        writer = RunWriter.create(where, to_dict(config))
        log = open(writer.log_path, "ab")
        procs[key] = (writer.dir, log, subprocess.Popen(
            [sys.executable, "-m", "rnnreg", "train", "--run-dir", str(writer.dir)], cwd=REPO,
            stdout=log, stderr=subprocess.STDOUT))
    dirs = {}
    for key, (run_dir, log, proc) in procs.items():
        rc = proc.wait(timeout=120)
        log.close()
        assert rc == 0, (run_dir / "train.log").read_text()[-2000:]
        dirs[key] = run_dir
    return dirs
