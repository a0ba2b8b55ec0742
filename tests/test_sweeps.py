"""Sweeps: spec validation and expansion, and a tiny sweep launched twice through the real queue."""

import json
import re
import time

import pytest

from rnnreg.config import to_dict
from rnnreg.runs import list_runs
from rnnreg.sweeps import SweepError, expand, load_spec, run_local
from tests.test_cli import rnnreg


def spec(**changes):
    base = {"name": "grid", "preset": "small", "base": {"epochs": 2, "device": "cpu"},
            "axes": {"placement": ["none", "zaremba"], "dropout": [0.25, 0.5], "seed": [0, 1]}}
    return {**base, **changes}


def test_axes_expand_to_every_combination_and_identical_configs_collapse():
    sweep = expand(spec())
    # zaremba: 2 rates x 2 seeds; none: the rate changes nothing, so 1 x 2 seeds
    assert len(sweep.runs) == 6
    assert len({r.request_id for r in sweep.runs}) == 6
    zaremba = [r for r in sweep.runs if r.config.dropout.placement == "zaremba"]
    assert {(r.config.dropout.rates["input"], r.config.train.seed) for r in zaremba} == {
        (0.25, 0), (0.25, 1), (0.5, 0), (0.5, 1)}
    assert all(r.config.train.epochs == 2 for r in sweep.runs)
    assert expand(spec()).runs == sweep.runs  # the same spec gives the same grid (ids included)
    # a name says what sets the run: no dropout rate for placement none, whose rate axis changed nothing
    assert sorted(r.name for r in sweep.runs if r.config.dropout.placement == "none") == ["grid-none-seed0",
                                                                                         "grid-none-seed1"]
    assert "grid-zaremba-dropout0.25-seed1" in {r.name for r in sweep.runs}


def test_site_axes_set_one_dropout_site():
    sweep = expand(spec(axes={"placement": ["variational"], "site:embedding": [0.0, 0.2]}))
    assert [r.config.dropout.rates["embedding"] for r in sweep.runs] == [0.0, 0.2]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"name": "../x"}, "name"),
        ({"preset": "huge"}, "--preset"),
        ({"axes": {}}, "axes"),
        ({"axes": {"seed": []}}, "non-empty list"),
        ({"axes": {"placement": ["nope"]}}, "placement=nope"),
        ({"axes": {"dropout": [1.5]}}, "dropout=1.5"),
        ({"axes": {"site:hidden": [0.1]}}, "--dropout-site"),
        ({"axes": {"epochs": [2]}}, "both in base and an axis"),
        ({"axes": {"frobnicate": [1]}}, "frobnicate"),
        ({"extra": 1}, "unknown key"),
    ],
)
def test_bad_specs_name_what_is_wrong(changes, message):
    with pytest.raises(SweepError, match=message.replace("+", r"\+")) as err:
        expand(spec(**changes))
    assert "\n" not in str(err.value)


def test_spec_files_are_read_and_their_errors_are_one_line(tmp_path):
    good = tmp_path / "s.json"
    good.write_text(json.dumps(spec()))
    assert load_spec(good)["name"] == "grid"
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(SweepError, match="not valid JSON"):
        load_spec(bad)
    result = rnnreg("sweep", str(bad))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_a_tiny_sweep_runs_and_launching_it_again_starts_nothing(tmp_path, tiny_corpus):
    root = tmp_path / "runs"
    sweep = expand({"name": "tiny", "preset": "small",
                    "base": {"epochs": 1, "device": "cpu", "data": str(tiny_corpus), "batch_size": 4, "bptt": 8},
                    "axes": {"placement": ["none", "zaremba"], "seed": [0, 1]}})
    assert len(sweep.runs) == 4
    first = run_local(sweep, root, max_concurrent=2)
    assert len(first.started) == 4
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        states = [s.state for s in list_runs(root)]
        if all(s == "finished" for s in states):
            break
        time.sleep(0.5)
    summaries = list_runs(root)
    assert [s.state for s in summaries] == ["finished"] * 4, [(s.state, s.problems) for s in summaries]
    assert {s.sweep for s in summaries} == {"tiny"}
    again = run_local(sweep, root, max_concurrent=2)
    assert again.started == () and len(again.kept) == 4
    assert len(list_runs(root)) == 4


