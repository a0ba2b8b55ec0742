"""Mask semantics per placement: what is masked, and how often the mask is redrawn."""

import pytest
import torch

from rnnreg.config import build_run_config
from rnnreg.dropout import build_placement
from rnnreg.dropout.embedding import embedding_dropout
from rnnreg.dropout.masks import SiteDropout
from rnnreg.dropout.zoneout import Zoneout
from rnnreg.model import LanguageModel
from rnnreg.placements import PLACEMENTS, RECURRENT_SITES, resolve_rates


def test_per_sequence_masks_are_equal_across_steps_and_per_step_masks_differ():
    like = torch.zeros(1)
    torch.manual_seed(0)
    seq = SiteDropout(0.5, "sequence").masks(10, 4, 32, like)
    step = SiteDropout(0.5, "step").masks(10, 4, 32, like)
    assert all(torch.equal(seq[0], seq[t]) for t in range(10))
    assert not any(torch.equal(step[0], step[t]) for t in range(1, 10))
    # inverted dropout: kept units scaled by 1/(1-p), so the mean stays 1
    assert set(step.unique().tolist()) == {0.0, 2.0}
    assert abs(step.mean().item() - 1.0) < 0.1


def test_each_new_sequence_draws_a_new_per_sequence_mask():
    like = torch.zeros(1)
    site = SiteDropout(0.5, "sequence")
    assert not torch.equal(site.masks(5, 4, 32, like)[0], site.masks(5, 4, 32, like)[0])


def _model(placement: str, dropout: float | None = None, **site_rates):
    config = build_run_config("small", placement=placement, dropout=dropout, site_rates=site_rates)
    torch.manual_seed(1)
    return LanguageModel(50, config.model, config.dropout).double()


def test_zaremba_never_touches_the_recurrence():
    """In training mode the explicit loop must equal cuDNN-style nn.LSTM, which cannot mask h_{t-1} or c.

    Both paths draw the same input/output masks from the same RNG; any mask inside the
    recurrence would change the explicit path's result (and its RNG use).
    """
    model = _model("zaremba", 0.5).train()
    assert model.default_path == "fused"
    tokens = torch.randint(0, 50, (12, 3))
    torch.manual_seed(7)
    fused = model(tokens, model.init_state(3), path="fused")
    torch.manual_seed(7)
    explicit = model(tokens, model.init_state(3), path="explicit")
    assert torch.allclose(fused.logits, explicit.logits, atol=1e-10)
    assert torch.allclose(fused.state[1], explicit.state[1], atol=1e-10)


@pytest.mark.parametrize("placement", ["recurrent", "both", "variational", "variational-untied", "semeniuta", "moon",
                                       "weight-drop", "zoneout"])
def test_recurrent_placements_change_the_recurrence_and_need_the_explicit_path(placement):
    model = _model(placement).train()
    assert model.default_path == "explicit"
    with pytest.raises(ValueError, match="explicit path"):
        model(torch.randint(0, 50, (4, 2)), model.init_state(2), path="fused")


def test_recurrent_dropout_masks_h_entering_the_recurrence_per_step(monkeypatch):
    """With `recurrent`, layer inputs are untouched and the hidden masks differ per step."""
    drawn = []
    original = SiteDropout.masks

    def spy(self, steps, batch, size, like):
        masks = original(self, steps, batch, size, like)
        drawn.append((self.sampling, masks))
        return masks

    monkeypatch.setattr(SiteDropout, "masks", spy)
    model = _model("recurrent", 0.5).train()
    model(torch.randint(0, 50, (6, 2)), model.init_state(2))
    assert len(drawn) == 2  # one draw of (T, B, H) masks per layer, hidden site only
    for sampling, masks in drawn:
        assert sampling == "step" and not torch.equal(masks[0], masks[1])


def test_variational_uses_one_mask_per_sequence_at_every_site(monkeypatch):
    seen = []
    original = SiteDropout.masks
    monkeypatch.setattr(SiteDropout, "masks", lambda self, *a: seen.append(self.sampling) or original(self, *a))
    model = _model("variational").train()
    model(torch.randint(0, 50, (6, 2)), model.init_state(2))
    # input (2 layers) + hidden (2 layers) + output
    assert seen == ["sequence"] * 5


def test_weight_drop_mask_is_fixed_within_a_forward_pass(monkeypatch):
    from rnnreg import lstm

    calls = []
    original = lstm.drop_connect
    monkeypatch.setattr(lstm, "drop_connect", lambda w, p: calls.append(w.shape) or original(w, p))
    model = _model("weight-drop", 0.5).train()
    model(torch.randint(0, 50, (9, 2)), model.init_state(2))
    assert calls == [(800, 200), (800, 200)]  # once per layer per forward, not once per step
    model.eval()
    model(torch.randint(0, 50, (9, 2)), model.init_state(2))
    assert len(calls) == 2  # no DropConnect in evaluation


