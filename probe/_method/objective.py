"""The seed's objective, pieces shared by every solver.

For one explained hidden state ``s`` the data term is ``sum(W * (Phi(x + eps) - s)**2)``, where the
full weight ``W`` folds the seed's ``mean over elements`` and ``1 / r**2`` into one tensor, zero on
padding. Without a regularization ``r`` is each feature's std over the sentence's own tokens where
the state has a token axis (``own_weight``), else the seed's ``1 / mean(s**2)``. The penalty is
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


REGULARIZATION = "regularization"
"""The weighting a result records when a regularization was given: ``1 / r**2`` per feature."""
OWN_TOKENS = "own tokens"
"""The default weighting of a state with a token axis: ``1 / r**2`` with ``r`` each feature's std
over the sentence's own real tokens (see ``own_weight``)."""
SELF_NORMALISED = "self-normalised"
"""The seed's weighting without a regularization: ``1 / mean(s**2)`` for every element."""


def own_weight(clean: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor | None:
    """``1 / r**2`` with ``r`` each feature's standard deviation over the sentence's own real tokens,
    constant features (r <= 1e-6 * max r) at 0; None where the state has no token axis (``valid`` is
    None or marks one token) or every feature is constant, and the seed's self-normalisation applies.

    Without it, MiniLM's few outlier features dominate the raw squared change (the effective
    dimension of ``encoder.layer.4``'s output is 27 of 384), every draw is noisier and the solve does
    not converge there in 40 steps; see docs/solver.md for the measurements.

    >>> s = torch.tensor([[1.0, 10.0], [3.0, 10.0], [2.0, 10.0]])
    >>> own_weight(s, torch.ones(3, 1, dtype=torch.bool)).tolist()
    [[1.0, 0.0]]
    """
    if valid is None:
        return None
    axes = [d for d in range(valid.ndim) if valid.shape[d] > 1]
    tokens = valid.to(torch.float64).sum()
    if len(axes) != 1 or tokens < 2:
        return None
    clean64 = clean.detach().to(torch.float64)
    mask = valid.to(clean64).expand_as(clean64)
    mean = (clean64 * mask).sum(axes[0], keepdim=True) / tokens
    r = (((clean64 - mean) * mask).square().sum(axes[0], keepdim=True) / (tokens - 1)).sqrt()
    constant = r <= CONSTANT_FEATURE_RATIO * r.max()
    if bool(constant.all()):
        return None
    return torch.where(constant, torch.zeros_like(r), 1.0 / r.clamp_min(1e-300).square())


def weighting(clean: torch.Tensor, valid: torch.Tensor | None, weight: torch.Tensor | None) -> str:
    """Which weighting ``full_weight`` uses for this row: ``REGULARIZATION``, ``OWN_TOKENS`` or ``SELF_NORMALISED``.

    >>> weighting(torch.ones(3), None, None)
    'self-normalised'
    """
    if weight is not None:
        return REGULARIZATION
    return SELF_NORMALISED if own_weight(clean, valid) is None else OWN_TOKENS


def full_weight(clean: torch.Tensor, valid: torch.Tensor | None, weight: torch.Tensor | None) -> torch.Tensor:
    """The per-element weight ``W`` of one row's hidden state ``clean``.

    ``valid`` marks real (not padded) elements (None: every element is real, no token axis known);
    ``weight`` is ``1/r**2``, or None for the default: ``own_weight`` where the state has a token
    axis, else the seed's self-normalisation by ``mean(s**2)``.
    """
    clean64 = clean.detach().to(torch.float64)
    mask = torch.ones_like(clean64) if valid is None else valid.to(clean64).expand_as(clean64)
    count = mask.sum()
    if weight is None:
        weight = own_weight(clean, valid)
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
