"""The Ray backend: a 4-run tiny sweep on a local Ray instance, end to end (issue 8)."""

import json
import os

import pytest

from rnnreg.runs import list_runs
from tests.test_cli import rnnreg

try:
    import ray  # noqa: F401
except ImportError:
    if os.environ.get("RNNREG_REQUIRE_RAY") == "1":
        raise
    pytest.skip("Ray is not installed (pip install -e .[ray])", allow_module_level=True)


def test_a_tiny_sweep_runs_on_a_local_ray_instance_and_again_starts_nothing(tmp_path, tiny_corpus):
    spec = tmp_path / "tiny.json"
    spec.write_text(json.dumps({
        "name": "tiny-ray", "preset": "small",
        "base": {"epochs": 1, "device": "cpu", "data": str(tiny_corpus), "batch_size": 4, "bptt": 8},
        "axes": {"placement": ["none", "zaremba"], "seed": [0, 1]},
    }))
    runs = tmp_path / "runs"
    first = rnnreg("sweep", str(spec), "--backend", "ray", "--max-concurrent", "2", "--runs-dir", str(runs))
    assert first.returncode == 0, first.stderr
    assert "started 4" in first.stdout
    summaries = list_runs(runs)
    assert [s.state for s in summaries] == ["finished"] * 4, [(s.state, s.message) for s in summaries]
    assert {s.sweep for s in summaries} == {"tiny-ray"} and all(s.test_ppl for s in summaries)
    for s in summaries:  # queued for the driver's tasks: a driver that dies leaves them interrupted, resumable
        assert json.loads((runs / s.id / "status.json").read_text())["queued_by"] > 0
    again = rnnreg("sweep", str(spec), "--backend", "ray", "--runs-dir", str(runs))
    assert again.returncode == 0 and "started 0" in again.stdout and "already there 4" in again.stdout
