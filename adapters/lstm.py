"""Recurrent models (nn.LSTM, nn.GRU, nn.RNN): sequence-first layouts, packed sequences, lengths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pad_packed_sequence

from .layout import ObservedLayout


def _recurrent(model: nn.Module, layers: Sequence[nn.Module]) -> nn.RNNBase | None:
    for layer in layers:
        if isinstance(layer, nn.RNNBase):
            return layer
    return next((m for m in model.modules() if isinstance(m, nn.RNNBase)), None)


class LSTMAdapter(ObservedLayout):
    """nn.LSTM/GRU/RNN, batch first or not: a PackedSequence output becomes the padded batch-first
    tensor, a sequence-first output is made batch first, and a 1-D ``lengths`` input marks padding.
    The inputs' and the embedding's batch axes are read from the pass (a model may transpose before
    its RNN); the RNN's ``batch_first`` decides only when the batch size cannot.
    """

    name = "lstm"

    @classmethod
    def matches(cls, model: nn.Module, layers: Sequence[nn.Module]) -> bool:
        return _recurrent(model, layers) is not None

    def default_axis(self) -> int:
        rnn = _recurrent(self.model, self.layers)
        return 0 if rnn is None or rnn.batch_first else 1

    def layout_modules(self) -> list[nn.Module]:
        return [m for m in self.model.modules() if isinstance(m, nn.RNNBase)]

    def received(self, module: nn.Module, args: tuple) -> tuple[int | None, torch.Tensor | None]:
        value = args[0] if args else None
        if isinstance(value, PackedSequence):
            return int(value.batch_sizes[0]), pad_packed_sequence(value, batch_first=True, padding_value=float("nan"))[0]
        if isinstance(value, torch.Tensor) and value.ndim == 3:
            return (value.shape[0], value) if module.batch_first else (value.shape[1], value.transpose(0, 1))
        return None, None

    def known_batch(self, inputs) -> int | None:
        lengths = _lengths(inputs)
        return None if lengths is None else lengths.shape[0]

    def token_mask(self, inputs, embedding_input, batch: int, tokens: int, embedding: nn.Module | None = None) -> torch.Tensor:
        lengths = _lengths(inputs)
        if lengths is not None and lengths.shape[0] == batch:
            return torch.arange(tokens)[None, :] < lengths.cpu()[:, None]
        return super().token_mask(inputs, embedding_input, batch, tokens, embedding)

    def to_device(self, inputs, device: torch.device):
        """As the generic adapter, but a lengths tensor stays on the CPU, where packing needs it."""
        lengths = _lengths(inputs)
        moved = super().to_device(inputs, device)
        if lengths is None:
            return moved
        if isinstance(inputs, Mapping):
            return {k: lengths if v is lengths else moved[k] for k, v in inputs.items()}
        return tuple(lengths if v is lengths else m for v, m in zip(inputs, moved))

    def output(self, module: nn.Module, value, tokens: int):
        if isinstance(value, tuple) and value and isinstance(value[0], PackedSequence):
            value = value[0]
        if isinstance(value, PackedSequence):
            return pad_packed_sequence(value, batch_first=True, total_length=tokens)[0]
        value = super().output(module, value, tokens)
        if isinstance(module, nn.RNNBase) and not module.batch_first and isinstance(value, torch.Tensor) and value.ndim == 3:
            return value.transpose(0, 1)
        return value


def _lengths(inputs) -> torch.Tensor | None:
    """A 1-D integer input (a tuple element or a mapping value): the sentence lengths."""
    values = inputs.values() if isinstance(inputs, Mapping) else inputs if isinstance(inputs, tuple) else ()
    for value in values:
        if isinstance(value, torch.Tensor) and value.ndim == 1 and not value.is_floating_point() and value.dtype != torch.bool:
            return value
    return None