def test_embedding_dropout_drops_whole_word_types():
    torch.manual_seed(3)
    weight = torch.ones(1000, 8)
    dropped = embedding_dropout(weight, 0.3)
    rows_zero = (dropped == 0).all(dim=1)
    rows_kept = (dropped == 1 / 0.7).all(dim=1)
    assert bool((rows_zero | rows_kept).all())  # a word is dropped everywhere or nowhere
    assert 0.2 < rows_zero.float().mean().item() < 0.4


def test_zoneout_keeps_previous_values_in_training_and_mixes_in_expectation_at_evaluation():
    zone = Zoneout(0.25)
    previous, candidate = torch.zeros(3), torch.ones(3)
    keep = torch.tensor([1.0, 0.0, 1.0])
    assert Zoneout.mix(previous, candidate, keep).tolist() == [0.0, 1.0, 0.0]
    assert torch.allclose(Zoneout.mix(previous, candidate, zone.p), torch.full((3,), 0.75))


def _zoneout_layer(z_c: float, z_h: float):
    from rnnreg.lstm import LSTMStack

    torch.manual_seed(0)
    lstm = LSTMStack(5, 6, 1).double()
    placement = build_placement("zoneout", resolve_rates("zoneout", None, {"zoneout_c": z_c, "zoneout_h": z_h}))
    x = torch.randn(4, 3, 5, dtype=torch.float64)
    return lstm, placement, x, lstm.init_state(3, x)


def test_zoneout_at_evaluation_mixes_each_step_with_the_previous_state_by_its_rate():
    lstm, placement, x, (h0, c0) = _zoneout_layer(0.25, 0.1)
    lstm.eval()
    out, (h_last, c_last), _ = lstm(x, (h0, c0), placement, path="explicit")
    layer = lstm.layers[0]
    h, c = h0[0], c0[0]
    expected = []
    for x_t in x:  # Krueger et al. 2016, at test time: the expectation of the zoneout masks
        gates = x_t @ layer.weight_ih_l0.t() + layer.bias_ih_l0 + h @ layer.weight_hh_l0.t() + layer.bias_hh_l0
        i, f, g, o = gates.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c_new)
        c, h = 0.25 * c + 0.75 * c_new, 0.1 * h + 0.9 * h_new
        expected.append(h)
    torch.testing.assert_close(out, torch.stack(expected))
    torch.testing.assert_close((h_last[0], c_last[0]), (h, c))


def test_zoneout_in_training_keeps_the_previous_value_of_a_zoned_unit():
    lstm, placement, x, state = _zoneout_layer(0.9, 0.9)
    lstm.train()
    with torch.no_grad():  # the explicit loop (the fused training kernel is compared with it in test_fused_cell)
        out, _, _ = lstm(x, state, placement, path="explicit")
    kept = (out[0] == 0).double().mean().item()  # h_0 is zero: a unit that keeps it reads exactly 0
    assert 0.8 < kept < 0.98, kept  # about z_h of them; at evaluation none is exactly 0
    lstm.eval()
    assert (lstm(x, state, placement, path="explicit")[0][0] != 0).all()


def test_zaremba_touches_only_non_recurrent_sites():
    assert not set(PLACEMENTS["zaremba"].site_names) & RECURRENT_SITES
    assert not build_placement("zaremba", resolve_rates("zaremba", 0.5)).touches_recurrence


def test_a_site_at_rate_zero_is_inactive():
    placement = build_placement("weight-drop", resolve_rates("weight-drop", 0.0))
    assert not placement.touches_recurrence and placement.input is None


def test_sampling_of_each_placement_matches_the_reference_table():
    sampling = {name: {s.name: s.sampling for s in spec.sites} for name, spec in PLACEMENTS.items()}
    assert sampling["zaremba"] == {"input": "step", "output": "step"}
    assert sampling["recurrent"] == {"hidden": "step"}
    assert sampling["variational"]["hidden"] == "sequence" and sampling["variational"]["input"] == "sequence"
    assert sampling["moon"]["cell"] == "sequence"
    assert sampling["weight-drop"]["weight"] == "forward"
    assert sampling["zoneout"]["zoneout_c"] == "step"


def test_moon_cell_mask_does_not_compound_its_scaling_over_steps():
    """With the forget gate fully open and no input, a kept cell unit must keep its value."""
    model = _model("moon", 0.5).train()
    with torch.no_grad():
        for layer in model.lstm.layers:
            layer.weight_ih_l0.zero_()
            layer.weight_hh_l0.zero_()
            layer.bias_ih_l0.zero_()
            layer.bias_ih_l0[200:400] = 50.0  # forget gate = 1
            layer.bias_ih_l0[0:200] = -50.0  # input gate = 0
    c0 = torch.ones(2, 3, 200, dtype=torch.float64)
    out = model(torch.zeros(20, 3, dtype=torch.long), (torch.zeros_like(c0), c0))
    assert set(out.state[1].unique().tolist()) == {0.0, 1.0}  # masked units lose it, kept ones keep exactly 1


# --- variational-untied: a mask per gate (Gal & Ghahramani's "untied weights") ---------------------

