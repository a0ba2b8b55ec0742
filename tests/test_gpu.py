"""GPU checks, run by a session that has one (benchmarks/gpu_session.sh); skipped without CUDA."""

import pytest
import torch

from rnnreg.config import build_run_config
from rnnreg.data import load_corpus
from rnnreg.dropout.masks import SiteDropout
from rnnreg.model import LanguageModel
from rnnreg.train import Cancelled, Trainer
from tests.conftest import tiny_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")
CUDA = torch.device("cuda")


def test_fused_cudnn_and_explicit_paths_agree_on_the_gpu():
    config = build_run_config("small")
    torch.manual_seed(0)
    model = LanguageModel(100, config.model, config.dropout).to(CUDA).double()
    tokens = torch.randint(0, 100, (20, 4), device=CUDA)
    state = model.init_state(4)
    grads = {}
    for path in ("fused", "explicit"):
        model.zero_grad()
        out = model(tokens, state, path=path)
        (out.logits.sum() + out.state[1].sum()).backward()
        grads[path] = (out.logits.detach(), [p.grad.clone() for p in model.parameters()])
    assert torch.allclose(grads["fused"][0], grads["explicit"][0], atol=1e-8)
    for a, b in zip(grads["fused"][1], grads["explicit"][1]):
        assert torch.allclose(a, b, atol=1e-7)


def test_masks_keep_their_semantics_on_the_gpu():
    like = torch.zeros(1, device=CUDA)
    step = SiteDropout(0.5, "step").masks(8, 4, 64, like)
    seq = SiteDropout(0.5, "sequence").masks(8, 4, 64, like)
    assert not torch.equal(step[0], step[1]) and torch.equal(seq[0], seq[7])


@pytest.mark.parametrize("placement", ["zaremba", "variational", "zoneout"])
def test_a_tiny_run_trains_on_the_gpu(tiny_corpus, placement):
    config = tiny_config(tiny_corpus, placement=placement, epochs=3, hidden=64, layers=1, device="cuda")

    class Collect:
        epochs = []

        def on_epoch_end(self, trainer, event):
            self.epochs.append(event)

    collect = Collect()
    collect.epochs = []
    Trainer(config, load_corpus(tiny_corpus), CUDA, [collect]).run()
    assert collect.epochs[-1].valid_ppl < collect.epochs[0].valid_ppl


# --- the training step as one CUDA graph (rnnreg.steps.GraphedStep) ---------------------------


def _step_pair(path: str, hidden: int = 64, vocab: int = 100):
    """The same model twice (float32, CUDA): one for the eager step, one for the graphed step."""
    config = build_run_config("small")
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(LanguageModel(vocab, config.model, config.dropout).to(CUDA).train())

    def forward_of(model):
        def forward(tokens, state):
            out = model(tokens, state, path=path)
            return out.logits, out.state

        return forward

    return models, forward_of


