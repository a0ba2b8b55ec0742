"""GPU checks, run by a session that has one (benchmarks/gpu_session.sh); skipped without CUDA."""

import pytest
import torch

from rnnreg.config import build_run_config
from rnnreg.data import load_corpus
from rnnreg.dropout.masks import SiteDropout
from rnnreg.model import LanguageModel
from rnnreg.train import Trainer
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
