"""A user's ``Phi`` on one sentence, turned into one that takes a batch of noisy copies."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .errors import InputError, ModelError, ProbeError

Phi = Callable[[torch.Tensor], torch.Tensor]


def batched(phi: Phi, is_batched: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """``[R, n, K] -> [R, ...]``: ``phi`` itself when ``is_batched``, else ``phi`` on each row in turn.

    A loop is exact for any ``phi``; a ``phi`` that takes a batch of noisy copies runs them as one
    batch, which is far faster for a real model (``batched_phi=True``).
    """
    if is_batched:
        return phi

    def looped(xb: torch.Tensor) -> torch.Tensor:
        return torch.stack([phi(row) for row in xb])

    return looped


def hidden_state(phi: Phi, x: torch.Tensor) -> torch.Tensor:
    """``phi(x)`` checked: a finite floating-point tensor, or a ModelError that says what Phi returned."""
    try:
        with torch.no_grad():
            s = phi(x)
    except ProbeError:
        raise
    except Exception as err:
        raise ModelError(f"Phi failed on x of shape {tuple(x.shape)}: {type(err).__name__}: {err}") from err
    if not isinstance(s, torch.Tensor) or not s.is_floating_point():
        raise InputError(f"Phi must return a floating-point tensor, got {type(s).__name__}; return the hidden state to explain")
    if not torch.isfinite(s).all():
        raise ModelError("Phi(x) holds NaN or inf; explain a finite hidden state")
    return s


def noisy_state(phi_b: Callable[[torch.Tensor], torch.Tensor], xb: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """``phi_b(xb)`` for a batch of noisy copies, checked: one clean-shaped state per copy, all finite.

    A wrong shape would fail deep in the solver; NaN or inf would corrupt sigma silently.
    """
    out = phi_b(xb)
    if not isinstance(out, torch.Tensor) or out.shape != (xb.shape[0], *clean.shape):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelError(
            f"Phi gave {got} for a batch of {xb.shape[0]} noisy copies, expected {(xb.shape[0], *clean.shape)}; "
            "with batched_phi=True, Phi must take [copies, tokens, features] and return one state per copy"
        )
    if not torch.isfinite(out).all():
        raise ModelError("Phi gives NaN or inf once noise is added to x (it is finite without); pass a smaller scale=")
    return out
