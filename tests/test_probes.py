"""Gradient-through-time probe: exact on hand-built LSTMs, recorded by the trainer every epoch."""

from __future__ import annotations

import json

import torch

from rnnreg.config import DropoutConfig, ModelConfig
from rnnreg.dropout import Placement
from rnnreg.dropout.masks import SiteDropout
from rnnreg.model import LanguageModel
from rnnreg.placements import PER_SEQUENCE, PER_STEP
from rnnreg.probes import grad_through_time
from rnnreg.runs import read_jsonl
from tests.fixtures_lecture import lecture_runs

VOCAB, HIDDEN, STEPS, BATCH = 12, 64, 16, 8


def open_memory_model(placement: Placement) -> LanguageModel:
    """One layer whose cell is a pure memory: c_t = c_{t-1} exactly (dropout aside).

    Forget gate bias +50 (f = 1 in float32), input gate bias -50 (i ~ 1e-22), and W_hh = 0 so
    that h_{t-1} reaches step t by no other road than the cell.  Then without dropout
    d loss_t / d c_{t-k} = d loss_t / d c_t for every k: a flat profile.
    """
    torch.manual_seed(0)
    model = LanguageModel(VOCAB, ModelConfig(layers=1, hidden=HIDDEN, init_scale=0.5), DropoutConfig("none", {}))
    layer = model.lstm.layers[0]
    with torch.no_grad():
        layer.weight_hh_l0.zero_()
        layer.bias_ih_l0[:HIDDEN] = -50.0  # i: closed
        layer.bias_ih_l0[HIDDEN : 2 * HIDDEN] = 50.0  # f: fully open
    model.placement = placement
    return model


def window(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    data = torch.randint(VOCAB, (STEPS + 1, BATCH), generator=g)
    return data[:-1], data[1:]


def profile(placement: Placement, wrt: str = "c", draws: int = 4, seed: int = 0) -> dict:
    model = open_memory_model(placement)
    records = grad_through_time(model, *window(), epoch=0, n_targets=4, draws=draws, seed=seed)
    return next(r for r in records if r["wrt"] == wrt and r["layer"] == 0)


def test_record_shape_and_params_grad_untouched():
    model = open_memory_model(Placement("none"))
    records = grad_through_time(model, *window(), epoch=3, n_targets=4, draws=2)
    assert {(r["layer"], r["wrt"]) for r in records} == {(0, "c"), (0, "h")}
    for r in records:
        assert r["kind"] == "grad_through_time" and r["epoch"] == 3
        assert r["k"] == list(range(STEPS - 4 + 1)) and len(r["norm"]) == len(r["k"]) == len(r["nonzero"])
        json.dumps(r)
    assert all(p.grad is None for p in model.parameters())


def test_open_forget_gate_without_dropout_keeps_a_flat_profile():
    r = profile(Placement("none"))
    norms = torch.tensor(r["norm"])
    assert norms[0] > 0
    assert torch.allclose(norms, norms[0].expand_as(norms), rtol=1e-5)
    assert r["nonzero"] == [1.0] * len(r["k"])


def test_per_step_cell_masks_leave_a_1_minus_p_to_the_k_share_of_the_gradient():
    # c_t = m_t * c_{t-1} with m_t in {0, 1} drawn fresh each step (the cell site keeps units
    # unscaled, see rnnreg.lstm), so d loss_t / d c_{t-k} = m_t ... m_{t-k+1} * d loss_t / d c_t:
    # a unit's gradient survives only if it survived all k masks, probability (1-p)^k.
    p = 0.3
    r = profile(Placement("cell-step", cell=SiteDropout(p, PER_STEP)), draws=64)
    nonzero = torch.tensor(r["nonzero"])
    expected = (1 - p) ** torch.arange(len(r["k"]), dtype=torch.float32)
    assert nonzero[0] == 1.0  # c_t itself: the mask of step t is already inside c_t
    # 64 draws x 8 sequences x 64 units per point: binomial noise well under 0.02
    assert torch.allclose(nonzero, expected, atol=0.02), (nonzero, expected)
    # surviving units keep their size, so the norm falls with that share (it would grow if the
    # 1/(1-p) scaling compounded over steps)
    norms = r["norm"]
    assert all(later < earlier for earlier, later in zip(norms, norms[1:])) and norms[-1] < 0.2 * norms[0]


def test_per_sequence_cell_masks_do_not_add_that_decay():
    # One mask m for the whole sequence: d loss_t / d c_{t-k} = m^k * d loss_t / d c_t keeps
    # the same (1-p) share of units for every k >= 1.
    p = 0.3
    r = profile(Placement("moon-like", cell=SiteDropout(p, PER_SEQUENCE)), draws=64)
    later = torch.tensor(r["nonzero"][1:])
    assert r["nonzero"][0] == 1.0
    assert torch.allclose(later, later[0].expand_as(later))
    assert abs(float(later[0]) - (1 - p)) < 0.03


def test_probe_draws_its_own_masks_and_leaves_training_rng_alone():
    model = open_memory_model(Placement("cell-step", cell=SiteDropout(0.5, PER_STEP)))
    torch.manual_seed(7)
    before = torch.rand(3)
    torch.manual_seed(7)
    a = grad_through_time(model, *window(), epoch=0)
    after = torch.rand(3)
    assert torch.equal(before, after)
    assert a == grad_through_time(model, *window(), epoch=0)  # the same masks every epoch


def test_the_trainer_records_a_profile_before_training_and_after_every_epoch(tmp_path_factory):
    run_dir = lecture_runs(tmp_path_factory)["recurrent"]  # trained by `python -m rnnreg train --run-dir`
    records = read_jsonl(run_dir / "probes.jsonl", "grad_through_time")
    assert {(r["epoch"], r["layer"], r["wrt"]) for r in records} == {
        (e, layer, wrt) for e in (0, 1, 2) for layer in (0, 1) for wrt in ("c", "h")}
    bptt = json.loads((run_dir / "config.json").read_text())["config"]["train"]["bptt"]
    for r in records:
        assert r["k"] == list(range(bptt - r["targets"] + 1)) and all(n > 0 for n in r["norm"])
        assert r["seconds"] < 5
