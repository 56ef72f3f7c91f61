"""BERT-family HuggingFace models: the ``embeddings`` module (words, positions, token types, LayerNorm)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import nn

from probe.errors import InputError

from .hf import HFAdapter, _is_transformer


def _embeddings_module(model: nn.Module) -> nn.Module | None:
    """The BERT-style ``embeddings`` module (word + position + type, LayerNorm), however deep it sits."""
    for name, module in model.named_modules():
        if name == "embeddings" or name.endswith(".embeddings"):
            if any(isinstance(m, nn.Embedding) for m in module.modules()):
                return module
    return None


class BertAdapter(HFAdapter):
    """BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, DeBERTa-v2, XLM-R, MPNet, ModernBERT: perturbs the
    full embedding output, as the paper does.

    Padding comes from ``attention_mask``; token types and every other per-sentence input are repeated
    with the noise samples; special tokens ([CLS], [SEP]) are words like any other.
    """

    name = "bert"

    @classmethod
    def matches(cls, model: nn.Module, layers: Sequence[nn.Module]) -> bool:
        return _is_transformer(model) and _embeddings_module(model) is not None

    def embedding(self) -> nn.Module | None:
        return _embeddings_module(self.model)

    def check(self, inputs) -> None:
        """As for any transformer, and no more tokens than the model has positions."""
        super().check(inputs)
        if not isinstance(inputs, Mapping) or "input_ids" not in inputs:
            return
        tokens, limit = inputs["input_ids"].shape[1], self.max_tokens()
        if limit is not None and tokens > limit:
            raise InputError(
                f"the input has {tokens} tokens but the model takes at most {limit} (its max_position_embeddings); "
                f"shorten the text or tokenize with truncation=True, max_length={limit}"
            )

    def max_tokens(self) -> int | None:
        """How many tokens the learned position embeddings cover (RoBERTa's start after the padding index)."""
        positions = getattr(self.embedding(), "position_embeddings", None)
        if not isinstance(positions, nn.Embedding):
            return None
        offset = 0 if positions.padding_idx is None else positions.padding_idx + 1
        return positions.num_embeddings - offset
