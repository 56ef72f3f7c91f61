"""Per-architecture adapters (installed as ``probe.adapters``), and the registry that picks one.

``probe.attach`` asks each registered adapter, newest first, whether it ``matches`` the model and
the attached layers, and uses the first that does; ``generic`` matches everything. Force one with
``probe.attach(model, layer, adapter="lstm")``, or add your own::

    class MyAdapter(probe.adapters.Adapter):
        name = "mine"
        @classmethod
        def matches(cls, model, layers):
            return isinstance(model, MyModel)

    probe.adapters.register(MyAdapter)

A wrapped model (PEFT, SentenceTransformer, compiled, DataParallel) is read through its wrapper:
the adapter is chosen for the model inside (see ``wrappers``; add a wrapper with ``register_wrapper``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .bert import BertAdapter
from .cnn import CNNAdapter
from .generic import Adapter
from .hf import HFAdapter
from .lstm import LSTMAdapter
from .transformer import TransformerAdapter
from .wrappers import register_wrapper

_REGISTRY: dict[str, type[Adapter]] = {}


def register(adapter: type[Adapter]) -> type[Adapter]:
    """Adds an adapter class under its ``name`` (replacing one of the same name); usable as a decorator.

    >>> @probe.adapters.register
    ... class Mine(probe.adapters.Adapter):
    ...     name = "mine"
    ...     @classmethod
    ...     def matches(cls, model, layers):
    ...         return type(model).__name__ == "MyModel"
    >>> probe.adapters.available()[0]
    'mine'
    """
    from probe.errors import InputError

    if not (isinstance(adapter, type) and issubclass(adapter, Adapter)):
        raise InputError(f"register takes a subclass of probe.adapters.Adapter, got {adapter!r}")
    _REGISTRY.pop(adapter.name, None)
    _REGISTRY[adapter.name] = adapter
    return adapter


def available() -> list[str]:
    """The registered adapter names, in the order they are tried.

    >>> probe.adapters.available()
    ['bert', 'hf', 'lstm', 'transformer', 'cnn', 'generic']
    """
    return [name for name in reversed(_REGISTRY)]


def choose(model: nn.Module, layers: Sequence[nn.Module], name: str | None = None) -> Adapter:
    """The adapter named ``name``, or the first registered one that matches ``model`` and ``layers``."""
    from probe.errors import InputError, close_matches

    if name is not None:
        if name not in _REGISTRY:
            raise InputError(f"no adapter {name!r}{close_matches(name, _REGISTRY)}; the adapters are {available()}")
        return _REGISTRY[name](model, layers)
    for candidate in available():
        if _REGISTRY[candidate].matches(model, layers):
            return _REGISTRY[candidate](model, layers)
    return Adapter(model, layers)


for _adapter in (Adapter, CNNAdapter, TransformerAdapter, LSTMAdapter, HFAdapter, BertAdapter):
    register(_adapter)

__all__ = ["Adapter", "BertAdapter", "CNNAdapter", "HFAdapter", "LSTMAdapter", "TransformerAdapter", "available", "choose", "register", "register_wrapper"]
