"""The GPU session's tools, on a CPU: the sharing bench, the run scheduler, the MPS start-up.

A lent GPU gives a session about ten minutes of one command; these are checked here so that
none of it is spent finding a bug in them there.
"""

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rnnreg.bench_share import parse_levels, run_share_bench
from tests.conftest import load_benchmark

REPO = Path(__file__).resolve().parent.parent


def load_gpu_runs():
    return load_benchmark("gpu_runs")


def rnnreg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnreg", *args], capture_output=True, text=True, cwd=REPO,
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)


# --- rnnreg bench --share ----------------------------------------------------------------------

def test_share_bench_times_one_and_two_processes_at_once():
    result = rnnreg("bench", "--preset", "demo", "--placements", "zaremba", "--share", "2,1",
                    "--share-seconds", "0.3", "--rounds", "1", "--threads", "1", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert (doc["placement"], doc["step"], doc["device"]) == ("zaremba", "eager", "cpu")
    rows = {r["processes"]: r for r in doc["results"]}
    assert sorted(rows) == [1, 2]
    assert rows[1]["ratio"] == 1.0
    for row in rows.values():
        assert row["ms_per_batch"] > 0 and row["words_per_s"] > 0
    # the words/s are summed over the processes: about K times one process's own rate
    words_per_batch = 20 * 20  # the demo preset's batch x unroll
    for k, row in rows.items():
        assert row["words_per_s"] == pytest.approx(k * words_per_batch / (row["ms_per_batch"] / 1000), rel=0.25)
    # the ratio is throughput in all against one alone, from the same measurements
    assert rows[2]["ratio"] == pytest.approx(rows[2]["words_per_s"] / rows[1]["words_per_s"])


def test_share_bench_text_table():
    result = rnnreg("bench", "--preset", "demo", "--placements", "none", "--share", "1",
                    "--share-seconds", "0.2", "--rounds", "1", "--threads", "1")
    assert result.returncode == 0, result.stderr
    assert "processes" in result.stdout and "vs one alone" in result.stdout
    assert "        1 " in result.stdout and "1.00x" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--share", "2,4"], "including 1"),
    (["--share", "1,x"], "comma-separated list"),
    (["--share", "1,1"], "distinct"),
    (["--share", "0,1"], ">= 1"),
    (["--share", "1,1000"], "at most 32 processes"),
    (["--share", "1,2", "--placements", "none,zaremba"], "one placement"),
    (["--share", "1,2", "--profile"], "no --profile"),
    (["--share", "1,2", "--share-seconds", "0"], "--share-seconds"),
])
def test_share_bench_refuses_bad_options_by_name(args, message):
    result = rnnreg("bench", "--preset", "demo", "--placements", "none", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_parse_levels_sorts():
    assert parse_levels("4, 1,2") == [1, 2, 4]


def test_a_worker_that_dies_is_an_error_with_its_stderr_not_a_hang():
    with pytest.raises(RuntimeError, match=r"exited with code 1; its stderr ends:(.|\n)*no-such-preset"):
        run_share_bench("no-such-preset", "none", levels=[1], seconds=0.1, rounds=1, start_timeout=120)


# --- benchmarks/gpu_runs.py: how many at once, and what fits ------------------------------------

def test_sharing_file_and_the_concurrency_it_picks(tmp_path):
    gpu_runs = load_gpu_runs()
    share = tmp_path / "share.json"
    share.write_text(json.dumps({"results": [{"processes": 1, "ratio": 1.0}, {"processes": 2, "ratio": 1.7},
                                             {"processes": 3, "ratio": 2.3}, {"processes": 4, "ratio": 2.35}]}))
    sharing = gpu_runs.load_sharing([str(share), str(tmp_path / "missing.json")])
    assert sharing == {1: 1.0, 2: 1.7, 3: 2.3, 4: 2.35}
    assert gpu_runs.best_concurrency(sharing, ceiling=4) == 3  # 4 buys under 5% more than 3
    assert gpu_runs.best_concurrency(sharing, ceiling=2) == 2
    assert gpu_runs.best_concurrency({1: 1.0, 2: 0.9}, ceiling=4) == 1  # sharing that costs: one at a time
    assert gpu_runs.load_sharing([]) == {1: 1.0}
    share.write_text("{not json")
    assert gpu_runs.load_sharing([str(share)]) == {1: 1.0}


def test_admission_bounds_each_job_by_its_slowdown_and_by_the_work_owed():
    gpu_runs = load_gpu_runs()
    turns = {1: 1.0}  # no sharing bench: processes take turns
    assert gpu_runs.admits(250, [], 260, turns) and not gpu_runs.admits(250, [], 240, turns)
    # taking turns, a second job ends when all the work is done: 100 owed + 250 new
    assert gpu_runs.admits(250, [100], 350, turns) and not gpu_runs.admits(250, [100], 349, turns)
    # MPS measured at 1.8x for two: each runs at 0.9 of its own speed, so 250 s alone take 278 s
    mps = {1: 1.0, 2: 1.8}
    assert gpu_runs.slowdown(mps, 2) == pytest.approx(2 / 1.8)
    assert gpu_runs.admits(250, [100], 280, mps) and not gpu_runs.admits(250, [100], 277, mps)
    # a running job that would be pushed past the deadline refuses the new one, however short
    assert gpu_runs.admits(10, [250], 261, mps) and not gpu_runs.admits(10, [250], 255, mps)
    # an unmeasured level takes the next measured one above it; none above: turns
    assert gpu_runs.slowdown({1: 1.0, 2: 1.8, 4: 3.0}, 3) == pytest.approx(4 / 3.0)
    assert gpu_runs.slowdown(mps, 3) == 3.0
    # sharing that costs in all (0.8x for two) is no excuse for the serial bound
    assert not gpu_runs.admits(100, [100], 200, {1: 1.0, 2: 0.8})


def test_gpu_runs_trains_jobs_side_by_side_on_a_cpu(tmp_path, tiny_corpus):
    share = tmp_path / "share.json"
    share.write_text(json.dumps({"results": [{"processes": 1, "ratio": 1.0}, {"processes": 2, "ratio": 1.9}]}))
    runs = tmp_path / "work" / "runs"
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_runs.py"), "--runs-dir", str(runs), "--deadline", "300",
         "--concurrent", "4", "--sharing", str(share), "--device", "cpu", "--step", "eager",
         "--data", str(tiny_corpus), "--epochs", "1", "--mc", "a=2",
         "a:demo:none:-:0", "b:demo:variational:0.4:1:--dropout-site=hidden=0.2,--weight-decay=1e-4"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[0]["concurrent"] == 2  # the best measured level under the ceiling of 4
    events = [(line["job"], line["event"]) for line in lines[1:]]
    # both start before either ends: side by side
    assert events[:2] == [("a", "started"), ("b", "started")]
    assert sorted(e for e in events[2:]) == [("a", "ended"), ("a", "mc"), ("b", "ended")]
    assert all(line["rc"] == 0 for line in lines if line.get("event") in ("ended", "mc"))
    assert [line["shared_with"] for line in lines if line.get("event") == "ended"] == [1, 1]
    for name in ("a", "b"):
        (status,) = runs.glob(f"*-{name}-*/status.json")
        assert json.loads(status.read_text())["state"] == "finished"
    config = json.loads(next(runs.glob("*-b-*/config.json")).read_text())["config"]
    assert config["train"]["epochs"] == 1 and config["train"]["weight_decay"] == 1e-4
    assert config["dropout"]["rates"] == {"input": 0.4, "hidden": 0.2, "output": 0.4, "embedding": 0.1}
    records = [json.loads(line) for line in next(runs.glob("*-a-*/metrics.jsonl")).read_text().splitlines()]
    assert [r["samples"] for r in records if r["kind"] == "mc_test"] == [2]


def test_each_job_finds_its_own_run_by_name_not_by_a_glob_on_run_ids(tmp_path):
    from rnnreg.config import build_run_config, to_dict
    from rnnreg.runs import RunWriter

    gpu_runs = load_gpu_runs()
    long_name = "medium-variational-untied-gal-0.3-0.5-s10"  # 41 characters: its id's slug is cut to 40
    made = {}
    for name in ("medium-zaremba-0.5-s1", "medium-zaremba-0.5-s10", long_name):
        writer = RunWriter.create(tmp_path, to_dict(build_run_config("demo", name=name)))
        writer.append_metric({"kind": "epoch", "epoch": 1, "seconds": float(len(name))})
        made[name] = writer.id
    assert long_name not in made[long_name]
    for name, run in made.items():  # `-s1` is inside `-s10`'s id: each finds its own
        assert gpu_runs.run_id(tmp_path, name) == run
        assert gpu_runs.epoch_seconds(tmp_path, name) == [float(len(name))]
    assert gpu_runs.run_id(tmp_path, "medium-zaremba-0.5") is None and gpu_runs.epochs_done(tmp_path, "x") == 0


def test_jobs_sent_eager_are_fitted_by_eager_figures_not_graphed_ones():
    gpu_runs = load_gpu_runs()
    bench = str(REPO / "benchmarks" / "bench-medium-NVIDIA-H200-2026-11-26.json")
    graphed, eager = gpu_runs.load_bench([bench], "graph"), gpu_runs.load_bench([bench], "eager")
    assert graphed[("medium", "variational")] < 5 < 20 < eager[("medium", "variational")]  # ms per batch
    alone = gpu_runs.estimate_seconds("medium", "variational", eager, step="eager")
    assert alone > 4 * gpu_runs.estimate_seconds("medium", "variational", graphed)  # over 1000 s: never admitted
    # a placement the bench lacks: the graphed fallback, times the eager factor
    assert gpu_runs.estimate_seconds("large", "zaremba", {}, step="eager") == pytest.approx(
        gpu_runs.EAGER_FACTOR * gpu_runs.estimate_seconds("large", "zaremba", {}))


def test_trainers_that_ignore_sigterm_share_one_grace_period(tmp_path):
    gpu_runs = load_gpu_runs()
    stubborn = [subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                  "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]) for _ in range(3)]
    time.sleep(0.5)  # their handlers in place
    began = time.monotonic()
    gpu_runs.stop_all(stubborn, grace=1.0)
    assert time.monotonic() - began < 2.5 and all(p.returncode == -9 for p in stubborn)  # not 3 x 1 s, then killed


def test_an_evaluation_stopped_at_the_deadline_shares_the_trainers_grace_instead_of_its_own(tmp_path):
    gpu_runs = load_gpu_runs()
    said = []
    evaluations = gpu_runs.Evaluations(tmp_path, tmp_path, "cpu", dict(os.environ), lambda name, **f: said.append(f))
    stubborn = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"])
    time.sleep(0.5)
    evaluations.current = ("medium-moon-s0", 20, stubborn, tmp_path / "mc.log")
    began = time.monotonic()
    assert evaluations.stop() is stubborn and time.monotonic() - began < 1.0  # signalled, not waited for
    assert said == [{"event": "mc-deadline", "samples": 20}] and evaluations.current is None
    gpu_runs.stop_all([stubborn], grace=0.5)
    assert stubborn.returncode == -9


def test_a_job_is_doomed_by_its_own_pace_not_by_its_first_epoch():
    gpu_runs = load_gpu_runs()
    assert gpu_runs.seconds_to_finish([30.0], 10, 1.0) is None  # the first epoch holds the warm-up
    assert gpu_runs.seconds_to_finish([30.0, 8.0, 9.0], 10, 1.0) == 8.0 * 7  # the faster of the last two
    # sharing with two others at a measured 2x slowdown: alone it would go twice as fast
    assert gpu_runs.seconds_to_finish([20.0, 20.0], 12, gpu_runs.slowdown({1: 1.0, 3: 1.5}, 3)) == 100.0


def test_gpu_runs_stops_a_job_that_cannot_end_in_time_instead_of_at_the_deadline(tmp_path, tiny_corpus):
    # a bench that makes the job look quick: admitted; its first epochs then tell it cannot end in time
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"preset": "demo", "results": [
        {"step": "eager", "name": "none", "ms_per_batch": 0.001}]}))  # the step the job takes (--step eager)
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_runs.py"), "--runs-dir", str(tmp_path / "runs"),
         "--deadline", "60", "--device", "cpu", "--step", "eager", "--bench", str(bench),
         "--data", str(tiny_corpus), "--epochs", "5000", "slow:demo:none:-:0"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert done.returncode == 0, done.stderr
    events = {line["event"]: line for line in map(json.loads, done.stdout.splitlines()[1:])}
    assert list(events) == ["started", "doomed", "ended"], done.stdout
    assert events["doomed"]["needs"] > events["doomed"]["left"] and time.monotonic() - began < 50
    (status,) = (tmp_path / "runs").glob("*-slow-*/status.json")
    assert json.loads(status.read_text())["state"] == "cancelled"


