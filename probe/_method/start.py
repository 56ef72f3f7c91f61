"""The solver's start: sigma from per-token energies measured without sampling.

For small noise ``Phi(x + eps) - s ~ J eps``, so the data term separates per token as
``sum_i a_i sigma_i**2``, minimised at ``sigma_i = sqrt(rate / (2 n a_i))`` (``fixed_point``).
``linear_start`` measures ``a_i`` by perturbing token ``i`` alone along a few random directions, all
tokens in one forward pass; ``exact_start`` takes a small output's exact Jacobian instead.
"""

from __future__ import annotations

import math

import torch

from . import noise as _noise


def rows_of_energy(out: torch.Tensor, clean: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """The weighted squared change ``sum(W * (out - s)**2)`` of each row: [R]."""
    diff = (out - clean[rows]).square() * weight[rows]
    return diff.reshape(diff.shape[0], -1).sum(1)


def linear_start(forward, x, token_mask, clean, weights, targets, outputs, scale, rate, seeds, settings, chunk) -> None:
    """Sets the sigma of every target of ``outputs`` from per-token energies measured one token at a time."""
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
            outs = forward(r, xb, outputs)
            for o, out in zip(outputs, outs):
                energies[o][sl] = rows_of_energy(out, clean[o], weights[o], r).to(torch.float64)
    for t in (t for t in targets if t.output in outputs):
        mine = rows_t == t.sentence
        a = torch.zeros(n, dtype=torch.float64, device=x.device)
        a.index_add_(0, tokens_t[mine], energies[t.output][mine] / (k * step**2))
        t.log_sigma = fixed_point(a, t.tokens, scale, rate).to(x.dtype)


def exact_start(forward, x, clean, weight, output, group, scale, rate, chunk) -> None:
    """Sets each target's sigma from the exact Jacobian ``J`` [D, n, K] of its small output at x.

    One backward pass per output element gives ``J``, hence the first-order energy
    ``a_i = sum_d W_d |J_di|**2`` without sampling. The refinement keeps ``J`` as a control variate:
    for a small output the sampled gradient of token ``i`` is dominated by the other tokens' noise
    (cross terms), and the first-order model's own sampled gradient, whose mean is known exactly,
    carries the same cross terms; subtracting it leaves only the nonlinear part's noise.
    """
    n, K = x.shape[1:]
    D = clean[0].numel()
    rows = torch.tensor([t.sentence for t in group], device=x.device).repeat_interleave(D)
    element = torch.arange(D, device=x.device).repeat(len(group))
    parts = []
    for start in range(0, len(rows), chunk):
        sl = slice(start, start + chunk)
        xb = x[rows[sl]].clone().requires_grad_(True)
        with torch.enable_grad():
            (out,) = forward(rows[sl], xb, [output])
            chosen = out.reshape(len(xb), -1)[torch.arange(len(xb), device=x.device), element[sl]]
            (g,) = torch.autograd.grad(chosen.sum(), xb)
        parts.append(g.detach())
    jacobians = torch.cat(parts).reshape(len(group), D, n, K)
    for t, jacobian in zip(group, jacobians):
        t.jacobian = jacobian
        t.element_weight = weight[t.sentence].reshape(-1)
        t.linear = (jacobian.to(torch.float64).square().sum(-1) * t.element_weight.to(torch.float64)[:, None]).sum(0)
        t.log_sigma = fixed_point(t.linear, t.tokens, scale, rate).to(x.dtype)


def fixed_point(energy: torch.Tensor, tokens: torch.Tensor, scale: float, rate: float) -> torch.Tensor:
    """``log sigma_i = log sqrt(rate / (2 n a_i))``, capped at the ceiling ``scale``."""
    n = int(tokens.sum())
    tiny = torch.finfo(torch.float64).tiny
    log_sigma = 0.5 * (math.log(rate / (2 * n)) - torch.log(energy.to(torch.float64).clamp_min(tiny)))
    log_sigma = log_sigma.clamp(max=math.log(scale))
    return torch.where(tokens, log_sigma, torch.full_like(log_sigma, math.log(scale)))
