"""Safe by default: the app listens on localhost with XSRF protection, no shell anywhere,
nothing unpickled from a run directory, no file read through a symlink out of it."""

from __future__ import annotations

import json
import pickle
import re
import subprocess
import tomllib
from pathlib import Path

import pytest
import torch

from crash_trainer import REPO, tiny_config, write_corpus
from rnnreg import cli
from rnnreg.config import to_dict
from rnnreg.runs import RunStoreError, RunWriter, effective_state, find_run_dir

SHELL_TRUE = re.compile(r"shell\s*=\s*True")
UNSAFE_CALLS = re.compile(r"\b(os\.system|os\.popen|pickle\.loads?|torch\.load)\s*\(|(?<![.\w])(eval|exec)\s*\("
                          r"|allow_pickle\s*=\s*True")


def python_sources() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def test_app_listens_on_localhost_with_xsrf_protection():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
    assert config["server"]["enableXsrfProtection"] is True
    assert config["server"].get("enableCORS", True) is True
    assert config["browser"]["gatherUsageStats"] is False


def test_no_shell_true_anywhere():
    sources = python_sources()
    assert len(sources) > 20 and REPO / "rnnreg" / "launch.py" in sources
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in sources
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if SHELL_TRUE.search(line) and p.name != "test_safety.py"]
    assert offenders == []


def test_library_and_app_never_unpickle_or_eval():
    shipped = [p for p in python_sources() if p.parts[len(REPO.parts)] != "tests"]
    offenders = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in shipped
                 for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if UNSAFE_CALLS.search(line) and not line.lstrip().startswith("#")]
    assert offenders == []


class Planted:
    """Unpickling this creates the marker file: what an attacker's checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.fixture
def interrupted_run(tmp_path) -> RunWriter:
    writer = RunWriter.create(tmp_path / "runs", to_dict(tiny_config(write_corpus(tmp_path / "corpus"))))
    writer.vocab_path.write_text(json.dumps(["w0", "<unk>", "<eos>"]))
    writer.set_status("running", pid=2 ** 22 + 77)  # its process is gone: interrupted, resumable
    assert effective_state(writer.read_status()) == "interrupted"
    return writer


@pytest.mark.parametrize("packing", ["pickle", "torch.save"])
def test_a_malicious_pickle_checkpoint_is_refused_and_never_run(interrupted_run, tmp_path, capsys, packing):
    from rnnreg.checkpoint import CheckpointError, load_checkpoint

    marker = tmp_path / "pwned"
    payload_path = tmp_path / "payload.bin"
    if packing == "pickle":
        payload_path.write_bytes(pickle.dumps(Planted(marker)))
    else:
        torch.save({"model": Planted(marker)}, payload_path)

    # control: the payload is live - unpickling it does create the marker
    if packing == "pickle":
        pickle.loads(payload_path.read_bytes()).close()
    else:
        torch.load(payload_path, weights_only=False)["model"].close()
    assert marker.exists()
    marker.unlink()

    checkpoint = interrupted_run.checkpoint_path
    checkpoint.write_bytes(payload_path.read_bytes())

    with pytest.raises(CheckpointError, match="not an rnnreg safetensors checkpoint"):
        load_checkpoint(checkpoint)
    root = interrupted_run.dir.parent
    assert cli.main(["train", "--resume", interrupted_run.id, "--runs-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert "not an rnnreg safetensors checkpoint" in err and len(err.strip().splitlines()) == 1
    assert effective_state(interrupted_run.read_status()) == "interrupted"  # refused before touching it
    inspect_model = pytest.importorskip("rnnreg.inspect_model")  # the "Poke a trained model" page
    with pytest.raises(inspect_model.InspectError, match="not an rnnreg safetensors checkpoint"):
        inspect_model.load_run_model(interrupted_run.dir)
    assert not marker.exists()


def test_a_checkpoint_symlinked_out_of_the_run_is_not_read(interrupted_run, tmp_path, capsys):
    from rnnreg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    outside = tmp_path / "outside.safetensors"
    save_checkpoint(outside, {"w": torch.zeros(2)}, {"format": 1, "epoch": 1})
    assert load_checkpoint(outside)[1]["epoch"] == 1  # a good checkpoint, but not this run's own file
    interrupted_run.checkpoint_path.symlink_to(outside)
    with pytest.raises(CheckpointError, match="symlink, not followed"):
        load_checkpoint(interrupted_run.checkpoint_path)
    root = interrupted_run.dir.parent
    assert cli.main(["train", "--resume", interrupted_run.id, "--runs-dir", str(root)]) == 2
    # refused before it is loaded (resume_refusal), and load_checkpoint above would refuse it too
    assert "its checkpoint.safetensors is a symlink" in capsys.readouterr().err


def test_resume_is_confined_to_the_runs_root(tmp_path, capsys):
    root, elsewhere = tmp_path / "runs", tmp_path / "elsewhere"
    victim = RunWriter.create(elsewhere, {"train": {}})
    root.mkdir()
    (root / "20261126-000000-link-abcdef").symlink_to(victim.dir, target_is_directory=True)
    for run_id in ("20261126-000000-link-abcdef", f"../elsewhere/{victim.id}", ".."):
        assert cli.main(["train", "--resume", run_id, "--runs-dir", str(root)]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and ("refused" in err or "'/'" in err or "'..'" in err), err
        with pytest.raises(RunStoreError):
            find_run_dir(root, run_id)
    assert victim.read_status()["state"] == "queued"
