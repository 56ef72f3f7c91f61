"""The one-number path's variance reduction (outputs of at most ``solver.JACOBIAN_MAX`` elements).

The per-sample gradient of a small output is dominated by the other tokens' noise. Two devices cut
it, both unbiased: the exact Jacobian's first-order model as a control variate (its sampled gradient
carries the same cross terms, its mean is known), and antithetic pairs of draws, which cancel the
odd part of what the control variate leaves.
"""

from __future__ import annotations

import torch


def antithetic(z: torch.Tensor, samples: int) -> torch.Tensor:
    """Each target's ``samples`` draws followed by their negatives: [targets x samples, n, K] ->
    [targets x 2 samples, n, K], draw ``samples + p`` of a target being minus its draw ``p``."""
    return torch.cat([torch.cat([d, -d]) for d in z.split(samples)])


def pair_means(grads: torch.Tensor) -> torch.Tensor:
    """The means of antithetic pairs: [targets, 2 h, n] whose draws ``h + p`` are minus draws ``p``
    -> [targets, h, n].

    After the first-order control variate a small output's per-sample gradient keeps the model's
    nonlinear remainder. A pair ``z, -z`` cancels its odd part in the noise exactly (the linear
    change times the quadratic one, and the Jacobian's first change times the linear one): all of a
    quadratic readout's noise but its fourth-order term. Where higher orders dominate (MiniLM's
    last layer) a pair is worth two independent draws, no less. The two halves of a pair are not
    independent, so the pair means are the independent estimates the standard error counts.
    """
    half = grads.shape[1] // 2
    return (grads[:, :half] + grads[:, half:]) / 2


def subtract_first_order(group, log_sigma, z, samples, grads, data) -> None:
    """The control variate: minus the first-order model's sampled gradient and data term, plus their
    exact means (``2 sigma_i**2 a_i`` and ``sum_i sigma_i**2 a_i``). Unbiased whatever ``J``."""
    for j, t in enumerate(group):
        sigma = torch.exp(log_sigma[j])
        step = sigma[None, :, None] * z[j * samples : (j + 1) * samples]  # [S, n, K]
        change = torch.einsum("dik,sik->sd", t.jacobian, step)  # the first-order output change
        weighted = change * t.element_weight[None]
        per_token = torch.einsum("sd,dik,sik->si", weighted, t.jacobian, step).to(torch.float64)
        sigma2 = sigma.to(torch.float64).square()
        grads[j] += (2 * sigma2 * t.linear)[None] - 2 * per_token
        data[j] += float((sigma2 * t.linear).sum()) - float((weighted * change).sum()) / samples
