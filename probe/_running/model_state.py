"""Leaving a model, and the process, as probe found them.

While probe runs a model it needs eval mode and autograd (even under the caller's
``torch.inference_mode``), one run at a time per module, and random streams that the caller does
not see move. Everything here is put back on every way out, exceptions included.
"""

from __future__ import annotations

import os
import random
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ..adapters.wrappers import unwrap
from ..errors import InputError

_RUNNING: weakref.WeakSet[nn.Module] = weakref.WeakSet()
"""The hooked modules of every probe run in progress."""
_RUNNING_LOCK = threading.Lock()


@contextmanager
def isolated() -> Iterator[None]:
    """Leaves every random stream a caller uses as found: torch's CPU generator, each CUDA device's
    generator (when CUDA is in use), Python's ``random`` and numpy's global generator. Inside,
    autograd works even under an enclosing ``torch.inference_mode()``.

    >>> before = torch.get_rng_state()
    >>> with isolated():
    ...     _ = torch.rand(3)
    >>> torch.equal(before, torch.get_rng_state())
    True
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode(False):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextmanager
def running(model: nn.Module, hooked: Sequence[nn.Module]) -> Iterator[None]:
    """Eval mode, autograd and untouched random streams inside; every module's train flag restored
    on the way out. Refuses a second run on the same modules at the same time: its hooks would see
    this run's noise."""
    with _claimed(hooked), isolated():
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            yield
        finally:
            for module, mode in modes:
                module.training = mode


@contextmanager
def _claimed(hooked: Sequence[nn.Module]) -> Iterator[None]:
    with _RUNNING_LOCK:
        if any(m in _RUNNING for m in hooked):
            raise InputError(
                "another probe.attach is explaining this model right now (in another thread, or called from inside "
                "select or the model's forward); run one explain at a time per model, or give each thread its own "
                "copy.deepcopy(model)"
            )
        _RUNNING.update(hooked)
    try:
        yield
    finally:
        with _RUNNING_LOCK:
            for module in hooked:
                _RUNNING.discard(module)


def device_of(model: nn.Module, embedding: nn.Module | None) -> torch.device:
    """Where the inputs go: the embedding module's device (a model split over devices starts
    there), else the model's first parameter's."""
    check_loaded(model)
    for source in (embedding, model):
        first = None if source is None else next(source.parameters(), None)
        if first is not None:
            return first.device
    return torch.device("cpu")


def check_loaded(model: nn.Module) -> None:
    """Weights on the 'meta' device hold no values: nothing can run."""
    if any(p.is_meta for p in model.parameters()):
        raise InputError(
            "the model's weights are on the 'meta' device, so they were never loaded (init_empty_weights, "
            "device='meta'); load them (from_pretrained, or load_state_dict(..., assign=True)) before explaining"
        )


def tokenizer_beside(model: nn.Module):
    """The tokenizer a wrapper keeps (a SentenceTransformer's), else the one saved in the folder of
    the HuggingFace model inside, or None. Runs no code from the folder."""
    levels = [level for level, _ in unwrap(model)]
    for level in levels[:-1]:
        kept = getattr(level, "tokenizer", None)
        if callable(getattr(kept, "convert_ids_to_tokens", None)):
            return kept
    model = levels[-1]
    path = getattr(getattr(model, "config", None), "_name_or_path", None) or getattr(model, "name_or_path", None)
    if not path or not os.path.isdir(str(path)):
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    except Exception:  # a folder without tokenizer files: words fall back to token indices
        return None


class _Vocabulary:
    """A vocabulary (words by id, or {id: word}) read as a tokenizer: ids to words, an id it does not
    know as its number."""

    all_special_ids: list[int] = []

    def __init__(self, words: Sequence[str] | Mapping[int, str]) -> None:
        self.words = words

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        if isinstance(self.words, Mapping):
            return [str(self.words.get(i, i)) for i in ids]
        return [str(self.words[i]) if 0 <= i < len(self.words) else str(i) for i in ids]


def as_tokenizer(tokenizer):
    """``tokenizer`` as something with ``convert_ids_to_tokens``: a HuggingFace tokenizer as it is,
    a vocabulary (a list of words by id, or an {id: word} dict) wrapped.

    >>> as_tokenizer(["<pad>", "a", "fine", "film"]).convert_ids_to_tokens([1, 2, 3])
    ['a', 'fine', 'film']
    """
    if callable(getattr(tokenizer, "convert_ids_to_tokens", None)):
        return tokenizer
    if isinstance(tokenizer, Mapping) or (isinstance(tokenizer, Sequence) and not isinstance(tokenizer, str)):
        return _Vocabulary(tokenizer)
    raise InputError(f"tokenizer must be a HuggingFace tokenizer or a vocabulary (a list of words by id, or an {{id: word}} dict), got {type(tokenizer).__name__}")


def model_name(model: nn.Module) -> str:
    """What the result calls the model: its folder's name for a saved HuggingFace model, else its
    class; for a wrapped model, the model inside."""
    model = unwrap(model)[-1][0]
    path = str(getattr(getattr(model, "config", None), "_name_or_path", "") or "")
    return os.path.basename(path.rstrip("/\\")) or type(model).__name__


def calls_per_layer(call, names: list[str]) -> list[int | None]:
    """``call`` as one entry per attached layer (None: the layer must run once per pass)."""
    def valid(k) -> bool:
        return k is None or (isinstance(k, int) and not isinstance(k, bool))

    if valid(call):
        return [call] * len(names)
    if isinstance(call, Mapping):
        unknown = set(call) - set(names)
        if unknown:
            raise InputError(f"call names layers {sorted(unknown, key=str)} that are not attached; attached: {names}")
        chosen = [call.get(n) for n in names]
    elif isinstance(call, Sequence) and not isinstance(call, str):
        if len(call) != len(names):
            raise InputError(f"call has {len(call)} entries for {len(names)} attached layers; give one per layer, a {{name: k}} dict, or one int for all")
        chosen = list(call)
    else:
        chosen = [call]
    bad = [k for k in chosen if not valid(k)]
    if bad:
        raise InputError(f"call must be a whole number (0 for a module's first call in a forward pass, -1 for its last), got {bad[0]!r}")
    return chosen
