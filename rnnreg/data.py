"""Corpus files -> vocabulary -> token ids -> batches and BPTT windows.

A corpus is a directory holding a train, a valid and a test split, named either
`ptb.{train,valid,test}.txt` or `{train,valid,test}.txt`.  Each line is split on white
space and ends with one `<eos>` token.  The vocabulary comes from the whole training split
(also when training on a prefix of it); a word of valid/test that never occurs in training
is mapped to `<unk>`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

EOS = "<eos>"
UNK = "<unk>"
SPLITS = ("train", "valid", "test")


class DataError(ValueError):
    """A user-caused corpus problem (missing split, empty or undecodable file)."""


@dataclass(frozen=True)
class Vocabulary:
    words: tuple[str, ...]  # id -> word, in order of first appearance in the training split

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {w: i for i, w in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._index  # type: ignore[attr-defined]

    def id(self, word: str) -> int:
        index: dict[str, int] = self._index  # type: ignore[attr-defined]
        return index.get(word, index[UNK])

    def encode(self, words: list[str]) -> list[int]:
        return [self.id(w) for w in words]


@dataclass(frozen=True)
class Corpus:
    vocab: Vocabulary
    train: torch.Tensor  # (N_train,) int64 token ids
    valid: torch.Tensor
    test: torch.Tensor
    checksums: dict[str, str]  # split -> sha256 of the file, recorded in the run's config
    query_id: int | None = None  # a task's query token: accuracy is scored where it is the input


def split_path(data_dir: Path, split: str) -> Path:
    for name in (f"ptb.{split}.txt", f"{split}.txt"):
        if (data_dir / name).is_file():
            return data_dir / name
    raise DataError(f"--data: {data_dir} has no {split} split (expected ptb.{split}.txt or {split}.txt)")


def read_tokens(path: Path) -> list[str]:
    """All tokens of a split: each line's words followed by one <eos>.

    As the paper's data.lua reads PTB: a line ends at a newline only (CRLF and CR read as one; a
    form feed or U+2028 inside a line is white space, not a line end), and a byte-order mark
    opening the file is no part of its first word.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # (text mode: CRLF and CR arrive as \n)
    except UnicodeDecodeError as err:
        raise DataError(f"--data: {path} is not UTF-8 text (byte {err.start})") from None
    lines = text.split("\n")
    if lines[-1] == "":  # the newline that ends the last line starts no line of its own
        lines.pop()
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    if not any(t != EOS for t in tokens):
        raise DataError(f"--data: {path} holds no words")
    return tokens


def build_vocabulary(train_tokens: list[str]) -> Vocabulary:
    words = list(dict.fromkeys(train_tokens))  # first-appearance order, deterministic
    if UNK not in words:
        words.append(UNK)
    return Vocabulary(tuple(words))


def load_corpus(data_dir: str | Path) -> Corpus:
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"--data: no such directory: {data_dir}")
    paths = {split: split_path(data_dir, split) for split in SPLITS}
    tokens = {split: read_tokens(path) for split, path in paths.items()}
    if len(tokens["train"]) < 2:
        raise DataError(f"--data: {paths['train']} is too short to train on")
    vocab = build_vocabulary(tokens["train"])
    ids = {split: torch.tensor(vocab.encode(toks), dtype=torch.long) for split, toks in tokens.items()}
    checksums = {split: hashlib.sha256(path.read_bytes()).hexdigest() for split, path in paths.items()}
    return Corpus(vocab, ids["train"], ids["valid"], ids["test"], checksums)


def batchify(ids: torch.Tensor, batch_size: int, what: str = "a split") -> torch.Tensor:
    """Cut a token stream into `batch_size` contiguous columns, dropping the remainder.

    ids = a b c d e f g h i j k l m n o p q r s t u v w x y z, batch_size = 4 ->

        ┌ a g m s ┐
        │ b h n t │   each column is an independent stream that the model reads top to
        │ c i o u │   bottom, carrying its state from one window to the next.
        │ d j p v │
        │ e k q w │
        └ f l r x ┘   (y, z dropped)
    Returns (N // batch_size, batch_size).
    """
    rows = ids.numel() // batch_size
    if rows < 2:
        raise DataError(f"{what} of {ids.numel()} tokens is too short for batch size {batch_size} "
                        "(at least 2 tokens a column)")
    return ids[: rows * batch_size].view(batch_size, rows).t().contiguous()


def windows(batched: torch.Tensor, bptt: int, *, full_only: bool) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(input, target) pairs of shape (T, B), T = bptt, each target shifted by one token.

    With `full_only` the last, shorter window is dropped, as the paper's code does for
    training and validation (Zaremba's main.lua: epoch_size = floor((len - 1) / seq_length)).
    """
    last = batched.size(0) - 1  # the final row has no target
    for start in range(0, last, bptt):
        length = min(bptt, last - start)
        if full_only and length < bptt:
            return
        yield batched[start : start + length], batched[start + 1 : start + 1 + length]


def count_windows(batched: torch.Tensor, bptt: int, *, full_only: bool) -> int:
    last = batched.size(0) - 1
    return last // bptt if full_only else -(-last // bptt)
