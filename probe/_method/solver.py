"""The fast solver of the seed's objective.

Two stages, both batched over every sentence and every explained layer at once:

1. A linearised start. For small noise ``Phi(x + eps) - s ~ J eps``, so the data term separates per
   token as ``sum_i a_i sigma_i**2``, minimised at ``sigma_i = sqrt(rate / (2 n a_i))``. ``a_i`` is
   estimated by perturbing token ``i`` alone along a few orthogonal random directions, all tokens in
   one forward pass, no backward pass. An output of at most ``JACOBIAN_MAX`` elements (a logit, a
   neuron, a projection) gets its exact Jacobian instead, one backward pass per element.
2. Refinement on the true objective. Each step pushes ``samples`` Gaussian draws through ``Phi`` as
   one batch and back-propagates to a per-sample ``log sigma``. A token's gradient ``g_i`` gives its
   effective energy ``a_i = g_i / (2 sigma_i**2)``; the mean of these per-sample energies is the
   fixed point ``sigma_i = sqrt(rate / (2 n a_i))`` (a Newton step in ``log sigma`` for the
   quadratic model). The fixed point holds exactly where the gradient of the seed's objective is
   zero, so this converges to the seed's optimum, not to a surrogate. Each token's standard error of
   sigma comes from the per-sample spread of its energies (``_relative_errors``) and is returned as
   ``Solution.stderr``; the solve has converged, and stops, once the root-mean-square over the
   tokens of ``stderr / sigma`` is below ``tol``.
   For a small output the other tokens' noise dominates each token's gradient (cross terms); the
   exact Jacobian's first-order model, whose sampled gradient carries the same cross terms and whose
   mean is known, is subtracted as a control variate; its draws come in antithetic pairs, which
   cancel the remainder's odd part, and a pair counts as one sample. After the first step of
   ``samples`` samples, each step draws what the standard error says is still needed (``_grown``),
   so an easy layer stops near the Monte Carlo floor and a hard one draws up to ``max_samples`` per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from . import noise as _noise
from .control import antithetic, pair_means, subtract_first_order
from .objective import penalty
from .settings import Solution, SolverSettings
from .start import exact_start, fixed_point, linear_start, rows_of_energy

MOVED = 0.15
"""A step in log sigma beyond this (about 16%) restarts the token's energy average."""
TOP_UP = 2
"""Fewest draws a step adds: a last top-up of one draw would cost a whole pass for little."""
TRUSTED = 16
"""Draws after which a token's standard error is trusted to declare ``tol`` out of reach."""
JACOBIAN_MAX = 16
"""Outputs of at most this many elements per sentence (a logit, a neuron, a projection) get their
exact Jacobian from one backward pass per element and use it as a control variate (see ``start.exact_start``)."""

Forward = Callable[[torch.Tensor, torch.Tensor, Sequence[int]], Sequence[torch.Tensor]]


@dataclass
class _Target:
    sentence: int
    output: int
    tokens: torch.Tensor  # bool [n_pad], real tokens of the sentence
    generator: torch.Generator
    log_sigma: torch.Tensor  # [n_pad]
    energy_sum: torch.Tensor | None = None  # per token: sum of per-sample energy estimates since the last restart
    energy_sq: torch.Tensor | None = None  # and of their squares
    count: torch.Tensor | None = None  # and their number
    measured_at: torch.Tensor | None = None  # per token: sum over those samples of the log sigma each was drawn at
    jacobian: torch.Tensor | None = None  # [D, n, K] for a small output: its exact Jacobian at x
    element_weight: torch.Tensor | None = None  # [D], the output's weight per element
    linear: torch.Tensor | None = None  # [n] float64: the exact energy of the first-order model
    steps: int = 0
    samples: int = 0  # noise samples of the next step (0: the first step's ``settings.samples``)
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
    small = [o for o, c in enumerate(clean) if c[0].numel() <= JACOBIAN_MAX]
    for o in small:
        exact_start(forward, x, clean[o], weights[o], o, [t for t in targets if t.output == o], scale, rate, chunk)
    probed = [o for o in range(len(clean)) if o not in small]
    if probed:
        linear_start(forward, x, token_mask, clean, weights, targets, probed, scale, rate, seeds, settings, chunk)
    for step in range(settings.max_steps):
        active = [t for t in targets if not t.converged]
        if not active:
            break
        _refine(forward, x, clean, weights, active, scale, rate, settings, chunk)
        if progress is not None:
            progress(step)
    return [
        [_solution(t, scale, rate) for t in targets[b * len(clean) : (b + 1) * len(clean)]]
        for b in range(B)
    ]