def test_dry_run_lists_the_grid(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec()))
    result = rnnreg("sweep", str(path), "--dry-run", "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 0, result.stderr
    assert "6 runs" in result.stdout and "grid-zaremba-dropout0.5-seed1" in result.stdout
    line = next(line for line in result.stdout.splitlines() if "grid-zaremba-dropout0.5-seed1:" in line)
    assert line.endswith(": python -m rnnreg train --preset small --placement zaremba --epochs 2 --device cpu "
                         "--seed 1"), line
    assert not (tmp_path / "runs").exists()


def test_launching_again_resumes_interrupted_runs_and_leaves_ended_ones(tmp_path, monkeypatch, tiny_corpus):
    from rnnreg import launch
    from rnnreg.runs import RunWriter

    sweep = expand({"name": "again", "preset": "small", "base": {"device": "cpu", "data": str(tiny_corpus)},
                    "axes": {"seed": [0, 1, 2]}})
    root = tmp_path / "runs"
    writers = [RunWriter.create(root, to_dict(r.config), request_id=r.request_id, sweep="again")
               for r in sweep.runs]
    writers[0].set_status("running", pid=2 ** 22 + 12345)  # its process is gone: interrupted
    writers[1].set_status("diverged", message="loss became non-finite")
    resumed = []
    monkeypatch.setattr(launch, "resume", lambda root, run_id, **kw: resumed.append(run_id) or 0)
    monkeypatch.setattr(launch, "launch", lambda *a, **kw: pytest.fail("nothing new should start"))
    done = run_local(sweep, root)
    assert resumed == [writers[0].id] and done.resumed == (writers[0].id,)
    assert done.ended == (writers[1].id,) and done.kept == (writers[2].id,)


def test_ray_options_need_the_ray_backend(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec()))
    result = rnnreg("sweep", str(path), "--gpus-per-run", "0.5", "--runs-dir", str(tmp_path / "runs"))
    assert result.returncode == 2 and "--backend ray" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_without_max_concurrent_local_runs_one_at_a_time_and_ray_as_many_as_its_resources_take(tmp_path,
                                                                                               monkeypatch):
    from rnnreg import cli, sweeps
    from rnnreg.sweeps import SweepLaunch

    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec()))
    asked = []
    nothing = SweepLaunch((), (), (), ())
    monkeypatch.setattr(sweeps, "run_local", lambda sweep, root, max_concurrent: asked.append(max_concurrent)
                        or nothing)
    monkeypatch.setattr(sweeps, "run_ray", lambda sweep, root, **kw: asked.append(kw["max_concurrent"]) or nothing)
    for backend in ("local", "ray"):
        assert cli.main(["sweep", str(path), "--backend", backend, "--runs-dir", str(tmp_path / "runs")]) == 0
    assert cli.main(["sweep", str(path), "--backend", "ray", "--max-concurrent", "3",
                     "--runs-dir", str(tmp_path / "runs")]) == 0
    # ray: None, so run_ray keeps every run in flight and Ray's CPUs / --gpus-per-run decide
    assert asked == [1, None, 3]


def test_a_ray_trial_refuses_a_fifo_as_its_log_instead_of_blocking_for_ever(tmp_path):
    import os

    from rnnreg.sweeps import _ray_train

    fifo = tmp_path / "train.log"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):  # before: os.open blocked until a reader came
        _ray_train(["--help"], str(fifo), str(tmp_path))
    link = tmp_path / "linked.log"
    link.symlink_to(tmp_path / "elsewhere.log")
    with pytest.raises(OSError):
        _ray_train(["--help"], str(link), str(tmp_path))
    assert not (tmp_path / "elsewhere.log").exists()


def test_a_dropout_axis_is_no_part_of_the_name_of_a_run_without_dropout_sites_and_the_grid_says_why():
    sweep = expand({"name": "s", "preset": "demo", "axes": {"placement": ["none"], "dropout": [0.5]}})
    assert [r.name for r in sweep.runs] == ["s-none"] and sweep.points == 1  # it has no rate of 0.5
    grid = expand(spec())
    assert (len(grid.runs), grid.points) == (6, 8)  # none at two rates is one configuration
    assert [r.name for r in grid.runs if r.config.dropout.placement == "zaremba"][0] == "grid-zaremba-dropout0.25-seed0"


def test_dry_run_says_why_there_are_fewer_runs_than_grid_points(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(spec()))
    result = rnnreg("sweep", str(path), "--dry-run")
    assert result.stdout.splitlines()[0] == ("sweep grid: 6 runs of preset small (8 grid points; 2 of them the same "
                                             "configuration as another)")


def test_an_unknown_option_is_named_with_the_allowed_ones_and_a_dashed_spelling_with_its_key():
    with pytest.raises(SweepError, match=r"unknown option 'placment'; allowed: placement, dropout, .*site:SITE"):
        expand(spec(axes={"placment": ["none"]}))
    with pytest.raises(SweepError, match=r"unknown option 'max-train-tokens' \(written 'max_train_tokens'\)"):
        expand(spec(base={"max-train-tokens": 3000}))


def test_a_key_build_run_config_knows_by_another_name_is_told_the_spec_s_spelling():
    spellings = (("data_dir", "written 'data'"), ("site_rates", "'site:SITE'"), ("name", "made from the axes"))
    for key, spelling in spellings:
        with pytest.raises(SweepError, match=re.escape(spelling)):
            expand(spec(base={"epochs": 2, "device": "cpu", key: "x"}))
