"""BERT-family HuggingFace models: the ``embeddings`` module, attention masks, token types, words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .generic import Adapter


def _embeddings_module(model: nn.Module) -> nn.Module | None:
    """The BERT-style ``embeddings`` module (word + position + type, LayerNorm), however deep it sits."""
    for name, module in model.named_modules():
        if name == "embeddings" or name.endswith(".embeddings"):
            if any(isinstance(m, nn.Embedding) for m in module.modules()):
                return module
    return None


class BertAdapter(Adapter):
    """BERT, RoBERTa, DistilBERT, ELECTRA, ALBERT, ...: perturbs the full embedding output, as the paper does.

    Padding comes from ``attention_mask``; token types and every other per-sentence input are repeated
    with the noise samples; special tokens ([CLS], [SEP]) are words like any other.
    """

    name = "bert"

    @classmethod
    def matches(cls, model: nn.Module, layers: Sequence[nn.Module]) -> bool:
        try:
            from transformers import PreTrainedModel
        except ImportError:
            return False
        return isinstance(model, PreTrainedModel) and _embeddings_module(model) is not None

    def embedding(self) -> nn.Module | None:
        return _embeddings_module(self.model)

    def token_mask(self, inputs, embedding_input, batch: int, tokens: int) -> torch.Tensor:
        if isinstance(inputs, Mapping) and isinstance(inputs.get("attention_mask"), torch.Tensor):
            return inputs["attention_mask"].bool().cpu()
        return super().token_mask(inputs, embedding_input, batch, tokens)
