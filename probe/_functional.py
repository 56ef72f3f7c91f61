"""``probe.explain``: the explanation of any hidden state ``Phi(x)`` the user writes."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ._objective import as_regularization, feature_weights, full_weight
from ._phi import Phi, batched, hidden_state, noisy_state
from ._results import Explanation
from ._solver import SolverSettings, solve
from .errors import InputError


def check_input(x: torch.Tensor, words: Sequence[str] | None) -> list[str]:
    """The words for ``x`` [n, K]: as given (one per token) or token indices."""
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"x must be a float tensor of shape [tokens, features], got {got}")
    if x.shape[0] == 0:
        raise InputError("x has no tokens; explain a sentence of at least one token")
    if not torch.isfinite(x).all():
        raise InputError("x holds NaN or inf; pass finite embeddings")
    if words is None:
        return [str(i) for i in range(x.shape[0])]
    words = [str(w) for w in words]
    if len(words) != x.shape[0]:
        raise InputError(f"words has {len(words)} entries but x has {x.shape[0]} tokens; pass one word per token")
    return words


def check_scale_rate(scale: float, rate: float) -> tuple[float, float]:
    """``scale`` and ``rate`` as positive finite floats, or an InputError."""
    for name, value in (("scale", scale), ("rate", rate)):
        if not isinstance(value, (int, float)) or not (0 < float(value) < float("inf")):
            raise InputError(f"{name} must be a positive number, got {value!r}")
    return float(scale), float(rate)


def settings_from(kwargs: dict) -> SolverSettings:
    """SolverSettings from keyword arguments; unknown names are an InputError that lists the known."""
    known = set(SolverSettings.__dataclass_fields__)
    unknown = set(kwargs) - known
    if unknown:
        raise InputError(f"unknown solver setting(s) {sorted(unknown)}; the settings are {sorted(known)}")
    return SolverSettings(**kwargs)


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
    keyword arguments; see ``SolverSettings``.

    >>> W = torch.tensor([10., 20., 5., -20., -10.])
    >>> exp = probe.explain(lambda x: W @ x, torch.randn(5, 256) / 100, scale=1.0)
    >>> exp.sigma.argmin().item() in (1, 3)
    True
    """
    words = check_input(x, words)
    scale, rate = check_scale_rate(scale, rate)
    settings = settings_from(solver)
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
        settings={**settings.as_metadata(), "seed": str(seed)},
    )
