"""Checks of what a user passes, run before any work: each names the valid range in its message.

Every entry point (``probe.explain``, ``attach``, ``corpus``, the seed's ``Interpreter``, the command
line) calls these, so a wrong type or value ends in an ``InputError`` before the first forward pass,
never in a traceback from deep inside torch or in a confident wrong answer.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import FileAccessError, InputError, ModelError, ProbeFileNotFoundError
from .targets import check_target

_WHOLE_AT_LEAST = {"samples": 1, "max_samples": 1, "max_steps": 0, "min_steps": 0, "probes": 1, "memory": 1}
"""Integer solver settings and their smallest valid value."""
_ABOVE = {"tol": 0.0, "probe_step": 0.0, "max_move": 1.0}
"""Real solver settings and the bound they must exceed."""
_NEEDS_LATEX = {"pgf"}
"""Image types matplotlib draws only through a LaTeX installation: refused before the work, not after."""


def check_input(x: torch.Tensor, words: Sequence[str] | None) -> list[str]:
    """The words for ``x`` [n, K]: as given (one string per token) or the token indices.

    >>> check_input(torch.zeros(2, 4), ["a", "film"])
    ['a', 'film']
    """
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        got = f"shape {tuple(x.shape)} of dtype {x.dtype}" if isinstance(x, torch.Tensor) else f"a {type(x).__name__}"
        raise InputError(f"x must be a floating-point tensor of shape [tokens, features], got {got}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"x has shape {tuple(x.shape)}; explain a sentence of at least one token with at least one feature")
    if not torch.isfinite(x).all():
        raise InputError("x holds NaN or inf; pass finite embeddings")
    if words is None:
        return [str(i) for i in range(x.shape[0])]
    return check_words(words, x.shape[0])


def check_words(words, count: int) -> list[str]:
    """``words`` as a list of ``count`` strings, one per token.

    >>> check_words(("a", "film"), 2)
    ['a', 'film']
    """
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise InputError(f"words must be a list of strings, one per token, got {type(words).__name__}; write e.g. words=['a', 'film']")
    others = [w for w in words if not isinstance(w, str)]
    if others:
        raise InputError(f"words must be a list of strings, one per token, but it holds a {type(others[0]).__name__} ({others[0]!r})")
    if len(words) != count:
        raise InputError(f"words has {len(words)} entries but x has {count} tokens; pass one word per token")
    return list(words)


def check_positive(name: str, value) -> float:
    """``value`` as a positive finite float: an int, float, numpy scalar or 0-d tensor (never a bool).

    >>> check_positive("scale", np.float32(0.5))
    0.5
    """
    number = _real(value)
    if number is None or not (0 < number < math.inf):
        raise InputError(f"{name} must be a positive finite number (0 < {name} < inf), got {_shown(value)}")
    return number


def check_scale_rate(scale, rate) -> tuple[float, float]:
    """``scale`` and ``rate`` as positive finite floats, or an InputError.

    >>> check_scale_rate(torch.tensor(1.0), 0.1)
    (1.0, 0.1)
    """
    return check_positive("scale", scale), check_positive("rate", rate)


def check_seed(seed) -> int:
    """``seed`` as an int: a whole number (Python or numpy), never a str, bool or float.

    >>> check_seed(np.int64(3))
    3
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise InputError(f"seed must be a whole number such as 0 or 42, got {_shown(seed)}")
    return int(seed)


def check_settings(settings) -> None:
    """Refuses solver settings out of range; ``settings`` is any object with SolverSettings' fields.

    >>> check_settings(probe.SolverSettings(tol=0))
    Traceback (most recent call last):
    probe.errors.InputError: tol must be a finite number > 0, got 0
    """
    for name, least in _WHOLE_AT_LEAST.items():
        value = getattr(settings, name)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < least:
            raise InputError(f"{name} must be a whole number >= {least}, got {_shown(value)}")
    for name, bound in _ABOVE.items():
        value = getattr(settings, name)
        number = _real(value)
        if number is None or not (bound < number < math.inf):
            raise InputError(f"{name} must be a finite number > {bound:g}, got {_shown(value)}")
    if settings.max_samples < settings.samples:
        raise InputError(f"max_samples ({settings.max_samples}) must be at least samples ({settings.samples}); raise max_samples or lower samples")


def settings_from(kwargs: dict, settings_type: type):
    """A checked ``settings_type`` (SolverSettings) from keyword arguments; unknown names are an
    InputError that lists the known ones.

    >>> settings_from({"samples": 16}, probe.SolverSettings).samples
    16
    """
    known = set(settings_type.__dataclass_fields__)
    unknown = set(kwargs) - known
    if unknown:
        raise InputError(f"unknown solver setting(s) {sorted(unknown)}; the settings are {sorted(known)}")
    return settings_type(**kwargs)  # its __post_init__ runs check_settings


