"""The word-level language model: embedding -> L-layer LSTM -> linear decoder.

    tokens (T, B) -> embedding (T, B, H) -> LSTMStack (T, B, H) -> [output dropout] -> decoder (T, B, V)

The placement's dropout sites are wired in here and in rnnreg.lstm; the model never branches
on a placement's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from rnnreg.config import DropoutConfig, ModelConfig
from rnnreg.dropout import Placement, build_placement
from rnnreg.dropout.embedding import column_word_masks, embedding_dropout
from rnnreg.lstm import LayerTrace, LSTMStack, State


@dataclass
class LMOutput:
    logits: torch.Tensor  # (T, B, V)
    state: State  # final (h, c), each (layers, B, H)
    trace: list[LayerTrace] | None  # per layer, when asked for (explicit path only)


class LanguageModel(nn.Module):
    def __init__(self, vocab_size: int, model: ModelConfig, dropout: DropoutConfig) -> None:
        super().__init__()
        self.placement: Placement = build_placement(dropout.placement, dropout.rates)
        self.embedding = nn.Embedding(vocab_size, model.hidden)
        self.lstm = LSTMStack(model.hidden, model.hidden, model.layers)
        self.decoder = nn.Linear(model.hidden, vocab_size)
        self.reset_parameters(model.init_scale, model.forget_bias)

    def reset_parameters(self, scale: float, forget_bias: float = 0.0) -> None:
        # Zaremba et al. 2014, sec 4.1: every parameter ~ U(-scale, scale) (0.1 / 0.05 / 0.04).
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -scale, scale)
        with torch.no_grad():
            for layer in self.lstm.layers:
                size = layer.hidden_size
                # The paper's cell has one bias b; nn.LSTM has two, so the second is zeroed.
                layer.bias_hh_l0.zero_()
                # Forget-gate bias: no +1 offset in the paper (main.lua draws it in ±scale like the rest;
                # 0 here, README "Presets"); torch order is i, f, g, o.
                layer.bias_ih_l0[size : 2 * size].fill_(forget_bias)

    @property
    def default_path(self) -> str:
        """The fused (cuDNN) path unless the placement puts a mask inside the recurrence."""
        return "explicit" if self.placement.touches_recurrence else "fused"

    def path_for(self, training: bool) -> str:
        if training:
            return self.default_path
        # In evaluation dropout is off; only zoneout still changes the function.
        return "explicit" if self.placement.changes_evaluation else "fused"

    def init_state(self, batch: int) -> State:
        return self.lstm.init_state(batch, self.decoder.weight)

    def forward(
        self, tokens: torch.Tensor, state: State, *, path: str | None = None, trace: bool = False,
        word_masks_per_column: bool = False, drop_words: bool = True,
    ) -> LMOutput:
        """tokens (T, B) int64 -> LMOutput; `path` defaults to `path_for(self.training)`.

        `word_masks_per_column`: draw the word-dropout mask for each batch column separately
        instead of once for the batch (Monte-Carlo evaluation runs one sample per column).
        `drop_words=False` leaves word dropout out even in training mode (Gal & Ghahramani's MC test).
        """
        placement = self.placement
        path = path or ("explicit" if trace else self.path_for(self.training))
        weight = self.embedding.weight
        word_dropout = self.training and placement.embedding > 0.0 and drop_words
        per_column = word_masks_per_column or placement.embedding_per_sequence
        if word_dropout and not per_column:
            weight = embedding_dropout(weight, placement.embedding)  # Gal & Ghahramani 2016: word dropout
        x = F.embedding(tokens, weight)  # (T, B, H)
        if word_dropout and per_column:  # each sequence (column) drops its own word types
            x = x * column_word_masks(tokens, placement.embedding, weight.size(0), x)
        x, state, traces = self.lstm(x, state, placement, path=path, trace=trace)
        if self.training and placement.output is not None:
            x = placement.output(x)  # Zaremba et al. 2014: dropout on the softmax input
        return LMOutput(self.decoder(x), state, traces)

    def parameter_groups(self) -> Mapping[str, list[nn.Parameter]]:
        """Parameters by part, for per-layer gradient norms: embedding, lstm.0.., decoder."""
        groups: dict[str, list[nn.Parameter]] = {"embedding": list(self.embedding.parameters())}
        for index, layer in enumerate(self.lstm.layers):
            groups[f"lstm.{index}"] = list(layer.parameters())
        groups["decoder"] = list(self.decoder.parameters())
        return groups
