"""Words, not word pieces: which tokens make one written word, and a word's sigma and information loss.

A tokenizer splits ``memorable`` into ``memo`` + ``##rable``. The noise on each piece is independent
Gaussian noise, so a word's information loss is the sum of its pieces' losses, and its sigma the
geometric mean of its pieces' sigma (the one sigma that, spread over all its pieces, loses as much).
With ``m`` pieces: ``loss(word) = m * H(geometric mean sigma)``.

Word boundaries come from a fast tokenizer's ``word_ids()`` when known, else from the pieces' own
conventions: WordPiece ``##`` continues a word, byte-level BPE ``Ġ`` (``Ċ`` for a line break) and
SentencePiece ``▁`` start one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from .._method.objective import information_loss
from .merging import merge_loss, merge_sigma, merge_stderr

SPECIAL_TOKENS = frozenset({
    "[CLS]", "[SEP]", "[PAD]", "[MASK]", "<s>", "</s>", "<pad>", "<mask>", "<cls>", "<sep>",
    "<bos>", "<eos>", "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>",
})
"""Tokens that are never part of a written word, when the tokenizer does not say which are special."""

_STARTS = ("Ġ", "Ċ", "▁")


@dataclass
class WordSplit:
    """The written words of a sentence's pieces: text, the piece indices of each, special or not.

    >>> split_words(["[CLS]", "memo", "##rable", "[SEP]"]).words
    ['[CLS]', 'memorable', '[SEP]']
    """

    words: list[str]
    groups: list[list[int]]
    special: list[bool]


@dataclass
class ByWord:
    """Per-word results merged from per-piece sigma [..., tokens]: sigma and information loss
    [..., words], and how many pieces each word has.

    >>> m = by_word(["memo", "##rable"], torch.tensor([0.1, 0.4]), width=1)
    >>> m.words, round(float(m.sigma[0]), 3)
    (['memorable'], 0.2)
    """

    words: list[str]
    sigma: torch.Tensor
    information_loss: torch.Tensor
    pieces: torch.Tensor
    groups: list[list[int]]
    special: list[bool]
    stderr: torch.Tensor | None = None


def is_special(piece: str, special_tokens: Iterable[str] | None = None) -> bool:
    """Whether ``piece`` is a special token: in ``special_tokens`` when given, else a known one.

    >>> is_special("[CLS]"), is_special("bird"), is_special("<x>", {"<x>"})
    (True, False, True)
    """
    return piece in (SPECIAL_TOKENS if special_tokens is None else set(special_tokens))


def word_groups(pieces: Sequence[str], word_ids: Sequence[int | None] | None = None, special_tokens: Iterable[str] | None = None) -> list[list[int]]:
    """The piece indices of each word, in order; a special token is a group of its own.

    >>> word_groups(["[CLS]", "memo", "##rable", "film", "[SEP]"])
    [[0], [1, 2], [3], [4]]
    >>> word_groups(["Ġa", "Ġmemo", "rable"]), word_groups(["▁a", "▁memo", "rable"])
    ([[0], [1, 2]], [[0], [1, 2]])
    >>> word_groups(["<s>", "memo", "rable", "</s>"], word_ids=[None, 0, 0, None])
    [[0], [1, 2], [3]]
    """
    return split_words(pieces, word_ids, special_tokens).groups


def split_words(pieces: Sequence[str], word_ids: Sequence[int | None] | None = None, special_tokens: Iterable[str] | None = None) -> WordSplit:
    """The written words of ``pieces`` (see ``word_groups``), with their text and special flags.

    >>> split_words(["Ġcaf", "Ã©", "Ġbird"]).words
    ['café', 'bird']
    """
    pieces = [str(p) for p in pieces]
    specials = None if special_tokens is None else set(special_tokens)
    if word_ids is not None and len(word_ids) != len(pieces):
        from ..errors import InputError

        raise InputError(f"word_ids has {len(word_ids)} entries but there are {len(pieces)} pieces; pass the word_ids of the same tokens")
    groups: list[list[int]] = []
    special: list[bool] = []
    last = None
    for i, piece in enumerate(pieces):
        alone = is_special(piece, specials) if word_ids is None else (word_ids[i] is None or (specials is not None and piece in specials))
        if alone:
            groups.append([i])
            special.append(True)
            last = None
            continue
        key = word_ids[i] if word_ids is not None else None
        continues = (key == last) if word_ids is not None else (last is not None and _continues(piece, pieces))
        if continues and groups and not special[-1]:
            groups[-1].append(i)
        else:
            groups.append([i])
            special.append(False)
        last = key if word_ids is not None else i
    byte_level = any(p.startswith(("Ġ", "Ċ")) for p in pieces)
    words = [pieces[g[0]] if s else _text([pieces[i] for i in g], byte_level) for g, s in zip(groups, special)]
    return WordSplit(words, groups, special)


def _continues(piece: str, pieces: list[str]) -> bool:
    """Whether ``piece`` continues the word before it, by the pieces' convention."""
    if piece.startswith("##"):
        return True
    if any(p.startswith(_STARTS) for p in pieces):
        return not piece.startswith(_STARTS)
    return False


def _text(group: list[str], byte_level: bool) -> str:
    """One word's text: its pieces joined without their markers (and byte-level BPE decoded)."""
    text = "".join(p[2:] if p.startswith("##") and k else p for k, p in enumerate(group))
    text = text.replace("▁", " ").strip() or text
    if byte_level:
        text = _decode_bytes(text)
    return text.lstrip("Ġ") or text


