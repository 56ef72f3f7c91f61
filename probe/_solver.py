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

from ._objective import penalty

Forward = Callable[[torch.Tensor, torch.Tensor], Sequence[torch.Tensor]]


@dataclass(frozen=True)
class SolverSettings:
    """Settings of the fast solver; every explain call takes them as keyword arguments.

    >>> SolverSettings(samples=32, tol=0.005)
    SolverSettings(samples=32, ...)
    """

    samples: int = 16
    """Gaussian noise samples per refinement step, pushed through Phi as one batch."""
    max_steps: int = 40
    """Most refinement steps."""
    burn_in: int = 3
    """First refinement steps that jump straight to the fixed point before averaging starts."""
    min_steps: int = 6
    """Fewest refinement steps before the stopping test may end the solve."""
    tol: float = 0.01
    """Stop when every token's sigma has a relative standard error below this."""
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
    count: int = 0
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

    ``forward(rows, xb)`` runs the model on embeddings ``xb`` [R, n, K] standing in for sentences
    ``rows`` [R] and returns every explained output as [R, ...]. ``clean[o]`` is output ``o`` of the
    unperturbed sentences, ``weights[o]`` the full weight of each element (see ``full_weight``).
    """
    B, n, K = x.shape
    targets = [
        _Target(b, o, token_mask[b].bool(), _generator(seeds[b], o, x.device), torch.zeros(n, device=x.device))
        for b in range(B)
        for o in range(len(clean))
    ]
    chunk = _chunk_rows(forward, x, settings.memory)
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


def _generator(seed: int, salt: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + salt) % (2**63))
    return g


def _rows_of_energy(out: torch.Tensor, clean: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The weighted squared change ``sum(W * (out - s)**2)`` of each row: [R]."""
    diff = (out - clean[rows]).square() * weight[rows]
    return diff.flatten(1).sum(1)


def _linear_start(forward, x, token_mask, clean, weights, targets, scale, rate, seeds, settings, chunk) -> None:
    """Sets every target's sigma from per-token energies measured one token at a time."""
    B, n, K = x.shape
    k = max(1, settings.probes)
    step = settings.probe_step * scale
    rows, tokens, deltas = [], [], []
    for b in range(B):
        g = _generator(seeds[b], 7919, x.device)
        for i in torch.nonzero(token_mask[b]).flatten().tolist():
            directions = torch.randn(K, k, generator=g, device=x.device, dtype=x.dtype)
            q, _ = torch.linalg.qr(directions)
            deltas.append(q.T[:k] * (math.sqrt(K) * step))
            rows += [b] * k
            tokens += [i] * k
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
            outs = forward(r, xb)
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


def _chunk_rows(forward: Forward, x: torch.Tensor, memory: int) -> int:
    """How many rows one backward chunk may hold, from the bytes autograd saves for one row.

    A forward pass without gradients keeps far less, so the linearised start uses four times as many.
    """
    saved = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        saved += t.numel() * t.element_size()
        return t

    rows = torch.zeros(1, dtype=torch.long, device=x.device)
    xb = x[:1].clone().requires_grad_(True)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward(rows, xb)
    return max(1, int(memory // max(saved, 1)))


def _refine(forward, x, clean, weights, active, scale, rate, settings, chunk) -> None:
    """One refinement step for every active target: new energies, new sigma, stopping test."""
    n, K = x.shape[1:]
    M = settings.samples
    noise = []
    for t in active:
        z = torch.randn(M, n, K, generator=t.generator, device=x.device, dtype=x.dtype)
        noise.append(z * t.tokens[None, :, None])
    rows = torch.tensor([t.sentence for t in active for _ in range(M)], device=x.device)
    z_all = torch.cat(noise)
    log_sigma = torch.stack([t.log_sigma for t in active]).detach().requires_grad_(True)
    grads = torch.zeros_like(log_sigma)
    data = torch.zeros(len(active), dtype=torch.float64, device=x.device)
    owner = torch.arange(len(active), device=x.device).repeat_interleave(M)
    outputs = torch.tensor([t.output for t in active], device=x.device)
    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        r, who = rows[sl], owner[sl]
        with torch.enable_grad():
            xb = x[r] + torch.exp(log_sigma)[who][:, :, None] * z_all[sl]
            outs = forward(r, xb)
            per_row = torch.stack(
                [_rows_of_energy(outs[o], clean[o], weights[o], r) for o in range(len(outs))], 1
            )
            mine = per_row.gather(1, outputs[who][:, None]).squeeze(1)
            (g,) = torch.autograd.grad(mine.sum() / M, log_sigma)
        grads += g
        data.index_add_(0, who, mine.detach().to(torch.float64) / M)
    sigma2 = torch.exp(2 * log_sigma.detach()).to(torch.float64)
    for j, t in enumerate(active):
        energy = grads[j].to(torch.float64) / (2 * sigma2[j])
        _average(t, energy, settings.burn_in)
        t.log_sigma = _fixed_point(t.energy, t.tokens, scale, rate).to(x.dtype)
        loss = data[j] + penalty(log_sigma[j].detach().to(torch.float64), t.tokens, scale, rate)
        t.curve.append(float(loss))
        t.steps += 1
        t.converged = t.steps >= settings.min_steps and _standard_error(t, scale) < settings.tol


def _average(t: _Target, energy: torch.Tensor, burn_in: int) -> None:
    """Energy estimate of the target: the latest during burn-in (sigma still moves), then the mean."""
    if t.steps < burn_in or t.energy is None:
        t.energy, t.energy_sq, t.count = energy.clone(), energy.square(), 1
        return
    t.count += 1
    t.energy = t.energy + (energy - t.energy) / t.count
    t.energy_sq = t.energy_sq + (energy.square() - t.energy_sq) / t.count


def _standard_error(t: _Target, scale: float) -> float:
    """Largest relative standard error of sigma over the tokens below the ceiling."""
    if t.count < 3:
        return math.inf
    var = (t.energy_sq - t.energy.square()).clamp_min(0) * t.count / (t.count - 1)
    rel = torch.sqrt(var / t.count) / t.energy.abs().clamp_min(1e-300)
    below = t.tokens & (t.log_sigma < math.log(scale) - 1e-6)
    if not bool(below.any()):
        return 0.0
    return float(0.5 * rel[below].max())


def _solution(t: _Target, scale: float) -> Solution:
    sigma = torch.exp(t.log_sigma[t.tokens]).clamp(max=scale).detach()
    loss = t.curve[-1] if t.curve else math.nan
    return Solution(sigma=sigma, loss=loss, converged=t.converged, steps=t.steps, curve=t.curve)