def test_gpu_runs_leaves_out_a_placement_whose_gpu_tests_failed(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_runs.py"), "--runs-dir", str(tmp_path / "runs"),
         "--deadline", "60", "--device", "cpu", "--skip-placement", "variational-untied",
         "u:demo:variational-untied:-:0"],
        capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()][1:]
    assert events[0]["event"] == "skipped" and "GPU tests of variational-untied failed" in events[0]["reason"]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_jobs_name_what_is_wrong_with_them():
    gpu_runs = load_gpu_runs()
    job = gpu_runs.parse_job("v:medium:variational:0.5:0:--dropout-site=hidden=0.3,--weight-decay=1e-7")
    assert job.name == "v" and job.seed == "0"
    assert job.options == ("--dropout-site=hidden=0.3", "--weight-decay=1e-7")
    assert gpu_runs.parse_job("n:medium:none:-:1").options == ()
    for text, message in (("n:medium:none:-", "expected name:preset"), ("n:huge:none:-:0", "preset 'huge'"),
                          ("n:medium:none:-:0:weight-decay=1", "each option is --option=value")):
        with pytest.raises(ValueError, match=message):
            gpu_runs.parse_job(text)


# --- benchmarks/mps.sh --------------------------------------------------------------------------

def fake_tool(directory: Path, name: str, body: str) -> None:
    path = directory / name
    path.write_text(f"#!/usr/bin/env bash\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def mps_script(tmp_path: Path, probe_ok: bool, daemon_ok: bool = True) -> subprocess.CompletedProcess:
    """Source mps.sh with a fake nvidia-cuda-mps-control (it logs its calls) and a fake python probe."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.log"
    fake_tool(bin_dir, "nvidia-cuda-mps-control",
              f'if [ "$1" = -d ]; then echo "daemon $CUDA_MPS_PIPE_DIRECTORY" >> {calls}; exit {0 if daemon_ok else 1}; fi\n'
              f'echo "command $(cat)" >> {calls}')
    fake_tool(bin_dir, "probe-python", f"exit {0 if probe_ok else 1}")
    script = (f"source {REPO / 'benchmarks' / 'mps.sh'}\n"
              f"if mps_start {tmp_path / 'mps'} {bin_dir / 'probe-python'}; then echo started; fi\n"
              'echo "pipe=${CUDA_MPS_PIPE_DIRECTORY:-unset} flag=${MPS_STARTED:-0}"\n'
              "mps_stop\n"
              'echo "after stop: pipe=${CUDA_MPS_PIPE_DIRECTORY:-unset}"\n')
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env.pop("CUDA_MPS_PIPE_DIRECTORY", None)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    result.calls = calls.read_text().splitlines() if calls.exists() else []
    return result


def test_mps_start_exports_the_pipe_and_stop_quits_the_daemon(tmp_path):
    result = mps_script(tmp_path, probe_ok=True)
    assert "mps: on" in result.stdout and "started" in result.stdout, result.stdout + result.stderr
    assert f"pipe={tmp_path / 'mps' / 'pipe'} flag=1" in result.stdout
    assert result.calls == [f"daemon {tmp_path / 'mps' / 'pipe'}", "command quit"]
    assert "after stop: pipe=unset" in result.stdout


@pytest.mark.parametrize("daemon_ok", [True, False])
def test_mps_that_fails_is_stopped_and_forgotten(tmp_path, daemon_ok):
    result = mps_script(tmp_path, probe_ok=False, daemon_ok=daemon_ok)
    assert "going on without MPS" in result.stdout and "started" not in result.stdout.replace("mps: on", "")
    assert "pipe=unset flag=0" in result.stdout
    assert result.calls == [f"daemon {tmp_path / 'mps' / 'pipe'}", "command quit"]  # quit once, by mps_start


def test_mps_start_without_the_tool_says_so(tmp_path):
    script = f"source {REPO / 'benchmarks' / 'mps.sh'}; mps_start {tmp_path} python3 || echo refused"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PATH": "/usr/bin:/bin"})
    assert "nvidia-cuda-mps-control not found" in result.stdout and "refused" in result.stdout


# --- benchmarks/gpu_session.sh, with a stand-in python -----------------------------------------

def run_session_with_a_stand_in_python(tmp_path: Path, pytest_output: str = "", **env_changes: str) -> tuple[Path, list]:
    """gpu_session.sh with a `python` that logs its arguments (and answers `-c` and `-m pytest` as
    told), so the script's own logic runs without torch or a GPU; returns $OUT and gpu_runs' argv."""
    calls = tmp_path / "calls.jsonl"
    (tmp_path / "pytest-output.txt").write_text(pytest_output)
    fake_tool(tmp_path, "python", f"""exec {sys.executable} -c '
import json, sys
with open("{calls}", "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
if sys.argv[1:2] == ["-c"]:
    print("Fake-GPU")
if sys.argv[1:3] == ["-m", "pytest"]:
    output = open("{tmp_path / 'pytest-output.txt'}").read() or "57 passed in 60.0s"
    print(output)
    sys.exit(1 if "FAILED" in output or "ERROR" in output else 5 if "no tests ran" in output else 0)
' "$@" """)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": str(tmp_path / "python"), "GPU_TESTS": "0", "BENCH": "0",
           "MPS": "0", "BUDGET": "600", **env_changes}
    env.pop("RUNS", None)
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    (argv,) = [json.loads(line) for line in calls.read_text().splitlines()
               if json.loads(line)[:1] == ["benchmarks/gpu_runs.py"]]
    return out, argv


@pytest.mark.parametrize("failed, step, skipped", [
    ("", "graph", []),
    ("FAILED tests/test_gpu.py::test_a_graphed_run_learns_like_an_eager_one[variational-untied] - AssertionError\n"
     "FAILED tests/test_gpu.py::test_the_triton_cell_is_the_loop_on_the_gpu[variational-untied] - x\n"
     "2 failed, 55 passed in 61.0s", "graph", ["variational-untied"]),
    ("FAILED tests/test_gpu.py::test_graph_replay_matches_the_eager_step_without_dropout[explicit-0.0] - x",
     "eager", []),
    ("".join(f"FAILED tests/test_gpu.py::test_a_graphed_run_learns_like_an_eager_one[{p}] - x\n"
             for p in ("zaremba", "recurrent", "moon")), "eager", []),
    # every test erred in set-up (an import the bare machine lacks): nothing was proven, graphs or not
    ("ERROR tests/test_gpu.py::test_graph_replay_matches_the_eager_step_without_dropout[explicit-0.0] - "
     "ModuleNotFoundError\n3 errors in 2.1s", "eager", []),
    ("no tests ran in 0.5s", "eager", []),
])
def test_the_gpu_tests_decide_the_step_and_leave_out_a_failing_placement(tmp_path, failed, step, skipped):
    _out, argv = run_session_with_a_stand_in_python(tmp_path, failed, GPU_TESTS="1")
    assert argv[argv.index("--step") + 1] == step
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--skip-placement"] == skipped


def test_the_session_script_refuses_to_start_without_the_commit_its_runs_must_record(tmp_path):
    (tmp_path / "out").mkdir()
    import shutil

    bare = tmp_path / "tree"  # the lent machine's copy has no .git
    shutil.copytree(REPO / "benchmarks", bare / "benchmarks")
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": "false"}
    env.pop("RNNREG_GIT_COMMIT", None)
    done = subprocess.run(["bash", "benchmarks/gpu_session.sh"], cwd=bare, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "set RNNREG_GIT_COMMIT" in done.stderr
    assert (tmp_path / "out" / "session.log").read_text().startswith("set RNNREG_GIT_COMMIT")


def test_the_session_script_hands_gpu_runs_jobs_it_can_parse(tmp_path):
    """A typo in the session's job list would cost a lent GPU's session: every job it passes must
    parse, every --mc must name one of them, and every option must be one `rnnreg train` takes."""
    out, argv = run_session_with_a_stand_in_python(tmp_path)
    gpu_runs = load_gpu_runs()
    jobs = [gpu_runs.parse_job(a) for a in argv if ":" in a and not a.startswith("-")]
    assert len(jobs) >= 8 and len({j.name for j in jobs}) == len(jobs)
    assert argv[argv.index("--concurrent") + 1] == "1"  # without MPS, one at a time
    names = {j.name for j in jobs}
    mc_names = {argv[i + 1].split("=")[0] for i, a in enumerate(argv) if a == "--mc"}
    assert {n for n in mc_names if "gal" in n or "moon" in n} <= names and "medium-moon-s0" in mc_names
    from rnnreg.cli import build_parser, config_from_args

    for job in jobs:  # the trainer's own parser and validation accept each job (site names, rates)
        command = ["train", "--preset", job.preset, "--placement", job.placement, "--seed", job.seed, *job.options]
        if job.dropout != "-":
            command += ["--dropout", job.dropout]
        config_from_args(build_parser().parse_args(command))
    gal = [j for j in jobs if "gal" in j.name]
    assert gal and all("--weight-decay=1e-7" in j.options for j in gal)
    # what comes back from a lent GPU: at most 8 files, no more than 2 folders down
    files = [p for p in out.rglob("*") if p.is_file()]
    assert 0 < len(files) <= 8 and all(len(p.relative_to(out).parts) <= 3 for p in files), files
    assert (out / "session.log").is_file() and any(p.name.startswith("reference-runs-") for p in files)


def test_the_whole_session_script_runs_on_a_cpu_and_packs_what_comes_back(tmp_path, tiny_corpus):
    """DEVICE=cpu: real trainer runs, the float16 checkpoint of the small-none run, the archive."""
    import tarfile

    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable, "DEVICE": "cpu", "DATA": str(tiny_corpus),
           "EPOCHS": "1", "GPU_TESTS": "0", "MPS": "0", "BUDGET": "400", "OMP_NUM_THREADS": "1", "PACK_EVERY": "1",
           "RUNS": "small-none-s0:demo:none:-:0 other:demo:zaremba:0.5:0"}
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_session.sh")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert len(files) <= 8, files
    log = (out / "session.log").read_text()
    assert "finished: " in log
    # while they trained, the finished runs were packed as they came (a command killed at its limit
    # still brings those back); the whole archive then replaced that partial one
    assert re.search(r"partial archive: [12] finished run\(s\)", log), log
    assert not [f for f in files if "partial" in f], files
    [archive] = [f for f in files if f.startswith("reference-runs-cpu-")]
    with tarfile.open(out / archive) as tar:
        names = tar.getnames()
        small = [n for n in names if "-small-none-s0-" in n and n.endswith("/checkpoint.safetensors")]
        assert len(small) == 1  # the poke view's model ships, in float16 ...
        tar.extract(small[0], tmp_path / "unpacked", filter="data")
    from safetensors import safe_open

    with safe_open(tmp_path / "unpacked" / small[0], "pt") as weights:
        assert weights.get_tensor("model.embedding.weight").dtype == torch.float16
    assert not [n for n in names if "-other-" in n and "checkpoint" in n]  # ... and no other checkpoint
    assert any(n.endswith("/status.json") and "-other-" in n for n in names)
    assert "session/env.txt" in names and "logs/other.log" in names
    events = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines() if line.startswith("{")]
    assert [e["rc"] for e in events if e.get("event") == "ended"] == [0, 0]

    # and benchmarks/ship_runs.py takes the archive's finished runs into a store, once
    ship = [sys.executable, str(REPO / "benchmarks" / "ship_runs.py"), str(out / archive),
            "--into", str(tmp_path / "reference")]
    # these runs trained on the tiny corpus: no reference runs, unless asked for
    refused = subprocess.run(ship, capture_output=True, text=True, timeout=60)
    assert refused.stdout.count("left out, not trained on the vendored Penn Treebank (corpus: other") == 2
    assert not (tmp_path / "reference").exists()
    ship.append("--any-corpus")
    shipped = subprocess.run(ship + ["--dry-run"], capture_output=True, text=True, timeout=60)
    assert shipped.returncode == 0 and shipped.stdout.count("would ship") == 2, shipped.stdout + shipped.stderr
    assert not (tmp_path / "reference").exists()
    shipped = subprocess.run(ship, capture_output=True, text=True, timeout=60)
    assert shipped.stdout.count(": shipped (") == 2 and "test " in shipped.stdout, shipped.stdout + shipped.stderr
    # EPOCHS=1 is not the demo preset's 10: each line says so, for the README row that must name the run
    assert shipped.stdout.count("settings other than the preset's: epochs=1") == 2, shipped.stdout
    from rnnreg.runs import list_runs

    listed = list_runs(tmp_path)
    assert len(listed) == 2 and all(s.read_only and s.state == "finished" and not s.problems for s in listed)
    again = subprocess.run(ship, capture_output=True, text=True, timeout=60)
    assert again.stdout.count("left out, already in") == 2


