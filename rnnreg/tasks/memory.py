"""A memory task that fails visibly: recall a key after `delay` distractor steps.

Each sequence is one line of the token stream, `delay + 4` tokens long:

    k5  d2 d7 d0 ... d3  =  k5  <eos>
    key  delay distractors   query, recall, end

Everything but the recall is random, so the only thing the model can learn is to carry the
key through `delay` steps.  Recall accuracy is scored where the input is the query `=`.
Under per-step recurrent dropout at rate p, the key's trace survives each step's mask with
probability (1-p) per unit, (1-p)^delay over the gap, and accuracy collapses as the delay
grows; dropout on the non-recurrent connections (zaremba) or one mask per sequence
(variational) leaves the path through time intact.

The stream is a language-modelling corpus, so these runs go through the normal trainer and
run store.  Generation is deterministic under `data_seed`.
"""

from __future__ import annotations

import torch

from rnnreg.config import MemoryTaskConfig
from rnnreg.data import EOS, UNK, Corpus, Vocabulary

QUERY = "="


def memory_vocabulary(config: MemoryTaskConfig) -> Vocabulary:
    keys = [f"k{i}" for i in range(config.keys)]
    distractors = [f"d{i}" for i in range(config.distractors)]
    return Vocabulary(tuple(keys + distractors + [QUERY, EOS, UNK]))


def memory_sequences(config: MemoryTaskConfig, count: int, generator: torch.Generator) -> torch.Tensor:
    """(count, delay + 4) token ids, one sequence per row."""
    vocab = memory_vocabulary(config)
    keys = torch.randint(0, config.keys, (count, 1), generator=generator)
    gap = config.keys + torch.randint(0, config.distractors, (count, config.delay), generator=generator)
    query = torch.full((count, 1), vocab.id(QUERY))
    eos = torch.full((count, 1), vocab.id(EOS))
    return torch.cat([keys, gap, query, keys, eos], dim=1)


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