def _real(value) -> float | None:
    """A real number as a float, or None for anything else (a bool, a str, a tensor of several)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or value.ndim != 0 or value.dtype == torch.bool or value.is_complex():
            return None
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return None
    return float(value)


def _shown(value) -> str:
    """``value`` for a message: short, with its type when that is the problem."""
    text = repr(value)
    text = text if len(text) <= 60 else text[:57] + "..."
    return text if isinstance(value, (int, float)) and not isinstance(value, bool) else f"{text} ({type(value).__name__})"


def check_output_file(path, option: str = "path", kind: str = "result", inputs: Iterable = ()) -> Path:
    """A file name that can be written with a ``kind`` output (see ``check_target``): its folder
    exists and is writable, it is not a folder, a FIFO or a device, not one of the ``inputs``, and
    any file already there is empty or of the same kind.

    >>> check_output_file("result.safetensors")
    PosixPath('result.safetensors')
    """
    path = check_target(path, kind, option, inputs)
    folder = path.parent
    if not folder.is_dir():
        raise ProbeFileNotFoundError(f"the folder {str(folder)!r} of {option} {str(path)!r} does not exist; create it first")
    _check_writable(folder, option, path)
    return path


def check_output_folder(path, option: str = "folder") -> Path:
    """A folder that is there or can be created (its nearest existing parent is writable).

    >>> check_output_folder("out")
    PosixPath('out')
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InputError(f"{option} must be a folder name, got {_shown(path)}")
    path = Path(path)
    existing = next(p for p in [path, *path.absolute().parents] if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise InputError(f"{option} {str(path)!r} is under the file {str(existing)!r}; give a folder")
    _check_writable(existing, option, path)
    return path


def _check_writable(folder: Path, option: str, path: Path) -> None:
    """A FileAccessError unless files can be created in ``folder`` (where ``path`` would go)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FileAccessError(13, f"{option} {str(path)!r} cannot be written: no permission to write in {str(folder)!r}; choose another folder", str(path))


def check_image_path(path, option: str = "plot", inputs: Iterable = ()) -> Path:
    """A writable file name whose extension matplotlib can draw without other programs (.png, .pdf,
    .svg, ...; not .pgf, which needs LaTeX), checked before anything is drawn.

    >>> check_image_path("result.png")
    PosixPath('result.png')
    """
    path = check_output_file(path, option, "image", inputs)
    from matplotlib.backend_bases import FigureCanvasBase

    kinds = set(FigureCanvasBase.get_supported_filetypes()) - _NEEDS_LATEX
    if path.suffix[1:].lower() in _NEEDS_LATEX:
        raise InputError(f"{option} {str(path)!r}: {path.suffix!r} files need a LaTeX installation; use .pdf or .svg")
    if path.suffix and path.suffix[1:].lower() not in kinds:
        raise InputError(f"{option} {str(path)!r}: matplotlib cannot draw {path.suffix!r} files; use one of {', '.join('.' + k for k in sorted(kinds))}")
    return path


def checked_phi(phi: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``phi`` as the seed's ``Interpreter`` needs it: a single number (0-d) comes back as one feature,
    and NaN or inf (a Phi that overflows under noise) is a ModelError, never a NaN sigma.

    >>> checked_phi(lambda x: x.sum())(torch.ones(2, 3))
    tensor([6.])
    """
    vector = vector_phi(phi)

    def checked(x: torch.Tensor) -> torch.Tensor:
        out = vector(x)
        if isinstance(out, torch.Tensor) and out.is_floating_point() and not bool(torch.isfinite(out).all()):
            raise ModelError("Phi gives NaN or inf for x or a noisy copy of it (it overflows); pass a smaller scale=, or a Phi that stays finite")
        return out

    return checked


def vector_phi(phi: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``phi`` with a single number (0-d) returned as one feature; nothing data-dependent, so it
    still vectorises with ``torch.func.vmap``.

    >>> vector_phi(lambda x: x.sum())(torch.ones(2, 3))
    tensor([6.])
    """
    if not callable(phi):
        raise InputError(f"Phi must be a function of x that returns the hidden state, got {type(phi).__name__}")

    def vector(x: torch.Tensor) -> torch.Tensor:
        out = phi(x)
        return out.reshape(1) if isinstance(out, torch.Tensor) and out.ndim == 0 else out

    return vector
