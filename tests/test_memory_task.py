"""The synthetic recall task: deterministic data, correct labels, scored through the normal trainer."""

import dataclasses

import torch

from rnnreg.config import MemoryTaskConfig, build_run_config
from rnnreg.data import EOS
from rnnreg.tasks import load_task_data
from rnnreg.tasks.memory import QUERY, memory_corpus, memory_vocabulary
from rnnreg.model import LMOutput
from rnnreg.train import Trainer


def test_generation_is_deterministic_under_its_seed():
    config = MemoryTaskConfig(delay=7, train_sequences=60, eval_sequences=40)
    a, b = memory_corpus(config), memory_corpus(config)
    assert torch.equal(a.train, b.train) and torch.equal(a.valid, b.valid) and torch.equal(a.test, b.test)
    other = memory_corpus(dataclasses.replace(config, data_seed=1))
    assert not torch.equal(a.train, other.train)


def test_every_sequence_recalls_its_key_after_the_delay():
    config = MemoryTaskConfig(delay=9, keys=5, distractors=3, train_sequences=50, eval_sequences=40)
    corpus = memory_corpus(config)
    vocab = memory_vocabulary(config)
    rows = corpus.train.view(-1, config.sequence_length)
    assert rows.shape == (50, 13)
    words = [[vocab.words[i] for i in row] for row in rows.tolist()]
    for line in words:
        key, gap, query, recall, end = line[0], line[1:10], line[10], line[11], line[12]
        assert key.startswith("k") and all(w.startswith("d") for w in gap)
        assert (query, recall, end) == (QUERY, key, EOS)
    assert {line[0] for line in words} == {f"k{i}" for i in range(5)}  # every key is used
    assert corpus.query_id == vocab.id(QUERY)


def test_memory_preset_unrolls_one_whole_sequence():
    config = build_run_config("memory", delay=25)
    assert config.task == "memory" and config.train.bptt == config.memory.sequence_length == 29


class KeyEcho(torch.nn.Module):
    """Answers every query with the window's first token (its key); says <eos> everywhere else."""

    def __init__(self, corpus):
        super().__init__()
        self.corpus = corpus

    def init_state(self, batch):
        return None

    def forward(self, tokens, state):
        logits = torch.zeros(*tokens.shape, len(self.corpus.vocab))
        logits[..., self.corpus.vocab.id(EOS)] = 1.0
        asked = tokens == self.corpus.query_id
        keys = tokens[0].expand_as(tokens)  # one window = one sequence, so row 0 holds the key
        logits[asked, keys[asked]] = 10.0
        return LMOutput(logits, state, None)


def test_recall_accuracy_is_scored_only_where_the_query_is_the_input():
    config = build_run_config("memory", delay=3, epochs=1, device="cpu")
    config = dataclasses.replace(config, memory=dataclasses.replace(config.memory, train_sequences=40, eval_sequences=40))
    corpus = load_task_data(config)
    trainer = Trainer(config, corpus, torch.device("cpu"))
    trainer.model = KeyEcho(corpus)
    assert trainer.scores(trainer.valid_data, full_windows=True).accuracy == 1.0
    trainer.model.corpus = dataclasses.replace(corpus, query_id=corpus.vocab.id(EOS))  # scored at the wrong place
    assert trainer.scores(trainer.valid_data, full_windows=True).accuracy < 0.5
