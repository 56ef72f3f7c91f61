"""The solver's settings, checked as they are made, and what one solve returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .._utils.checks import check_settings


@dataclass(frozen=True)
class SolverSettings:
    """Settings of the fast solver; every explain call takes them as keyword arguments.

    >>> SolverSettings(samples=32, tol=0.005)
    SolverSettings(samples=32, ...)
    """

    samples: int = 6
    """Gaussian noise samples of the first refinement step, pushed through Phi as one batch; each
    later step draws what the standard error says is still needed to reach ``tol``. For an output
    of at most 16 numbers (a logit, a neuron) a sample is an antithetic pair: two draws."""
    max_samples: int = 64
    """Most samples per step (one-number targets are far noisier and draw up to this many)."""
    max_steps: int = 40
    """Most refinement steps."""
    max_move: float = 2.0
    """Largest factor by which one step may change a token's sigma (a trust region)."""
    min_steps: int = 2
    """Fewest refinement steps before the stopping test may end the solve: one more measurement
    after the start's sigma has moved to the fixed point."""
    tol: float = 0.018
    """The solve has converged, and stops, once the root-mean-square over the words of each sigma's
    relative standard error (``stderr / sigma``) is below ``tol`` (after at least ``min_steps``).
    At 0.018 the mean error over words is about 1.4% (0.8 x the RMS for Gaussian errors)."""
    probes: int = 1
    """Random directions per token in the linearised start."""
    probe_step: float = 0.05
    """Size of those perturbations, as a fraction of ``scale``: with the default scale (10 x the std
    of the perturbed tensor) half that std, the order of a shallow layer's optimum sigma."""
    memory: int = 2**30
    """Bytes of activations one backward chunk may keep; larger batches are split."""

    def __post_init__(self) -> None:
        check_settings(self)

    def as_metadata(self) -> dict[str, str]:
        return {f"solver.{k}": str(v) for k, v in self.__dict__.items()}


@dataclass
class Solution:
    """One explained hidden state: sigma over the sentence's real tokens, its standard error (same
    shape, same units; inf where a token has too few draws) and how the solve went."""

    sigma: torch.Tensor
    loss: float
    converged: bool
    steps: int
    curve: list[float] = field(default_factory=list)
    stderr: torch.Tensor | None = None
