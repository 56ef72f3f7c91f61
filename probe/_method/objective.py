"""The seed's objective, pieces shared by every solver.

For one explained hidden state ``s`` the data term is ``sum(W * (Phi(x + eps) - s)**2)``, where the
full weight ``W`` folds the seed's ``mean over elements`` and ``1 / r**2`` (or ``1 / mean(s**2)``
without a regularization) into one tensor, zero on padding. The penalty is
``- rate * mean_i log(sigma_i / scale)`` over real tokens.
"""

from __future__ import annotations

import math

import torch

from .._utils.warnings import warn
from ..errors import RegularizationError

CONSTANT_FEATURE_RATIO = 1e-6


def as_regularization(regularization, like: torch.Tensor, name: str = "regularization", signed: bool = False) -> torch.Tensor:
    """The regularization as a float tensor broadcastable to ``like`` (one row's hidden state).
    ``signed``: negative entries stand for their absolute value (the seed's code only squares them)."""
    try:
        r = torch.as_tensor(regularization if not hasattr(regularization, "detach") else regularization.detach())
    except (TypeError, ValueError, RuntimeError) as err:
        raise RegularizationError(f"{name} must be a tensor, ndarray or list of numbers: {err}") from None
    if not (r.is_floating_point() or r.dtype in (torch.int32, torch.int64)):
        raise RegularizationError(f"{name} must hold numbers, got dtype {r.dtype}")
    r = r.to(device=like.device, dtype=torch.float64)
    try:
        fits = torch.broadcast_shapes(r.shape, like.shape) == like.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise RegularizationError(
            f"{name} has shape {tuple(r.shape)}, which does not broadcast to the hidden state's shape "
            f"{tuple(like.shape)}; pass one value per feature, e.g. shape {tuple(like.shape[-1:])}"
        ) from None
    if not torch.isfinite(r).all():
        raise RegularizationError(f"{name} holds NaN or inf; compute it from finite hidden states")
    if signed:
        return r.abs()
    if (r < 0).any():
        raise RegularizationError(f"{name} holds negative values; it is a standard deviation")
    return r


def feature_weights(r: torch.Tensor, name: str = "regularization") -> torch.Tensor:
    """``1 / r**2`` in float64, with constant features (r <= 1e-6 * max r) weighted 0, with a warning."""
    top = r.max() if r.numel() else torch.tensor(0.0, dtype=r.dtype)
    constant = r <= CONSTANT_FEATURE_RATIO * top
    if bool(constant.all()):
        raise RegularizationError(f"every feature of {name} is constant (all std are 0); nothing can be explained")
    count = int(constant.sum())
    if count:
        warn(
            f"{count} of {r.numel()} features of {name} are constant over the corpus "
            f"(std <= {CONSTANT_FEATURE_RATIO:g} of the largest); they get weight 0"
        )
    return torch.where(constant, torch.zeros_like(r), 1.0 / r.clamp_min(1e-300).square())


def full_weight(clean: torch.Tensor, valid: torch.Tensor | None, weight: torch.Tensor | None) -> torch.Tensor:
    """The per-element weight ``W`` of one row's hidden state ``clean``.

    ``valid`` marks real (not padded) elements; ``weight`` is ``1/r**2`` or None for the seed's
    self-normalisation by ``mean(s**2)``.
    """
    clean64 = clean.detach().to(torch.float64)
    mask = torch.ones_like(clean64) if valid is None else valid.to(clean64).expand_as(clean64)
    count = mask.sum()
    if weight is None:
        power = (clean64.square() * mask).sum() / count
        if not power > 0:
            raise RegularizationError(
                "the hidden state is all zeros, so the seed's self-normalisation mean(s**2) is 0; "
                "pass a regularization computed over a corpus"
            )
        w = mask / (count * power)
    else:
        w = weight.expand_as(clean64) * mask / count
    return w.to(clean.dtype)


def penalty(log_sigma: torch.Tensor, token_mask: torch.Tensor, scale: float, rate: float) -> torch.Tensor:
    """``- rate * mean_i log(sigma_i / scale)`` over real tokens; ``log_sigma`` is [..., n]."""
    m = token_mask.to(log_sigma.dtype)
    return -rate * ((log_sigma - math.log(scale)) * m).sum(-1) / m.sum(-1)


def information_loss(sigma: torch.Tensor, width: int) -> torch.Tensor:
    """Per-word information loss ``H_i = K/2 log(2 pi e) + K log sigma_i`` in nats (K = embedding width)."""
    sigma64 = sigma.to(torch.float64)
    return (0.5 * width * math.log(2 * math.pi * math.e) + width * torch.log(sigma64)).to(torch.float32)
