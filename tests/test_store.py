"""pages.shared.store: the dashboard's pure helpers (no Streamlit)."""

from __future__ import annotations

import math

import pandas as pd

from pages.shared import store


def test_eta_from_epochs_is_their_mean_time_times_the_epochs_to_go():
    epochs = pd.DataFrame({"epoch": [1, 2], "seconds": [100.0, 120.0]})
    assert store.eta_seconds(epochs, 5) == 330.0
    assert store.eta_seconds(epochs, 2) == 0.0
    assert math.isnan(store.eta_seconds(epochs, None))


def test_a_hand_edited_epoch_time_of_1e999_or_1e308_is_no_time_left_not_a_crash():
    # the Runs and Launch pages, the two a run is cancelled from, raised OverflowError on these
    for seconds in ([math.inf], [1e308, 1e308]):
        epochs = pd.DataFrame({"epoch": range(1, len(seconds) + 1), "seconds": seconds})
        assert math.isnan(store.eta_seconds(epochs, 10))
    assert store.duration_text(math.inf) == store.duration_text(-math.inf) == store.duration_text(math.nan) == "—"
    assert store.duration_text(90) == "1 min 30 s"


def test_eta_goes_by_the_last_epochs_pace_not_the_whole_runs():
    # a run that trained on 1 thread, then was resumed on 2: the slow start is not what is left
    epochs = pd.DataFrame({"epoch": [1, 2, 3, 4, 5], "seconds": [800.0, 820.0, 450.0, 460.0, 440.0]})
    assert store.eta_seconds(epochs, 10) == 450.0 * 5


def test_eta_leaves_out_what_the_current_epoch_has_already_trained():
    epochs = pd.DataFrame({"epoch": [1, 2], "seconds": [100.0, 100.0], "time": [100.0, 200.0]})
    steps = pd.DataFrame({"step": [10, 20], "epoch": [2, 3], "time": [190.0, 240.0]})  # 40 s into epoch 3
    assert store.eta_seconds(epochs, 5, steps=steps) == 300.0 - 40.0
    before = steps.iloc[:1]  # no step of epoch 3 yet: nothing to leave out
    assert store.eta_seconds(epochs, 5, steps=before) == 300.0
    late = pd.DataFrame({"step": [30], "epoch": [5], "time": [600.0]})  # slower than the pace: not below 0
    assert store.eta_seconds(epochs, 5, steps=late) == 0.0


def test_eta_in_the_first_epoch_comes_from_the_step_records():
    # 500 of 13 x 2323 batches in 60 s: the rest at the same pace
    steps = pd.DataFrame({"step": [100, 500], "time": [12.0, 60.0]})
    eta = store.eta_seconds(pd.DataFrame(), 13, steps=steps, batches_per_epoch=2323)
    assert eta == 60.0 * (13 * 2323 - 500) / 500
    assert math.isnan(store.eta_seconds(pd.DataFrame(), 13, steps=steps, batches_per_epoch=None))  # not recorded
    assert math.isnan(store.eta_seconds(pd.DataFrame(), 13, steps=pd.DataFrame(), batches_per_epoch=2323))
    assert math.isnan(store.eta_seconds(None, 13))


def test_durations_read_as_a_person_would_say_them():
    assert store.duration_text(45) == "45 s"
    assert store.duration_text(90) == "1 min 30 s"
    assert store.duration_text(3 * 3600 + 5 * 60) == "3 h 05 min"
    assert store.duration_text(math.nan) == "—"


def test_shipped_walls_say_how_long_a_presets_shipped_runs_took_on_each_device():
    table = pd.DataFrame({
        "preset": ["small", "small", "small", "small", "small", "small", "medium"],
        "device": ["NVIDIA H200", "NVIDIA H200", "cpu", "cpu", "cpu", "cpu", "NVIDIA H200"],
        "wall_seconds": [52.4, 140.6, 2568.6, 6184.7, 30.0, 9.0, 437.0],
        "read_only": [True, True, True, True, False, True, True],  # an own run: not shipped
        "state": ["finished"] * 6 + ["finished"],
        "variant": ["", "", "", "", "", "epochs=1", ""],  # a shortened run: not the preset's own
    })
    assert store.shipped_walls(table, "small") == ("52 s to 2 min 21 s on NVIDIA H200 (2 runs); "
                                                   "42 min 49 s to 1 h 43 min on a CPU (2 runs)")
    assert store.shipped_walls(table, "medium") == "7 min 17 s on NVIDIA H200 (1 run)"
    assert store.shipped_walls(table, "large") is None and store.shipped_walls(pd.DataFrame(), "small") is None


def test_the_csv_export_has_a_column_per_layers_gradient_norm_and_no_duplicate_time():
    steps = pd.DataFrame({"run": ["a", "a", "b"], "step": [1, 2, 1], "time": [0.5, 1.0, 0.7], "wall_s": [0.5, 1.0, 0.7],
                          "layer_grad_norms": [{"embedding": 1.5, "lstm.0": 2.0}, {"embedding": 1.25, "lstm.0": 3.0},
                                               None]})  # a record written without them
    csv = store.csv_frame(steps)
    assert list(csv.columns) == ["run", "step", "time", "grad_norm embedding", "grad_norm lstm.0"]
    assert csv["grad_norm lstm.0"].tolist()[:2] == [2.0, 3.0] and math.isnan(csv.at[2, "grad_norm embedding"])
    epochs = pd.DataFrame({"epoch": [1], "valid_ppl": [120.5], "wall_s": [9.0], "time": [9.0]})
    assert list(store.csv_frame(epochs).columns) == ["epoch", "valid_ppl", "time"]


def test_runs_of_one_name_whose_ids_end_alike_get_labels_of_their_own(tmp_path):
    """A picker resolves a label to its first run: two alike hid the second (ids made or copied by hand)."""
    from rnnreg.runs import RunWriter

    config = {"preset": "demo", "name": None, "dropout": {"placement": "none", "rates": {}}, "train": {"epochs": 2}}
    for run_id, name in (("20261101-000000-twin-aaaaaa", "twin"), ("20261101-000001-twin-aaaaaa", "twin"),
                         ("20261101-000002-pair-bbbbbb", "pair"), ("20261101-000003-pair-cccccc", "pair"),
                         ("20261101-000004-solo-dddddd", "solo")):
        RunWriter.create(tmp_path, config, name=name, run_id=run_id)
    labels = store.run_table(tmp_path).set_index("run")["label"]
    assert labels.is_unique
    assert labels["20261101-000000-twin-aaaaaa"] == "twin (20261101-000000-twin-aaaaaa)"
    assert labels["20261101-000002-pair-bbbbbb"] == "pair (bbbbbb)" and labels["20261101-000004-solo-dddddd"] == "solo"


def test_runs_with_identical_curves_are_found_so_the_page_can_say_one_lies_under_the_other():
    def rows(label, valids):
        return pd.DataFrame({"label": label, "epoch": range(1, len(valids) + 1),
                             "train_ppl": [v - 50 for v in valids], "valid_ppl": valids})

    epochs = pd.concat([rows("live demo", [600.0, 550.0]), rows("shipped demo", [600.0, 550.0]),
                        rows("other seed", [600.0, 550.1]), rows("shorter", [600.0])])
    assert store.identical_curves(epochs) == [["live demo", "shipped demo"]]
    assert store.identical_curves(epochs[epochs["label"] != "live demo"]) == []
    assert store.identical_curves(pd.DataFrame()) == []
