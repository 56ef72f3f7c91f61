"""Words, not word pieces: word boundaries from every tokenizer convention and from word_ids, and a
word's sigma (geometric mean) and information loss (sum) against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from probe._results.words import by_word, merge_loss, merge_sigma, special_tokens_of, split_words, tokenizer_word_ids, word_groups, word_types
from probe.errors import InputError


def H(sigma: float, K: int) -> float:
    """The paper's per-word information loss, by hand."""
    return K / 2 * math.log(2 * math.pi * math.e) + K * math.log(sigma)


def test_wordpiece_words_and_hand_computed_loss():
    pieces = ["[CLS]", "rare", "memo", "##rable", "film", "[SEP]"]
    sigma = torch.tensor([0.5, 0.2, 0.1, 0.4, 0.3, 0.45])
    m = by_word(pieces, sigma, width=4)
    assert m.words == ["[CLS]", "rare", "memorable", "film", "[SEP]"]
    assert m.groups == [[0], [1], [2, 3], [4], [5]]
    assert m.special == [True, False, False, False, True]
    assert m.pieces.tolist() == [1, 1, 2, 1, 1]
    assert m.sigma.tolist() == pytest.approx([0.5, 0.2, math.sqrt(0.1 * 0.4), 0.3, 0.45], rel=1e-6)
    expected = [H(0.5, 4), H(0.2, 4), H(0.1, 4) + H(0.4, 4), H(0.3, 4), H(0.45, 4)]
    assert m.information_loss.tolist() == pytest.approx(expected, rel=1e-5)


def test_special_false_drops_special_tokens():
    m = by_word(["[CLS]", "memo", "##rable", "[SEP]"], torch.tensor([0.5, 0.1, 0.4, 0.5]), width=2, special=False)
    assert m.words == ["memorable"] and m.special == [False]
    assert m.sigma.tolist() == pytest.approx([0.2], rel=1e-6)
    assert m.information_loss.tolist() == pytest.approx([H(0.1, 2) + H(0.4, 2)], rel=1e-5)


def test_bpe_byte_level_pieces():
    pieces = ["The", "Ġcaf", "Ã©", "Ġis", "Ġun", "believ", "able", "Ċ", "<|endoftext|>"]
    sigma = torch.tensor([0.3, 0.2, 0.8, 0.5, 0.1, 0.2, 0.4, 0.9, 0.6])
    m = by_word(pieces, sigma, width=3)
    assert m.words == ["The", "café", "is", "unbelievable", "Ċ", "<|endoftext|>"]
    assert m.groups == [[0], [1, 2], [3], [4, 5, 6], [7], [8]]
    assert m.special == [False, False, False, False, False, True]
    assert m.sigma[3].item() == pytest.approx((0.1 * 0.2 * 0.4) ** (1 / 3), rel=1e-6)
    assert m.information_loss[3].item() == pytest.approx(H(0.1, 3) + H(0.2, 3) + H(0.4, 3), rel=1e-5)
    assert m.information_loss[1].item() == pytest.approx(H(0.2, 3) + H(0.8, 3), rel=1e-5)


def test_sentencepiece_pieces():
    pieces = ["▁The", "▁un", "believ", "able", "▁film", "▁", ",", "</s>"]
    sigma = torch.tensor([0.3, 0.1, 0.2, 0.4, 0.7, 0.5, 0.2, 0.6])
    m = by_word(pieces, sigma, width=5, special=False)
    assert m.words == ["The", "unbelievable", "film", ","]
    assert m.groups == [[0], [1, 2, 3], [4], [5, 6]]
    assert m.information_loss.tolist() == pytest.approx([H(0.3, 5), H(0.1, 5) + H(0.2, 5) + H(0.4, 5), H(0.7, 5), H(0.5, 5) + H(0.2, 5)], rel=1e-5)


def test_word_ids_decide_over_conventions():
    # pieces that the conventions would split differently: word_ids say "memo" + "rable" is one word
    pieces = ["<s>", "memo", "rable", "Ġfilm", "Ġ##x", "</s>"]
    assert word_groups(pieces, [None, 0, 0, 1, 2, None]) == [[0], [1, 2], [3], [4], [5]]
    m = by_word(pieces, torch.tensor([0.5, 0.1, 0.4, 0.3, 0.2, 0.5]), width=2, word_ids=[None, 0, 0, 1, 2, None], special=False)
    assert m.words == ["memorable", "film", "##x"]
    assert m.information_loss.tolist() == pytest.approx([H(0.1, 2) + H(0.4, 2), H(0.3, 2), H(0.2, 2)], rel=1e-5)


