"""``probe.load``: reads any result file probe wrote. Each result kind registers its own reader,
so this module knows none of them by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from .._utils.files import read_tensors
from ..errors import FileFormatError, ProbeError

Reader = Callable[[Mapping[str, torch.Tensor], Mapping[str, str], str], object]
_READERS: dict[str, Reader] = {}


def reads(kind: str):
    """Class decorator: the class's ``_from_file`` reads files whose metadata ``kind`` is ``kind``.

    >>> @reads("note")
    ... class Note:
    ...     @classmethod
    ...     def _from_file(cls, tensors, meta, path):
    ...         return meta["text"]
    """

    def register(cls):
        _READERS[kind] = cls._from_file
        return cls

    return register


def load(path: str | Path):
    """Reads any file probe wrote: an Explanation, a Sweep, a CorpusResult or a TimeSeries.

    >>> probe.explain(lambda x: x.sum(0), torch.ones(2, 4), words=["a", "b"]).save(tmp / "a.safetensors")
    >>> probe.load(tmp / "a.safetensors").words
    ['a', 'b']
    """
    tensors, meta = read_tensors(path)
    kind = meta.get("kind")
    if kind not in _READERS:
        raise FileFormatError(f"{str(path)!r} is a probe file of kind {kind!r}, which probe.load does not read; known kinds: {sorted(_READERS)}")
    try:
        return _READERS[kind](tensors, meta, str(path))
    except ProbeError:
        raise
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError, IndexError) as err:  # metadata no reader foresaw
        raise FileFormatError(f"{str(path)!r}: the {kind} is damaged ({type(err).__name__}); re-save it") from None


__all__ = ["load", "reads"]
