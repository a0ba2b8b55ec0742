"""The minibatch step (rnnreg.steps): the eager step is the paper's step, and the graphed step's
body - static buffers, in-place state carry, device totals - computes exactly what the eager
one does.  On CPU the graphed step runs its body without capture; tests/test_gpu.py replays it
as a CUDA graph on a GPU.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rnnreg.config import ConfigError, build_run_config
from rnnreg.data import load_corpus
from rnnreg.model import LanguageModel
from rnnreg.steps import EagerStep, GraphedStep, make_step
from rnnreg.train import Trainer
from tests.conftest import tiny_config

VOCAB, BATCH, BPTT, CLIP = 30, 4, 6, 0.5  # a small clip, so clipping really happens


def make_model(placement: str, seed: int = 0) -> LanguageModel:
    config = build_run_config("small", placement=placement)
    torch.manual_seed(seed)
    model = LanguageModel(VOCAB, config.model, config.dropout)
    return model.double().train()


def forward_of(model: LanguageModel):
    def forward(tokens, state):
        out = model(tokens, state)
        return out.logits, out.state

    return forward


def windows(count: int, seed: int = 1):
    generator = torch.Generator().manual_seed(seed)
    data = torch.randint(0, VOCAB, (count * BPTT + 1, BATCH), generator=generator)
    return [(data[i * BPTT : (i + 1) * BPTT], data[i * BPTT + 1 : (i + 1) * BPTT + 1]) for i in range(count)]


def plain_paper_step(model, state, inputs, targets, lr, weight_decay=0.0):
    """The step written the obvious way, as an oracle: torch's clip_grad_norm_ and p -= lr * grad
    (then p -= weight_decay * p, as Gal & Ghahramani's code does after its SGD step)."""
    model.zero_grad(set_to_none=True)
    out = model(inputs, (state[0].detach(), state[1].detach()))
    nats = F.cross_entropy(out.logits.reshape(-1, VOCAB), targets.reshape(-1), reduction="sum")
    (nats / inputs.size(1)).backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter -= lr * parameter.grad
            parameter -= weight_decay * parameter
    return nats.item(), norm.item(), out.state


@pytest.mark.parametrize("placement", ["none", "zaremba", "recurrent", "variational", "weight-drop", "zoneout"])
def test_the_eager_step_is_the_papers_step(placement):
    oracle, model = make_model(placement), make_model(placement)
    step = EagerStep(forward_of(model), list(model.parameters()), model.init_state(BATCH), CLIP,
                     model.parameter_groups())
    step.start_epoch(0.7, 0)
    state = oracle.init_state(BATCH)
    for index, (inputs, targets) in enumerate(windows(6)):
        torch.manual_seed(100 + index)  # the same dropout masks for both
        nats, norm, state = plain_paper_step(oracle, state, inputs, targets, 0.7)
        torch.manual_seed(100 + index)
        out = step(inputs, targets)
        assert out.nats.item() == pytest.approx(nats, rel=1e-12)
        assert out.grad_norm.item() == pytest.approx(norm, rel=1e-12)
    for a, b in zip(oracle.parameters(), model.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_weight_decay_shrinks_every_weight_after_the_sgd_step():
    oracle, model, plain = make_model("variational"), make_model("variational"), make_model("variational")
    steps = {}
    for name, net, decay in (("decayed", model, 0.01), ("plain", plain, 0.0)):
        steps[name] = EagerStep(forward_of(net), list(net.parameters()), net.init_state(BATCH), CLIP,
                                net.parameter_groups(), weight_decay=decay)
        steps[name].start_epoch(0.7, 0)
    state = oracle.init_state(BATCH)
    for index, (inputs, targets) in enumerate(windows(4)):
        torch.manual_seed(100 + index)
        _nats, _norm, state = plain_paper_step(oracle, state, inputs, targets, 0.7, weight_decay=0.01)
        for step in steps.values():
            torch.manual_seed(100 + index)
            step(inputs, targets)
    for a, b, c in zip(oracle.parameters(), model.parameters(), plain.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    # and it is not a no-op: without it the weights end elsewhere
    assert any(not torch.allclose(b, c) for b, c in zip(model.parameters(), plain.parameters()))


def test_weight_decay_reaches_the_trainers_step(tiny_corpus):
    config = tiny_config(tiny_corpus, weight_decay=1e-3)
    assert Trainer(config, load_corpus(tiny_corpus), torch.device("cpu")).training_step.weight_decay == 1e-3
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ConfigError, match="--weight-decay"):
            tiny_config(tiny_corpus, weight_decay=bad)


@pytest.mark.parametrize("placement", ["none", "zaremba", "recurrent", "variational", "moon", "zoneout"])
def test_the_graphed_steps_body_matches_the_eager_step(placement):
    eager_model, graph_model = make_model(placement), make_model(placement)
    decay = 1e-3 if placement == "variational" else 0.0  # Gal & Ghahramani's weight decay, on one
    eager = EagerStep(forward_of(eager_model), list(eager_model.parameters()), eager_model.init_state(BATCH), CLIP,
                      eager_model.parameter_groups(), decay)
    graphed = GraphedStep(forward_of(graph_model), list(graph_model.parameters()), graph_model.init_state(BATCH),
                          CLIP, graph_model.parameter_groups(), (BPTT, BATCH), decay)
    for epoch, lr in ((1, 1.0), (2, 0.5)):  # two epochs: the state and totals start again from zero
        first_step = (epoch - 1) * 5
        eager.start_epoch(lr, first_step)
        graphed.start_epoch(lr, first_step)
        for index, (inputs, targets) in enumerate(windows(5, seed=epoch)):
            torch.manual_seed(10 * epoch + index)
            a = eager(inputs, targets)
            torch.manual_seed(10 * epoch + index)
            b = graphed(inputs, targets)
            assert b.nats.item() == a.nats.item() and b.grad_norm.item() == a.grad_norm.item()
            assert graphed.layer_grad_norms(b) == eager.layer_grad_norms(a)
        for name in ("nats", "clipped", "step", "first_bad"):
            assert getattr(graphed.totals, name).item() == getattr(eager.totals, name).item(), name
        assert eager.totals.step.item() == first_step + 5
        torch.testing.assert_close(graphed.state[0], eager.state[0], rtol=0, atol=0)
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_totals_count_clipped_steps_and_the_first_non_finite_loss():
    model = make_model("none")
    step = EagerStep(forward_of(model), list(model.parameters()), model.init_state(BATCH), CLIP,
                     model.parameter_groups())
    step.start_epoch(1.0, 40)
    (inputs, targets), = windows(1)
    step(inputs, targets)
    assert step.totals.clipped.item() == 1 and step.totals.first_bad.item() == 0  # norm > 0.5 at init
    with torch.no_grad():
        model.decoder.bias.fill_(math.nan)
    step(inputs, targets)
    step(inputs, targets)
    assert step.totals.step.item() == 43 and step.totals.first_bad.item() == 42


def test_layer_norms_are_the_groups_norms_before_clipping():
    model = make_model("zaremba")
    step = EagerStep(forward_of(model), list(model.parameters()), model.init_state(BATCH), CLIP,
                     model.parameter_groups())
    step.start_epoch(0.0, 0)  # lr 0: the weights stay, so the gradient can be recomputed
    (inputs, targets), = windows(1)
    torch.manual_seed(3)
    norms = step.layer_grad_norms(step(inputs, targets))
    model.zero_grad()
    torch.manual_seed(3)
    out = model(inputs, model.init_state(BATCH))
    (F.cross_entropy(out.logits.reshape(-1, VOCAB), targets.reshape(-1), reduction="sum") / BATCH).backward()
    for name, params in model.parameter_groups().items():
        expected = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item()
        assert norms[name] == pytest.approx(expected, rel=1e-9), name
    assert max(norms.values()) > CLIP  # so the norms really are from before clipping


def test_make_step_picks_eager_on_cpu_and_refuses_a_graph_there():
    model = make_model("none")
    args = (forward_of(model), list(model.parameters()), model.init_state(BATCH), CLIP, model.parameter_groups(),
            (BPTT, BATCH))
    step, note = make_step("auto", *args)
    assert isinstance(step, EagerStep) and note is None
    with pytest.raises(ValueError, match="graph needs a CUDA device; allowed here: auto, eager"):
        make_step("graph", *args)
    with pytest.raises(ValueError, match="allowed: auto, graph, eager"):
        make_step("fast", *args)


def test_the_step_mode_is_a_validated_config_option_and_recorded(tiny_corpus):
    with pytest.raises(ConfigError, match="--step: unknown step mode 'turbo'; allowed: auto, graph, eager"):
        tiny_config(tiny_corpus, step="turbo")
    trainer = Trainer(tiny_config(tiny_corpus, step="eager"), load_corpus(tiny_corpus), torch.device("cpu"))
    assert trainer.training_step.name == "eager" and trainer.step_note is None
