"""``probe.attach``: Phi built by forward hooks, from the embedding to any named layer.

A hook on the embedding module swaps its output for the noisy copies; hooks on the attached layers
record their outputs, and after the last of them a private exception stops the forward pass. The
hooks are installed on entering the ``with`` block and removed on leaving it, whatever happens; in
between they do nothing unless ``explain`` or ``regularization`` is running.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from tqdm.auto import tqdm

from ._functional import check_scale_rate, settings_from
from ._noise import sentence_seeds
from ._objective import as_regularization, feature_weights, full_weight
from ._results import Explanation, Sweep
from ._solver import solve
from .adapters import Adapter, choose
from .errors import InputError, LayerError, ModelError, ProbeError, close_matches

Select = Callable[[torch.Tensor], torch.Tensor]


class _StopForward(Exception):
    """Raised by the last attached layer's hook: nothing after it is needed."""


_RUNNING: weakref.WeakSet[nn.Module] = weakref.WeakSet()
"""The hooked modules of every attach running ``explain`` or ``regularization`` right now."""
_RUNNING_LOCK = threading.Lock()


class attach:
    """Explain named layers of ``model`` without writing Phi: ``with probe.attach(model, name) as p``.

    ``layers`` is one dotted module name (``explain`` returns an Explanation) or a list of them
    (a Sweep). ``select`` picks what to explain from a layer's output (a position, a neuron, a
    logit); ``adapter`` forces an adapter by name; ``embedding`` names the module to perturb;
    ``tokenizer`` turns token ids into words (found next to a HuggingFace model when omitted).

    >>> with probe.attach(model, "encoder.layer.2") as p:
    ...     reg = p.regularization(corpus)
    ...     exp = p.explain(tokenizer("a fine film", return_tensors="pt"), regularization=reg)
    """

    def __init__(
        self,
        model: nn.Module,
        layers: str | Sequence[str],
        *,
        select: Select | None = None,
        adapter: str | None = None,
        embedding: str | None = None,
        tokenizer=None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"attach takes a torch.nn.Module, got {type(model).__name__}; load the model first")
        self._single = isinstance(layers, str)
        self._names = [layers] if self._single else [str(n) for n in layers]
        if not self._names:
            raise InputError("attach needs at least one layer name")
        if len(set(self._names)) != len(self._names):
            raise InputError(f"layer names repeat in {self._names}; name each layer once")
        if select is not None and not callable(select):
            raise InputError("select must be a function of the layer's output, e.g. select=lambda h: h[:, 0]")
        modules = dict(model.named_modules())
        for name in self._names + ([embedding] if embedding is not None else []):
            if name not in modules:
                raise LayerError(f"the model has no submodule {name!r}{close_matches(name, modules)} (list them with `probe layers MODEL`)")
        self.model = model
        self._layers = [modules[n] for n in self._names]
        self.adapter: Adapter = choose(model, self._layers, adapter)
        self._embedding = modules[embedding] if embedding is not None else self.adapter.embedding()
        self.adapter.embedding_module = self._embedding
        self._select = select
        self._tokenizer = tokenizer if tokenizer is not None else _tokenizer_beside(model)
        self._hooks: list = []
        self._hooked: list[nn.Module] = []
        self._active = False
        self._replacement: torch.Tensor | None = None
        self._embedded: tuple[torch.Tensor, object] | None = None
        self._captured: dict[str, torch.Tensor] = {}
        self._needed: list[str] = self._names
        self._tokens = 0

    @property
    def layers(self) -> list[str]:
        """The attached layer names, in the order results list them."""
        return list(self._names)

    def __enter__(self) -> "attach":
        if self._hooks:
            raise InputError("this attach is already entered; use one `with` block at a time")
        try:
            candidates = [self._embedding] if self._embedding is not None else [m for m in self.model.modules() if isinstance(m, nn.Embedding)]
            if not candidates:
                raise LayerError("the model has no nn.Embedding; name the module whose output is the word embedding with embedding='name'")
            for module in candidates:
                self._hooks.append(module.register_forward_hook(self._on_embedding))
            for name, module in zip(self._names, self._layers):
                self._hooks.append(module.register_forward_hook(self._on_layer(name)))
            self._hooked = [self.model, *candidates, *self._layers]
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._remove()

    def _remove(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        self._hooked = []
        self._active = False

    def _on_embedding(self, module: nn.Module, args, output):
        if not self._active or self._embedded is not None:
            return None
        if self._embedding is None:
            self._embedding = module
            self.adapter.embedding_module = module
        if module is not self._embedding:
            return None
        if not isinstance(output, torch.Tensor) or output.ndim != 3:
            raise LayerError(f"the embedding module returns {_describe(output)}, not [batch, tokens, features]; name another with embedding='name'")
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
            if not self._active or name in self._captured or name not in self._needed:
                return None
            if self._embedded is None:
                raise LayerError(f"layer {name!r} runs before the embedding, so noise on the words cannot reach it; attach a later layer")
            value = self._selected(name, self.adapter.output(module, output, self._tokens))
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise LayerError(f"layer {name!r} gives {_describe(value)}, not a float tensor; pass select= to pick a tensor from it")
            # one number per sentence (a neuron, a logit) is a state of one feature
            self._captured[name] = value[:, None] if value.ndim == 1 else value
            if len(self._captured) == len(self._needed):
                raise _StopForward
            return None

        return hook

    def _selected(self, name: str, value):
        """``select(value)``; its failure is the user's select at fault, not the model."""
        if self._select is None:
            return value
        try:
            return self._select(value)
        except Exception as err:
            raise InputError(f"select failed on the output of layer {name!r} ({_describe(value)}): {type(err).__name__}: {err}") from err

    def _run(self, inputs, replacement: torch.Tensor | None = None, needed: Iterable[int] | None = None) -> list[torch.Tensor]:
        """One forward pass of ``inputs``, embeddings replaced by ``replacement``; the attached
        outputs numbered ``needed`` (all by default). The pass stops after the last of them."""
        if not self._hooks:
            raise InputError("use attach as a context manager: `with probe.attach(model, layer) as p: p.explain(...)`")
        self._needed = self._names if needed is None else [self._names[i] for i in needed]
        self._embedded, self._captured, self._replacement, self._active = None, {}, replacement, True
        try:
            _call(self.model, inputs)
        except _StopForward:
            pass
        except ProbeError:
            raise
        except Exception as err:
            raise ModelError(f"the model rejected the inputs: {type(err).__name__}: {err}") from err
        finally:
            self._active, self._replacement = False, None
        if self._embedded is None:
            raise LayerError("the forward pass never reached the embedding module; name it with embedding='name'")
        missing = [n for n in self._needed if n not in self._captured]
        if missing:
            raise LayerError(f"the forward pass never reached layer(s) {missing}; attach layers the model runs")
        if replacement is not None:
            _check_finite_under_noise(self._captured)
        return [self._captured[n] for n in self._needed]

    def _clean(self, inputs):
        """The unperturbed pass: embeddings [B, n, K], token mask [B, n], attached outputs."""
        with torch.no_grad():
            outputs = self._run(inputs)
        x, embedding_input = self._embedded
        batch, tokens = x.shape[:2]
        if not torch.isfinite(x).all():
            raise ModelError("the embedding module's output holds NaN or inf; check the model's weights (are they loaded?)")
        mask = self.adapter.token_mask(inputs, embedding_input, batch, tokens).to(x.device)
        if mask.shape != (batch, tokens):
            raise InputError(f"the mask has shape {tuple(mask.shape)} but the ids have shape {(batch, tokens)}; pass a mask that matches the ids")
        if not mask.any(1).all():
            raise InputError("a sentence has no real tokens (empty text?); explain sentences of at least one token")
        for name, out in zip(self._names, outputs):
            if out.shape[:1] != (batch,):
                raise LayerError(f"layer {name!r} gives shape {tuple(out.shape)}, whose first axis is not the batch of {batch}; use select= to make it batch first")
            if not torch.isfinite(out).all():
                raise ModelError(f"layer {name!r} holds NaN or inf for these inputs, before any noise; probe explains finite hidden states: check the model's weights and inputs")
        return x.detach(), mask, [o.detach() for o in outputs]

    def _valid(self, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        """Which elements of the batched output ``out`` belong to real tokens, or None when all do."""
        axis = self.adapter.length_axis(out.shape[1:], mask.shape[1])
        if axis is None:
            return None
        shape = [out.shape[0]] + [1] * (out.ndim - 1)
        shape[axis + 1] = mask.shape[1]
        return mask.reshape(shape)

    def regularization(self, corpus: Iterable, *, progress: bool = False):
        """Per-feature std of each attached output over ``corpus`` (an iterable of model inputs, or
        one padded batch), each sentence first averaged over its real tokens: a tensor, or a
        {layer: tensor} dict.

        >>> reg = p.regularization(tokenizer(sentence, return_tensors="pt") for sentence in corpus)
        """
        if isinstance(corpus, (Mapping, torch.Tensor)):  # iterating would give keys or rows, not batches
            corpus = [corpus]
        per_layer: list[list[torch.Tensor]] = [[] for _ in self._names]
        with self._model_state():
            for inputs in tqdm(corpus, disable=not progress, desc="regularization", unit="batch"):
                _, mask, outputs = self._clean(self._prepared(inputs))
                for o, out in enumerate(outputs):
                    valid = self._valid(out, mask)
                    axis = self.adapter.length_axis(out.shape[1:], mask.shape[1])
                    if valid is None:
                        per_layer[o].append(out.to(torch.float64))
                    else:
                        v = valid.to(torch.float64).expand_as(out)
                        per_layer[o].append((out.to(torch.float64) * v).sum(axis + 1, keepdim=True) / v.sum(axis + 1, keepdim=True))
        if not per_layer[0]:
            raise InputError("the corpus is empty; pass an iterable of model inputs (e.g. tokenizer outputs)")
        result = {}
        for name, states in zip(self._names, per_layer):
            shapes = {tuple(s.shape[1:]) for s in states}
            if len(shapes) != 1:
                raise LayerError(f"layer {name!r} gives outputs of different shapes {sorted(shapes)} over the corpus, and no axis runs over the tokens; use select=")
            result[name] = torch.cat(states).std(0, unbiased=False).to(torch.float32)
        return result[self._names[0]] if self._single else result

    def explain(
        self,
        inputs,
        *,
        words=None,
        regularization=None,
        scale: float | None = None,
        rate: float = 0.1,
        seed: int = 0,
        progress: bool = False,
        **solver,
    ):
        """Per-word sigma of every attached layer for ``inputs`` (what you pass to the model).

        Returns an Explanation (one layer named as a string) or a Sweep (a list of names); for a
        padded batch of B > 1 sentences, a list of B of them, each over that sentence's real tokens.
        ``seed`` is the first sentence's seed; sentence ``b`` uses ``seed + b``.

        >>> exp = p.explain(tokenizer("a fine film", return_tensors="pt"), seed=0, samples=32)
        """
        settings = settings_from(solver)
        scale, rate = check_scale_rate(self._default_scale() if scale is None else scale, rate)
        with self._model_state():
            inputs = self._prepared(inputs)
            x, mask, clean = self._clean(inputs)
            batch = x.shape[0]
            empty = self.adapter.only_special(inputs, self._tokenizer, mask)
            if empty:
                raise InputError(f"sentence(s) {empty} hold only special tokens such as [CLS] and [SEP]: the text is empty; explain sentences with at least one word")
            sentence_words = [self._words(inputs, words, b, mask[b], batch) for b in range(batch)]
            regs = self._regularizations(regularization, clean)
            weights = []
            for name, out, r in zip(self._names, clean, regs):  # a loop, so warnings point at the caller
                inverse = None if r is None else feature_weights(r, f"the regularization of {name!r}")
                weights.append(self._weights(out, mask, inverse))
            bar = tqdm(total=settings.max_steps, disable=not progress, desc="explain", unit="step")
            with bar:
                solutions = solve(
                    lambda rows, xb, needed: self._run(self.adapter.index(inputs, rows, batch), xb, needed),
                    x,
                    mask,
                    clean,
                    weights,
                    scale=scale,
                    rate=rate,
                    seeds=sentence_seeds(seed, x, mask, self.adapter.ids(inputs)),
                    settings=settings,
                    progress=lambda step: bar.update(1),
                )
        results = []
        for b in range(batch):
            per_layer = {}
            for o, name in enumerate(self._names):
                s = solutions[b][o]
                per_layer[name] = Explanation(
                    sigma=s.sigma,
                    words=sentence_words[b],
                    scale=scale,
                    rate=rate,
                    width=x.shape[2],
                    layer=name,
                    regularization=None if regs[o] is None else regs[o].to(torch.float32).cpu(),
                    loss=s.loss,
                    converged=s.converged,
                    steps=s.steps,
                    settings={**settings.as_metadata(), "seed": str(seed + b), "adapter": self.adapter.name},
                    curve=s.curve,
                )
            results.append(per_layer[self._names[0]] if self._single else Sweep(per_layer))
        return results[0] if batch == 1 else results

    def _default_scale(self) -> float:
        """10 x the std of the word-embedding weights, the seed's advice."""
        weight = self.adapter.word_embedding_weight(self._embedding)
        if weight is None:
            raise InputError("no word-embedding weights to set the default scale; pass scale=")
        _check_loaded(self.model)
        std = float(weight.detach().float().std())
        if not math.isfinite(std):
            raise ModelError("the word-embedding weights hold NaN or inf, so they cannot set the default scale; check the model's weights, or pass scale=")
        return 10 * std

    def _regularizations(self, regularization, clean: list[torch.Tensor]) -> list[torch.Tensor | None]:
        if regularization is None:
            return [None] * len(self._names)
        if isinstance(regularization, Mapping):
            unknown = set(regularization) - set(self._names)
            if unknown:
                raise InputError(f"regularization names layers {sorted(unknown)} that are not attached; attached: {self._names}")
            return [None if regularization.get(n) is None else as_regularization(regularization[n], out[0], f"regularization of {n!r}") for n, out in zip(self._names, clean)]
        if len(self._names) > 1:
            raise InputError("several layers are attached: pass regularization as {layer name: array}, e.g. the dict p.regularization(corpus) returns")
        return [as_regularization(regularization, clean[0][0])]

    def _weights(self, out: torch.Tensor, mask: torch.Tensor, inverse: torch.Tensor | None) -> torch.Tensor:
        """Every sentence's full weight of ``out``, padding at 0; ``inverse`` is 1/r**2 or None."""
        valid = self._valid(out, mask)
        return torch.stack([full_weight(out[b], None if valid is None else valid[b], inverse) for b in range(out.shape[0])])

    def _words(self, inputs, words, b: int, mask: torch.Tensor, batch: int) -> list[str]:
        """Sentence ``b``'s words, checked before the solve so that a wrong list costs nothing."""
        count = int(mask.sum())
        if words is not None and batch > 1 and (isinstance(words, str) or len(words) != batch):
            raise InputError(f"the batch has {batch} sentences but words is not a list of {batch} word lists; pass one list per sentence")
        if words is not None:
            chosen = words[b] if batch > 1 else words
            if isinstance(chosen, str) or len(chosen) != count:
                got = "a string" if isinstance(chosen, str) else f"{len(chosen)} words"
                raise InputError(f"sentence {b} has {count} real tokens but words gives {got}; pass one word per token" + (" for each sentence" if batch > 1 else ""))
            return [str(w) for w in chosen]
        found = self.adapter.words(inputs, self._tokenizer, b, mask)
        return found if found is not None and len(found) == count else [str(i) for i in range(count)]

    def _prepared(self, inputs):
        """The inputs moved to the model's device and checked by the adapter, before anything runs."""
        device = _device(self.model, self._embedding)
        try:
            moved = self.adapter.to_device(inputs, device)
        except (RuntimeError, NotImplementedError) as err:
            raise InputError(f"cannot move the inputs to the model's device {device}: {err}; pass tensors that hold data (not on the 'meta' device)") from None
        self.adapter.check(moved)
        return moved

    @contextmanager
    def _model_state(self):
        """Eval mode and autograd available inside (even under the caller's ``torch.inference_mode``);
        every module's train flag restored on the way out, exceptions included. One run at a time
        per module: another attach's hooks on the same modules would see this one's noise."""
        with self._running():
            modes = [(m, m.training) for m in self.model.modules()]
            self.model.eval()
            try:
                with torch.inference_mode(False):
                    yield
            finally:
                for module, mode in modes:
                    module.training = mode

    @contextmanager
    def _running(self) -> Iterator[None]:
        """Claims the hooked modules for this attach while it runs; refuses when another run holds one."""
        with _RUNNING_LOCK:
            if any(m in _RUNNING for m in self._hooked):
                raise InputError(
                    "another probe.attach is explaining this model right now (in another thread, or called from inside "
                    "select or the model's forward); run one explain at a time per model, or give each thread its own "
                    "copy.deepcopy(model)"
                )
            _RUNNING.update(self._hooked)
        try:
            yield
        finally:
            with _RUNNING_LOCK:
                for module in self._hooked:
                    _RUNNING.discard(module)


def _call(model: nn.Module, inputs):
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _device(model: nn.Module, embedding: nn.Module | None) -> torch.device:
    """Where the inputs go: the embedding module's device (a model split over devices starts
    there), else the model's first parameter's."""
    _check_loaded(model)
    for source in (embedding, model):
        first = None if source is None else next(source.parameters(), None)
        if first is not None:
            return first.device
    return torch.device("cpu")


def _check_loaded(model: nn.Module) -> None:
    """Weights on the 'meta' device hold no values: nothing can run."""
    if any(p.is_meta for p in model.parameters()):
        raise InputError(
            "the model's weights are on the 'meta' device, so they were never loaded (init_empty_weights, "
            "device='meta'); load them (from_pretrained, or load_state_dict(..., assign=True)) before explaining"
        )


def _check_finite_under_noise(captured: Mapping[str, torch.Tensor]) -> None:
    """A layer finite on the clean input but NaN or inf with noise would corrupt sigma silently."""
    for name, out in captured.items():
        if not torch.isfinite(out).all():
            raise ModelError(
                f"layer {name!r} gives NaN or inf once noise is added to the embeddings (it is finite without); "
                "pass a smaller scale= so the noise stays within the range the model handles"
            )


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def _tokenizer_beside(model: nn.Module):
    """The tokenizer saved in a HuggingFace model's folder, or None."""
    import os

    path = getattr(getattr(model, "config", None), "_name_or_path", None) or getattr(model, "name_or_path", None)
    if not path or not os.path.isdir(str(path)):
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path))
    except Exception:  # a folder without tokenizer files: words fall back to token indices
        return None
