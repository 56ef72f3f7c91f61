"""The model as the user holds it: wrappers looked through, layer names of either level resolved, and
the models probe would otherwise explain wrongly without a word (warned about, or refused).

``probe.adapters.wrappers`` says what a wrapper is; here a wrapped model becomes a ``Held``: the
real model inside (which the adapter reads), the module probe calls (the real model, unless an
attached layer lies outside it, as a SentenceTransformer's pooling does), and every name that means
one module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .._utils.warnings import warn
from ..adapters import choose
from ..adapters.wrappers import unwrap
from ..errors import LayerError, ModelError, close_matches
from .hooks import call_model


@dataclass
class Held:
    """A model as held: ``model`` is the real model, ``run`` the module probe calls (as one dict
    when ``takes_dict``), ``wrappers`` the kinds of wrapper around it, outermost first."""

    outer: nn.Module
    model: nn.Module
    run: nn.Module
    takes_dict: bool
    wrappers: list[str]
    modules: dict[str, nn.Module]
    runs_compiled: bool

    @property
    def wrapper(self) -> str:
        """The wrappers in words, as results record them: 'peft', 'compiled > DataParallel', or 'none'."""
        return " > ".join(dict.fromkeys(self.wrappers)) or "none"

    def call(self, inputs):
        """One forward pass of ``run`` (eager even where a module was compiled in place)."""
        stance = torch.compiler.set_stance("force_eager") if self.runs_compiled else contextlib.nullcontext()
        with stance:
            if self.takes_dict and isinstance(inputs, Mapping):
                return self.run(dict(inputs))
            return call_model(self.run, inputs)


def held(model: nn.Module, names: Sequence[str]) -> Held:
    """``model`` looked through, with ``names`` (layers and the embedding) resolved to modules."""
    chain = unwrap(model)
    known = _names(model, chain[-1][0])
    resolved = {}
    for name in names:
        if name not in known:
            raise LayerError(f"the model has no submodule {name!r}{close_matches(name, known)} (list them with `probe layers MODEL`)")
        if isinstance(known[name], str):
            raise LayerError(f"{name!r} names different modules in {type(model).__name__} and in the model it wraps; use the full name {known[name]!r}")
        resolved[name] = known[name]
    needed = list(resolved.values())
    level = len(chain) - 1
    while level > 0 and not _holds(chain[level][0], needed):
        level -= 1
    run = chain[level][0]
    wrapper = chain[level][1]
    kinds = [w.kind for _, w in chain if w is not None]
    return Held(model, chain[-1][0], run, bool(wrapper and wrapper.takes_dict), kinds, resolved, _runs_compiled(run))


def _names(outer: nn.Module, inner: nn.Module) -> dict[str, nn.Module | str]:
    """Every module name of the wrapper, and the real model's own names; a name that means
    different modules in the two maps to the wrapper's full name of the real model's module."""
    known: dict[str, nn.Module | str] = dict(outer.named_modules(remove_duplicate=False))
    if inner is outer:
        return known
    prefix = next((n for n, m in outer.named_modules(remove_duplicate=False) if m is inner), type(inner).__name__)
    for name, module in inner.named_modules(remove_duplicate=False):
        if name and known.setdefault(name, module) is not module:
            known[name] = f"{prefix}.{name}"
    return known


def _holds(level: nn.Module, modules: Sequence[nn.Module]) -> bool:
    inside = {id(m) for m in level.modules()}
    return all(id(m) in inside for m in modules)


def _runs_compiled(model: nn.Module) -> bool:
    """Whether the module probe calls would run compiled (compiled in place with ``module.compile()``,
    or a ``torch.compile`` result itself, when the whole model is attached): it would trace probe's
    hooks, so it runs eagerly."""
    return type(model).__name__ == "OptimizedModule" or any(getattr(m, "_compiled_call_impl", None) is not None for m in model.modules())


def refuse_quantized(model: nn.Module) -> None:
    """int8 layers of ``torch.ao.quantization`` pass no gradient back to the noise: refused."""
    found = [name for name, m in model.named_modules() if type(m).__module__.startswith(("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized", "torch.nn.quantized"))]
    if found:
        shown = ", ".join(repr(n) for n in found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise ModelError(
            f"the model holds quantized int8 layers ({shown}), which pass no gradient, and probe follows the gradient from "
            "the layer back to the noise; explain the float model (before torch.ao.quantization.quantize_dynamic): "
            "its words are the quantized model's up to the rounding"
        )


def warn_if_unsure(held_model: Held, adapter, forced: bool, embedding_given: bool) -> None:
    """No silent fallback: says so when the generic adapter is chosen for a model that holds a known
    architecture, or when probe must guess which of several embedding tables holds the words."""
    model = held_model.model
    if adapter.name == "generic" and not forced:
        inside = _known_inside(model, adapter.layers)
        if inside is not None:
            name, found = inside
            embedding = found.embedding()
            where = next((n for n, m in model.named_modules() if m is embedding), None) if embedding is not None else None
            force = f"adapter={found.name!r}" + (f", embedding={where!r}" if where else "")
            warn(
                f"probe chose the generic adapter for {type(model).__name__}, which holds a {type(found.model).__name__} at "
                f"{name!r} that the {found.name!r} adapter knows: the noise goes on the first nn.Embedding called and the "
                f"default scale comes from its table; to explain it as that model, pass probe.attach(..., {force}), or, "
                f"if {type(model).__name__} only wraps it, probe.adapters.register_wrapper({type(model).__name__}, {name!r})"
            )
            return
    if embedding_given or adapter.embedding() is not None:
        return
    tables = [n for n, m in model.named_modules() if isinstance(m, nn.Embedding)]
    if len(tables) > 1:
        warn(
            f"{type(model).__name__} has {len(tables)} nn.Embedding modules ({', '.join(repr(t) for t in tables[:4])}) and the "
            f"{adapter.name!r} adapter does not say which holds the words, so probe perturbs the first one the forward pass "
            f"calls; name it with probe.attach(..., embedding='name') (or force an adapter with adapter='name')"
        )


def _known_inside(model: nn.Module, layers):
    """The first submodule (name, adapter) that a registered adapter other than the generic one knows."""
    for name, module in model.named_modules():
        if name and module is not model and hasattr(module, "get_input_embeddings") and hasattr(module, "config"):
            found = choose(module, layers)
            if found.name != "generic":
                return name, found
    return None
