"""PyTorch's own ``nn.TransformerEncoder``: the key padding mask, and sequence-first layouts.

The hook runner turns torch's MHA fast path off while probe runs (under no_grad with a padding mask
it would hand NestedTensors between the layers); this adapter reads which tokens are padding from the
``src_key_padding_mask`` the user passes (True, or -inf, marks a pad), and makes a
``batch_first=False`` layer's [time, batch, features] output batch first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .layout import ObservedLayout

MASK_NAME = "src_key_padding_mask"


def _encoder_layer(model: nn.Module, layers: Sequence[nn.Module]) -> nn.TransformerEncoderLayer | None:
    for root in (*layers, model):
        found = next((m for m in root.modules() if isinstance(m, nn.TransformerEncoderLayer)), None)
        if found is not None:
            return found
    return None


class TransformerAdapter(ObservedLayout):
    """Models built on ``nn.TransformerEncoder`` / ``nn.TransformerEncoderLayer``."""

    name = "transformer"

    @classmethod
    def matches(cls, model: nn.Module, layers: Sequence[nn.Module]) -> bool:
        return _encoder_layer(model, layers) is not None

    def default_axis(self) -> int:
        layer = _encoder_layer(self.model, self.layers)
        return 0 if layer is None or layer.self_attn.batch_first else 1

    def layout_modules(self) -> list[nn.Module]:
        return [m for m in self.model.modules() if isinstance(m, nn.TransformerEncoderLayer)]

    def received(self, module: nn.Module, args: tuple) -> tuple[int | None, torch.Tensor | None]:
        value = args[0] if args else None
        if not isinstance(value, torch.Tensor) or value.ndim != 3 or value.is_nested:
            return None, None
        return (value.shape[0], value) if module.self_attn.batch_first else (value.shape[1], value.transpose(0, 1))

    def known_batch(self, inputs) -> int | None:
        mask = _padding_mask(inputs)
        return None if mask is None else mask.shape[0]

    def token_mask(self, inputs, embedding_input, batch: int, tokens: int, embedding: nn.Module | None = None) -> torch.Tensor:
        """Real tokens: not marked in the ``src_key_padding_mask`` input ([batch, tokens], as torch
        takes it whatever the layout), else not the embedding's padding index."""
        mask = _padding_mask(inputs)
        if mask is not None and tuple(mask.shape) == (batch, tokens):
            return ~(mask if mask.dtype == torch.bool else mask != 0).cpu()
        return super().token_mask(inputs, embedding_input, batch, tokens, embedding)

    def index(self, inputs, rows: torch.Tensor, batch: int):
        """As the generic adapter; the padding mask is batch first even when the ids are not."""
        mask = _padding_mask(inputs)
        picked = super().index(inputs, rows, batch)
        if mask is None or self.batch_axis() == 0:
            return picked
        rows_of_mask = mask.index_select(0, rows.to(mask.device))
        if isinstance(inputs, Mapping):
            return {k: rows_of_mask if v is mask else picked[k] for k, v in inputs.items()}
        return tuple(rows_of_mask if v is mask else p for v, p in zip(inputs, picked))

    def output(self, module: nn.Module, value, tokens: int):
        value = super().output(module, value, tokens)
        sequence_first = isinstance(module, nn.TransformerEncoderLayer) and not module.self_attn.batch_first
        sequence_first |= isinstance(module, nn.TransformerEncoder) and not module.layers[0].self_attn.batch_first
        if sequence_first and isinstance(value, torch.Tensor) and value.ndim == 3:
            return value.transpose(0, 1)
        return value


def _padding_mask(inputs) -> torch.Tensor | None:
    """The ``src_key_padding_mask`` input: by that name in a mapping, else the first boolean
    tensor of two axes among the inputs."""
    if isinstance(inputs, Mapping) and isinstance(inputs.get(MASK_NAME), torch.Tensor):
        return inputs[MASK_NAME]
    values = inputs.values() if isinstance(inputs, Mapping) else inputs if isinstance(inputs, tuple) else ()
    return next((v for v in values if isinstance(v, torch.Tensor) and v.dtype == torch.bool and v.ndim == 2), None)
