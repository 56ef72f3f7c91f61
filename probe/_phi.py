"""A user's ``Phi`` on one sentence, turned into one that takes a batch of noisy copies."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import InputError, ModelError

Phi = Callable[[torch.Tensor], torch.Tensor]


def batched(phi: Phi, x: torch.Tensor, is_batched: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """``[R, n, K] -> [R, ...]``: ``phi`` itself when ``is_batched``, else vmapped when vmap reproduces it, else looped.

    The choice depends only on ``phi`` and ``x``, never on timings: vmap and a loop can differ in
    the last bits, and the same seed must give the same sigma on every run.
    """
    if is_batched:
        return phi

    def looped(xb: torch.Tensor) -> torch.Tensor:
        return torch.stack([phi(row) for row in xb])

    vmapped = torch.func.vmap(phi)
    trial = x[None].repeat(4, *([1] * x.ndim))
    try:
        with torch.no_grad():
            expected, got = looped(trial), vmapped(trial)
        if got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-4, atol=1e-6):
            return vmapped
    except Exception:  # vmap cannot trace every function (in-place ops, .item(), data-dependent flow)
        pass
    return looped


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
