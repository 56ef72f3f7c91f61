"""Merging per-piece values into per-word values: sigma (geometric mean), its standard error and the
information loss (sum), over the last axis of any tensor."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def merge_sigma(sigma: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each word's sigma: the geometric mean of its pieces' sigma, over the last axis [..., words].

    >>> merge_sigma(torch.tensor([[1.0, 4.0, 3.0]]), [[0, 1], [2]])
    tensor([[2., 3.]])
    """
    index, counts = _index(groups, sigma.shape[-1], sigma.device)
    logs = torch.log(sigma.to(torch.float64))
    total = torch.zeros(*sigma.shape[:-1], len(groups), dtype=torch.float64, device=sigma.device).index_add_(-1, index, logs)
    return torch.exp(total / counts).to(sigma.dtype)


def merge_stderr(sigma: torch.Tensor, stderr: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each word's standard error of sigma [..., words]: the pieces' log sigma are independent
    estimates, so the geometric mean's relative error is ``sqrt(sum rel_i**2) / m`` for ``m`` pieces.

    >>> merge_stderr(torch.tensor([1.0, 4.0, 3.0]), torch.tensor([0.03, 0.16, 0.3]), [[0, 1], [2]])
    tensor([0.0500, 0.3000])
    """
    index, counts = _index(groups, sigma.shape[-1], sigma.device)
    relative = (stderr.to(torch.float64) / sigma.to(torch.float64)).square()
    total = torch.zeros(*sigma.shape[:-1], len(groups), dtype=torch.float64, device=sigma.device).index_add_(-1, index, relative)
    return (merge_sigma(sigma, groups).to(torch.float64) * total.sqrt() / counts).to(sigma.dtype)


def merge_loss(loss: torch.Tensor, groups: Sequence[Sequence[int]]) -> torch.Tensor:
    """Each word's information loss: the sum of its pieces' losses, over the last axis [..., words].

    >>> merge_loss(torch.tensor([1.0, 2.0, 5.0]), [[0, 1], [2]])
    tensor([3., 5.])
    """
    index, _ = _index(groups, loss.shape[-1], loss.device)
    total = torch.zeros(*loss.shape[:-1], len(groups), dtype=torch.float64, device=loss.device)
    return total.index_add_(-1, index, loss.to(torch.float64)).to(loss.dtype)


def _index(groups: Sequence[Sequence[int]], tokens: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """For each token, its word; and each word's piece count (float64)."""
    index = torch.empty(tokens, dtype=torch.int64)
    seen = 0
    for w, group in enumerate(groups):
        index[list(group)] = w
        seen += len(group)
    if seen != tokens or sorted(i for g in groups for i in g) != list(range(tokens)):
        from ..errors import InputError

        raise InputError(f"the word groups cover {seen} pieces but there are {tokens} tokens; every token must be in exactly one word")
    counts = torch.tensor([len(g) for g in groups], dtype=torch.float64, device=device)
    return index.to(device), counts
