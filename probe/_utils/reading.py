"""Checked reads of a result file's tensors and metadata: anything that contradicts the rest of the
file is a FileFormatError, never a result with impossible numbers."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

import torch

from ..errors import FileFormatError


def tensor(tensors: Mapping[str, torch.Tensor], name: str, path: str, ndim: int) -> torch.Tensor:
    """A required float tensor of ``ndim`` axes."""
    t = tensors.get(name)
    if t is None or t.ndim != ndim or not t.is_floating_point():
        got = "missing" if t is None else f"a {t.dtype} tensor of shape {tuple(t.shape)}"
        raise FileFormatError(f"{path!r}: tensor {name!r} is {got}, expected a float tensor of {ndim} axes; re-save the result")
    return t


def sigma(tensors: Mapping[str, torch.Tensor], path: str, ndim: int, scale: float) -> torch.Tensor:
    """The tensor ``sigma``: finite, positive, at most ``scale``."""
    s = tensor(tensors, "sigma", path, ndim)
    if s.numel() and not (torch.isfinite(s).all() and (s > 0).all() and (s <= scale * (1 + 1e-5)).all()):
        raise FileFormatError(f"{path!r}: sigma holds values outside (0, scale = {scale:g}]; the file is damaged, re-save the result")
    return s


def same_shape(tensors: Mapping[str, torch.Tensor], name: str, shape: torch.Size, path: str) -> None:
    """A tensor that, when present, must have ``shape`` (that of sigma)."""
    t = tensors.get(name)
    if t is not None and t.shape != shape:
        raise FileFormatError(f"{path!r}: tensor {name!r} has shape {tuple(t.shape)} but sigma has {tuple(shape)}; re-save the result")


def stderr(tensors: Mapping[str, torch.Tensor], name: str, shape: torch.Size, path: str, say: bool = True) -> torch.Tensor:
    """Sigma's standard error, of sigma's ``shape`` and at least 0 (inf allowed: too few draws); a file
    written before probe kept error bars has none: NaN everywhere, with a warning that says so
    (unless ``say`` is False: it was said already)."""
    t = tensors.get(name)
    if t is None:
        if not say:
            return torch.full(shape, math.nan)
        from .warnings import warn

        warn(f"{path!r} was written before probe kept error bars: its stderr is unknown (NaN); explain again to get them")
        return torch.full(shape, math.nan)
    if not t.is_floating_point() or t.shape != shape or bool((t < 0).any()):
        raise FileFormatError(f"{path!r}: tensor {name!r} must be sigma's shape {tuple(shape)} of floats at least 0; re-save the result")
    return t


def optional(tensors: Mapping[str, torch.Tensor], name: str, path: str) -> torch.Tensor | None:
    """An optional float tensor such as a regularization."""
    t = tensors.get(name)
    if t is not None and not t.is_floating_point():
        raise FileFormatError(f"{path!r}: tensor {name!r} holds {t.dtype}, not floats; re-save the result")
    return t


def curve(tensors: Mapping[str, torch.Tensor], name: str, path: str) -> list[float]:
    """A loss curve: one float per solver step, or none stored."""
    t = tensors.get(name)
    if t is None:
        return []
    if t.ndim != 1 or not t.is_floating_point():
        raise FileFormatError(f"{path!r}: tensor {name!r} has shape {tuple(t.shape)} and dtype {t.dtype}, not a float curve; re-save the result")
    return t.tolist()


def json_value(meta: Mapping[str, str], key: str, path: str, default: str | None = None):
    """One JSON metadata value; a missing, invalid or absurdly nested one is a damaged file."""
    try:
        return json.loads(meta[key] if default is None else meta.get(key, default))
    except (KeyError, TypeError, ValueError, RecursionError):
        raise FileFormatError(f"{path!r}: the metadata {key!r} is missing or damaged; re-save the result") from None


def word_lists(value, path: str, key: str = "words") -> list[list[str]]:
    """A JSON list of word lists."""
    if not (isinstance(value, list) and all(isinstance(ws, list) and all(isinstance(w, str) for w in ws) for ws in value)):
        raise FileFormatError(f"{path!r}: the metadata {key!r} is not a list of word lists; re-save the result")
    return value


def settings(meta: Mapping[str, str], path: str) -> dict[str, str]:
    """The objective's scale, rate, embedding width and solver settings every result kind stores."""
    try:
        scale, rate, width = float(meta["scale"]), float(meta["rate"]), int(meta["width"])
    except (KeyError, ValueError, TypeError) as err:
        raise FileFormatError(f"{path!r}: metadata scale, rate or width is missing or damaged ({err}); re-save the result") from None
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(rate) and rate > 0 and width > 0):
        raise FileFormatError(f"{path!r}: metadata scale={scale!r}, rate={rate!r}, width={width!r} must all be positive; re-save the result")
    found = json_value(meta, "settings", path, "{}")
    if not (isinstance(found, dict) and all(isinstance(v, str) for v in found.values())):
        raise FileFormatError(f"{path!r}: metadata 'settings' is damaged; re-save the result")
    return {"scale": scale, "rate": rate, "width": width, "settings": found}


def explanation_fields(meta: Mapping[str, str], path: str, tokens: int) -> dict:
    """The Explanation fields stored as string metadata, checked against the tensors."""
    words = json_value(meta, "words", path)
    if not (isinstance(words, list) and all(isinstance(w, str) for w in words)) or len(words) != tokens:
        raise FileFormatError(f"{path!r}: metadata 'words' does not match the {tokens} tokens of sigma")
    converged = json_value(meta, "converged", path, "false")
    if not isinstance(converged, bool):
        raise FileFormatError(f"{path!r}: metadata 'converged' is {meta.get('converged')!r}, not true or false; re-save the result")
    try:
        loss, steps = float(meta.get("loss", "nan")), int(meta.get("steps", "0"))
    except ValueError as err:
        raise FileFormatError(f"{path!r}: metadata loss or steps is damaged ({err}); re-save the result") from None
    if steps < 0:
        raise FileFormatError(f"{path!r}: metadata steps is {steps}, below 0; re-save the result")
    word_ids = json_value(meta, "word_ids", path, "null")
    if word_ids is not None and not (isinstance(word_ids, list) and len(word_ids) == tokens and all(w is None or (isinstance(w, int) and w >= 0) for w in word_ids)):
        raise FileFormatError(f"{path!r}: metadata 'word_ids' does not give one word index (or null) per token; re-save the result")
    return dict(words=words, layer=str(meta.get("layer", "")), loss=loss, converged=converged, steps=steps, word_ids=word_ids, pieces=pieces(meta, path, tokens), **settings(meta, path))


def pieces(meta: Mapping[str, str], path: str, words: int, key: str = "pieces") -> list[int] | None:
    """How many word pieces each word merges (a result of ``by_word``), or None."""
    found = json_value(meta, key, path, "null")
    if found is not None and not (isinstance(found, list) and len(found) == words and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in found)):
        raise FileFormatError(f"{path!r}: metadata {key!r} does not give a piece count of at least 1 per word; re-save the result")
    return found