def test_gatewise_matmul_gives_each_gate_its_own_masked_copy():
    from rnnreg.fused_cell import gatewise_matmul

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    weight = torch.randn(4 * 2, 3, generator=generator, dtype=torch.float64)  # 4 gates x H=2 rows
    masks = torch.randint(0, 2, (5, 4 * 3), generator=generator).double()
    out = gatewise_matmul(x, masks, weight)
    for g in range(4):  # block g of the output reads weight's rows of gate g and mask g
        expected = (x * masks[:, 3 * g : 3 * (g + 1)]) @ weight[2 * g : 2 * (g + 1)].t()
        torch.testing.assert_close(out[:, 2 * g : 2 * (g + 1)], expected, rtol=0, atol=1e-14)
    # four equal masks are one shared mask: the tied product
    same = masks[:, :3].repeat(1, 4)
    torch.testing.assert_close(gatewise_matmul(x, same, weight), (x * masks[:, :3]) @ weight.t(), rtol=0, atol=1e-14)


def test_untied_draws_four_masks_per_sequence_for_inputs_and_h(monkeypatch):
    seen = []
    original = SiteDropout.masks

    def spy(self, steps, batch, size, like):
        masks = original(self, steps, batch, size, like)
        seen.append((self.sampling, self.gates, size, masks))
        return masks

    monkeypatch.setattr(SiteDropout, "masks", spy)
    model = _model("variational-untied").train()
    assert model.default_path == "explicit"
    model(torch.randint(0, 50, (6, 2)), model.init_state(2))
    # per layer: input then hidden, each four masks wide; then the softmax input, one mask
    assert [(s, g, n) for s, g, n, _ in seen] == [("sequence", 4, 200)] * 4 + [("sequence", 1, 200)]
    for _s, gates, size, masks in seen[:4]:
        assert masks.shape == (6, 2, 4 * size)
        assert all(torch.equal(masks[0], masks[t]) for t in range(6))  # one per sequence
        blocks = masks[0].reshape(2, 4, size)
        assert not torch.equal(blocks[:, 0], blocks[:, 1])  # and a different one per gate


def test_untied_with_equal_gate_masks_is_tied_variational(monkeypatch):
    """Forcing the four masks of each site to be equal must give exactly the tied placement."""
    # (word dropout off: the two draw it differently, per batch and per sequence)
    tied = _model("variational", 0.5, embedding=0.0).train()
    untied = _model("variational-untied", 0.5, embedding=0.0).train()
    untied.load_state_dict(tied.state_dict())
    original = SiteDropout.masks

    def equal_blocks(self, steps, batch, size, like):
        one = original(SiteDropout(self.p, self.sampling), steps, batch, size, like)
        return one.repeat(1, 1, self.gates)

    monkeypatch.setattr(SiteDropout, "masks", equal_blocks)
    tokens = torch.randint(0, 50, (6, 2), generator=torch.Generator().manual_seed(4))
    outputs = []
    for model in (tied, untied):
        torch.manual_seed(9)
        outputs.append(model(tokens, model.init_state(2)).logits)
    torch.testing.assert_close(outputs[1], outputs[0], rtol=0, atol=1e-12)
    torch.manual_seed(9)
    monkeypatch.setattr(SiteDropout, "masks", original)
    assert not torch.allclose(untied(tokens, untied.init_state(2)).logits, outputs[0])  # real masks differ


def test_untied_input_alone_still_needs_the_explicit_path():
    placement = build_placement("variational-untied", resolve_rates("variational-untied", 0.5, {"hidden": 0.0}))
    assert placement.hidden is None and placement.touches_recurrence  # cuDNN projects one input for all gates
    with pytest.raises(ValueError, match="per gate"):
        placement.input(torch.zeros(3, 2, 4))


def test_untied_drops_word_types_per_sequence_and_variational_per_batch(monkeypatch):
    """variational-untied draws word masks as Gal & Ghahramani's code does, one per batch column;
    variational drops the same word types for the whole batch (AWD-LSTM's embedded_dropout)."""
    from rnnreg import model as model_module

    calls = {"column": 0, "batch": 0}
    column, batch = model_module.column_word_masks, model_module.embedding_dropout
    monkeypatch.setattr(model_module, "column_word_masks", lambda *a: calls.__setitem__("column", calls["column"] + 1)
                        or column(*a))
    monkeypatch.setattr(model_module, "embedding_dropout", lambda *a: calls.__setitem__("batch", calls["batch"] + 1)
                        or batch(*a))
    for placement, expected in (("variational-untied", {"column": 1, "batch": 0}),
                                ("variational", {"column": 0, "batch": 1})):
        calls.update(column=0, batch=0)
        model = _model(placement, 0.5, embedding=0.3).train()
        model(torch.randint(0, 50, (6, 2)), model.init_state(2))
        assert calls == expected, placement
        model.eval()
        model(torch.randint(0, 50, (6, 2)), model.init_state(2))
        assert calls == expected, placement  # no word dropout in evaluation
