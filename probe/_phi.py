"""A user's ``Phi`` on one sentence, turned into one that takes a batch of noisy copies."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .errors import InputError, ModelError

Phi = Callable[[torch.Tensor], torch.Tensor]


def batched(phi: Phi, x: torch.Tensor, is_batched: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """``[R, n, K] -> [R, ...]``: ``phi`` itself when ``is_batched``, else vmapped or looped, whichever is faster.

    vmap is exact only for functions it can trace, and its overhead dominates cheap ones, so it is
    used only where it reproduces ``phi`` and beats a plain loop over the rows.
    """
    if is_batched:
        return phi

    def looped(xb: torch.Tensor) -> torch.Tensor:
        return torch.stack([phi(row) for row in xb])

    vmapped = torch.func.vmap(phi)
    trial = x[None].repeat(4, *([1] * x.ndim))
    try:
        with torch.no_grad():
            loop_seconds, expected = _timed(looped, trial)
            vmap_seconds, got = _timed(vmapped, trial)
        if got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-4, atol=1e-6) and vmap_seconds < loop_seconds:
            return vmapped
    except Exception:  # vmap cannot trace every function (in-place ops, .item(), data-dependent flow)
        pass
    return looped


def _timed(fn: Callable[[torch.Tensor], torch.Tensor], xb: torch.Tensor) -> tuple[float, torch.Tensor]:
    fn(xb)
    start = time.perf_counter()
    out = fn(xb)
    return time.perf_counter() - start, out


def hidden_state(phi: Phi, x: torch.Tensor) -> torch.Tensor:
    """``phi(x)`` checked: a finite floating-point tensor, or a ModelError that says what Phi returned."""
    try:
        with torch.no_grad():
            s = phi(x)
    except Exception as err:
        raise ModelError(f"Phi failed on x of shape {tuple(x.shape)}: {type(err).__name__}: {err}") from err
    if not isinstance(s, torch.Tensor) or not s.is_floating_point():
        raise InputError(f"Phi must return a floating-point tensor, got {type(s).__name__}; return the hidden state to explain")
    if not torch.isfinite(s).all():
        raise ModelError("Phi(x) holds NaN or inf; explain a finite hidden state")
    return s
