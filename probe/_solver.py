"""The fast solver of the seed's objective.

Two stages, both batched over every sentence and every explained layer at once:

1. A linearised start. For small noise ``Phi(x + eps) - s ~ J eps``, so the data term separates per
   token as ``sum_i a_i sigma_i**2``, minimised at ``sigma_i = sqrt(rate / (2 n a_i))``. ``a_i`` is
   estimated by perturbing token ``i`` alone along a few orthogonal random directions, all tokens in
   one forward pass, no backward pass.
2. Refinement on the true objective. Each step pushes ``samples`` Gaussian draws through ``Phi`` as
   one batch and back-propagates to ``log sigma``. A token's gradient ``g_i`` gives its effective
   energy ``a_i = g_i / (2 sigma_i**2)``; a running average of it is the fixed point
   ``sigma_i = sqrt(rate / (2 n a_i))`` (a Newton step in ``log sigma`` for the quadratic model).
   The fixed point holds exactly where the gradient of the seed's objective is zero, so this
   converges to the seed's optimum, not to a surrogate. It stops when the standard error of every
   token's averaged energy falls below ``tol``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from . import _noise
from ._objective import penalty

MOVED = 0.15
"""A step in log sigma beyond this (about 16%) restarts the token's energy average."""

Forward = Callable[[torch.Tensor, torch.Tensor, Sequence[int]], Sequence[torch.Tensor]]


@dataclass(frozen=True)
class SolverSettings:
    """Settings of the fast solver; every explain call takes them as keyword arguments.

    >>> SolverSettings(samples=32, tol=0.005)
    SolverSettings(samples=32, ...)
    """

    samples: int = 8
    """Gaussian noise samples per refinement step, pushed through Phi as one batch."""
    max_steps: int = 40
    """Most refinement steps."""
    max_move: float = 2.0
    """Largest factor by which one step may change a token's sigma (a trust region)."""
    min_steps: int = 6
    """Fewest refinement steps before the stopping test may end the solve."""
    tol: float = 0.02
    """Stop when sigma's relative standard error (root-mean-square over the tokens) is below this."""
    probes: int = 4
    """Random directions per token in the linearised start."""
    probe_step: float = 0.1
    """Size of those perturbations, as a fraction of ``scale``."""
    memory: int = 2**30
    """Bytes of activations one backward chunk may keep; larger batches are split."""

    def as_metadata(self) -> dict[str, str]:
        return {f"solver.{k}": str(v) for k, v in self.__dict__.items()}


@dataclass
class Solution:
    """One explained hidden state: sigma over the sentence's real tokens and how the solve went."""

    sigma: torch.Tensor
    loss: float
    converged: bool
    steps: int
    curve: list[float] = field(default_factory=list)


@dataclass
class _Target:
    sentence: int
    output: int
    tokens: torch.Tensor  # bool [n_pad], real tokens of the sentence
    generator: torch.Generator
    log_sigma: torch.Tensor  # [n_pad]
    energy: torch.Tensor | None = None  # running average of a_i
    energy_sq: torch.Tensor | None = None
    count: torch.Tensor | None = None  # per token: energy estimates averaged since sigma last moved
    steps: int = 0
    converged: bool = False
    curve: list[float] = field(default_factory=list)


def solve(
    forward: Forward,
    x: torch.Tensor,
    token_mask: torch.Tensor,
    clean: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
    *,
    scale: float,
    rate: float,
    seeds: Sequence[int],
    settings: SolverSettings = SolverSettings(),
    progress: Callable[[int], None] | None = None,
) -> list[list[Solution]]:
    """Sigma for every sentence ``b`` and output ``o``: ``result[b][o]``.

    ``forward(rows, xb, outputs)`` runs the model on embeddings ``xb`` [R, n, K] standing in for
    sentences ``rows`` [R] and returns the explained outputs numbered ``outputs``, each [R, ...]
    (it may stop the model after the deepest of them). ``clean[o]`` is output ``o`` of the
    unperturbed sentences, ``weights[o]`` the full weight of each element (see ``full_weight``).
    """
    B, n, K = x.shape
    targets = [
        _Target(b, o, token_mask[b].bool(), _noise.generator(seeds[b], 0, x.device), torch.zeros(n, device=x.device))
        for b in range(B)
        for o in range(len(clean))
    ]
    chunk = _chunk_rows(forward, x, len(clean), settings.memory)
    _linear_start(forward, x, token_mask, clean, weights, targets, scale, rate, seeds, settings, 4 * chunk)
    for step in range(settings.max_steps):
        active = [t for t in targets if not t.converged]
        if not active:
            break
        _refine(forward, x, clean, weights, active, scale, rate, settings, chunk)
        if progress is not None:
            progress(step)
    return [
        [_solution(t, scale) for t in targets[b * len(clean) : (b + 1) * len(clean)]]
        for b in range(B)
    ]