def test_word_ids_and_a_tokenizers_special_set():
    # a re-encoded text can give a special token a word id; the special set still flags it
    split = split_words(["[CLS]", "a", "[SEP]"], word_ids=[0, 1, 2], special_tokens={"[CLS]", "[SEP]"})
    assert split.special == [True, False, True]
    assert split_words(["<x>", "a"], special_tokens={"<x>"}).special == [True, False]


def test_leading_axes_merge_slice_by_slice():
    pieces = ["[CLS]", "un", "##for", "##get", "##table", "bird", "[SEP]"]
    sigma = torch.rand(3, 2, len(pieces)) * 0.9 + 0.05
    m = by_word(pieces, sigma, width=7)
    assert m.sigma.shape == (3, 2, 4) and m.information_loss.shape == (3, 2, 4)
    for i in range(3):
        for j in range(2):
            one = by_word(pieces, sigma[i, j], width=7)
            assert torch.allclose(m.sigma[i, j], one.sigma) and torch.allclose(m.information_loss[i, j], one.information_loss)
    # the loss of an m-piece word is m times the loss at its geometric-mean sigma
    assert m.information_loss[..., 1].double() == pytest.approx((4 * (7 / 2 * math.log(2 * math.pi * math.e) + 7 * torch.log(m.sigma[..., 1].double()))), rel=1e-5)


def test_merge_functions_on_the_last_axis():
    assert merge_sigma(torch.tensor([[1.0, 4.0, 3.0], [2.0, 8.0, 1.0]]), [[0, 1], [2]]).tolist() == [[2.0, 3.0], [4.0, 1.0]]
    assert merge_loss(torch.tensor([[1.0, 2.0, 5.0]]), [[0, 1], [2]]).tolist() == [[3.0, 5.0]]


def test_bad_groups_and_word_ids_are_refused():
    with pytest.raises(InputError, match="every token"):
        merge_sigma(torch.ones(3), [[0, 1]])
    with pytest.raises(InputError, match="word_ids has 2 entries"):
        word_groups(["a", "b", "c"], [0, 1])


def test_fast_tokenizer_word_ids_match_the_pieces(tokenizer):
    encoding = tokenizer(["a memorable film", "rare birds are unforgettable"], return_tensors="pt", padding=True)
    row = encoding["input_ids"][1][encoding["attention_mask"][1].bool()]
    pieces = tokenizer.convert_ids_to_tokens(row.tolist())
    assert pieces == ["[CLS]", "rare", "birds", "are", "un", "##for", "##get", "##table", "[SEP]"]
    from_encoding = tokenizer_word_ids(tokenizer, row, encoding, batch_index=1)
    assert from_encoding == [None, 0, 1, 2, 3, 3, 3, 3, None]
    assert word_groups(pieces, from_encoding) == word_groups(pieces) == [[0], [1], [2], [3], [4, 5, 6, 7], [8]]
    # padding of the shorter sentence is dropped by the attention mask
    short = encoding["input_ids"][0][encoding["attention_mask"][0].bool()]
    assert len(tokenizer_word_ids(tokenizer, short, encoding, batch_index=0)) == len(short)
    # without the encoding: re-encoded from the text, special tokens marked None
    assert tokenizer_word_ids(tokenizer, row) == [None, 1, 2, 3, 4, 4, 4, 4, None]
    assert word_groups(pieces, tokenizer_word_ids(tokenizer, row)) == word_groups(pieces)
    # ids that are not the encoding's row: unknown, so the conventions decide
    assert tokenizer_word_ids(tokenizer, row[:-1], encoding, batch_index=1) is None
    assert tokenizer_word_ids(None, row) is None


def test_special_tokens_of_a_tokenizer_keep_the_unknown_word(tokenizer):
    found = special_tokens_of(tokenizer)
    assert {"[CLS]", "[SEP]", "[PAD]"} <= found and "[UNK]" not in found


def test_word_types_average_merged_losses_over_occurrences():
    pieces = [["[CLS]", "memo", "##rable", "film", "[SEP]"], ["[CLS]", "film", "[SEP]"]]
    sigma = [torch.tensor([[0.5, 0.1, 0.4, 0.3, 0.5]]), torch.tensor([[0.5, 0.2, 0.5]])]
    merged = [by_word(p, s, width=2, special=False) for p, s in zip(pieces, sigma)]
    types, counts, mean = word_types([m.words for m in merged], [m.information_loss for m in merged])
    assert types == ["memorable", "film"] and counts.tolist() == [1, 2]
    assert mean[0].tolist() == pytest.approx([H(0.1, 2) + H(0.4, 2), (H(0.3, 2) + H(0.2, 2)) / 2], rel=1e-5)
