"""Errors a user can cause. Each says what was wrong and how to fix it.

Catch them all with ``except probe.ProbeError``::

    try:
        probe.load("missing.safetensors")
    except probe.ProbeError as err:
        print(err)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ProbeError(Exception):
    """Base class of every error probe raises for a user mistake.

    >>> isinstance(probe.errors.InputError("bad"), probe.ProbeError)
    True
    """


class InputError(ProbeError, ValueError):
    """An argument, input or setting that cannot be used as given.

    >>> try:
    ...     raise InputError("words has 3 entries but x has 5 tokens; pass one word per token")
    ... except probe.ProbeError as err:
    ...     print(type(err).__name__, isinstance(err, probe.ProbeError))
    InputError True
    """


class RegularizationError(InputError):
    """A regularization of the wrong shape, or with NaN or inf.

    >>> try:
    ...     raise RegularizationError("regularization has shape (3,), expected one broadcastable to (384,)")
    ... except probe.ProbeError as err:
    ...     print(type(err).__name__, isinstance(err, probe.ProbeError))
    RegularizationError True
    """


class LayerError(ProbeError, KeyError):
    """A layer name the model does not have, or a layer that cannot be explained.

    >>> try:
    ...     raise LayerError("no layer 'encoder.layr.2'; did you mean 'encoder.layer.2'?")
    ... except probe.ProbeError as err:
    ...     print(type(err).__name__, isinstance(err, probe.ProbeError))
    LayerError True
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelError(ProbeError, RuntimeError):
    """The model rejected the inputs, or produced NaN/inf, while probe ran it.

    >>> try:
    ...     raise ModelError("the model rejected the inputs: ...")
    ... except probe.ProbeError as err:
    ...     print(type(err).__name__, isinstance(err, probe.ProbeError))
    ModelError True
    """


class ProbeFileNotFoundError(ProbeError, FileNotFoundError):
    """A file to load does not exist.

    >>> try:
    ...     raise ProbeFileNotFoundError("no file 'x.safetensors'")
    ... except probe.ProbeError as err:
    ...     print(type(err).__name__, isinstance(err, probe.ProbeError))
    ProbeFileNotFoundError True
    """


class FileFormatError(ProbeError, ValueError):
    """A file that is not a probe result, is damaged, or comes from a newer probe.

    >>> try:
    ...     raise FileFormatError("'x.safetensors' is truncated or not a safetensors file")
    ... except probe.ProbeError as err:
    ...     print(type(err).__name__, isinstance(err, probe.ProbeError))
    FileFormatError True
    """


class FileAccessError(ProbeError, OSError):
    """A file the system would not let probe read or write: a full disk, no permission. A failed
    write leaves any file already under the name unchanged.

    >>> try:
    ...     raise FileAccessError(28, "could not write 'x.safetensors': No space left on device; free some space", "x.safetensors")
    ... except probe.ProbeError as err:
    ...     print(type(err).__name__, isinstance(err, probe.ProbeError))
    FileAccessError True
    """

    def __str__(self) -> str:
        return str(self.strerror) if self.strerror else super().__str__()


class UnsafeFileError(ProbeError):
    """A saved file or model folder whose loading would run code from it: a pickle (pass
    trust_pickle=True only for files you trust) or a folder's own Python code named by ``auto_map``
    (trust_remote_code=True).

    >>> try:
    ...     raise UnsafeFileError("'m.pt' holds a pickled object; ...")
    ... except probe.ProbeError as err:
    ...     print(type(err).__name__, isinstance(err, probe.ProbeError))
    UnsafeFileError True
    """


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A ' did you mean ...?' suffix for an error message, or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"
