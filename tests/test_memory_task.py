"""The synthetic recall task: deterministic data, correct labels, scored through the normal trainer."""

import dataclasses

import torch

from rnnreg.config import MemoryTaskConfig, build_run_config
from rnnreg.data import EOS
from rnnreg.tasks import load_task_data
from rnnreg.tasks.memory import PAD, QUERY, memory_corpus, memory_vocabulary
from rnnreg.model import LMOutput
from rnnreg.train import Trainer


def test_generation_is_deterministic_under_its_seed():
    config = MemoryTaskConfig(delay=7, train_sequences=60, eval_sequences=40)
    a, b = memory_corpus(config), memory_corpus(config)
    assert torch.equal(a.train, b.train) and torch.equal(a.valid, b.valid) and torch.equal(a.test, b.test)
    other = memory_corpus(dataclasses.replace(config, data_seed=1))
    assert not torch.equal(a.train, other.train)


def test_every_sequence_recalls_its_key_after_its_own_gap():
    config = MemoryTaskConfig(delay=9, keys=5, distractors=3, train_sequences=200, eval_sequences=40)
    corpus = memory_corpus(config)
    vocab = memory_vocabulary(config)
    rows = corpus.train.view(-1, config.sequence_length)
    assert rows.shape == (200, 13)
    gaps = set()
    for line in ([vocab.words[i] for i in row] for row in rows.tolist()):
        gap = line.index(QUERY) - 1
        gaps.add(gap)
        assert line[0].startswith("k") and all(w.startswith("d") for w in line[1 : gap + 1])
        assert (line[gap + 2], line[gap + 3]) == (line[0], EOS)  # the recall is the key
        assert set(line[gap + 4 :]) <= {PAD}
    assert gaps == set(range(1, 10))  # every gap 1..delay occurs
    assert {vocab.words[i] for i in rows[:, 0].tolist()} == {f"k{i}" for i in range(5)}
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
    scores = trainer.scores(trainer.valid_data, full_windows=True)
    assert scores.accuracy == 1.0 and set(scores.accuracy_by_delay) == {"1", "2", "3"}
    assert set(scores.accuracy_by_delay.values()) == {1.0}
    trainer.model.corpus = dataclasses.replace(corpus, query_id=corpus.vocab.id(EOS))  # scored at the wrong place
    assert trainer.scores(trainer.valid_data, full_windows=True).accuracy < 0.5


def test_a_finished_recall_run_says_its_recall_first():
    from rnnreg.train import TestEvent
    from rnnreg.training_run import finished_message

    assert finished_message(TestEvent(test_ppl=44.458, valid_ppl=101.9, epoch=30, test_accuracy=0.159)) \
        == "test recall 15.9%, test ppl 44.46"
    assert finished_message(TestEvent(test_ppl=82.734, valid_ppl=86.7, epoch=39)) == "test ppl 82.73"
