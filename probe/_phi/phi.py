"""A user's ``Phi`` on one sentence, turned into one that takes a batch of noisy copies."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from ..errors import InputError, ModelError, ProbeError

Phi = Callable[[torch.Tensor], torch.Tensor]


def batched(phi: Phi, is_batched: bool) -> Callable[[torch.Tensor], torch.Tensor]:
    """``[R, n, K] -> [R, ...]``: ``phi`` itself when ``is_batched``, else ``phi`` vectorised over the
    rows with ``torch.func.vmap`` where it allows, else ``phi`` on each row in turn.

    A batch of noisy copies through one call is far faster for a real model than a Python loop.
    """
    return phi if is_batched else AutoBatched(phi)


class AutoBatched:
    """A one-sentence ``phi`` on a batch of rows: vmapped, or looped where vmap fails.

    The choice is made once, on the first call: ``vmap(phi)`` of one row must run and agree with
    ``phi`` of that row (a ``phi`` with data-dependent control flow, ``.item()``, in-place writes to
    its input or random draws cannot be vmapped); otherwise every call loops, exact for any ``phi``.

    >>> W = torch.tensor([10., 20., 5., -20., -10.])
    >>> AutoBatched(lambda x: W @ x)(torch.randn(8, 5, 256)).shape
    torch.Size([8, 256])
    """

    def __init__(self, phi: Phi) -> None:
        self.phi = phi
        self.vmapped: bool | None = None

    def __call__(self, xb: torch.Tensor) -> torch.Tensor:
        if self.vmapped is None:
            self.vmapped = self._vmap_works(xb)
        if self.vmapped:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*batching rule.*")
                return torch.func.vmap(self.phi)(xb)
        return torch.stack([self.phi(row) for row in xb])

    def _vmap_works(self, xb: torch.Tensor) -> bool:
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = torch.func.vmap(self.phi)(xb[:1])
                want = self.phi(xb[0])
        except Exception:  # whatever vmap cannot trace: the loop runs it instead
            return False
        if not isinstance(got, torch.Tensor) or not isinstance(want, torch.Tensor) or got.shape[1:] != want.shape:
            return False
        tolerance = 1e-4 * float(want.detach().abs().max()) if want.numel() else 0.0
        return bool(torch.allclose(got[0], want, rtol=1e-4, atol=tolerance))


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