def _decode_bytes(text: str) -> str:
    """GPT-2's byte-level alphabet back to text (``Ġ`` is a space, ``Ã©`` is é); unchanged if not one."""
    table = _byte_alphabet()
    if not all(c in table for c in text):
        return text
    try:
        return bytes(table[c] for c in text).decode("utf-8").strip() or text
    except UnicodeDecodeError:
        return text


def _byte_alphabet() -> dict[str, int]:
    """GPT-2's map from printable stand-in characters to the bytes they encode."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in printable:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def by_word(
    pieces: Sequence[str],
    sigma: torch.Tensor,
    width: int,
    word_ids: Sequence[int | None] | None = None,
    special: bool = True,
    special_tokens: Iterable[str] | None = None,
    stderr: torch.Tensor | None = None,
) -> ByWord:
    """Merges per-piece ``sigma`` [..., tokens] into words: geometric-mean sigma and summed information
    loss (``K = width``) [..., words], and sigma's ``stderr`` when given (see ``merge_stderr``);
    ``special=False`` drops the special tokens.

    >>> m = by_word(["[CLS]", "memo", "##rable", "[SEP]"], torch.tensor([0.5, 0.1, 0.4, 0.5]), width=4, special=False)
    >>> m.words, m.pieces.tolist()
    (['memorable'], [2])
    >>> torch.allclose(m.information_loss, information_loss(torch.tensor([0.1, 0.4]), 4).sum(-1, keepdim=True))
    True
    """
    split = split_words(pieces, word_ids, special_tokens)
    sigma = sigma.detach().to("cpu", torch.float32)
    merged_sigma = merge_sigma(sigma, split.groups)
    merged_loss = merge_loss(information_loss(sigma, width), split.groups)
    pieces_per_word = torch.tensor([len(g) for g in split.groups], dtype=torch.int64)
    keep = [w for w, s in enumerate(split.special) if special or not s]
    return ByWord(
        words=[split.words[w] for w in keep],
        sigma=merged_sigma[..., keep],
        information_loss=merged_loss[..., keep],
        pieces=pieces_per_word[keep],
        groups=[split.groups[w] for w in keep],
        special=[split.special[w] for w in keep],
        stderr=None if stderr is None else merge_stderr(sigma, stderr.detach().to("cpu", torch.float32), split.groups)[..., keep],
    )


def special_tokens_of(tokenizer) -> set[str] | None:
    """The tokenizer's special tokens as text, less its unknown-word token (which stands for a word).

    >>> special_tokens_of(None) is None
    True
    """
    found = getattr(tokenizer, "all_special_tokens", None)
    if not found:
        return None
    return set(map(str, found)) - {str(getattr(tokenizer, "unk_token", None))}


def tokenizer_word_ids(tokenizer, ids: Sequence[int] | torch.Tensor, encoding=None, batch_index: int = 0) -> list[int | None] | None:
    """The word_ids of one sentence's real tokens ``ids``: from the fast tokenizer's BatchEncoding
    (row ``batch_index``, padding dropped by its attention mask), else from re-encoding the decoded
    text with a fast ``tokenizer``; None when unknown or when the ids do not match (use the conventions).

    >>> tokenizer_word_ids(None, [101, 2000, 102]) is None
    True
    """
    ids = [int(i) for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids)]
    if encoding is not None and getattr(encoding, "encodings", None):
        try:
            row = encoding["input_ids"][batch_index]
            word_ids = list(encoding.word_ids(batch_index))
        except (KeyError, IndexError, ValueError):
            return None
        row = [int(i) for i in (row.tolist() if hasattr(row, "tolist") else row)]
        mask = encoding.get("attention_mask")
        keep = [int(m) for m in (mask[batch_index].tolist() if mask is not None else [1] * len(row))]
        real = [(i, w) for i, w, k in zip(row, word_ids, keep) if k]
        return [w for _, w in real] if [i for i, _ in real] == ids else None
    if getattr(tokenizer, "is_fast", False):
        again = tokenizer(tokenizer.decode(ids), add_special_tokens=False)
        if list(again["input_ids"]) != ids:
            return None
        special = set(getattr(tokenizer, "all_special_ids", ())) - {getattr(tokenizer, "unk_token_id", None)}
        return [None if i in special else w for i, w in zip(ids, again.word_ids())]
    return None


def word_types(words: Sequence[Sequence[str]], values: Sequence[torch.Tensor]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Per word type over sentences: the types in order of first appearance, their counts, and the
    mean of ``values`` (one [..., words] tensor per sentence, such as merged information loss) [..., types].

    >>> types, counts, mean = word_types([["a", "film"], ["a"]], [torch.tensor([1.0, 2.0]), torch.tensor([3.0])])
    >>> types, counts.tolist(), mean.tolist()
    (['a', 'film'], [2, 1], [2.0, 2.0])
    """
    vocabulary: dict[str, int] = {}
    ids = torch.tensor([vocabulary.setdefault(w, len(vocabulary)) for ws in words for w in ws], dtype=torch.int64)
    counts = torch.zeros(len(vocabulary), dtype=torch.int64).index_add_(0, ids, torch.ones_like(ids))
    flat = torch.cat([v.to(torch.float64) for v in values], -1)
    totals = torch.zeros(*flat.shape[:-1], len(vocabulary), dtype=torch.float64).index_add_(-1, ids, flat)
    return list(vocabulary), counts, totals / counts.clamp_min(1)
