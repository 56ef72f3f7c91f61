"""Leaving a model, and the process, as probe found them.

While probe runs a model it needs eval mode and autograd (even under the caller's
``torch.inference_mode``) and one run at a time per module. Its noise comes from its own
generators, so it draws nothing from the global random streams. A model that draws from them in
its own forward pass moves them; probe puts them back only when no other Python thread runs,
since putting them back would rewind another thread's draws (it would see them twice). Train/eval mode is an attribute of each module,
shared by all threads, so while probe holds a model in eval mode a forward pass of it from any
other thread is refused (``ConcurrentUseError``) instead of running silently in the wrong mode.
Everything here is put back on every way out, exceptions included.
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

CONCURRENT = (
    "this model is being explained by probe in another thread, which holds it in eval mode, so this forward pass "
    "would not run in the mode you set; wait until probe's call returns, or give probe its own copy.deepcopy(model)"
)

_RUNNING: weakref.WeakSet[nn.Module] = weakref.WeakSet()
"""The hooked modules of every probe run in progress."""
_RUNNING_LOCK = threading.Lock()


class ConcurrentUseError(InputError):
    """A forward pass from another thread while probe holds the model in eval mode."""


@contextmanager
def running(model: nn.Module, hooked: Sequence[nn.Module]) -> Iterator[None]:
    """Eval mode and autograd inside (even under an enclosing ``torch.inference_mode()``); every
    module's train flag restored on the way out. Refuses a second run on the same modules at the
    same time (its hooks would see this run's noise), and any other thread's forward pass of the
    model while it runs (it would run in probe's eval mode)."""
    with _claimed(hooked), torch.inference_mode(False), _streams_kept_alone(), _only_this_thread(model):
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            yield
        finally:
            for module, mode in modes:
                module.training = mode


@contextmanager
def _streams_kept_alone() -> Iterator[None]:
    """The global random streams (torch's CPU and CUDA generators, ``random``, numpy) as found on the
    way out, when the model moved them and this is the only Python thread; never a rewind that
    another thread could see."""
    before = _streams()
    try:
        yield
    finally:
        if _alone() and not _same(before, _streams()):
            torch.set_rng_state(before[0])
            if before[1] is not None:
                torch.cuda.set_rng_state_all(before[1])
            random.setstate(before[2])
            np.random.set_state(before[3])


def _alone() -> bool:
    """Whether no other thread could draw random numbers: tqdm's monitor thread (progress bars) draws none."""
    me = threading.current_thread()
    return all(t is me or type(t).__name__ == "TMonitor" for t in threading.enumerate())


def _streams() -> tuple:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda, random.getstate(), np.random.get_state()


def _same(a: tuple, b: tuple) -> bool:
    cuda_same = (a[1] is None) == (b[1] is None) and (a[1] is None or all(torch.equal(x, y) for x, y in zip(a[1], b[1])))
    return torch.equal(a[0], b[0]) and cuda_same and a[2] == b[2] and all(np.array_equal(x, y) for x, y in zip(a[3], b[3]))


@contextmanager
def _only_this_thread(model: nn.Module) -> Iterator[None]:
    """A pre-hook on every module that refuses calls from any thread but this one; installed before
    the modes change and removed after they are restored, so another thread's pass that overlaps
    any part of the change fails at its next module instead of computing in eval mode."""
    owner = threading.get_ident()
    modules = list(model.modules())
    own = {id(m) for m in modules}

    def guard(module: nn.Module, args) -> None:
        # DataParallel's replicas share these hooks and run in its worker threads: they are copies, not the model
        if threading.get_ident() != owner and id(module) in own:
            raise ConcurrentUseError(CONCURRENT)

    handles = [m.register_forward_pre_hook(guard) for m in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


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
