"""How a model may be held: the wrappers probe looks through to find the real model inside.

A wrapper keeps the real model as an attribute and adds nothing to what it computes: a compiled
model keeps it in ``_orig_mod``, ``nn.DataParallel`` and ``DistributedDataParallel`` in ``module``,
a PEFT model in ``base_model`` (whose ``model`` is the transformers model, its layers carrying the
adapters), a ``SentenceTransformer`` in its first module's ``auto_model``. probe chooses the adapter
from the model inside and runs it (the wrapper's own forward would add threads, gradient
synchronisation or compilation, never a different answer); teach it another wrapper with
``probe.adapters.register_wrapper(MyWrapper, "model")``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

Inner = Callable[[nn.Module], "nn.Module | None"]


@dataclass(frozen=True)
class Wrapper:
    """One kind of wrapper: which modules it is, where it keeps the model, and whether its forward
    takes the inputs as one dict (a SentenceTransformer's does) rather than as keywords."""

    kind: str
    recognises: Callable[[nn.Module], bool]
    inner: Inner
    takes_dict: bool = False
    key: object = None
    """What it was registered by (a class or a function): registering it again replaces it."""


_WRAPPERS: list[Wrapper] = []


def register_wrapper(kind: type | Callable[[nn.Module], bool], inner: str | Inner, *, takes_dict: bool = False) -> None:
    """Teaches probe a wrapper: modules of class ``kind`` (or for which ``kind(module)`` is true)
    keep the real model at attribute ``inner`` (a name, or a function of the wrapper). probe then
    explains and runs that model, exactly as if it had been passed itself; names of the wrapper
    (``"model.encoder.layer.0"``) and of the model inside (``"encoder.layer.0"``) both work.
    ``takes_dict``: the wrapper's forward takes the inputs as one dict, not as keywords (probe calls
    the wrapper only when an attached layer lies outside the model inside).

    >>> class Holder(torch.nn.Module):
    ...     def __init__(self, model):
    ...         super().__init__()
    ...         self.model = model
    ...     def forward(self, **inputs):
    ...         return self.model(**inputs)
    >>> probe.adapters.register_wrapper(Holder, "model")
    >>> probe.attach(Holder(model), "encoder.layer.2").adapter.name
    'bert'
    """
    from probe.errors import InputError

    if isinstance(kind, type):
        name, recognises = kind.__name__, (lambda module, cls=kind: isinstance(module, cls))
    elif callable(kind):
        name, recognises = getattr(kind, "__name__", "wrapper"), kind
    else:
        raise InputError(f"register_wrapper takes a class (or a function of a module), got {kind!r}")
    if isinstance(inner, str):
        inner = _attribute(inner)
    elif not callable(inner):
        raise InputError(f"register_wrapper takes the attribute that holds the model (a name, or a function), got {inner!r}")
    _WRAPPERS[:] = [w for w in _WRAPPERS if w.key is not kind]
    _WRAPPERS.insert(0, Wrapper(name, recognises, inner, takes_dict, key=kind))


def _attribute(path: str) -> Inner:
    def inner(module: nn.Module) -> nn.Module | None:
        for part in path.split("."):
            module = getattr(module, part, None)
        return module

    return inner


def unwrap(model: nn.Module) -> list[tuple[nn.Module, Wrapper | None]]:
    """The model and every model inside it, outermost first, each with the wrapper it is (None for
    the real model, last)."""
    chain: list[tuple[nn.Module, Wrapper | None]] = []
    while True:
        wrapper = next((w for w in _WRAPPERS if w.recognises(model)), None)
        inside = wrapper.inner(model) if wrapper is not None else None
        if not isinstance(inside, nn.Module) or inside is model or any(inside is m for m, _ in chain):
            chain.append((model, None))
            return chain
        _refuse_prompt_learning(model)
        chain.append((model, wrapper))
        model = inside


def _loaded(module: str, name: str) -> type | None:
    """A class of a package the user imported (a model of it can exist only then), else None."""
    found = sys.modules.get(module)
    return getattr(found, name, None) if found is not None else None


def _is(module: str, name: str) -> Callable[[nn.Module], bool]:
    def recognises(model: nn.Module) -> bool:
        cls = _loaded(module, name)
        return cls is not None and isinstance(model, cls)

    recognises.__name__ = name
    return recognises


def _refuse_prompt_learning(model: nn.Module) -> None:
    """Prompt tuning, prefix tuning and p-tuning add virtual tokens in PEFT's own forward: the model
    inside alone computes something else, and those tokens are no words of the input."""
    config = getattr(model, "active_peft_config", None) if _is("peft", "PeftModel")(model) else None
    if getattr(config, "is_prompt_learning", False):
        from probe.errors import ModelError

        raise ModelError(
            f"this PEFT model uses {config.peft_type}, which adds virtual tokens to every input, so its words are not the "
            "input's words; probe explains PEFT adapters that wrap the model's layers (LoRA, IA3, LoHa, LoKr, AdaLoRA, OFT, ...)"
        )


def _first_transformer(model: nn.Module) -> nn.Module | None:
    """A SentenceTransformer's first module, when it holds the transformers model (``auto_model``)."""
    first = next(iter(model.children()), None)
    return first if isinstance(getattr(first, "auto_model", None), nn.Module) else None


def _sentence_transformer_module(model: nn.Module) -> bool:
    """sentence-transformers' ``Transformer`` module (of any version): it holds the transformers model."""
    return type(model).__module__.startswith("sentence_transformers.") and isinstance(getattr(model, "auto_model", None), nn.Module)


for _wrapper in (
    Wrapper("compiled", lambda m: type(m).__name__ == "OptimizedModule" and isinstance(getattr(m, "_orig_mod", None), nn.Module), _attribute("_orig_mod")),
    Wrapper("DataParallel", lambda m: isinstance(m, nn.DataParallel), _attribute("module")),
    Wrapper("DistributedDataParallel", lambda m: isinstance(m, nn.parallel.DistributedDataParallel), _attribute("module")),
    Wrapper("peft", _is("peft", "PeftModel"), _attribute("base_model")),
    Wrapper("peft", _is("peft", "PeftMixedModel"), _attribute("base_model")),
    Wrapper("peft", _is("peft.tuners.tuners_utils", "BaseTuner"), _attribute("model")),
    Wrapper("SentenceTransformer", _is("sentence_transformers", "SentenceTransformer"), _first_transformer, takes_dict=True),
    Wrapper("SentenceTransformer", _sentence_transformer_module, _attribute("auto_model"), takes_dict=True),
):
    _WRAPPERS.append(_wrapper)
