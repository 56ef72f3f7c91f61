"""Adapters whose batch axis is read from what the model did, not from a module's flag alone.

A model may take [batch, time] ids and transpose them, or their embeddings, before a sequence-first
RNN or transformer: the inputs, the embedding output and the layer each have their own layout. The
layer's input shows the batch size (its own flag says where, a PackedSequence says it outright), so
the batch axis of the embedding output is the axis of that size, and the inputs' batch axis follows
from their ids. Only when both axes have the batch size (a batch of n sentences of n tokens) does the
flag decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .generic import Adapter


class ObservedLayout(Adapter):
    """Base of the sequence-aware adapters: ``default_axis`` is the layout the module's flag implies;
    each clean pass replaces it with the one observed (inputs' batch axis, embedding's batch axis)."""

    def __init__(self, model: nn.Module, layers: Sequence[nn.Module]) -> None:
        super().__init__(model, layers)
        self._axes: tuple[int, int] | None = None

    def default_axis(self) -> int:
        """The batch axis the module's own flag implies (0: batch first)."""
        return 0

    def known_batch(self, inputs) -> int | None:
        """The batch size read from the inputs alone (lengths, a padding mask), or None."""
        return None

    def received(self, module: nn.Module, args: tuple) -> tuple[int | None, torch.Tensor | None]:
        """The batch size of what a layout module received, and that input batch first (None when
        it is not a plain tensor, e.g. a PackedSequence)."""
        return None, None

    def batch_axis(self) -> int:
        return self._axes[0] if self._axes else self.default_axis()

    def embedding_axis(self) -> int:
        """The batch axis of the embedding module's output (and of its input ids)."""
        return self._axes[1] if self._axes else self.default_axis()

    def observe(self, inputs, embedding_input, embedding_output: torch.Tensor, received: tuple[nn.Module, tuple] | None) -> None:
        batch, seen = self.received(*received) if received is not None else (None, None)
        batch = batch if batch is not None else self.known_batch(inputs)
        if batch is None:
            self._axes = None
            return
        embedding = _axis_of(embedding_output.shape[:2], batch)
        if embedding is None:
            embedding = _axis_by_value(embedding_output, seen)
        if embedding is None:
            embedding = self.default_axis()
            if received is not None and batch > 1 and embedding != 0:
                from probe._utils.warnings import warn

                warn(
                    f"the batch holds {batch} sentences of {batch} tokens, so probe cannot tell which axis of the embedding "
                    "output is the batch and trusts the sequence-first layer's batch_first=False; if the model transposes "
                    "before it, explain fewer sentences at once or pad to another length"
                )
        ids = _ids(inputs)
        if ids is None:
            self._axes = (embedding, embedding)
            return
        given = _axis_of(ids.shape[:2], batch)
        if given is None:  # both axes have the batch size: compare with the ids the embedding received
            transposed = isinstance(embedding_input, torch.Tensor) and embedding_input.shape == ids.T.shape and not torch.equal(embedding_input, ids) and torch.equal(embedding_input, ids.T)
            given = 1 - embedding if transposed else embedding
        self._axes = (given, embedding)

    def embedding_to_batch_first(self, value: torch.Tensor) -> torch.Tensor:
        return value.movedim(self.embedding_axis(), 0) if self.embedding_axis() else value

    def embedding_from_batch_first(self, value: torch.Tensor) -> torch.Tensor:
        return value.movedim(0, self.embedding_axis()) if self.embedding_axis() else value

    def token_mask(self, inputs, embedding_input, batch: int, tokens: int, embedding: nn.Module | None = None) -> torch.Tensor:
        """Ids that are not the embedding's padding index, read in the embedding's own layout."""
        if isinstance(embedding, nn.Embedding) and embedding.padding_idx is not None and isinstance(embedding_input, torch.Tensor):
            mask = embedding_input != embedding.padding_idx
            return mask.movedim(self.embedding_axis(), 0) if self.embedding_axis() else mask
        return torch.ones(batch, tokens, dtype=torch.bool)


def _axis_of(sizes: Sequence[int], batch: int) -> int | None:
    """The one axis among the first two that has the batch size, or None (neither, or both)."""
    found = [a for a, size in enumerate(sizes) if size == batch]
    return found[0] if len(found) == 1 else None


def _axis_by_value(embedding_output: torch.Tensor, seen: torch.Tensor | None) -> int | None:
    """The embedding output's batch axis, when the layer received it unchanged (0) or transposed
    (1). ``seen`` is the layer's input batch first; NaN marks padding a packed input did not hold."""
    if seen is None or seen.ndim != 3:
        return None
    for axis in (0, 1):
        candidate = embedding_output.movedim(axis, 0)
        if candidate.shape[0] != seen.shape[0] or candidate.shape[2:] != seen.shape[2:] or seen.shape[1] > candidate.shape[1]:
            continue
        if bool(((seen == candidate[:, : seen.shape[1]]) | seen.isnan()).all()):
            return axis
    return None


def _ids(inputs) -> torch.Tensor | None:
    """The first integer tensor of two axes among the inputs: the token ids."""
    values = inputs.values() if isinstance(inputs, Mapping) else inputs if isinstance(inputs, tuple) else (inputs,)
    return next((v for v in values if isinstance(v, torch.Tensor) and v.ndim == 2 and not v.is_floating_point() and v.dtype != torch.bool), None)
