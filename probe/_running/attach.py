"""``probe.attach``: Phi built by forward hooks, from the embedding to any named layer.

The hooks (``_hooks.HookRunner``) are installed on entering the ``with`` block and removed on
leaving it, whatever happens; in between they do nothing unless ``explain``, ``explain_batch`` or
``regularization`` is running, and then only for the calling thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .buckets import bucket_pass, buckets
from .clean_pass import CleanPass, batch_weightings, batch_weights, clean_pass, sentence_mean
from .._utils.checks import check_scale_rate, check_seed, check_words, settings_from
from .hooks import HookRunner, Select
from .model_state import as_tokenizer, calls_per_layer, check_loaded, device_of, model_name, running, tokenizer_beside
from .._method.noise import sentence_seeds
from .._method.objective import as_regularization, feature_weights
from .._results.explanation import Explanation
from .scale import default_scale, flag_ceiling
from .._method.settings import SolverSettings
from .._method.solver import solve
from .._results.sweep import Sweep
from .._results.words import tokenizer_word_ids
from ..adapters import choose
from ..errors import InputError, LayerError
from .wrappers import held, refuse_quantized, warn_if_unsure


class attach:
    """Explain named layers of ``model`` without writing Phi: ``with probe.attach(model, name) as p``.

    ``layers`` is one dotted module name (results are Explanations) or a list of them (Sweeps).
    ``select`` picks what to explain from a layer's output (a position, a neuron, a logit);
    ``adapter`` forces an adapter by name; ``embedding`` names the module to perturb; ``tokenizer``
    turns token ids into words: a HuggingFace tokenizer, or a vocabulary (a list of words by id, or
    an {id: word} dict); found next to a HuggingFace model when omitted. ``call`` picks
    which call of a module that runs several times per forward pass to explain (0-based, -1 the
    last): one int for every attached layer, a list with one entry per layer, or {name: k}.
    A wrapped model (PEFT, SentenceTransformer, compiled, DataParallel) is explained exactly as the
    model inside, whose own layer names work too (``probe.adapters.register_wrapper`` adds a wrapper).

    >>> with probe.attach(model, "encoder.layer.2") as p:
    ...     exp = p.explain(tokenizer("a fine film", return_tensors="pt"), samples=4, max_steps=2)
    >>> exp.layer
    'encoder.layer.2'
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
        call: int | Sequence[int | None] | Mapping[str, int] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise InputError(f"attach takes a torch.nn.Module, got {type(model).__name__}; load the model first")
        if isinstance(model, torch.jit.ScriptModule):
            raise InputError(
                "TorchScript models take no hooks, so probe cannot run their layers; build the model's Python class "
                "and load its weights instead (model = MyModel(); model.load_state_dict(state_dict))"
            )
        self._single = isinstance(layers, str)
        if not self._single and not (isinstance(layers, Sequence) and all(isinstance(n, str) for n in layers)):
            raise InputError(f"layers must be a layer name or a list of names, got {type(layers).__name__}; e.g. 'encoder.layer.2'")
        names = [layers] if self._single else list(layers)
        if not names:
            raise InputError("attach needs at least one layer name")
        if len(set(names)) != len(names):
            raise InputError(f"layer names repeat in {names}; name each layer once")
        if select is not None and not callable(select):
            raise InputError("select must be a function of the layer's output, e.g. select=lambda h: h[:, 0]")
        for option, value in (("embedding", embedding), ("adapter", adapter)):
            if value is not None and not isinstance(value, str):
                raise InputError(f"{option} must be a name (a string), got {type(value).__name__}")
        self._held = held(model, names + ([embedding] if embedding is not None else []))
        modules = self._held.modules
        self.model = model
        layer_modules = [modules[n] for n in names]
        scripted = [n for n in names + ([embedding] if embedding else []) if isinstance(modules[n], torch.jit.ScriptModule)]
        if scripted:
            raise LayerError(f"module(s) {scripted} are TorchScript, which takes no hooks; build them from their Python class and load their weights")
        refuse_quantized(model)
        self.adapter = choose(self._held.model, layer_modules, adapter)
        self.adapter.called = self._held.run
        warn_if_unsure(self._held, self.adapter, forced=adapter is not None, embedding_given=embedding is not None)
        chosen = modules[embedding] if embedding is not None else self.adapter.embedding()
        self._runner = HookRunner(self._held.run, names, layer_modules, chosen, self.adapter, select, calls_per_layer(call, names), call=self._held.call)
        self._tokenizer = as_tokenizer(tokenizer) if tokenizer is not None else tokenizer_beside(model)
        self._scale: float | None = None

    @property
    def layers(self) -> list[str]:
        """The attached layer names, in the order results list them.

        >>> probe.attach(model, ["encoder.layer.0", "encoder.layer.1"]).layers
        ['encoder.layer.0', 'encoder.layer.1']
        """
        return list(self._runner.names)

    def __enter__(self) -> "attach":
        if self._runner.installed:
            raise InputError("this attach is already entered; use one `with` block at a time")
        self._runner.install()
        return self

    def __exit__(self, *exc) -> None:
        self._runner.remove()

    def regularization(self, corpus: Iterable, *, progress: bool = False):
        """Per-feature std of each attached output over ``corpus`` (an iterable of model inputs, or
        one padded batch), each sentence first averaged over its real tokens: a tensor for one
        attached layer, a {layer: tensor} dict for a list.

        >>> with probe.attach(model, "encoder.layer.2") as p:
        ...     reg = p.regularization(tokenizer(s, return_tensors="pt") for s in ["a fine film", "a dull plot"])
        >>> reg.shape                # the token axis is averaged away, one std per feature
        torch.Size([1, 384])
        """
        if isinstance(corpus, (Mapping, torch.Tensor, tuple)):  # iterating would give keys or rows, not batches
            corpus = [corpus]
        names = self._runner.names
        per_layer: list[list[torch.Tensor]] = [[] for _ in names]
        with self._running():
            for inputs in tqdm(corpus, disable=not progress, desc="regularization", unit="batch"):
                clean = clean_pass(self._runner, self._prepared(inputs))
                for o, out in enumerate(clean.outputs):
                    per_layer[o].append(sentence_mean(self.adapter, out, clean.mask))
        if not per_layer[0]:
            raise InputError("the corpus is empty; pass an iterable of model inputs (e.g. tokenizer outputs)")
        result = {}
        for name, states in zip(names, per_layer):
            shapes = {tuple(s.shape[1:]) for s in states}
            if len(shapes) != 1:
                raise LayerError(f"layer {name!r} gives outputs of different shapes {sorted(shapes)} over the corpus, and no axis runs over the tokens; use select=")
            result[name] = torch.cat(states).std(0, unbiased=False).to(torch.float32)
        return result[names[0]] if self._single else result

    def explain(self, inputs, *, words=None, regularization=None, scale: float | None = None, rate: float = 0.1, seed: int = 0, progress: bool = False, **solver):
        """Per-word sigma of every attached layer for one sentence (``inputs``: what you pass to the
        model). An Explanation for one attached layer, a Sweep for a list; a batch of several
        sentences is refused: use ``explain_batch``.

        >>> with probe.attach(model, "encoder.layer.2") as p:
        ...     exp = p.explain(tokenizer("a fine film", return_tensors="pt"), samples=4, max_steps=2)
        >>> exp.words
        ['[CLS]', 'a', 'fine', 'film', '[SEP]']
        """
        return self._explain(inputs, words, regularization, scale, rate, seed, progress, solver, batch=False)[0]

    def explain_batch(self, inputs, *, words=None, regularization=None, scale: float | None = None, rate: float = 0.1, seed: int = 0, progress: bool = False, **solver) -> list:
        """``explain`` for a padded batch: always a list, one result per sentence over its real
        tokens, even for a batch of one. A sentence's result does not depend on its batch.
        ``words``, when given, is one list per sentence.

        >>> with probe.attach(model, "encoder.layer.2") as p:
        ...     batch = p.explain_batch(tokenizer(["a fine film", "a dull plot"], padding=True, return_tensors="pt"), samples=4, max_steps=2)
        >>> len(batch)
        2
        """
        return self._explain(inputs, words, regularization, scale, rate, seed, progress, solver, batch=True)

    def _explain(self, inputs, words, regularization, scale, rate, seed, progress, solver, *, batch: bool) -> list:
        settings = settings_from(solver, SolverSettings)
        check_seed(seed)
        encoding = inputs  # a tokenizer's BatchEncoding knows its word boundaries; moving it loses them
        with self._running():
            scale, rate = check_scale_rate(self._default_scale() if scale is None else scale, rate)
            inputs = self._prepared(inputs)
            clean = clean_pass(self._runner, inputs)
            count = clean.x.shape[0]
            if not batch and count > 1:
                raise InputError(f"the inputs hold {count} sentences; explain takes one: use p.explain_batch(inputs) for a batch (it returns a list)")
            empty = self.adapter.only_special(inputs, self._tokenizer, clean.mask)
            if empty:
                raise InputError(f"sentence(s) {empty} hold only special tokens such as [CLS] and [SEP]: the text is empty; explain sentences with at least one word")
            sentence_words = self._words(inputs, words, clean.mask, batch)
            word_ids = [self._word_ids(inputs, encoding, b, clean.mask[b]) if words is None else None for b in range(count)]
            regs = self._regularizations(regularization, clean.outputs)
            inverses = self._inverses(regs)
            weightings = [batch_weightings(self.adapter, out, clean.mask, inverse) for out, inverse in zip(clean.outputs, inverses)]
            noise_seeds = sentence_seeds(seed, clean.x, clean.mask, self.adapter.ids(inputs))
            solutions: list = [None] * count
            groups = buckets(clean.mask.sum(1).tolist())
            with tqdm(total=settings.max_steps * len(groups), disable=not progress, desc="explain", unit="step") as bar:
                for rows in groups:
                    found = self._solve(inputs, clean, rows, regs, inverses, [noise_seeds[b] for b in rows], scale, rate, settings, bar)
                    for b, s in zip(rows, found):
                        solutions[b] = s
            flag_ceiling(solutions, self._runner.names, scale)
        meta = {**settings.as_metadata(), "seed": str(seed), "adapter": self.adapter.name, "wrapper": self._held.wrapper, "model": model_name(self.model)}
        # noise_seed: the sentence's own noise stream; probe.explain(..., seed=noise_seed) draws the same noise
        return [self._result(solutions[b], sentence_words[b], word_ids[b], clean, regs, scale, rate, {**meta, "noise_seed": str(noise_seeds[b])}, [w[b] for w in weightings]) for b in range(count)]

    def _solve(self, inputs, clean: CleanPass, rows: list[int], regs, inverses, seeds: list[int], scale: float, rate: float, settings: SolverSettings, bar) -> list:
        """The solutions of sentences ``rows``, solved together at their own padded length."""
        inputs, clean = bucket_pass(self._runner, inputs, clean, rows, regs)
        count = clean.x.shape[0]
        weights = [batch_weights(self.adapter, out, clean.mask, inverse) for out, inverse in zip(clean.outputs, inverses)]
        return solve(
            lambda picked, xb, needed: self._runner.run(self.adapter.index(inputs, picked, count), xb, needed)[2],
            clean.x,
            clean.mask,
            clean.outputs,
            weights,
            scale=scale,
            rate=rate,
            seeds=seeds,
            settings=settings,
            progress=lambda step: bar.update(1),
        )

    def _result(self, solutions, words: list[str], word_ids, clean: CleanPass, regs, scale: float, rate: float, meta: dict, weightings: list[str]):
        calls = self._runner.chosen
        per_layer = {
            name: Explanation.of(s, words=words, word_ids=word_ids, scale=scale, rate=rate, width=clean.x.shape[2], layer=name, regularization=r, settings={**meta, "call": str(calls[name]), "weighting": w})
            for name, s, r, w in zip(self._runner.names, solutions, regs, weightings)
        }
        return next(iter(per_layer.values())) if self._single else Sweep(per_layer)

    def _inverses(self, regs: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """``1 / r**2`` per layer, constant features at 0 (warned about, pointing at the caller)."""
        return [None if r is None else feature_weights(r, f"the regularization of {name!r}") for name, r in zip(self._runner.names, regs)]

    def _default_scale(self) -> float:
        """10 x the std of the perturbed tensor (see ``_scale``), measured once per attach."""
        if self._scale is None:
            check_loaded(self.model)
            embedding = self._runner.embedding
            self._scale = default_scale(embedding, self.adapter.word_embedding_weight(embedding))
        return self._scale

    def _regularizations(self, regularization, clean: list[torch.Tensor]) -> list[torch.Tensor | None]:
        names = self._runner.names
        if regularization is None:
            return [None] * len(names)
        if isinstance(regularization, Mapping):
            unknown = set(regularization) - set(names)
            if unknown:
                raise InputError(f"regularization names layers {sorted(unknown, key=str)} that are not attached; attached: {names}")
            return [None if regularization.get(n) is None else as_regularization(regularization[n], out[0], f"regularization of {n!r}") for n, out in zip(names, clean)]
        if len(names) > 1:
            raise InputError("several layers are attached: pass regularization as {layer name: array}, e.g. the dict p.regularization(corpus) returns")
        return [as_regularization(regularization, clean[0][0])]

    def _words(self, inputs, words, mask: torch.Tensor, batch: bool) -> list[list[str]]:
        """Every sentence's words, checked before the solve so that a wrong list costs nothing."""
        count = mask.shape[0]
        if words is not None:
            given = words if batch else [words]
            if isinstance(given, str) or not isinstance(given, Sequence) or len(given) != count:
                raise InputError(f"the batch has {count} sentences but words is not a list of {count} word lists; pass one list per sentence")
            for b, chosen in enumerate(given):
                real = int(mask[b].sum())
                if isinstance(chosen, str) or not isinstance(chosen, Sequence) or len(chosen) != real:
                    got = "a string" if isinstance(chosen, str) else f"{len(chosen)} words" if isinstance(chosen, Sequence) else f"a {type(chosen).__name__}"
                    raise InputError(f"sentence {b} has {real} real tokens but words gives {got}; pass one word per token")
            return [check_words(chosen, len(chosen)) for chosen in given]
        result = []
        for b in range(count):
            real = int(mask[b].sum())
            found = self.adapter.words(inputs, self._tokenizer, b, mask[b])
            result.append(found if found is not None and len(found) == real else [str(i) for i in range(real)])
        return result

    def _word_ids(self, inputs, encoding, b: int, mask: torch.Tensor) -> list[int | None] | None:
        """Which word each real token of sentence ``b`` is a piece of, when the tokenizer says."""
        ids = self.adapter.ids(inputs)
        if self._tokenizer is None or ids is None:
            return None
        return tokenizer_word_ids(self._tokenizer, ids[b][mask.to(ids.device)].cpu(), encoding if hasattr(encoding, "word_ids") else None, b)

    def _prepared(self, inputs):
        """The inputs moved to the model's device and checked by the adapter, before anything runs."""
        device = device_of(self.model, self._runner.embedding)
        try:
            moved = self.adapter.to_device(inputs, device)
        except (RuntimeError, NotImplementedError) as err:
            raise InputError(f"cannot move the inputs to the model's device {device}: {err}; pass tensors that hold data (not on the 'meta' device)") from None
        self.adapter.check(moved)
        return self.adapter.complete(moved)

    def _running(self):
        if not self._runner.installed:
            raise InputError("use attach as a context manager: `with probe.attach(model, layer) as p: p.explain(...)`")
        return running(self.model, self._runner.modules)
