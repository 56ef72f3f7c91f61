"""The generic adapter: any model whose attached layers return tensors, batch first.

Every other adapter subclasses it and changes only what its architecture does differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


class Adapter:
    """How probe reads one architecture: its inputs, its padding, its layers' outputs.

    Subclass it and register the subclass to teach probe a new architecture::

        class MyAdapter(probe.adapters.Adapter):
            name = "mine"
            @classmethod
            def matches(cls, model, layers):
                return isinstance(model, MyModel)

        probe.adapters.register(MyAdapter)
    """

    name = "generic"

    def __init__(self, model: nn.Module, layers: Sequence[nn.Module]) -> None:
        self.model = model
        self.layers = list(layers)
        self.called = model
        """The module probe calls: ``model``, or a wrapper around it when an attached layer lies outside it."""

    @classmethod
    def matches(cls, model: nn.Module, layers: Sequence[nn.Module]) -> bool:
        """Whether this adapter is the right one for ``model`` explained at ``layers``."""
        return True

    def embedding(self) -> nn.Module | None:
        """The module whose output is perturbed: a HuggingFace model's input embeddings; None means
        the first ``nn.Embedding`` called."""
        get = getattr(self.model, "get_input_embeddings", None)
        found = get() if callable(get) else None
        return found if isinstance(found, nn.Module) else None

    def batch_axis(self) -> int:
        """The batch axis of the model's inputs and of the embedding output (0, or 1 when sequence first)."""
        return 0

    def layout_modules(self) -> list[nn.Module]:
        """Modules whose input shows the layout (an RNN, a transformer layer); the first of them to
        run in a clean pass is handed to ``observe``. The generic layout is fixed, so none."""
        return []

    def observe(self, inputs, embedding_input, embedding_output: torch.Tensor, received: tuple[nn.Module, tuple] | None) -> None:
        """Told what a clean pass saw: the inputs, the embedding module's input and output, and
        (module, positional args) of the first layout module to run (None before one runs). An
        adapter whose layout depends on the model's own forward (a transpose inside it) reads it
        here; the generic one is fixed."""

    def word_embedding_weight(self, embedding: nn.Module) -> torch.Tensor | None:
        """The word-embedding matrix whose std sets the default scale."""
        get = getattr(self.model, "get_input_embeddings", None)
        found = get() if callable(get) else None
        if isinstance(found, nn.Embedding):
            return found.weight
        if isinstance(embedding, nn.Embedding):
            return embedding.weight
        first = next((m for m in self.model.modules() if isinstance(m, nn.Embedding)), None)
        return None if first is None else first.weight

    def token_mask(self, inputs, embedding_input, batch: int, tokens: int, embedding: nn.Module | None = None) -> torch.Tensor:
        """Real (not padded) tokens, [batch, tokens]: the ``attention_mask`` the user passed, whatever
        the architecture, else ids that are not the embedding's padding index.

        ``embedding_input`` is what the perturbed ``embedding`` module received (the ids, for an
        ``nn.Embedding``)."""
        given = inputs.get("attention_mask") if isinstance(inputs, Mapping) else None
        if isinstance(given, torch.Tensor) and given.ndim == 2:
            return given.bool().cpu()
        ids = embedding_input
        if isinstance(embedding, nn.Embedding) and embedding.padding_idx is not None and isinstance(ids, torch.Tensor):
            mask = ids != embedding.padding_idx
            return mask.movedim(self.batch_axis(), 0) if self.batch_axis() else mask
        return torch.ones(batch, tokens, dtype=torch.bool)

    def complete(self, inputs):
        """The inputs with anything the model needs for a sentence's result not to depend on its
        batch (positions, for a left-padded transformer); the generic adapter adds nothing."""
        return inputs

    def index(self, inputs, rows: torch.Tensor, batch: int):
        """The model inputs for ``rows`` of the batch: every tensor with a batch axis of size ``batch`` indexed."""
        axis = self.batch_axis()

        def pick(value):
            if isinstance(value, torch.Tensor) and value.ndim > axis and value.shape[axis] == batch:
                return value.index_select(axis, rows.to(value.device))
            if isinstance(value, torch.Tensor) and value.ndim == 1 and value.shape[0] == batch:
                return value.index_select(0, rows.to(value.device))
            return value

        if isinstance(inputs, Mapping):
            return {k: pick(v) for k, v in inputs.items()}
        if isinstance(inputs, tuple):
            return tuple(pick(v) for v in inputs)
        return pick(inputs)

    def to_device(self, inputs, device: torch.device):
        """The inputs with every tensor on the model's device."""
        if isinstance(inputs, Mapping):
            return {k: self.to_device(v, device) for k, v in inputs.items()}
        if isinstance(inputs, tuple):
            return tuple(self.to_device(v, device) for v in inputs)
        return inputs.to(device) if isinstance(inputs, torch.Tensor) else inputs

    def embedding_to_batch_first(self, value: torch.Tensor) -> torch.Tensor:
        """The embedding output as [batch, tokens, features]."""
        return value.movedim(self.batch_axis(), 0) if self.batch_axis() else value

    def embedding_from_batch_first(self, value: torch.Tensor) -> torch.Tensor:
        """[batch, tokens, features] back into the embedding module's own layout."""
        return value.movedim(0, self.batch_axis()) if self.batch_axis() else value

    def output(self, module: nn.Module, value, tokens: int):
        """A layer's output reduced to one tensor, batch first: a tuple or ModelOutput gives its first tensor."""
        if isinstance(value, Mapping):
            value = next((v for v in value.values() if isinstance(v, torch.Tensor)), value)
        elif isinstance(value, (tuple, list)):
            value = next((v for v in value if isinstance(v, torch.Tensor)), value)
        return value

    def length_axis(self, shape: torch.Size, tokens: int) -> int | None:
        """The axis of a per-sentence output that runs over the input tokens, if any (first of size ``tokens``)."""
        return next((i for i, size in enumerate(shape) if size == tokens), None)

    def check(self, inputs) -> None:
        """Raises ``probe.errors.InputError`` for inputs the model would reject with an unclear error
        (or none at all), before anything runs; the generic adapter knows too little to check."""

    def ids(self, inputs) -> torch.Tensor | None:
        """The token ids, [batch, tokens], when the inputs hold them as an integer tensor: the tensor
        itself, a mapping's ``input_ids``, else the first integer matrix of a tuple or mapping."""
        ids = inputs.get("input_ids") if isinstance(inputs, Mapping) else inputs if isinstance(inputs, torch.Tensor) else None
        if ids is None and isinstance(inputs, (Mapping, tuple)):  # (ids, lengths), {"ids": ..., "mask": ...}: the first id matrix
            values = inputs.values() if isinstance(inputs, Mapping) else inputs
            ids = next((v for v in values if isinstance(v, torch.Tensor) and v.ndim == 2 and v.dtype in (torch.int32, torch.int64)), None)
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int32, torch.int64) or ids.ndim < 2:
            return None
        return ids.movedim(self.batch_axis(), 0) if self.batch_axis() else ids

    def words(self, inputs, tokenizer, row: int, mask: torch.Tensor) -> list[str] | None:
        """The words of sentence ``row`` (its real tokens) from the tokenizer, or None when unknown."""
        ids = self.ids(inputs)
        if tokenizer is None or ids is None:
            return None
        return list(tokenizer.convert_ids_to_tokens(ids[row][mask.to(ids.device)].tolist()))

    def only_special(self, inputs, tokenizer, mask: torch.Tensor) -> list[int]:
        """Sentences whose real tokens are all the tokenizer's special tokens ([CLS], [SEP], ...):
        an empty text, which has no word to explain. The unknown token ([UNK], what emoji or runes
        become) stands for a word, so a sentence of unknown words is not empty."""
        ids = self.ids(inputs)
        special = set(getattr(tokenizer, "all_special_ids", None) or ()) - {getattr(tokenizer, "unk_token_id", None)}
        if ids is None or not special:
            return []
        is_special = torch.isin(ids.cpu(), torch.tensor(sorted(special), dtype=ids.dtype))
        mask = mask.cpu()
        return [b for b in range(mask.shape[0]) if bool((is_special[b] | ~mask[b]).all())]
