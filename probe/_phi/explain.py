"""``probe.explain``: the explanation of any hidden state ``Phi(x)`` the user writes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._utils.checks import check_input, check_scale_rate, check_seed, settings_from
from .._method.objective import REGULARIZATION, SELF_NORMALISED, as_regularization, feature_weights, full_weight
from .phi import Phi, batched, hidden_state, noisy_state
from .._results.explanation import Explanation
from .._method.settings import SolverSettings
from .._method.solver import solve
from ..errors import InputError


def explain(
    Phi: Phi,
    x: torch.Tensor,
    *,
    words: Sequence[str] | None = None,
    regularization=None,
    scale: float = 0.5,
    rate: float = 0.1,
    seed: int = 0,
    batched_phi: bool = False,
    layer: str = "",
    **solver,
) -> Explanation:
    """Per-word sigma of the hidden state ``Phi(x)``: the optimum of the seed's objective.

    ``x`` is one sentence's embeddings [tokens, features]. ``Phi`` maps it to the hidden state;
    it is vmapped over noise samples unless ``batched_phi=True`` says it already takes
    [samples, tokens, features]. Solver settings (``samples``, ``max_steps``, ``tol``, ...) are
    keyword arguments; see ``SolverSettings``. The result's ``stderr`` is each sigma's standard
    error; it has ``converged`` once the root-mean-square over the words of ``stderr / sigma`` is
    below ``tol``. Without a ``regularization`` the seed's self-normalisation ``mean(s**2)`` weighs
    the change (``settings["weighting"]`` says which was used).

    >>> W = torch.tensor([10., 20., 5., -20., -10.])
    >>> exp = probe.explain(lambda x: W @ x, torch.randn(5, 256) / 100, scale=1.0)
    >>> exp.sigma.argmin().item() in (1, 3)
    True
    """
    if not callable(Phi):
        raise InputError(f"Phi must be a function of x that returns the hidden state, got {type(Phi).__name__}")
    words = check_input(x, words)
    scale, rate = check_scale_rate(scale, rate)
    seed = check_seed(seed)
    settings = settings_from(solver, SolverSettings)
    s = hidden_state((lambda v: Phi(v[None])[0]) if batched_phi else Phi, x)
    r = None if regularization is None else as_regularization(regularization, s)
    weight = full_weight(s, None, None if r is None else feature_weights(r))
    phi_b = batched(Phi, batched_phi)
    (solution,) = solve(
        lambda rows, xb, needed: [noisy_state(phi_b, xb, s)],
        x[None].detach(),
        torch.ones(1, x.shape[0], dtype=torch.bool, device=x.device),
        [s[None]],
        [weight[None]],
        scale=scale,
        rate=rate,
        seeds=[seed],
        settings=settings,
    )[0]
    return Explanation.of(
        solution,
        words=words,
        scale=scale,
        rate=rate,
        width=x.shape[1],
        layer=layer,
        regularization=None if r is None else r.to(torch.float32).cpu(),
        settings={**settings.as_metadata(), "seed": str(seed), "weighting": SELF_NORMALISED if r is None else REGULARIZATION},
    )
