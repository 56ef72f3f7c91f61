"""BERT-family HuggingFace models: the ``embeddings`` module, attention masks, token types, words."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from probe.errors import InputError

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

    def check(self, inputs) -> None:
        """Ids a tensor of [sentences, tokens], a mask of the same shape, no more tokens than positions."""
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
        limit = self.max_tokens()
        if limit is not None and ids.shape[1] > limit:
            raise InputError(
                f"the input has {ids.shape[1]} tokens but the model takes at most {limit} (its max_position_embeddings); "
                f"shorten the text or tokenize with truncation=True, max_length={limit}"
            )

    def max_tokens(self) -> int | None:
        """How many tokens the learned position embeddings cover (RoBERTa's start after the padding index)."""
        positions = getattr(self.embedding(), "position_embeddings", None)
        if not isinstance(positions, nn.Embedding):
            return None
        offset = 0 if positions.padding_idx is None else positions.padding_idx + 1
        return positions.num_embeddings - offset

    def token_mask(self, inputs, embedding_input, batch: int, tokens: int, embedding: nn.Module | None = None) -> torch.Tensor:
        if isinstance(inputs, Mapping) and isinstance(inputs.get("attention_mask"), torch.Tensor):
            return inputs["attention_mask"].bool().cpu()
        return super().token_mask(inputs, embedding_input, batch, tokens, embedding)
