"""Corpus loading, vocabulary, batchify and BPTT windows; the vendored PTB is byte-exact."""

import hashlib
from pathlib import Path

import pytest
import torch

from rnnreg.config import DEFAULT_DATA_DIR
from rnnreg.data import EOS, UNK, DataError, batchify, count_windows, load_corpus, windows


def test_vendored_ptb_matches_its_checksums():
    from rnnreg.runs import penn_treebank_checksums  # how runs tell the vendored PTB from another corpus

    sums = penn_treebank_checksums()
    assert set(sums) == {"train", "valid", "test"}
    for split, digest in sums.items():
        assert hashlib.sha256((DEFAULT_DATA_DIR / f"ptb.{split}.txt").read_bytes()).hexdigest() == digest, split


def test_ptb_token_counts_and_vocabulary_match_the_paper():
    corpus = load_corpus(DEFAULT_DATA_DIR)
    assert (corpus.train.numel(), corpus.valid.numel(), corpus.test.numel()) == (929_589, 73_760, 82_430)
    assert len(corpus.vocab) == 10_000
    assert corpus.vocab.words[corpus.train[-1]] == EOS


def test_unseen_words_map_to_unk_and_each_line_ends_with_eos(tmp_path: Path):
    (tmp_path / "train.txt").write_text("a b\nb c\n")
    (tmp_path / "valid.txt").write_text("a zebra\n")
    (tmp_path / "test.txt").write_text("c\n")
    corpus = load_corpus(tmp_path)
    words = [corpus.vocab.words[i] for i in corpus.valid]
    assert words == ["a", UNK, EOS]
    assert [corpus.vocab.words[i] for i in corpus.train] == ["a", "b", EOS, "b", "c", EOS]


@pytest.mark.parametrize("raw, tokens", [
    (b"\xef\xbb\xbfthe cat\nthe dog\n", "the cat <eos> the dog <eos>"),  # a byte-order mark is no part of a word
    (b"the cat\x0cthe dog\n", "the cat the dog <eos>"),  # data.lua: only a newline ends a line
    ("the cat\u2028the dog\n".encode(), "the cat the dog <eos>"),
    (b"a b\r\nc\r\n", "a b <eos> c <eos>"),  # CRLF is one line end
    (b"a\n\nb", "a <eos> <eos> b <eos>"),  # a blank line is an <eos>; the last line needs no newline
])
def test_a_split_is_read_as_the_papers_data_lua_reads_it(tmp_path: Path, raw, tokens):
    from rnnreg.data import read_tokens

    (tmp_path / "train.txt").write_bytes(raw)
    assert read_tokens(tmp_path / "train.txt") == tokens.split()


def test_a_file_holding_only_a_byte_order_mark_holds_no_words(tmp_path: Path):
    from rnnreg.data import read_tokens

    (tmp_path / "train.txt").write_bytes(b"\xef\xbb\xbf\n")
    with pytest.raises(DataError, match="holds no words"):
        read_tokens(tmp_path / "train.txt")


def test_ptb_style_names_are_found(tmp_path: Path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"ptb.{split}.txt").write_text("x y z\n")
    assert load_corpus(tmp_path).train.numel() == 4


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "no train split"),
        (lambda d: [(d / f"{s}.txt").write_text("a b\n") for s in ("train", "valid")], "no test split"),
        (lambda d: [(d / f"{s}.txt").write_text("" if s == "valid" else "a b\n") for s in ("train", "valid", "test")],
         "holds no words"),
        (lambda d: [(d / f"{s}.txt").write_bytes(b"a \xff\xfe b\n") for s in ("train", "valid", "test")],
         "not UTF-8"),
    ],
)
def test_bad_corpora_raise_a_clear_data_error(tmp_path: Path, setup, message):
    setup(tmp_path)
    with pytest.raises(DataError, match=message):
        load_corpus(tmp_path)


def test_missing_directory_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="no such directory"):
        load_corpus(tmp_path / "nope")


def test_batchify_makes_contiguous_columns_and_drops_the_remainder():
    batched = batchify(torch.arange(26), 4)
    assert batched.shape == (6, 4)
    assert batched[:, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert batched[:, 1].tolist() == [6, 7, 8, 9, 10, 11]


def test_windows_shift_targets_by_one_and_full_only_drops_the_short_tail():
    batched = batchify(torch.arange(40), 2)  # 20 rows
    full = list(windows(batched, 6, full_only=True))
    every = list(windows(batched, 6, full_only=False))
    assert [x.size(0) for x, _ in full] == [6, 6, 6]
    assert [x.size(0) for x, _ in every] == [6, 6, 6, 1]
    assert count_windows(batched, 6, full_only=True) == 3 and count_windows(batched, 6, full_only=False) == 4
    x, y = full[0]
    assert torch.equal(y, batched[1:7]) and torch.equal(x, batched[0:6])


def test_a_split_too_short_for_its_batch_names_the_split_and_the_option(tmp_path: Path, capsys):
    from rnnreg import cli

    words = " ".join(f"w{i % 50}" for i in range(20)) + "\n"
    for split, text in (("train", words * 60), ("valid", "a b\n"), ("test", words * 5)):
        (tmp_path / f"{split}.txt").write_text(text)
    assert cli.main(["train", "--preset", "demo", "--data", str(tmp_path), "--runs-dir", str(tmp_path / "runs"),
                     "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--batch-size: the valid split of 3 tokens is too short for batch size 20 "
                        "(at least 2 tokens a column)") and len(err.splitlines()) == 1, err
    assert "--max-eval-tokens" not in err  # demo's 10,000-token prefix did not cut these 3 tokens short
    # cut short by the option itself: the message names it beside the batch size
    assert cli.main(["train", "--preset", "demo", "--max-train-tokens", "10", "--device", "cpu",
                     "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.strip().endswith("--max-train-tokens / --batch-size: the train split of 10 tokens "
                                                    "is too short for batch size 20 (at least 2 tokens a column)")