def _chunk_rows(forward: Forward, x: torch.Tensor, outputs: int, memory: int) -> int:
    """How many rows one chunk may hold, from the bytes autograd saves for one row.

    The linearised start's passes without gradients use as many: one row's transients there (at 512
    tokens, mostly the attention scores) are less than what a backward pass saves, so the start stays
    within ``memory`` too (with four times as many, a 512-token MiniLM explain grew memory by 1.68 GiB
    under the 1 GiB default; with as many, by 0.70 GiB: ``benchmarks/bench_length.py``).
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

    Targets are grouped by output, so each group's samples run only as deep as its own layer, and by
    their samples per step, so a sentence draws as many as it needs itself, whatever its batch.
    """
    def drawn(t: _Target) -> int:
        return t.samples or settings.samples

    for o, samples in sorted({(t.output, drawn(t)) for t in active}):
        group = [t for t in active if t.output == o and drawn(t) == samples]
        grads, data = _sample_gradients(forward, x, clean[o], weights[o], o, group, samples, chunk)
        for j, t in enumerate(group):
            sigma2 = torch.exp(2 * t.log_sigma.to(torch.float64))
            loss = data[j] + penalty(t.log_sigma.to(torch.float64), t.tokens, scale, rate)
            _average(t, grads[j] / (2 * sigma2))
            _move(t, fixed_point(t.energy_sum / t.count.clamp_min(1), t.tokens, scale, rate).to(x.dtype), math.log(settings.max_move), scale, rate)
            t.curve.append(float(loss))
            t.steps += 1
            error = _standard_error(t, scale, rate, 2 * settings.samples)
            t.converged = t.steps >= settings.min_steps and error < settings.tol
            t.samples = _grown(t, samples, error, settings)


def _grown(t: _Target, samples: int, error: float, settings: SolverSettings) -> int:
    """Samples for the next step: the draws the standard error says are still needed to reach
    ``tol`` (it falls as one over the square root of their number), at least ``TOP_UP`` and at most
    ``max_samples``. So an easy layer stops near the Monte Carlo floor instead of at a fixed
    schedule. Once the error is ``TRUSTED`` and says that even ``max_samples`` per step could not
    reach ``tol`` within ``max_steps``, the solve stays cheap and ends unconverged."""
    if t.converged or not math.isfinite(error):
        return samples
    held = float(t.count[t.tokens].min())
    needed = held * ((error / settings.tol) ** 2 - 1)
    if held >= TRUSTED and needed > (settings.max_steps - t.steps) * settings.max_samples:
        return samples
    return min(settings.max_samples, _rung(max(TOP_UP, needed)))


