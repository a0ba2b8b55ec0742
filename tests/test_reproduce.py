"""`rnnreg.reproduce`: the `rnnreg train` command that trains a run's configuration again.

Each command is checked the way a user runs it: parsed by the command line itself, the config
it builds must be the run's, setting for setting."""

import dataclasses
import random
import shlex
from pathlib import Path

import pytest

from rnnreg import runs
from rnnreg.cli import build_parser
from rnnreg.config import DEFAULT_DATA_DIR, PRESET_NAMES, build_run_config, from_dict, to_dict
from rnnreg.placements import PLACEMENTS
from rnnreg.reproduce import run_command, script, train_command
from rnnreg.cli import config_from_args

REFERENCE = Path(__file__).resolve().parent.parent / "runs"
PTB = {"data_sha256": runs.penn_treebank_checksums()}


def trained_by(text: str) -> dict:
    """The config (as config.json holds it) that `text`, a whole command line, would train."""
    argv = shlex.split(text)
    assert argv[:4] == ["python", "-m", "rnnreg", "train"], text
    return to_dict(config_from_args(build_parser().parse_args(argv[3:])))


def what_it_trains(config: dict) -> dict:
    """A config less what is no part of what a run trains: its name and where its corpus lay."""
    return {k: v for k, v in config.items() if k not in ("name", "data_dir")}


def shipped_runs() -> list[runs.Run]:
    return [runs.load_run(REFERENCE, s.id) for s in runs.list_runs(REFERENCE)]


def test_every_shipped_run_has_a_command_that_trains_its_configuration_again():
    shipped = shipped_runs()
    assert len(shipped) >= 50
    for run in shipped:
        command = run_command(run.config, run.environment)
        assert command is not None and command.unreachable == (), run.id
        assert what_it_trains(trained_by(command.text)) == what_it_trains(to_dict(from_dict(run.config))), run.id
        # the vendored PTB, or the memory task, which reads no corpus; a name is a label
        assert not any(a.startswith(("--data", "--name")) for a in command.argv), command.text


def test_random_configurations_come_back_from_their_commands():
    rng = random.Random(0)
    checked = wholes = 0
    for _ in range(300):
        preset = rng.choice(PRESET_NAMES)
        placement = rng.choice([None, *PLACEMENTS])
        sites = PLACEMENTS[placement].sites if placement else ()
        options = {
            "placement": placement,
            "dropout": rng.choice([None, 0.0, 0.2, 0.65]) if any(s.primary for s in sites) else None,
            "site_rates": {s.name: rng.choice([0.1, 0.3]) for s in sites if rng.random() < 0.3},
            "epochs": rng.choice([None, 1, 7]), "seed": rng.choice([None, 3]),
            "device": rng.choice([None, "cpu", "cuda"]), "max_train_tokens": rng.choice([None, 5000]),
            "max_eval_tokens": rng.choice([None, 4000]), "lr": rng.choice([None, 0.5]),
            "decay_after": rng.choice([None, 2]), "weight_decay": rng.choice([None, 1e-7]),
            "step": rng.choice([None, "eager"]), "log_every": rng.choice([None, 3]),
            "batch_size": rng.choice([None, 10]), "clip": rng.choice([None, 2.5]), "lr_decay": rng.choice([None, 1.3]),
            "threads": rng.choice([None, 0, 2]),  # 0: torch's default, where memory's preset takes 1
        }
        for key in ("max_train_tokens", "max_eval_tokens"):  # 0: the whole split, undoing demo's prefix
            options[key] = rng.choice([options[key], 0])
        if preset == "memory":
            options.update(delay=rng.choice([None, 5]), max_train_tokens=None, max_eval_tokens=None)
        else:
            options["bptt"] = rng.choice([None, 25])
        try:
            config = build_run_config(preset, **{k: v for k, v in options.items() if v is not None})
            wholes += config.train.max_train_tokens is None and preset == "demo"
        except ValueError:  # an impossible combination (a window longer than the stream): no run
            continue
        command = train_command(config, PTB)
        assert command.unreachable == (), command.text
        assert trained_by(command.text) == {**to_dict(config), "name": None}, command.text
        checked += 1
    assert checked > 200 and wholes > 10


def test_one_rate_on_every_primary_site_is_dropout_the_others_are_sites():
    config = build_run_config("small", placement="variational", dropout=0.3, site_rates={"embedding": 0.2})
    argv = " ".join(train_command(config).argv)
    assert "--dropout 0.3 --dropout-site embedding=0.2" in argv, argv
    uneven = build_run_config("medium", site_rates={"input": 0.3})  # zaremba: input 0.3, output the preset's 0.5
    command = train_command(uneven)
    assert command.argv == ("--preset", "medium", "--dropout-site", "input=0.3", "--seed", "0")
    assert trained_by(command.text)["dropout"]["rates"] == {"input": 0.3, "output": 0.5}


def test_a_float_is_written_exactly():
    config = build_run_config("small", lr=0.1 + 0.2, weight_decay=1e-7)
    command = train_command(config)
    assert "--lr 0.30000000000000004" in command.text and "--weight-decay 1e-07" in command.text
    assert trained_by(command.text)["train"]["lr"] == 0.1 + 0.2


