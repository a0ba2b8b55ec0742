"""Equivalence: our explicit LSTM against torch.nn.LSTM (the oracle), with dropout off."""

import torch
from torch import nn

from rnnreg.config import build_run_config
from rnnreg.model import LanguageModel


def _model_with_random_biases(vocab=40, placement="none"):
    config = build_run_config("small", placement=placement)
    torch.manual_seed(0)
    model = LanguageModel(vocab, config.model, config.dropout).double()
    with torch.no_grad():  # both bias vectors nonzero, so a mix-up between them would show
        for layer in model.lstm.layers:
            layer.bias_hh_l0.uniform_(-0.5, 0.5)
            layer.bias_ih_l0.uniform_(-0.5, 0.5)
    return model


def _loss_and_grads(model, tokens, state, path):
    model.zero_grad()
    out = model(tokens, state, path=path)
    loss = out.logits.sum() + out.state[0].sum() + 2 * out.state[1].sum()
    loss.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_fused_and_explicit_paths_agree_in_outputs_and_gradients():
    model = _model_with_random_biases()
    tokens = torch.randint(0, 40, (15, 4))
    state = tuple(torch.randn(2, 4, 200, dtype=torch.float64) * 0.5 for _ in range(2))
    fused, fused_grads = _loss_and_grads(model, tokens, state, "fused")
    explicit, explicit_grads = _loss_and_grads(model, tokens, state, "explicit")
    assert torch.allclose(fused.logits, explicit.logits, atol=1e-10)
    for a, b in zip(fused.state, explicit.state):
        assert torch.allclose(a, b, atol=1e-10)
    for name in fused_grads:
        assert torch.allclose(fused_grads[name], explicit_grads[name], atol=1e-9), name


def test_explicit_path_matches_a_plain_two_layer_nn_lstm():
    """An independent oracle: one torch.nn.LSTM(num_layers=2) with our weights copied in."""
    model = _model_with_random_biases()
    oracle = nn.LSTM(200, 200, num_layers=2).double()
    with torch.no_grad():
        for index, layer in enumerate(model.lstm.layers):
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(oracle, f"{kind}_l{index}").copy_(getattr(layer, f"{kind}_l0"))
    tokens = torch.randint(0, 40, (11, 3))
    state = model.init_state(3)
    out = model(tokens, state, path="explicit", trace=True)
    expected, (h, c) = oracle(model.embedding(tokens), state)
    assert torch.allclose(out.logits, model.decoder(expected), atol=1e-10)
    assert torch.allclose(out.state[0], h, atol=1e-10) and torch.allclose(out.state[1], c, atol=1e-10)
    # the trace's last h of the top layer is the output the decoder saw
    assert torch.allclose(out.trace[1].stacked("h"), expected, atol=1e-10)


def test_trace_exposes_every_gate_in_range():
    model = _model_with_random_biases()
    out = model(torch.randint(0, 40, (5, 2)), model.init_state(2), trace=True)
    assert len(out.trace) == 2
    for layer in out.trace:
        for gate in "ifo":
            values = layer.stacked(gate)
            assert values.shape == (5, 2, 200) and values.min() >= 0 and values.max() <= 1
        assert layer.stacked("g").abs().max() <= 1


def test_initialisation_follows_the_paper():
    config = build_run_config("medium")
    model = LanguageModel(100, config.model, config.dropout)
    for name, parameter in model.named_parameters():
        assert parameter.abs().max() <= 0.05, name  # U(-0.05, 0.05) for medium
    layer = model.lstm.layers[0]
    assert torch.count_nonzero(layer.bias_ih_l0[650:1300]) == 0  # forget-gate bias 0
    assert torch.count_nonzero(layer.bias_hh_l0) == 0  # the paper's single bias lives in bias_ih


def test_evaluation_uses_the_fused_path_unless_zoneout_changes_it():
    for placement, eval_path in (("recurrent", "fused"), ("variational", "fused"), ("zoneout", "explicit")):
        config = build_run_config("small", placement=placement)
        model = LanguageModel(10, config.model, config.dropout)
        assert model.path_for(False) == eval_path
        assert model.path_for(True) == "explicit"
