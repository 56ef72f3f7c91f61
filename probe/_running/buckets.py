"""A padded batch cut into buckets of similar length, each trimmed to its own longest sentence.

The solver computes every row of a batch at the batch's padded length, so a short sentence beside a
long one costs as much as the long one. ``explain_batch`` therefore solves the sentences in buckets:
sorted by length and cut wherever the bucket's padding would exceed ``PADDING_ALLOWED`` of its real
tokens (on a CPU: wherever the length changes), and each bucket's inputs are trimmed to the columns
its sentences use. A sentence's noise depends on the sentence alone, so its result does not change:
it only stops paying for others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .clean_pass import CleanPass, clean_pass

PADDING_ALLOWED = 1.0
"""Largest ratio of a bucket's padded tokens to its real tokens; one more sentence that would
exceed it starts a new bucket. On one CPU thread a padded token costs as much as a real one and a
larger batch saves almost nothing (``benchmarks/bench_batch.py``: 8 sentences of 5-16 tokens took
0.67 s per sentence in buckets padded up to 1.25x, 0.54 s one at a time), so only sentences of
equal length share a pass."""


def buckets(lengths: Sequence[int]) -> list[list[int]]:
    """Sentence indices grouped by similar length (ascending), each group's padding within
    ``PADDING_ALLOWED``.

    >>> buckets([5, 30, 6, 29, 5])
    [[0, 4], [2], [3], [1]]
    """
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    groups: list[list[int]] = []
    for i in order:
        group = groups[-1] if groups else None
        if group is not None and lengths[i] * (len(group) + 1) <= PADDING_ALLOWED * (sum(lengths[j] for j in group) + lengths[i]):
            group.append(i)
        else:
            groups.append([i])
    return groups


def bucket_pass(runner, inputs, clean: CleanPass, rows: list[int], regularizations) -> tuple[object, CleanPass]:
    """The inputs of sentences ``rows`` and their clean pass, trimmed to the columns they use.

    Falls back to the untrimmed rows when the trimmed inputs do not give the same real tokens (a
    model whose embedding does not run over the input's columns) or a regularization has a token
    axis of the full length.
    """
    adapter = runner.adapter
    count, n = clean.mask.shape
    if rows == list(range(count)) and bool(clean.mask[:, 0].any() and clean.mask[:, -1].any()):
        return inputs, clean
    index = torch.tensor(rows, dtype=torch.long)
    picked = adapter.index(inputs, index, count)
    used = torch.nonzero(clean.mask[index].any(0)).flatten()
    first, last = int(used[0]), int(used[-1]) + 1
    if (first, last) != (0, n):
        trimmed = _trim(picked, len(rows), n, first, last, adapter.batch_axis())
        sub = clean_pass(runner, trimmed)
        fits = all(r is None or _broadcasts(r, out[0]) for r, out in zip(regularizations, sub.outputs))
        if fits and torch.equal(sub.mask, clean.mask[index][:, first:last]):
            return trimmed, sub
    if rows == list(range(count)):
        return inputs, clean
    return picked, clean_pass(runner, picked)


def _broadcasts(r: torch.Tensor, like: torch.Tensor) -> bool:
    try:
        return torch.broadcast_shapes(r.shape, like.shape) == like.shape
    except RuntimeError:
        return False


def _trim(inputs, batch: int, tokens: int, first: int, last: int, batch_axis: int):
    """Every tensor of ``inputs`` with a [batch, tokens] (or [tokens, batch]) layout cut to the
    columns ``first:last``; anything else as it is."""

    def cut(value):
        if not isinstance(value, torch.Tensor) or value.ndim < 2:
            return value
        head = tuple(value.shape[:2])
        if head == (batch, tokens) and (batch != tokens or batch_axis == 0):
            return value[:, first:last]
        if head == (tokens, batch):
            return value[first:last]
        return value

    if isinstance(inputs, Mapping):
        return {k: cut(v) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(cut(v) for v in inputs)
    return cut(inputs)