def test_a_setting_no_option_sets_is_named_not_dropped():
    config = build_run_config("small", seed=4)
    custom = dataclasses.replace(config, model=dataclasses.replace(config.model, hidden=300),
                                 train=dataclasses.replace(config.train, test_batch_size=10))
    command = train_command(custom)
    assert command.unreachable == ("model.hidden=300", "train.test_batch_size=10")
    assert command.to_json() == {"command": "python -m rnnreg train --preset small --seed 4",
                                 "not_settable": ["model.hidden=300", "train.test_batch_size=10"]}
    text = script([("wide", command)])
    assert "# differs from this command in what no option sets: model.hidden=300, train.test_batch_size=10" in text


def test_the_corpus_is_named_unless_it_is_the_vendored_penn_treebank(tmp_path):
    config = build_run_config("small", data_dir=tmp_path)
    assert train_command(config, {"data_sha256": {"train": "0" * 64}}).argv[-1] == f"--data={tmp_path}"
    dashed = tmp_path / "-x y"
    dashed.mkdir()
    command = train_command(build_run_config("small", data_dir=dashed), {})
    assert trained_by(command.text)["data_dir"] == str(dashed), command.text  # not read as an option
    assert "--data" not in train_command(config, PTB).argv  # made elsewhere on the same corpus
    assert "--data" not in train_command(build_run_config("small")).argv  # this install's own copy
    assert str(DEFAULT_DATA_DIR) == build_run_config("small").data_dir


def test_the_whole_split_on_a_preset_that_takes_a_prefix_is_zero_tokens():
    config = build_run_config("demo", max_train_tokens=0, max_eval_tokens=0)
    assert (config.train.max_train_tokens, config.train.max_eval_tokens) == (None, None)
    command = train_command(config)
    assert "--max-train-tokens 0 --max-eval-tokens 0" in command.text and command.unreachable == ()
    assert trained_by(command.text)["train"]["max_eval_tokens"] is None


def test_a_memory_run_made_elsewhere_names_no_corpus_it_never_read(tmp_path):
    config = build_run_config("memory", delay=5, data_dir=tmp_path)
    command = train_command(config, {"data_sha256": {"train": "generated:memory:abc"}})
    assert command.argv == ("--preset", "memory", "--delay", "5", "--seed", "0") and command.unreachable == ()


def test_a_task_its_preset_has_not_is_named(tmp_path):
    config = dataclasses.replace(build_run_config("memory"), task="lm")  # hand-edited: validate lets it pass
    assert train_command(config).unreachable[0] == "task=lm"


def test_a_corpus_path_with_a_control_character_is_named_not_written(tmp_path):
    config = dataclasses.replace(build_run_config("small"), data_dir=str(tmp_path / "a\rb"))
    command = train_command(config, {})
    assert not any(a.startswith("--data") for a in command.argv)
    assert command.unreachable == ("data_dir (it holds a control character)",)


def test_a_run_without_a_valid_config_has_no_command_and_the_script_says_so():
    for broken in ({}, {"preset": "tiny"}, {"dropout": "x"}, [], None, {"train": {"epochs": "many"}}):
        assert run_command(broken, {}) is None, broken
    good = run_command(to_dict(build_run_config("demo", seed=2)), {})
    text = script([("mine\nrm -rf /", good), ("torn", None)])
    lines = text.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "# mine?rm -rf /" in lines and "rm -rf /" not in [line.strip() for line in lines]  # one comment line
    assert "python -m rnnreg train --preset demo --seed 2" in lines
    assert "# torn: its config.json holds no readable run config, so no command" in lines


def test_rnnreg_show_prints_the_command(capsys):
    from rnnreg.cli import main

    run = next(r for r in shipped_runs() if r.summary.name == "small-none-s0")
    assert main(["show", run.id, "--runs-dir", str(REFERENCE)]) == 0
    import json

    shown = json.loads(capsys.readouterr().out)["reproduce"]
    assert shown == {"command": "python -m rnnreg train --preset small --step eager --device cuda --seed 0",
                     "not_settable": []}


@pytest.mark.parametrize("text", ["--max-eval-tokens 1", "--max-eval-tokens x"])
def test_max_eval_tokens_is_an_option_and_names_itself(text, capsys):
    from rnnreg.cli import main

    assert main(["train", "--preset", "demo", *text.split()]) == 2
    assert "--max-eval-tokens" in capsys.readouterr().err


def test_named_the_command_gives_the_run_its_name_even_one_that_looks_like_an_option():
    config = build_run_config("demo", name="-x 'quoted' run")
    assert "--name" not in " ".join(train_command(config).argv)  # a name is no part of what a run trains
    assert trained_by(train_command(config, named=True).text)["name"] == "-x 'quoted' run"


def test_the_dashboard_gets_commands_without_loading_the_trainer():
    # the Export and Launch pages call it: the app process never imports torch (the trainer runs apart)
    import subprocess
    import sys

    code = ("import sys, rnnreg.reproduce as r, rnnreg.config as c; "
            "r.train_command(c.build_run_config('medium', placement='both', max_eval_tokens=0)); "
            "print('torch' in sys.modules, 'streamlit' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
