"""Shared fixtures: a tiny corpus and tiny run configs, so real training takes well under a second."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import random
from pathlib import Path

import pytest

from rnnreg.config import ModelConfig, RunConfig, build_run_config

# Tiny models gain nothing from threads, and OpenMP threads spinning on 2 shared cores
# slow everything down; trainer subprocesses started by tests inherit this too.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Every figure the suite builds, here and in the dashboard servers it starts, is validated by
# Plotly (the dashboard itself skips that for speed: rnnreg.plots.layout.build_figure).
os.environ["RNNREG_VALIDATE_FIGURES"] = "1"

REPO = Path(__file__).resolve().parent.parent


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY_WORDS = "the cat sat on a mat while the dog ran to the red ball and a bird sang".split()


def write_tiny_corpus(directory: Path, *, lines: int = 160, seed: int = 0) -> Path:
    """A small word corpus with structure (a model can learn it): train/valid/test.txt.

    Its valid split holds a full window of the demo preset's shape (20 x 20 tokens and one).
    """
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", lines), ("valid", lines // 2), ("test", lines // 2)):
        rows = []
        for _ in range(count):
            start = rng.randrange(len(TINY_WORDS))
            length = rng.randint(4, 9)
            rows.append(" ".join(TINY_WORDS[(start + i) % len(TINY_WORDS)] for i in range(length)))
        (directory / f"{split}.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return directory


@pytest.fixture(autouse=True)
def _code_on_disk_counts_as_the_code_running(request, monkeypatch):
    """The AppTests of a whole suite share one process: a file its developer edits meanwhile
    must not read as a `git pull` under a running dashboard (tests/test_app.py tests that check)."""
    if "real_code_check" not in request.keywords:
        try:
            from pages.shared import code_version
        except ImportError:  # no Streamlit: a bare GPU machine runs the trainer's tests only
            return
        monkeypatch.setattr(code_version, "stale_code_notice", lambda: None)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    return write_tiny_corpus(tmp_path / "corpus")


def tiny_config(data_dir: Path, *, placement: str = "none", dropout: float | None = None, epochs: int = 2,
                hidden: int = 16, layers: int = 2, **train) -> RunConfig:
    device = train.pop("device", "cpu")
    config = build_run_config("small", placement=placement, dropout=dropout, epochs=epochs, data_dir=data_dir,
                              device=device, **{"batch_size": 4, "bptt": 8, "log_every": 5, **train})
    return dataclasses.replace(config, model=ModelConfig(layers=layers, hidden=hidden, init_scale=0.1))


# --- forked real trainers (tests/crash_trainer.py): crash safety and resume ------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One warm process that forks real trainers on demand (torch imported once)."""
    from crash_trainer import ForkServer

    fork = ForkServer(tmp_path_factory.mktemp("logs"))
    yield fork
    fork.close()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    from crash_trainer import write_corpus

    return write_corpus(tmp_path_factory.mktemp("corpus"))