@pytest.mark.parametrize("path, weight_decay", [("fused", 0.0), ("explicit", 0.0), ("explicit", 1e-3)])
def test_graph_replay_matches_the_eager_step_without_dropout(path, weight_decay):
    from rnnreg.steps import EagerStep, GraphedStep

    (eager_model, graph_model), forward_of = _step_pair(path)
    batch, bptt, vocab = 20, 20, 100
    before = [p.detach().clone() for p in graph_model.parameters()]
    eager = EagerStep(forward_of(eager_model), list(eager_model.parameters()), eager_model.init_state(batch), 5.0,
                      eager_model.parameter_groups(), weight_decay)
    graphed = GraphedStep(forward_of(graph_model), list(graph_model.parameters()), graph_model.init_state(batch),
                          5.0, graph_model.parameter_groups(), (bptt, batch), weight_decay).capture()
    for a, b in zip(before, graph_model.parameters()):
        assert torch.equal(a, b), "capturing must leave the weights as they were"
    data = torch.randint(0, vocab, (30 * bptt + 1, batch), device=CUDA, generator=torch.Generator(CUDA).manual_seed(1))
    losses = {"eager": [], "graph": []}
    for epoch, lr in ((1, 1.0), (2, 0.5)):  # a new epoch: zero state, new lr, fresh totals
        eager.start_epoch(lr, 15 * (epoch - 1))
        graphed.start_epoch(lr, 15 * (epoch - 1))
        for i in range(15):
            inputs, targets = data[i * bptt : (i + 1) * bptt], data[i * bptt + 1 : (i + 1) * bptt + 1]
            losses["eager"].append(eager(inputs, targets).nats.item())
            losses["graph"].append(graphed(inputs, targets).nats.item())
        assert graphed.totals.step.item() == eager.totals.step.item() == 15 * epoch
        assert graphed.totals.clipped.item() == eager.totals.clipped.item()
        torch.testing.assert_close(graphed.totals.nats, eager.totals.nats, rtol=1e-4, atol=0)
    torch.testing.assert_close(torch.tensor(losses["graph"]), torch.tensor(losses["eager"]), rtol=1e-4, atol=0)
    assert losses["eager"][-1] < losses["eager"][0]  # it learned something, so the update ran
    for a, b in zip(eager_model.parameters(), graph_model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4)


def test_masks_keep_their_semantics_under_graph_replay():
    like = torch.zeros(1, device=CUDA)
    per_step, per_sequence = SiteDropout(0.5, "step"), SiteDropout(0.5, "sequence")
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        per_step.masks(8, 4, 64, like), per_sequence.masks(8, 4, 64, like)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step_masks = per_step.masks(8, 4, 64, like)
        sequence_masks = per_sequence.masks(8, 4, 64, like)
    draws = []
    for _ in range(2):
        graph.replay()
        draws.append((step_masks.clone(), sequence_masks.clone()))
    (step_a, seq_a), (step_b, seq_b) = draws
    assert not torch.equal(step_a[0], step_a[1]), "per-step masks must differ between steps"
    assert not torch.equal(step_a, step_b) and not torch.equal(seq_a, seq_b), "each replay draws fresh masks"
    assert all(torch.equal(seq_a[0], seq_a[t]) for t in range(8)), "a per-sequence mask stays for the window"
    assert abs(step_a.mean().item() - 1.0) < 0.1 and set(step_a.unique().tolist()) == {0.0, 2.0}


def _train(tiny_corpus, placement, step, epochs=3, **extra):
    config = tiny_config(tiny_corpus, placement=placement, epochs=epochs, hidden=64, layers=2, device="cuda",
                         step=step, **extra)

    class Collect:
        def __init__(self):
            self.epochs = []

        def on_epoch_end(self, trainer, event):
            self.epochs.append(event)

    collect = Collect()
    trainer = Trainer(config, load_corpus(tiny_corpus), CUDA, [collect])
    return trainer, collect


def test_auto_trains_with_a_graph_on_the_gpu(tiny_corpus):
    trainer, _ = _train(tiny_corpus, "zaremba", "auto")
    assert trainer.training_step.name == "cuda-graph" and trainer.step_note is None


def test_a_graphed_run_without_dropout_is_the_eager_run(tiny_corpus):
    runs = {}
    for step in ("eager", "graph"):
        trainer, collect = _train(tiny_corpus, "none", step)
        trainer.run()
        runs[step] = [e.valid_ppl for e in collect.epochs]
    assert runs["graph"] == pytest.approx(runs["eager"], rel=1e-3)


@pytest.mark.parametrize("placement", ["zaremba", "recurrent", "variational", "variational-untied", "weight-drop",
                                       "zoneout", "moon"])
def test_a_graphed_run_learns_like_an_eager_one(tiny_corpus, placement):
    final = {}
    for step in ("eager", "graph"):
        trainer, collect = _train(tiny_corpus, placement, step, epochs=4)
        trainer.run()
        ppl = [e.valid_ppl for e in collect.epochs]
        assert ppl[-1] < ppl[0], f"{step}: {ppl}"
        final[step] = ppl[-1]
    assert final["graph"] == pytest.approx(final["eager"], rel=0.15), final  # other masks, same statistics