def _rows_of_energy(out: torch.Tensor, clean: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The weighted squared change ``sum(W * (out - s)**2)`` of each row: [R]."""
    diff = (out - clean[rows]).square() * weight[rows]
    return diff.reshape(diff.shape[0], -1).sum(1)


def _linear_start(forward, x, token_mask, clean, weights, targets, scale, rate, seeds, settings, chunk) -> None:
    """Sets every target's sigma from per-token energies measured one token at a time."""
    B, n, K = x.shape
    k = max(1, settings.probes)
    step = settings.probe_step * scale
    rows, tokens, deltas = [], [], []
    for b in range(B):
        real = torch.nonzero(token_mask[b]).flatten().tolist()
        g = _noise.generator(seeds[b], _noise.DIRECTIONS, x.device)
        deltas.append(_noise.directions(g, len(real), K, k, x).reshape(-1, K) * step)
        rows += [b] * (k * len(real))
        tokens += [i for i in real for _ in range(k)]
    rows_t = torch.tensor(rows, device=x.device)
    tokens_t = torch.tensor(tokens, device=x.device)
    delta = torch.cat(deltas)
    energies = [torch.zeros(len(rows), dtype=torch.float64, device=x.device) for _ in clean]
    with torch.no_grad():
        for start in range(0, len(rows), chunk):
            sl = slice(start, start + chunk)
            r = rows_t[sl]
            xb = x[r].clone()
            xb[torch.arange(len(r), device=x.device), tokens_t[sl]] += delta[sl]
            outs = forward(r, xb, range(len(clean)))
            for o, out in enumerate(outs):
                energies[o][sl] = _rows_of_energy(out, clean[o], weights[o], r).to(torch.float64)
    for t in targets:
        mine = rows_t == t.sentence
        a = torch.zeros(n, dtype=torch.float64, device=x.device)
        a.index_add_(0, tokens_t[mine], energies[t.output][mine] / (k * step**2))
        t.log_sigma = _fixed_point(a, t.tokens, scale, rate).to(x.dtype)


def _fixed_point(energy: torch.Tensor, tokens: torch.Tensor, scale: float, rate: float) -> torch.Tensor:
    """``log sigma_i = log sqrt(rate / (2 n a_i))``, capped at the ceiling ``scale``."""
    n = int(tokens.sum())
    tiny = torch.finfo(torch.float64).tiny
    log_sigma = 0.5 * (math.log(rate / (2 * n)) - torch.log(energy.to(torch.float64).clamp_min(tiny)))
    log_sigma = log_sigma.clamp(max=math.log(scale))
    return torch.where(tokens, log_sigma, torch.full_like(log_sigma, math.log(scale)))


def _chunk_rows(forward: Forward, x: torch.Tensor, outputs: int, memory: int) -> int:
    """How many rows one backward chunk may hold, from the bytes autograd saves for one row.

    A forward pass without gradients keeps far less, so the linearised start uses four times as many.
    """
    saved = 0

    def pack(t: torch.Tensor) -> None:
        """Counts the bytes and keeps nothing: holding the tensor would tie it into a reference
        cycle with its own grad_fn that the garbage collector cannot free."""
        nonlocal saved
        saved += t.numel() * t.element_size()

    rows = torch.zeros(1, dtype=torch.long, device=x.device)
    xb = x[:1].clone().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda nothing: nothing):
        forward(rows, xb, range(outputs))
    return max(1, int(memory // max(saved, 1)))


def _refine(forward, x, clean, weights, active, scale, rate, settings, chunk) -> None:
    """One refinement step for every active target: new energies, new sigma, stopping test.

    Targets are grouped by output, so each group's samples run only as deep as its own layer.
    """
    for o in sorted({t.output for t in active}):
        group = [t for t in active if t.output == o]
        grads, data = _sample_gradients(forward, x, clean[o], weights[o], o, group, settings.samples, chunk)
        for j, t in enumerate(group):
            sigma2 = torch.exp(2 * t.log_sigma.to(torch.float64))
            loss = data[j] + penalty(t.log_sigma.to(torch.float64), t.tokens, scale, rate)
            _average(t, grads[j].to(torch.float64) / (2 * sigma2))
            _move(t, _fixed_point(t.energy, t.tokens, scale, rate).to(x.dtype), math.log(settings.max_move))
            t.curve.append(float(loss))
            t.steps += 1
            t.converged = t.steps >= settings.min_steps and _standard_error(t, scale) < settings.tol


def _sample_gradients(forward, x, clean, weight, output, group, samples, chunk):
    """Gradient of the data term with respect to ``log sigma`` of each target, and the data term, from
    ``samples`` fresh Gaussian draws per target pushed through the model in chunks."""
    n, K = x.shape[1:]
    z = torch.cat([_noise.gaussian(t.generator, samples, t.tokens, K, x) for t in group])
    rows = torch.tensor([t.sentence for t in group], device=x.device).repeat_interleave(samples)
    owner = torch.arange(len(group), device=x.device).repeat_interleave(samples)
    log_sigma = torch.stack([t.log_sigma for t in group]).detach().requires_grad_(True)
    grads = torch.zeros_like(log_sigma)
    data = torch.zeros(len(group), dtype=torch.float64, device=x.device)
    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        r, who = rows[sl], owner[sl]
        with torch.enable_grad():
            xb = _noise.noisy(x[r], torch.exp(log_sigma)[who], z[sl])
            (out,) = forward(r, xb, [output])
            energy = _rows_of_energy(out, clean, weight, r)
            (g,) = torch.autograd.grad(energy.sum() / samples, log_sigma)
        grads += g
        data.index_add_(0, who, energy.detach().to(torch.float64) / samples)
    return grads, data


def _average(t: _Target, energy: torch.Tensor) -> None:
    """Running mean of each token's energy estimates since its sigma last moved."""
    if t.energy is None:
        t.energy, t.energy_sq, t.count = energy.clone(), energy.square(), torch.ones_like(energy)
        return
    fresh = t.count == 0
    t.count = t.count + 1
    t.energy = torch.where(fresh, energy, t.energy + (energy - t.energy) / t.count)
    t.energy_sq = torch.where(fresh, energy.square(), t.energy_sq + (energy.square() - t.energy_sq) / t.count)


def _move(t: _Target, target: torch.Tensor, max_log_move: float) -> None:
    """Steps log sigma toward the fixed point, at most ``max_log_move`` per step.

    The energy depends on sigma where the model saturates, so the estimates of a token whose sigma
    moved by more than its noise (``MOVED``) are dropped: its average starts again there.
    """
    step = (target - t.log_sigma).clamp(-max_log_move, max_log_move)
    t.log_sigma = t.log_sigma + step
    t.count = torch.where(step.abs() > MOVED, torch.zeros_like(t.count), t.count)


def _standard_error(t: _Target, scale: float) -> float:
    """Relative standard error of sigma, root-mean-square over the tokens below the ceiling."""
    below = t.tokens & (t.log_sigma < math.log(scale) - 1e-6)
    if not bool(below.any()):
        return 0.0
    count = t.count[below]
    if bool((count < 3).any()):
        return math.inf
    var = (t.energy_sq - t.energy.square())[below].clamp_min(0) * count / (count - 1)
    rel = 0.5 * torch.sqrt(var / count) / t.energy[below].abs().clamp_min(1e-300)
    return float(rel.square().mean().sqrt())


def _solution(t: _Target, scale: float) -> Solution:
    sigma = torch.exp(t.log_sigma[t.tokens]).clamp(max=scale).detach()
    loss = t.curve[-1] if t.curve else math.nan
    return Solution(sigma=sigma, loss=loss, converged=t.converged, steps=t.steps, curve=t.curve)
