"""The command line as a user meets it: clear one-line errors, and a real run's files and keys."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def rnnreg(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "rnnreg", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(
    "args, names",
    [
        (["train", "--preset", "huge"], ["--preset", "small, medium, large, demo"]),
        (["train", "--placement", "dropconnect"], ["--placement", "zaremba", "weight-drop"]),
        (["train", "--placement", "zaremba", "--dropout-site", "hidden=0.1"], ["--dropout-site", "input, output"]),
        (["train", "--placement", "zaremba", "--dropout", "1"], ["--dropout", "0 <= p < 1"]),
        (["train", "--placement", "zaremba", "--dropout", "-0.5"], ["--dropout", "0 <= p < 1"]),
        (["train", "--dropout", "abc"], ["--dropout", "0 <= P < 1"]),
        (["train", "--dropout-site", "hidden"], ["--dropout-site", "SITE=P"]),
        (["train", "--epochs", "0"], ["--epochs", ">= 1"]),
        (["train", "--device", "tpu"], ["--device", "auto, cpu, cuda"]),
        (["train", "--step", "turbo"], ["--step", "auto", "graph", "eager"]),
        (["train", "--step", "graph", "--device", "cpu"], ["--step", "graph needs a CUDA device", "auto, eager"]),
        (["train", "--data", "/nonexistent/corpus"], ["--data", "no such directory"]),
        (["train", "--lr-decay", "0.5"], ["--lr-decay", ">= 1"]),
        (["train", "--preset", "memory", "--bptt", "5"], ["--bptt", "one whole sequence", "leave --bptt out"]),
        (["show", "../no-such-run"], ["no run directory ../no-such-run"]),
        (["show", "no-such-run"], ["no run 'no-such-run'", "runs directory", "does not exist"]),
        (["show", "./tests"], ["./tests is no run directory", "config.json"]),  # a folder, but no run
        (["bench", "--share", "1,2", "--placements", "none", "--share-seconds", "inf"],
         ["--share-seconds", "at most 3600"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_user_mistakes_print_one_line_and_exit_2(tmp_path, args, names):
    result = rnnreg(*args, "--runs-dir", str(tmp_path / "runs")) if args[0] in ("train", "show") else rnnreg(*args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # no run left behind


def test_the_optimisation_options_reach_the_run_config_and_resume_refuses_them(capsys):
    from rnnreg.cli import build_parser, main
    from rnnreg.config import lr_at_epoch
    from rnnreg.cli import config_from_args

    args = build_parser().parse_args(["train", "--preset", "medium", "--lr", "0.8", "--lr-decay", "1.25",
                                      "--decay-after", "7", "--clip", "4", "--batch-size", "32", "--bptt", "30"])
    t = config_from_args(args).train
    assert (t.lr, t.lr_decay, t.decay_after, t.clip, t.batch_size, t.bptt) == (0.8, 1.25, 7, 4.0, 32, 30)
    assert [lr_at_epoch(t, e) for e in (7, 8, 9)] == pytest.approx([0.8, 0.8 / 1.25, 0.8 / 1.25**2])
    untouched = config_from_args(build_parser().parse_args(["train", "--preset", "medium"])).train
    assert (untouched.lr, untouched.lr_decay, untouched.decay_after, untouched.clip) == (1.0, 1.2, 6, 5.0)
    for flag, value, names in (("--lr", "0", ["--lr", "> 0"]), ("--decay-after", "-1", ["--decay-after", ">= 0"]),
                               ("--clip", "nan", ["--clip", "finite"]), ("--bptt", "0", ["--bptt", ">= 1"]),
                               ("--batch-size", "0", ["--batch-size", ">= 1"])):
        assert main(["train", flag, value, "--device", "cpu"]) == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and all(name in error for name in names), error
    assert main(["train", "--resume", "some-run", "--lr", "2", "--bptt", "10"]) == 2
    assert "drop --lr, --bptt" in capsys.readouterr().err


def test_checkpoint_minutes_reach_the_recorder_and_a_resume_takes_them():
    from rnnreg.cli import build_parser
    from rnnreg.training_run import checkpoint_interval

    def seconds(*argv: str) -> float | None:
        return checkpoint_interval(build_parser().parse_args(["train", *argv]))

    assert seconds() == 600.0  # within an epoch every 10 minutes unless told otherwise
    assert seconds("--checkpoint-minutes", "2.5") == 150.0
    assert seconds("--checkpoint-minutes", "0") is None  # after each epoch and at a cancel only
    assert seconds("--resume", "some-run", "--checkpoint-minutes", "1") == 60.0  # not a new run's option


def test_placements_lists_every_placement_with_sites_and_sampling():
    result = rnnreg("placements")
    assert result.returncode == 0
    for name in ("none", "zaremba", "recurrent", "both", "variational", "semeniuta", "moon", "weight-drop", "zoneout"):
        assert f"\n{name} " in "\n" + result.stdout
    assert "mask per sequence" in result.stdout and "mask per step" in result.stdout
    # each primary site says the rate it gets without --dropout (the README sends you here for them)
    assert "    hidden       mask per step               primary (--dropout), default 0.25 " in result.stdout
    assert "primary (--dropout), default 0.5 " in result.stdout


def test_output_into_a_pipe_that_closes_early_ends_quietly():
    read_end, write_end = os.pipe()
    os.close(read_end)  # `| head -1` that has had its line: every write now fails (no race with the writer)
    try:
        done = subprocess.run([sys.executable, "-m", "rnnreg", "placements"], cwd=REPO, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert done.returncode == 141 and "Traceback" not in done.stderr, done.stderr  # was a BrokenPipeError traceback


def test_train_writes_the_run_directory_contract_and_list_reads_it(tmp_path, tiny_corpus):
    runs = tmp_path / "runs"
    result = rnnreg("train", "--preset", "demo", "--placement", "zaremba", "--dropout", "0.5", "--epochs", "2",
                    "--data", str(tiny_corpus), "--device", "cpu", "--runs-dir", str(runs), "--name", "tiny")
    assert result.returncode == 0, result.stderr
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    assert run_dir.parent == runs
    for name in ("config.json", "status.json", "metrics.jsonl", "probes.jsonl", "train.log",
                 "checkpoint.safetensors", "vocab.json"):
        assert (run_dir / name).is_file(), name

    doc = json.loads((run_dir / "config.json").read_text())
    assert doc["config"]["dropout"] == {"placement": "zaremba", "rates": {"input": 0.5, "output": 0.5}}
    for key in ("torch", "device", "device_name", "git_commit", "lstm_path"):
        assert key in doc["environment"], key
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["epoch"] == 2

    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if r["kind"] == "step"]
    epochs = [r for r in records if r["kind"] == "epoch"]
    tests = [r for r in records if r["kind"] == "test"]
    assert steps and {"step", "epoch", "loss", "grad_norm", "clipped", "lr", "words_per_s"} <= set(steps[0])
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"epoch", "train_ppl", "valid_ppl", "lr", "seconds"} <= set(epochs[0])
    assert len(tests) == 1 and tests[0]["test_ppl"] > 1

    probes = [json.loads(line) for line in (run_dir / "probes.jsonl").read_text().splitlines()]
    gates = {(p["epoch"], p["layer"], p["gate"]) for p in probes if p["kind"] == "gates"}
    assert gates == {(e, l, g) for e in (0, 1, 2) for l in (0, 1) for g in "ifogch"}
    sample = next(p for p in probes if p["kind"] == "gates")
    assert {"bin_edges", "counts", "mean", "saturation"} <= set(sample)
    assert len(sample["bin_edges"]) == len(sample["counts"]) + 1

    listed = json.loads(rnnreg("list", "--runs-dir", str(runs), "--json").stdout)
    assert len(listed) == 1
    entry = listed[0]
    assert entry["id"] == run_dir.name and entry["name"] == "tiny" and entry["state"] == "finished"
    assert entry["preset"] == "demo" and entry["placement"] == "zaremba" and entry["epochs_done"] == 2
    assert entry["best_valid_ppl"] == min(e["valid_ppl"] for e in epochs)
    assert entry["test_ppl"] == tests[0]["test_ppl"]


def test_a_run_trained_without_a_name_is_named_after_its_settings(tmp_path, tiny_corpus, capsys):
    from rnnreg import cli

    runs = tmp_path / "runs"
    assert cli.main(["train", "--preset", "demo", "--placement", "zaremba", "--epochs", "1", "--max-train-tokens",
                     "2000", "--max-eval-tokens", "500", "--data", str(tiny_corpus), "--device", "cpu", "--seed", "3",
                     "--runs-dir", str(runs)]) == 0
    [run_dir] = [p for p in runs.iterdir() if p.is_dir()]
    assert json.loads((run_dir / "config.json").read_text())["config"]["name"] == "demo-zaremba-0.5-s3"
    assert "-demo-zaremba-0.5-s3-" in run_dir.name  # and `rnnreg list` shows more than a time stamp


def test_an_empty_name_is_no_name_and_a_site_given_twice_is_refused(tmp_path, capsys):
    from rnnreg.cli import build_parser, config_from_args, main
    from rnnreg.config import ConfigError

    args = build_parser().parse_args(["train", "--preset", "demo", "--name", ""])
    assert config_from_args(args).name is None  # named after its settings, as the README says, not unnamed
    args = build_parser().parse_args(["train", "--dropout-site", "input=0.2", "--dropout-site", "input=0.3"])
    with pytest.raises(ConfigError, match="--dropout-site: input given twice"):  # the first was silently dropped
        config_from_args(args)
    assert main(["list", "--runs-dir", str(tmp_path / "typo")]) == 0
    assert capsys.readouterr().out == f"no runs: there is no {tmp_path / 'typo'}\n"  # not an empty store


def test_the_commit_can_be_named_where_the_code_is_a_copy_without_git(monkeypatch):
    from rnnreg.provenance import git_commit

    monkeypatch.setenv("RNNREG_GIT_COMMIT", "abc123")
    assert git_commit() == "abc123"
    monkeypatch.delenv("RNNREG_GIT_COMMIT")
    assert git_commit() != "abc123"


def test_list_puts_your_runs_first_then_the_papers_models_and_shows_memory_recall(tmp_path, capsys):
    from fixtures_runs import write_run
    from rnnreg.cli import main

    root = tmp_path / "runs"
    shipped = root / "reference"
    memory = write_run(shipped, "20261101-000003-memory-a", preset="memory", name="memory-a")
    with open(memory / "metrics.jsonl", "a") as f:  # the memory task's test record carries recall
        f.write(json.dumps({"kind": "test", "epoch": 8, "test_ppl": 3.1, "valid_ppl": 3.2, "test_accuracy": 0.454}) + "\n")
    write_run(shipped, "20261101-000002-small-a", preset="small", name="small-a")
    write_run(shipped, "20261101-000001-medium-a", preset="medium", name="medium-a")
    write_run(root, "20261001-000000-mine", name="mine")  # older than every shipped run, yet first
    assert main(["list", "--runs-dir", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines[1:]] == ["mine", "medium-a", "small-a", "memory-a"]
    recall = lines[0].index("TEST RECALL")
    assert lines[-1][recall:].strip() == "45.4%" and lines[1][recall:].strip() == "-"
    delay = lines[0].index("DELAY")  # memory runs of two delays would otherwise read alike
    assert lines[-1][delay:].split()[0] == "20" and lines[1][delay:].split()[0] == "-"
    state = lines[0].index("STATE")  # shipped runs read as the Runs page says it: reference
    assert lines[-1][state:].startswith("finished (reference)") and lines[1][state:].split()[0] == "finished"


def test_list_fits_a_terminal_and_gives_the_whole_table_piped_or_wide(tmp_path, capsys, monkeypatch):
    from fixtures_runs import write_run
    from rnnreg.cli import main

    root = tmp_path / "runs"
    for i in range(3):
        write_run(root, f"20261001-00000{i}-a-run-with-a-long-name-{i}", name=f"a-run-with-a-long-name-{i}")
    assert main(["list", "--runs-dir", str(root)]) == 0
    piped = capsys.readouterr().out  # capsys is no terminal: the whole table, as scripts and grep had it
    assert piped.startswith("ID ") and max(map(len, piped.splitlines())) > 80
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "80")  # shutil.get_terminal_size reads it first
    assert main(["list", "--runs-dir", str(root)]) == 0
    short = capsys.readouterr().out
    assert short.startswith("RUN ") and max(map(len, short.splitlines())) <= 80, short
    assert main(["list", "--runs-dir", str(root), "--wide"]) == 0
    assert capsys.readouterr().out == piped


def test_show_prints_strict_json_even_for_a_hand_edited_run(tmp_path, capsys):
    import json as strict

    from rnnreg import cli

    run = tmp_path / "runs" / "20261208-000000-edited"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"format": 1, "config": {"preset": "small", '
                                     '"train": {"lr": NaN, "epochs": 1e999}}}')
    (run / "status.json").write_text('{"state": "finished", "valid_ppl": Infinity}')
    assert cli.main(["show", run.name, "--runs-dir", str(tmp_path / "runs")]) == 0
    shown = strict.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert shown["config"]["config"]["train"] == {"lr": None, "epochs": None} and shown["status"]["valid_ppl"] is None


def test_show_takes_a_run_directory_anywhere_and_names_its_group_only_in_the_root(tmp_path, capsys, monkeypatch):
    from fixtures_runs import write_run

    from rnnreg import cli

    root = tmp_path / "runs"
    write_run(root / "reference", "20261208-000000-shipped", name="shipped", seed=1)
    write_run(tmp_path / "copied", "20261208-000001-copied", name="copied", seed=2)
    shown = {}
    for arg in (str(root / "reference" / "20261208-000000-shipped"), "20261208-000000-shipped",
                str(tmp_path / "copied" / "20261208-000001-copied")):
        assert cli.main(["show", arg, "--runs-dir", str(root)]) == 0
        shown[arg] = json.loads(capsys.readouterr().out)["summary"]
    by_path, by_id, copied = shown.values()
    assert by_path == by_id and by_id["group"] == "reference" and by_id["read_only"]
    assert copied["name"] == "copied" and copied["group"] is None and not copied["read_only"]
    # a folder of the store that is no run, named by its path, is refused like any other
    for folder in (root, root / "reference"):
        assert cli.main(["show", f"{folder}/", "--runs-dir", str(root)]) == 2
        assert "is no run directory" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)  # the root relative, the run's path absolute: the same group
    assert cli.main(["show", str(root / "reference" / "20261208-000000-shipped"), "--runs-dir", "runs"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["group"] == "reference"


def test_a_broken_pipe_other_than_stdout_is_an_error_not_a_quiet_exit(monkeypatch):
    # `rnnreg bench --share` writes to its workers' pipes: a worker that died must not end the bench silently
    from rnnreg import cli

    read_end, write_end = os.pipe()
    os.close(read_end)

    def writes_to_a_dead_worker(args):
        os.write(write_end, b"{}\n")

    monkeypatch.setattr(cli, "_placements", writes_to_a_dead_worker)
    try:
        with pytest.raises(BrokenPipeError):
            cli.main(["placements"])
    finally:
        os.close(write_end)


def test_a_command_takes_a_run_by_the_name_only_it_has(tmp_path, capsys):
    from fixtures_runs import write_run

    from rnnreg import cli
    from rnnreg.runs import RunStoreError, find_run_arg

    root = tmp_path / "runs"
    write_run(root, "20261208-000000-a", name="lr 1/2", seed=1)
    write_run(root, "20261208-000001-b", name="twin", seed=2)
    write_run(root, "20261208-000002-c", name="twin", seed=3)
    write_run(root / "reference", "20261208-000003-d", name="20261208-000000-a", seed=4)  # an id wins over a name
    assert find_run_arg(root, "lr 1/2", paths=False).name == "20261208-000000-a"  # a name may hold a '/'
    assert find_run_arg(root, "20261208-000000-a").name == "20261208-000000-a"
    with pytest.raises(RunStoreError, match=r"2 runs are named 'twin'; give one's id: 20261208-000002-c, "
                                            r"20261208-000001-b"):
        find_run_arg(root, "twin")
    with pytest.raises(RunStoreError, match=r"no run 'ghost' in .*; no run is named 'ghost' either"):
        find_run_arg(root, "ghost")
    assert find_run_arg(root, "lr 1/2").name == "20261208-000000-a"  # no such directory: a name after all
    with pytest.raises(RunStoreError, match="RUN: no run directory no/such, and no run is named so"):
        find_run_arg(root, "no/such")
    with pytest.raises(RunStoreError, match="RUN: empty"):
        find_run_arg(root, "")
    write_run(root, "20261208-000004-e", name="", seed=5)
    with pytest.raises(RunStoreError, match="RUN: empty"):  # never the run whose name is ""
        find_run_arg(root, "")
    outside = tmp_path / "elsewhere" / "20261208-000005-f"
    write_run(tmp_path / "elsewhere", outside.name, seed=6)
    (root / outside.name).symlink_to(outside)
    write_run(root, "20261208-000006-g", name=outside.name, seed=7)
    with pytest.raises(RunStoreError, match="leaves the runs directory"):  # refused stays refused, no name lookup
        find_run_arg(root, outside.name)
    assert cli.main(["show", "lr 1/2", "--runs-dir", str(root)]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["id"] == "20261208-000000-a"
    assert cli.main(["cancel", "lr 1/2", "--runs-dir", str(root)]) == 0
    assert capsys.readouterr().out == "run 20261208-000000-a is already finished; nothing to cancel\n"


def test_resume_by_name_says_which_id_to_give(tmp_path, capsys):
    from fixtures_runs import write_run

    from rnnreg import cli

    root = tmp_path / "runs"
    write_run(root, "20261208-000000-cut", name="cut short", seed=1, epochs_done=2, state="cancelled")
    assert cli.main(["train", "--resume", "cut short", "--runs-dir", str(root)]) == 2
    assert capsys.readouterr().err.strip() == ("rnnreg: error: --resume takes a run id, not a name: the run named "
                                               "'cut short' is 20261208-000000-cut")
    assert cli.main(["train", "--resume", "nobody", "--runs-dir", str(root)]) == 2
    assert "no run 'nobody'" in capsys.readouterr().err