def test_graph_replays_follow_the_restored_rng_so_resume_is_exact(tiny_corpus):
    whole, collect_whole = _train(tiny_corpus, "recurrent", "graph", epochs=2)
    whole.run()
    half, _ = _train(tiny_corpus, "recurrent", "graph", epochs=2)
    half.train_epoch(1)
    weights = {k: v.clone() for k, v in half.model.state_dict().items()}
    resumed, collect_resumed = _train(tiny_corpus, "recurrent", "graph", epochs=2)
    resumed.restore(weights, epoch=1, step=half.step, words=half.words, elapsed=0.0, rng=half.rng_state)
    resumed.train_epoch(2)
    assert collect_resumed.epochs[-1].valid_ppl == pytest.approx(collect_whole.epochs[1].valid_ppl, rel=1e-5)
    assert collect_resumed.epochs[-1].train_ppl == pytest.approx(collect_whole.epochs[1].train_ppl, rel=1e-5)


def test_a_graphed_run_resumed_within_an_epoch_follows_the_uninterrupted_one(tiny_corpus):
    """Mid-epoch checkpoints on the GPU: the carried state and the totals are copied into the
    graph's static buffers, the CUDA RNG state goes on from where the replays left it."""
    whole, collect_whole = _train(tiny_corpus, "recurrent", "graph", epochs=2)
    whole.run()
    saved = {}

    class AtCancel:
        def on_cancel(self, trainer):
            saved.update(weights={k: v.clone() for k, v in trainer.model.state_dict().items()},
                         rng=trainer.rng_states(), progress=trainer.epoch_progress(), step=trainer.step,
                         words=trainer.words)

    stopped, _ = _train(tiny_corpus, "recurrent", "graph", epochs=2)
    stopped.listeners.append(AtCancel())
    stop_at = stopped.batches_per_epoch + stopped.batches_per_epoch // 2
    stopped.should_stop = lambda: stopped.step >= stop_at
    with pytest.raises(Cancelled):
        stopped.run()
    resumed, collect_resumed = _train(tiny_corpus, "recurrent", "graph", epochs=2)
    resumed.restore(saved["weights"], epoch=1, step=saved["step"], words=saved["words"], elapsed=0.0,
                    rng=saved["rng"], progress=saved["progress"])
    resumed.train_epoch(2)
    assert collect_resumed.epochs[-1].valid_ppl == pytest.approx(collect_whole.epochs[1].valid_ppl, rel=1e-5)
    assert collect_resumed.epochs[-1].train_ppl == pytest.approx(collect_whole.epochs[1].train_ppl, rel=1e-5)


@pytest.mark.parametrize("placement", ["recurrent", "both", "variational", "variational-untied", "semeniuta", "moon",
                                       "weight-drop", "zoneout"])
def test_the_triton_cell_is_the_loop_on_the_gpu(placement):
    from rnnreg.fused_cell import cell_kernel

    assert cell_kernel(CUDA) == "triton"
    config = build_run_config("small", placement=placement)
    tokens = torch.randint(0, 100, (20, 4), device=CUDA, generator=torch.Generator(CUDA).manual_seed(2))
    weights = torch.linspace(-1, 1, 100, device=CUDA, dtype=torch.float64)
    results = {}
    for fuse in (False, True):
        torch.manual_seed(0)
        model = LanguageModel(100, config.model, config.dropout).to(CUDA).double().train()
        model.lstm.fuse_cells = fuse
        torch.manual_seed(1)  # the same masks for both
        out = model(tokens, model.init_state(4), path="explicit")
        ((out.logits * weights).sum() + 0.5 * out.state[1].sum()).backward()
        results[fuse] = (out.logits.detach(), [p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-9, atol=1e-11)
    for a, b in zip(results[True][1], results[False][1]):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