def test_ship_runs_takes_nothing_from_a_hostile_archive(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in (("runs/../evil.txt", b"x"), ("runs/run-1/status.json", b"{not json"),
                           ("logs/a.log", b"log")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("runs/run-2/config.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        big = tarfile.TarInfo("runs/run-3/checkpoint.safetensors")
        big.size = 11 * 1024 * 1024
        tar.addfile(big, io.BytesIO(bytes(big.size)))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ship_runs.py"), str(archive),
                           "--into", str(tmp_path / "reference")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "run-1: left out" in done.stdout and "run-3: left out, over 10 MB" in done.stdout
    assert "run-2" not in done.stdout  # a link is no run file
    assert not (tmp_path / "reference").exists() and not (tmp_path / "evil.txt").exists()


def test_the_schedulers_minibatches_per_epoch_are_the_trainers():
    from rnnreg.config import build_run_config
    from rnnreg.data import batchify, count_windows, load_corpus

    gpu_runs = load_gpu_runs()
    train = load_corpus(REPO / "data" / "ptb").train
    for preset, batches in gpu_runs.BATCHES.items():
        t = build_run_config(preset).train
        tokens = train[: t.max_train_tokens] if t.max_train_tokens else train
        assert batches == count_windows(batchify(tokens, t.batch_size), t.bptt, full_only=True), preset
        assert gpu_runs.EPOCHS[preset] == t.epochs, preset


def test_ship_runs_leaves_out_a_run_that_does_not_say_what_made_it(tmp_path):
    import shutil
    import tarfile

    shipped = next(d for d in (REPO / "runs" / "reference").iterdir() if "small-none-s1" in d.name)
    for name, drop in (("anonymous", "git_commit"), ("recorded", None), ("untested", None)):
        run = tmp_path / "runs" / f"{shipped.name}-{name}"
        shutil.copytree(shipped, run)
        doc = json.loads((run / "config.json").read_text())
        if drop:
            del doc["environment"][drop]
        (run / "config.json").write_text(json.dumps(doc))
        if name == "untested":  # its test figure not finite (or not there): no figure to ship it with
            metrics = (run / "metrics.jsonl").read_text().splitlines()
            (run / "metrics.jsonl").write_text("".join(
                line.replace('"test_ppl":', '"test_ppl":Infinity,"was":') + "\n" for line in metrics))
    archive = tmp_path / "session.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "runs", arcname="runs")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "ship_runs.py"), str(archive),
                           "--into", str(tmp_path / "reference")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "-anonymous: left out, its config.json does not record git_commit" in done.stdout, done.stdout
    assert "-recorded: shipped" in done.stdout, done.stdout
    assert "-untested: left out, finished but records no test perplexity" in done.stdout, done.stdout
    assert [d.name for d in (tmp_path / "reference").iterdir()] == [f"{shipped.name}-recorded"]


def test_ship_runs_takes_a_run_folder_trained_elsewhere_and_leaves_its_big_checkpoint_behind(tmp_path):
    """A long CPU run ships from its own folder: its run files, not the lock, a stray file or a
    link, and not the resume checkpoint of a model too big for the repository."""
    import shutil

    shipped = REPO / "runs" / "reference" / "20261126-161557-small-none-s0-c516fa"  # ships its fp16 weights
    run = tmp_path / "cpu-runs" / shipped.name
    shutil.copytree(shipped, run)
    (run / "checkpoint.safetensors").write_bytes(bytes(11 * 1024 * 1024))  # a medium model's are 80 MB
    (run / ".lock").write_bytes(b"")
    (run / "notes.txt").write_text("mine")
    (run / "train.log").unlink()
    (run / "train.log").symlink_to("/etc/hostname")
    ship = [sys.executable, str(REPO / "benchmarks" / "ship_runs.py"), str(run), "--into", str(tmp_path / "ref")]
    done = subprocess.run(ship, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"{shipped.name}: shipped (" in done.stdout, done.stdout
    assert done.stdout.rstrip().endswith("; left behind: its checkpoint (11 MB)"), done.stdout
    copied = tmp_path / "ref" / shipped.name
    assert sorted(p.name for p in copied.iterdir()) == ["config.json", "metrics.jsonl", "probes.jsonl",
                                                        "status.json", "vocab.json"]
    assert all((copied / name).read_bytes() == (shipped / name).read_bytes() for name in ("config.json",
                                                                                          "metrics.jsonl"))
    again = subprocess.run(ship, capture_output=True, text=True, timeout=60)
    assert again.stdout.strip() == f"{shipped.name}: left out, already in {tmp_path / 'ref'}"

    ship_runs = load_benchmark("ship_runs")
    (run / "checkpoint.safetensors").write_bytes((shipped / "checkpoint.safetensors").read_bytes())
    [line] = ship_runs.ship(run, tmp_path / "ref2")  # a checkpoint under the limit ships, with its state
    assert "left behind" not in line and (tmp_path / "ref2" / shipped.name / "checkpoint.json").is_file()
    (run / "metrics.jsonl").write_bytes(bytes(11 * 1024 * 1024))
    [line] = ship_runs.ship(run, tmp_path / "ref3")
    assert line == f"{shipped.name}: left out, over 10 MB: metrics.jsonl" and not (tmp_path / "ref3").exists()
    status = json.loads((run / "status.json").read_text())
    (run / "metrics.jsonl").write_bytes((shipped / "metrics.jsonl").read_bytes())
    (run / "status.json").write_text(json.dumps({**status, "state": "running"}))
    [line] = ship_runs.ship(run, tmp_path / "ref4")  # still training (or killed mid-run): not a reference
    assert line.startswith(f"{shipped.name}: left out, ") and not (tmp_path / "ref4").exists(), line
    [line] = ship_runs.ship(run.parent, tmp_path / "ref4")  # the store, not a run: say so
    assert line == "cpu-runs: left out, not a run folder (none of config.json, status.json, metrics.jsonl)"


def test_the_session_scripts_queue_holds_no_run_already_shipped():
    """Lent GPU minutes are few: the default queue must not train again what runs/reference has."""
    from rnnreg import runs

    script = (REPO / "benchmarks" / "gpu_session.sh").read_text()
    queue = script[script.index("${RUNS:-") + len("${RUNS:-"):]
    queue = queue[:queue.index("}")]
    names = [job.split(":")[0] for job in queue.split() if job != "\\"]
    assert len(names) >= 5 and all(re.fullmatch(r"(small|medium|large)-[\w.-]+-s\d", n) for n in names), names
    shipped = {s.name for s in runs.list_runs(REPO / "runs") if s.read_only}
    assert not set(names) & shipped, sorted(set(names) & shipped)


def test_the_large_estimate_covers_the_shipped_large_run_and_fits_the_command_given_for_it():
    """A large run fills a command alone: estimated short, it overruns the deadline and is lost;
    estimated long, the command the README gives for it would not start it."""
    from rnnreg import runs

    gpu_runs = load_gpu_runs()
    estimate = gpu_runs.estimate_seconds("large", "zaremba", {})
    large = [s for s in runs.list_runs(REPO / "runs") if s.read_only and s.preset == "large" and s.wall_seconds]
    assert large and all(estimate >= s.wall_seconds for s in large), (estimate, [s.wall_seconds for s in large])
    budget = int(re.search(r'BUDGET=(\d+) MPS=0 GPU_TESTS=0 RUNS="large-', (REPO / "README.md").read_text()).group(1))
    # gpu_session.sh gives gpu_runs.py the budget less 25 s, less its own start (a few seconds).
    assert estimate <= budget - 25 - 10 and budget <= 590, (estimate, budget)  # 10 s for packing under timeout_s 600


def test_the_trainers_tests_run_where_streamlit_is_not_installed(tmp_path):
    """The lent GPU machine is bare (torch, no Streamlit): the session runs test_gpu, test_steps and
    test_fused_cell there, and a suite-wide fixture that needed the dashboard made each one an ERROR."""
    blocked = tmp_path / "site" / "streamlit"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text('raise ImportError("no streamlit on this machine")\n')
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_steps.py"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(tmp_path / "site"), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0 and " passed" in done.stdout and "error" not in done.stdout.lower(), done.stdout[-2000:]


def test_a_device_call_can_send_the_tree_under_its_64_mib_from_a_slim_branch(tmp_path):
    """The device tool refuses a working tree over 64 MiB; the shipped runs alone are more.  `slim`
    commits a branch without runs/reference, `restore` goes back; the code stays what it was."""
    import shutil

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    script = shutil.copy(REPO / "benchmarks" / "gpu_tree.sh", tmp_path)  # as in this checkout, outside the clone
    git = lambda *args: subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True,  # noqa: E731
                                       check=True).stdout.strip()
    tree = lambda verb: subprocess.run(["bash", str(script), verb], cwd=clone,  # noqa: E731
                                       capture_output=True, text=True, timeout=120)
    branch, head = git("rev-parse", "--abbrev-ref", "HEAD"), git("rev-parse", "HEAD")
    slim = tree("slim")
    assert slim.returncode == 0, slim.stdout + slim.stderr  # under the limit
    assert git("rev-parse", "--abbrev-ref", "HEAD") == "gpu-call" and not (clone / "runs" / "reference").exists()
    assert git("diff", "--stat", head, "HEAD", "--", ".", ":(exclude)runs/reference") == ""  # same code
    restore = tree("restore")
    assert restore.returncode == 0 and "travels:" in restore.stdout, restore.stderr
    assert git("rev-parse", "--abbrev-ref", "HEAD") == branch and git("rev-parse", "HEAD") == head
    assert (clone / "runs" / "reference").is_dir() and "gpu-call" not in git("branch", "--list")


def test_the_tree_a_device_call_sends_has_room_to_grow():
    """Everything but the shipped runs (which slim leaves behind) well under the 64 MiB limit."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    paths = [p for p in listed.decode().split("\0") if p and not p.startswith("runs/reference/")]
    total = sum((REPO / p).stat().st_size for p in paths if (REPO / p).is_file())
    assert total < 48 * 2**20, f"{total / 2**20:.1f} MiB"


def test_ship_runs_leaves_out_a_second_run_of_a_job_already_shipped(tmp_path):
    """A job can run twice (on this CPU, and in a lent GPU's queue): one run of it ships, not two."""
    import shutil

    shipped = REPO / "runs" / "reference" / "20261126-161557-small-none-s0-c516fa"
    into = tmp_path / "reference"
    shutil.copytree(shipped, into / shipped.name)
    again = tmp_path / "gpu" / "20261208-000000-small-none-s0-abcdef"  # the same name, another id
    shutil.copytree(shipped, again)
    ship = [sys.executable, str(REPO / "benchmarks" / "ship_runs.py"), str(again), "--into", str(into)]
    done = subprocess.run(ship, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"{again.name}: left out, a run named 'small-none-s0' is shipped already "
                                   f"({shipped.name})")
    assert sorted(p.name for p in into.iterdir()) == [shipped.name]
