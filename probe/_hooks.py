"""The hook runner: one forward pass with the embedding swapped and named layers recorded.

baukit's ``Trace`` pattern: hooks are installed on entering and removed on leaving, whatever happens;
the embedding's hook substitutes a replacement output (the noisy copies); each attached layer's hook
records its output, and after the last one needed a private exception stops the forward pass.
Hooks act only for the thread that started the run: another thread's forward pass of the same model
goes through untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .errors import InputError, LayerError, ModelError, ProbeError

Select = Callable[[torch.Tensor], torch.Tensor]


class _StopForward(Exception):
    """Raised by the last needed layer's hook: nothing after it is needed."""


class HookRunner:
    """Runs a model with hooks on its embedding module and on named layers.

    ``embedding`` is the module whose output is perturbed, or None for the first ``nn.Embedding``
    the forward pass calls. ``adapter`` reads the layouts (batch axis, a layer's output).
    """

    def __init__(self, model: nn.Module, names: Sequence[str], layers: Sequence[nn.Module], embedding: nn.Module | None, adapter, select: Select | None) -> None:
        self.model = model
        self.names = list(names)
        self.layers = list(layers)
        self.embedding = embedding
        self.adapter = adapter
        self.select = select
        self._handles: list = []
        self._owner: int | None = None
        self._replacement: torch.Tensor | None = None
        self._needed: list[str] = self.names
        self._embedded: tuple[torch.Tensor, object] | None = None
        self._captured: dict[str, torch.Tensor] = {}
        self._tokens = 0

    @property
    def installed(self) -> bool:
        return bool(self._handles)

    @property
    def modules(self) -> list[nn.Module]:
        """Every module a hook sits on, and the model."""
        return [self.model, *self._candidates(), *self.layers]

    def install(self) -> None:
        """Puts the hooks on; on any failure none is left behind."""
        try:
            candidates = self._candidates()
            if not candidates:
                raise LayerError("the model has no nn.Embedding; name the module whose output is the word embedding with embedding='name'")
            for module in candidates:
                self._handles.append(module.register_forward_hook(self._on_embedding))
            for name, module in zip(self.names, self.layers):
                self._handles.append(module.register_forward_hook(self._on_layer(name)))
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._owner = None

    def _candidates(self) -> list[nn.Module]:
        if self.embedding is not None:
            return [self.embedding]
        return [m for m in self.model.modules() if isinstance(m, nn.Embedding)]

    def run(self, inputs, replacement: torch.Tensor | None = None, needed: Sequence[int] | None = None) -> tuple[torch.Tensor, object, list[torch.Tensor]]:
        """One forward pass of ``inputs`` with the embedding output replaced by ``replacement``
        ([batch, tokens, features], batch first) when given.

        Returns the embedding output (batch first), the embedding module's input, and the outputs of
        the layers numbered ``needed`` (all by default). The pass stops after the last of them.
        """
        self._needed = self.names if needed is None else [self.names[i] for i in needed]
        self._embedded, self._captured, self._replacement = None, {}, replacement
        self._owner = threading.get_ident()
        try:
            _call(self.model, inputs)
        except _StopForward:
            pass
        except ProbeError:
            raise
        except Exception as err:
            raise ModelError(f"the model rejected the inputs: {type(err).__name__}: {err}") from err
        finally:
            self._owner, self._replacement = None, None
        if self._embedded is None:
            raise LayerError("the forward pass never reached the embedding module; name it with embedding='name'")
        missing = [n for n in self._needed if n not in self._captured]
        if missing:
            raise LayerError(f"the forward pass never reached layer(s) {missing}; attach layers the model runs")
        outputs = [self._captured[n] for n in self._needed]
        if replacement is not None:
            _check_finite_under_noise(self._needed, outputs)
        first, embedding_input = self._embedded
        return first, embedding_input, outputs

    def _mine(self) -> bool:
        """Whether the calling thread is the one running: other threads' passes are left alone."""
        return self._owner is not None and self._owner == threading.get_ident()

    def _on_embedding(self, module: nn.Module, args, output):
        if not self._mine() or self._embedded is not None:
            return None
        if self.embedding is None:
            self.embedding = module
        if module is not self.embedding:
            return None
        if not isinstance(output, torch.Tensor) or output.ndim != 3:
            raise LayerError(f"the embedding module returns {describe(output)}, not [batch, tokens, features]; name another with embedding='name'")
        first = self.adapter.embedding_to_batch_first(output)
        if 0 in first.shape[:2]:
            raise InputError(f"the input holds {first.shape[0]} sentences of {first.shape[1]} tokens (empty text?); explain at least one sentence of at least one token")
        self._tokens = first.shape[1]
        self._embedded = (first, args[0] if args else None)
        if self._replacement is None:
            return None
        return self.adapter.embedding_from_batch_first(self._replacement.to(output.dtype))

    def _on_layer(self, name: str):
        def hook(module: nn.Module, args, output):
            if not self._mine() or name in self._captured or name not in self._needed:
                return None
            if self._embedded is None:
                raise LayerError(
                    f"layer {name!r} runs before the embedding module probe perturbs: either it comes before the word "
                    "embeddings (attach a later layer), or the model calls another module for them than the one probe "
                    "hooks (name the one its forward calls with embedding='name', e.g. 'encoder.embed_tokens')"
                )
            value = self._selected(name, self.adapter.output(module, output, self._tokens))
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise LayerError(f"layer {name!r} gives {describe(value)}, not a float tensor; pass select= to pick a tensor from it")
            # one number per sentence (a neuron, a logit) is a state of one feature
            self._captured[name] = value[:, None] if value.ndim == 1 else value
            if len(self._captured) == len(self._needed):
                raise _StopForward
            return None

        return hook

    def _selected(self, name: str, value):
        """``select(value)``; its failure is the user's select at fault, not the model."""
        if self.select is None:
            return value
        try:
            return self.select(value)
        except Exception as err:
            raise InputError(f"select failed on the output of layer {name!r} ({describe(value)}): {type(err).__name__}: {err}") from err


def _call(model: nn.Module, inputs):
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _check_finite_under_noise(names: Sequence[str], outputs: Sequence[torch.Tensor]) -> None:
    """A layer finite on the clean input but NaN or inf with noise would corrupt sigma silently."""
    for name, out in zip(names, outputs):
        if not torch.isfinite(out).all():
            raise ModelError(
                f"layer {name!r} gives NaN or inf once noise is added to the embeddings (it is finite without); "
                "pass a smaller scale= so the noise stays within the range the model handles"
            )


def describe(value) -> str:
    """A value in words, for error messages: a tensor's dtype and shape, else its type."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"