def _rung(draws: float) -> int:
    """The smallest of 2, 3, 4, 6, 8, 12, ... (powers of two and one and a half times them) that
    holds ``draws``: sentences of a batch whose needs differ a little share one pass per step.

    >>> [_rung(d) for d in (2, 2.5, 5, 7, 13, 40)]
    [2, 3, 6, 8, 16, 48]
    """
    power = 2 ** max(1, math.floor(math.log2(draws)))
    return next(r for r in (power, 3 * power // 2, 2 * power) if r >= draws)


def _sample_gradients(forward, x, clean, weight, output, group, samples, chunk):
    """Per-sample gradients of the data term with respect to ``log sigma`` [targets, samples, n] and
    the data term of each target, from ``samples`` fresh Gaussian draws per target pushed through
    the model in chunks. A small output's samples are antithetic pairs of draws, returned as pair
    means (see ``control.pair_means``): each is one independent estimate, as a draw is for a state, so the
    schedule, the stopping test and the budget count them alike, at two draws each."""
    n, K = x.shape[1:]
    paired = group[0].jacobian is not None
    z = torch.cat([_noise.gaussian(t.generator, samples, t.tokens, K, x) for t in group])
    if paired:
        z, samples = antithetic(z, samples), 2 * samples
    rows = torch.tensor([t.sentence for t in group], device=x.device).repeat_interleave(samples)
    owner = torch.arange(len(group), device=x.device).repeat_interleave(samples)
    log_sigma = torch.stack([t.log_sigma for t in group]).detach()
    grads = torch.zeros(len(rows), n, dtype=torch.float64, device=x.device)
    data = torch.zeros(len(group), dtype=torch.float64, device=x.device)
    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        r, who = rows[sl], owner[sl]
        per_row = log_sigma[who].requires_grad_(True)  # one leaf per sample: per-sample gradients
        with torch.enable_grad():
            xb = _noise.noisy(x[r], torch.exp(per_row), z[sl])
            (out,) = forward(r, xb, [output])
            energy = rows_of_energy(out, clean, weight, r)
            (g,) = torch.autograd.grad(energy.sum(), per_row)
        grads[sl] = g.to(torch.float64)
        data.index_add_(0, who, energy.detach().to(torch.float64) / samples)
    grads = grads.reshape(len(group), samples, n)
    if paired:
        subtract_first_order(group, log_sigma, z, samples, grads, data)
        grads = pair_means(grads)
    return grads, data


def _average(t: _Target, energies: torch.Tensor) -> None:
    """Adds per-sample energy estimates [samples, n] to each token's sums since its last restart."""
    if t.energy_sum is None:
        t.energy_sum, t.energy_sq, t.count, t.measured_at = (torch.zeros(energies.shape[1], dtype=torch.float64, device=energies.device) for _ in range(4))
    t.energy_sum = t.energy_sum + energies.sum(0)
    t.energy_sq = t.energy_sq + energies.square().sum(0)
    t.count = t.count + energies.shape[0]
    t.measured_at = t.measured_at + energies.shape[0] * t.log_sigma.to(torch.float64)


def _move(t: _Target, target: torch.Tensor, max_log_move: float, scale: float, rate: float) -> None:
    """Steps log sigma toward the fixed point, at most ``max_log_move`` per step.

    The energy depends on sigma where the model saturates, so a token's average is only valid near
    where it was measured: once its sigma is farther than ``MOVED`` and than twice sigma's standard
    error from the mean log sigma its samples were drawn at, the average starts again. Early, noisy
    averages may move far; a precise one is kept to a neighbourhood as narrow as its precision.
    """
    step = (target - t.log_sigma).clamp(-max_log_move, max_log_move)
    t.log_sigma = t.log_sigma + step
    drift = (t.log_sigma.to(torch.float64) - t.measured_at / t.count.clamp_min(1)).abs()
    restart = (drift > MOVED) & (drift > 2 * _relative_errors(t, scale, rate))
    t.energy_sum, t.energy_sq, t.count, t.measured_at = (torch.where(restart, 0.0, v) for v in (t.energy_sum, t.energy_sq, t.count, t.measured_at))


def _relative_errors(t: _Target, scale: float, rate: float) -> torch.Tensor:
    """Each token's standard error of log sigma: half the width of the sigma interval that the mean
    energy plus or minus one standard error maps to through the fixed point, capped at the ceiling.
    Mid-range, about half the energy's relative error; a token whose energy is surely too small to
    pull it below the ceiling has none. Inf with fewer than 2 samples."""
    count = t.count.clamp_min(1)
    mean = t.energy_sum / count
    var = (t.energy_sq / count - mean.square()).clamp_min(0) * count / (count - 1).clamp_min(1)
    error = torch.sqrt(var / count)
    high = fixed_point(mean - error, t.tokens, scale, rate)
    low = fixed_point(mean + error, t.tokens, scale, rate)
    return torch.where(t.count >= 2, (high - low) / 2, torch.full_like(mean, math.inf))


def _standard_error(t: _Target, scale: float, rate: float, fewest: int) -> float:
    """Relative standard error of sigma, root-mean-square over the real tokens; inf while a token
    below the ceiling holds fewer than ``fewest`` samples since its last restart."""
    below = t.tokens & (t.log_sigma < math.log(scale) - 1e-6)
    if bool((t.count[below] < fewest).any()):
        return math.inf
    return float(_relative_errors(t, scale, rate)[t.tokens].square().mean().sqrt())


def _solution(t: _Target, scale: float, rate: float) -> Solution:
    """Sigma over the real tokens, with its standard error: sigma times the standard error of
    log sigma (``_relative_errors``); inf for a token with fewer than 2 draws since its last restart."""
    sigma = torch.exp(t.log_sigma[t.tokens]).clamp(max=scale).detach()
    relative = torch.full_like(sigma, math.inf) if t.count is None else _relative_errors(t, scale, rate)[t.tokens].to(sigma.dtype)
    loss = t.curve[-1] if t.curve else math.nan
    return Solution(sigma=sigma, loss=loss, converged=t.converged, steps=t.steps, curve=t.curve, stderr=sigma * relative)
