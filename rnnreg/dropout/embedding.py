"""Word-level embedding dropout (Gal & Ghahramani 2016; AWD-LSTM's embedded_dropout).

Drops whole word types: every occurrence of a dropped word sees a zero embedding (in the whole
batch for this forward pass, or per batch column: `column_word_masks`); kept rows are scaled by 1/(1-p).
"""

from __future__ import annotations

import torch

from rnnreg.dropout.masks import held_mask, keep_mask


def embedding_dropout(weight: torch.Tensor, p: float) -> torch.Tensor:
    """The (V, E) embedding matrix with each row kept with probability 1 - p."""
    return weight * keep_mask((weight.size(0), 1), p, weight)


def column_word_masks(tokens: torch.Tensor, p: float, vocab: int, like: torch.Tensor) -> torch.Tensor:
    """(T, B, 1) factors that drop word types independently in each batch column.

    The same as `embedding_dropout` applied with a separate mask per column: every
    occurrence of a word within one column gets the same factor.  Used for `variational-untied`'s
    per-sequence word dropout in training, and where each column is its own stochastic sample
    (Monte-Carlo evaluation).
    """
    table = held_mask((vocab, tokens.size(1)), p, like)  # (V, B): one mask per word type and column
    return table.gather(0, tokens).unsqueeze(-1)
