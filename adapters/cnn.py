"""Convolutional text models: Conv1d's [batch, channels, time] layout, padded positions masked."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .generic import Adapter


class CNNAdapter(Adapter):
    """Models built on nn.Conv1d: the time axis of a [batch, channels, time] output is the last, so a
    convolution whose channel count happens to equal the sentence length is still read right.
    Padding comes from the embedding's ``padding_idx``.
    """

    name = "cnn"

    @classmethod
    def matches(cls, model: nn.Module, layers: Sequence[nn.Module]) -> bool:
        return any(isinstance(m, nn.Conv1d) for layer in layers for m in layer.modules()) or (
            any(isinstance(m, nn.Conv1d) for m in model.modules())
            and not any(isinstance(m, nn.RNNBase) for m in model.modules())
        )

    def length_axis(self, shape: torch.Size, tokens: int) -> int | None:
        if len(shape) >= 2 and shape[-1] == tokens:
            return len(shape) - 1
        return super().length_axis(shape, tokens)
