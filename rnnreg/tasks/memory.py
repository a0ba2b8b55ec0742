"""A memory task that fails visibly: recall a key after d distractor steps, d = 1 .. delay.

Each sequence is one line of the token stream, `delay + 4` tokens long (d drawn uniformly):

    k5  d2 d7 ... d3  =  k5  <eos>  _ _ ... _
    key  d distractors   query, recall, end, padding up to delay + 4

Everything but the recall is random, so the only thing the model can learn is to carry the
key through d steps.  Recall accuracy is scored where the input is the query `=`, overall
and per delay d.  Mixing short and long gaps lets plain SGD find the mechanism on the short
ones first (a fixed long gap leaves it on a plateau for dozens of epochs).
Under per-step recurrent dropout at rate p, the key's trace survives each step's mask with
probability (1-p) per unit, (1-p)^d over the gap, and accuracy falls as d grows; dropout on
the non-recurrent connections (zaremba) or one mask per sequence (variational) leaves the
path through time intact.

The stream is a language-modelling corpus, so these runs go through the normal trainer and
run store.  Generation is deterministic under `data_seed`.
"""

from __future__ import annotations

import torch

from rnnreg.config import MemoryTaskConfig
from rnnreg.data import EOS, UNK, Corpus, Vocabulary

QUERY = "="
PAD = "_"


def memory_vocabulary(config: MemoryTaskConfig) -> Vocabulary:
    keys = [f"k{i}" for i in range(config.keys)]
    distractors = [f"d{i}" for i in range(config.distractors)]
    return Vocabulary(tuple(keys + distractors + [QUERY, EOS, PAD, UNK]))


def memory_sequences(config: MemoryTaskConfig, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, delay + 4) token ids, one sequence per row, each with its own gap d in 1..delay."""
    vocab = memory_vocabulary(config)
    length = config.sequence_length
    keys = torch.randint(0, config.keys, (count,), generator=generator)
    gaps = torch.randint(1, config.delay + 1, (count,), generator=generator)
    rows = torch.full((count, length), vocab.id(PAD))
    rows[:, 1:] = torch.where(  # distractors first; the tail beyond each gap is overwritten below
        torch.arange(1, length) <= gaps[:, None],
        config.keys + torch.randint(0, config.distractors, (count, length - 1), generator=generator),
        vocab.id(PAD),
    )
    index = torch.arange(count)
    rows[:, 0] = keys
    rows[index, gaps + 1] = vocab.id(QUERY)
    rows[index, gaps + 2] = keys
    rows[index, gaps + 3] = vocab.id(EOS)
    return rows


def memory_corpus(config: MemoryTaskConfig) -> Corpus:
    """Train / valid / test streams; sequences follow each other, one per line."""
    generator = torch.Generator().manual_seed(config.data_seed)
    splits = {
        name: memory_sequences(config, count, generator).flatten()
        for name, count in (("train", config.train_sequences), ("valid", config.eval_sequences),
                            ("test", config.eval_sequences))
    }
    vocab = memory_vocabulary(config)
    checksums = {name: f"generated:memory:delay={config.delay}:seed={config.data_seed}" for name in splits}
    return Corpus(vocab, splits["train"], splits["valid"], splits["test"], checksums, query_id=vocab.id(QUERY))
