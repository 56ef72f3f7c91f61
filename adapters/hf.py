"""HuggingFace transformers of any architecture: decoders (GPT-2, Llama, Qwen2, Mistral, Gemma),
the encoder side of encoder-decoders (T5, BART), and the base of the BERT-family adapter.

The word embeddings perturbed are the ones the encoder really calls (T5's and BART's
``encoder.embed_tokens``, not ``shared``, which a hook never sees run); padding comes from the
``attention_mask`` the user passes; a left-padded batch gets the positions each sentence has alone.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from probe._utils.warnings import warn
from probe.errors import InputError

from .generic import Adapter

_ABSOLUTE_POSITIONS = ("embed_positions", "position_embeddings", "wpe")
"""Names HuggingFace gives the learned position tables that left padding shifts."""


def _is_transformer(model: nn.Module) -> bool:
    """Whether ``model`` is a HuggingFace ``PreTrainedModel`` (False when transformers is absent)."""
    try:
        from transformers import PreTrainedModel
    except ImportError:
        return False
    return isinstance(model, PreTrainedModel)


def _takes_positions(module: nn.Module, loosely: bool) -> bool:
    """Whether ``module.forward`` takes ``position_ids`` (loosely: or any keyword, to pass on)."""
    parameters = inspect.signature(module.forward).parameters
    return "position_ids" in parameters or (loosely and any(p.kind is p.VAR_KEYWORD for p in parameters.values()))


def _left_padded(mask: torch.Tensor) -> bool:
    """Whether any sentence of the [batch, tokens] mask has padding before a real token."""
    mask = mask.bool()
    return bool((mask[:, 1:] & ~mask[:, :-1]).any())


class HFAdapter(Adapter):
    """Any HuggingFace ``PreTrainedModel``: GPT-2, Llama, Qwen2, Mistral, Gemma, T5 and BART encoders.

    Perturbs the word embeddings the (encoder's) forward pass calls; padding from ``attention_mask``;
    for a left-padded batch without ``position_ids``, passes the positions each sentence has alone
    (``attention_mask.cumsum(1) - 1``), as ``generate`` does, so a sentence's result does not
    depend on its padding.

    >>> from transformers import LlamaConfig, LlamaModel
    >>> config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2)
    >>> probe.attach(LlamaModel(config), "layers.1").adapter.name
    'hf'
    """

    name = "hf"

    @classmethod
    def matches(cls, model: nn.Module, layers: Sequence[nn.Module]) -> bool:
        return _is_transformer(model)

    def embedding(self) -> nn.Module | None:
        get_encoder = getattr(self.model, "get_encoder", None)
        encoder = get_encoder() if callable(get_encoder) else None
        called = getattr(encoder, "embed_tokens", None)
        return called if isinstance(called, nn.Module) else super().embedding()

    def check(self, inputs) -> None:
        """Ids a tensor of [sentences, tokens] and a mask of the same shape."""
        if not isinstance(inputs, Mapping) or "input_ids" not in inputs:
            return
        ids, mask = inputs["input_ids"], inputs.get("attention_mask")
        if not isinstance(ids, torch.Tensor) or ids.ndim != 2:
            got = f"shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else f"a {type(ids).__name__}"
            raise InputError(f"input_ids is {got}, not a tensor of [sentences, tokens]; call the tokenizer with return_tensors='pt'")
        if isinstance(mask, torch.Tensor) and mask.shape != ids.shape:
            raise InputError(
                f"attention_mask has shape {tuple(mask.shape)} but input_ids has shape {tuple(ids.shape)}; "
                "pass the mask the tokenizer made together with these ids"
            )

    def complete(self, inputs):
        """A left-padded batch with the ``position_ids`` each sentence has alone, when the model
        takes them and counts positions from 0; a warning when left padding shifts positions the
        model cannot be given."""
        mask = inputs.get("attention_mask") if isinstance(inputs, Mapping) else None
        if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or "position_ids" in inputs or not _left_padded(mask):
            return inputs
        if self._positions_from_ids():
            return inputs
        if self._refusing_positions() is None:
            return {**inputs, "position_ids": (mask.long().cumsum(1) - 1).clamp_min(0)}
        if self._absolute_positions():
            warn(
                f"{self._refusing_positions()} takes no position_ids, so left padding shifts its learned positions and a "
                "sentence's result depends on its padding; pad on the right (tokenizer.padding_side = 'right')"
            )
        return inputs

    def _refusing_positions(self) -> str | None:
        """The class name of the model, or of the wrapper probe calls, that takes no ``position_ids``
        (a wrapper may pass them on among its ``**kwargs`` or its one dict); None when they reach the model."""
        if not _takes_positions(self.model, loosely=False):
            return type(self.model).__name__
        if self.called is not self.model and not _takes_positions(self.called, loosely=True):
            return type(self.called).__name__
        return None

    def _positions_from_ids(self) -> bool:
        """RoBERTa, XLM-R, MPNet: positions counted from the ids past the padding index, which left
        padding does not shift (and position_ids from 0 would be wrong)."""
        return any(isinstance(m, nn.Embedding) and m.padding_idx is not None for m in self._position_tables())

    def _absolute_positions(self) -> bool:
        return any(True for _ in self._position_tables())

    def _position_tables(self):
        return (m for name, m in self.model.named_modules() if name.rsplit(".", 1)[-1] in _ABSOLUTE_POSITIONS)
