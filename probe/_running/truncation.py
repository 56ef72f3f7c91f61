"""Sentences longer than the model reads are cut at its maximum length: said, never silent."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

LIMITLESS = 10**9
"""A tokenizer's ``model_max_length`` at or above this means it knows no limit."""


def warn_truncated(tokenizer, texts: Sequence[str]) -> list[int]:
    """Warns once when some of ``texts`` have more tokens than the tokenizer's ``model_max_length``
    (tokenization cuts them there, so their last words are not explained); returns their indices.

    >>> class Tiny:
    ...     model_max_length = 3
    ...     def __call__(self, texts, truncation=False):
    ...         return {"input_ids": [t.split() for t in texts]}
    >>> import warnings; warnings.simplefilter("ignore")
    >>> warn_truncated(Tiny(), ["a b", "a b c d"])
    [1]
    """
    limit = getattr(tokenizer, "model_max_length", None)
    if not isinstance(limit, int) or limit >= LIMITLESS or not callable(tokenizer):
        return []
    with warnings.catch_warnings():  # the tokenizer's own warning about long inputs is this one's job
        warnings.simplefilter("ignore")
        counts = [len(ids) for ids in tokenizer(list(texts), truncation=False)["input_ids"]]
    cut = [i for i, n in enumerate(counts) if n > limit]
    if cut:
        first = cut[0]
        warnings.warn(
            f"{len(cut)} of {len(texts)} sentences have more than the model's {limit} tokens and are cut there, so their last "
            f"words are not explained (sentence {first}: {counts[first]} tokens); split long sentences to explain every word",
            stacklevel=2,
        )
    return cut
