"""What ships in runs/reference/: finished runs, complete, each saying what made it (issue 6).

A shipped run is evidence only if anyone can tell where it came from: the device, the torch
version and the commit are recorded in its config.json by the trainer itself.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rnnreg import runs

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "runs" / runs.REFERENCE_GROUP
EVERY_RUN_HAS = (runs.CONFIG_FILE, runs.STATUS_FILE, runs.METRICS_FILE, runs.PROBES_FILE, runs.LOG_FILE)
MAX_FILE_BYTES = 10 * 2**20  # issue 6: no checkpoint above ~10 MB in the repository (ship_runs: no file)

SHIPPED_RUNS = sorted(d for d in SHIPPED.iterdir() if d.is_dir()) if SHIPPED.is_dir() else []


def test_runs_ship_at_all():
    assert len(SHIPPED_RUNS) >= 2, "a fresh install should open on shipped runs"


@pytest.mark.parametrize("run_dir", SHIPPED_RUNS, ids=lambda d: d.name)
def test_a_shipped_run_is_finished_complete_and_says_what_made_it(run_dir):
    summary = runs.summarize_run(run_dir, read_only=True, group=runs.REFERENCE_GROUP)
    assert summary.state == "finished" and not summary.problems, (summary.state, summary.problems)
    # the vendored PTB byte for byte, by the checksums it recorded; the memory task's data are generated
    assert summary.corpus == ("other" if summary.task == "memory" else "penn-treebank"), summary.corpus
    assert summary.test_ppl is not None and summary.epochs_done == summary.epochs_total
    missing = [name for name in EVERY_RUN_HAS if not (run_dir / name).is_file()]
    assert not missing, missing

    doc, problem = runs.read_json(run_dir / runs.CONFIG_FILE)
    assert problem is None
    env = doc["environment"]
    assert env.get("device") in ("cpu", "cuda"), env
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", env.get("torch") or ""), env  # e.g. 2.11.0+cu130
    assert re.fullmatch(r"[0-9a-f]{7,40}", env.get("git_commit") or ""), env
    if env["device"] == "cuda":
        assert env.get("device_name"), env  # which GPU: the README's wall times name it


@pytest.mark.parametrize("run_dir", SHIPPED_RUNS, ids=lambda d: d.name)
def test_no_shipped_file_is_too_big_for_the_repository(run_dir):
    sizes = {p.name: p.stat().st_size for p in run_dir.iterdir()}  # a checkpoint, or a long run's records
    assert max(sizes.values()) <= MAX_FILE_BYTES, sizes


def test_the_poke_view_has_a_trained_paper_model_on_a_fresh_install():
    with_weights = [runs.summarize_run(d, read_only=True) for d in SHIPPED_RUNS if (d / runs.CHECKPOINT_FILE).exists()]
    assert any(s.preset == "small" and s.placement == "none" for s in with_weights), \
        "issue 6: ship the small model's weights (float16) so that 'Poke a trained model' works at once"
