"""The hook runner: one forward pass with the embedding swapped and named layers recorded.

baukit's ``Trace`` pattern: hooks are installed on entering and removed on leaving, whatever happens;
the embedding's hook substitutes a replacement output (the noisy copies); each attached layer's hook
records its output, and after the last one needed a private exception stops the forward pass.
Hooks act only for the thread that started the run; another thread's forward pass of the same model
meanwhile is refused (``model_state.running``), since the model is in probe's eval mode.

A module may run several times in one pass (a weight-shared block): the clean pass runs the model to
the end and counts every layer's calls, so that ``call=k`` (negative from the end) names one of them;
the noisy passes then stop at that call. The solver's arithmetic stays in float32 or better: a half
precision model's embedding output and layer outputs are handed over in float32.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .._utils.memory import ADVICE as MEMORY_ADVICE, out_of_memory
from .._utils.text import one_line
from ..errors import InputError, LayerError, ModelError, ProbeError

Select = Callable[[torch.Tensor], torch.Tensor]

_HALF = (torch.float16, torch.bfloat16)


class _StopForward(Exception):
    """Raised by the last needed layer's hook: nothing after it is needed."""


class HookRunner:
    """Runs a model with hooks on its embedding module and on named layers.

    ``embedding`` is the module whose output is perturbed, or None for the first ``nn.Embedding``
    the forward pass calls. ``adapter`` reads the layouts (batch axis, a layer's output). ``calls``
    holds, per layer, which of its calls in one pass to explain (0-based, negative from the end),
    or None: the layer must run once.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], layers: Sequence[nn.Module], embedding: nn.Module | None, adapter, select: Select | None, calls: Sequence[int | None] | None = None, call: Callable | None = None) -> None:
        self.model = model
        self.call = call if call is not None else (lambda inputs: call_model(model, inputs))
        """How one forward pass is made from the inputs (a wrapped model's own way, see ``wrappers``)."""
        self.names = list(names)
        self.layers = list(layers)
        self.embedding = embedding
        self.adapter = adapter
        self.select = select
        self.calls = list(calls) if calls is not None else [None] * len(self.names)
        self.chosen: dict[str, int] = {}
        """Each layer's explained call, as a positive index, from the last clean pass."""
        self._handles: list = []
        self._owner: int | None = None
        self._clean = True
        self._replacement: torch.Tensor | None = None
        self._needed: list[str] = self.names
        self._embedded: tuple[torch.Tensor, object] | None = None
        self._counts: dict[str, int] = {}
        self._seen: dict[str, list[torch.Tensor]] = {}
        self._inputs = None
        self._laid_out = False
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
            for module in self.adapter.layout_modules():
                self._handles.append(module.register_forward_pre_hook(self._on_layout))
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
        the layers numbered ``needed`` (all by default), half precision as float32. Without a
        replacement (the clean pass) the model runs to the end and every layer's calls are counted;
        with one, the pass stops after the last needed output.
        """
        self._needed = self.names if needed is None else [self.names[i] for i in needed]
        self._embedded, self._counts, self._seen = None, {}, {n: [] for n in self._needed}
        self._clean, self._replacement, self._inputs, self._laid_out = replacement is None, replacement, inputs, False
        self._owner = threading.get_ident()
        try:
            with _without_fastpath():
                self.call(inputs)
        except _StopForward:
            pass
        except ProbeError:
            raise
        except Exception as err:
            if out_of_memory(err):
                raise ModelError(f"out of memory while the model ran ({type(err).__name__}: {one_line(str(err), 120)}); {MEMORY_ADVICE}") from err
            if not (self._clean and self._embedded is not None and all(self._seen.values())):
                raise ModelError(f"the model rejected the inputs: {type(err).__name__}: {err}") from err
            # the model fails after every attached layer ran (e.g. a decoder with no inputs): what ran is the pass
        finally:
            self._owner, self._replacement, self._inputs = None, None, None
        if self._embedded is None:
            raise LayerError("the forward pass never reached the embedding module; name it with embedding='name'")
        missing = [n for n in self._needed if not self._seen[n]]
        if missing:
            raise LayerError(f"the forward pass never reached layer(s) {missing}; attach layers the model runs")
        if self._clean:
            self.chosen = {n: self._choose(n, k) for n, k in zip(self.names, self.calls)}
        outputs = [self._seen[n][self.chosen[n] if self._clean else 0] for n in self._needed]
        if replacement is not None:
            _check_finite_under_noise(self._needed, outputs)
        raw, embedding_input = self._embedded
        return _for_solver(self.adapter.embedding_to_batch_first(raw)), embedding_input, outputs

    def _choose(self, name: str, call: int | None) -> int:
        """The positive index of the explained call of ``name``, from how often it ran."""
        count = self._counts[name]
        if call is None:
            if count > 1:
                raise LayerError(
                    f"layer {name!r} runs {count} times in one forward pass (a shared or reused module), so which "
                    f"call to explain is ambiguous; choose one with probe.attach(model, {name!r}, call=k): "
                    f"k=0 for the first call, k={count - 1} or k=-1 for the last"
                )
            return 0
        if not -count <= call < count:
            raise LayerError(f"layer {name!r} runs {count} time(s) in one forward pass, so call={call} does not exist; choose k in 0..{count - 1} (or -{count}..-1 from the end)")
        return call % count

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
        embedding_input = args[0] if args else None
        if self._replacement is None:
            self.adapter.observe(self._inputs, embedding_input, output, None)
        first = self.adapter.embedding_to_batch_first(output)
        if 0 in first.shape[:2]:
            raise InputError(f"the input holds {first.shape[0]} sentences of {first.shape[1]} tokens (empty text?); explain at least one sentence of at least one token")
        self._tokens = first.shape[1]
        if self._replacement is None:  # kept as produced: the model may change its output in place later
            self._embedded = (output.detach().clone(), embedding_input)
            return None
        self._embedded = (output, embedding_input)
        # a copy: a model that changes the embedding output in place must not change the solver's tensor
        return self.adapter.embedding_from_batch_first(self._replacement.to(output.dtype, copy=True))

    def _on_layout(self, module: nn.Module, args) -> None:
        """The clean pass's first layout module shows the adapter what it received."""
        if not self._mine() or not self._clean or self._embedded is None or self._laid_out:
            return
        self._laid_out = True
        raw, embedding_input = self._embedded
        self.adapter.observe(self._inputs, embedding_input, raw, (module, args))
        self._tokens = self.adapter.embedding_to_batch_first(raw).shape[1]

    def _on_layer(self, name: str):
        def hook(module: nn.Module, args, output):
            if not self._mine():
                return None
            call = self._counts[name] = self._counts.get(name, 0) + 1
            if name not in self._needed or (not self._clean and (self._seen[name] or call - 1 != self.chosen[name])):
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
            # a noisy pass stops at its last needed output: only what runs after a capture can change it
            stops = not self._clean and all(self._seen[n] for n in self._needed if n != name)
            # one number per sentence (a neuron, a logit) is a state of one feature
            self._seen[name].append(_captured(value[:, None] if value.ndim == 1 else value, copy=not stops))
            if stops:
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


def _for_solver(value: torch.Tensor) -> torch.Tensor:
    """A half precision tensor as float32 (differentiably): the solver's arithmetic is float32 or better."""
    return value.float() if value.dtype in _HALF else value


def _captured(value: torch.Tensor, copy: bool) -> torch.Tensor:
    """A layer's output as it is when produced, for the solver: a copy (differentiable) when more of
    the pass runs after it, so that an in-place operation later (``ReLU(inplace=True)``, a residual
    ``+=``) cannot change it."""
    if value.dtype in _HALF:
        return value.float()
    return value.clone() if copy else value


_FASTPATH_LOCK = threading.Lock()
_FASTPATH_USERS = [0, True]
"""How many runs hold torch's MHA fast path off, and the setting they found."""


@contextmanager
def _without_fastpath():
    """torch's MHA fast path off: under no_grad with a key padding mask ``nn.TransformerEncoder``
    would return NestedTensors, which hooks cannot read or replace. Restored by the last run out."""
    with _FASTPATH_LOCK:
        if _FASTPATH_USERS[0] == 0:
            _FASTPATH_USERS[1] = torch.backends.mha.get_fastpath_enabled()
            torch.backends.mha.set_fastpath_enabled(False)
        _FASTPATH_USERS[0] += 1
    try:
        yield
    finally:
        with _FASTPATH_LOCK:
            _FASTPATH_USERS[0] -= 1
            if _FASTPATH_USERS[0] == 0:
                torch.backends.mha.set_fastpath_enabled(_FASTPATH_USERS[1])


def call_model(model: nn.Module, inputs):
    """The model called as the README says: a mapping as keywords, a tuple as positional arguments."""
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
