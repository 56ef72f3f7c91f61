"""The seed's ``Interpreter`` and ``calculate_regularization``, kept call for call.

Code written for the paper's repository runs with only its import changed. ``optimize`` solves the
seed's objective with probe's solver: several noise samples per step through a vmapped ``Phi``, from
the linearised estimate, stopping at the optimum (``iteration`` is the most steps), so it ends sooner
and closer to the optimum than the seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .._utils.checks import check_input, check_scale_rate, checked_phi, vector_phi
from .._method.objective import REGULARIZATION, SELF_NORMALISED, as_regularization, feature_weights, full_weight, penalty
from .phi import Phi, batched, hidden_state, noisy_state
from .._results.explanation import Explanation
from .._method.settings import SolverSettings
from .._method.solver import solve
from ..errors import InputError


class Interpreter(nn.Module):
    """The seed's explainer of ``Phi`` at ``x``: a drop-in replacement for ``Interpreter.Interpreter``.

    The seed's tutorial: ``W = [10, 20, 5, -20, -10]``, ``Phi = lambda x: W @ x``, ``x`` 5 tokens of
    256 features. The optimum is ``sigma_i`` proportional to ``1 / |W_i|``: words 2 and 4 are kept most.

    >>> interpreter = Interpreter(x=x, Phi=Phi, regularization=regularization, scale=1.0, words=words)
    >>> interpreter.optimize(iteration=5000, lr=0.5)
    >>> sigma = interpreter.get_sigma()
    >>> [words[i] for i in sigma.argsort()[:2]] in (["2", "4"], ["4", "2"])
    True
    >>> bool(np.abs(sigma * np.abs(W.numpy()) / (sigma[0] * 10) - 1).max() < 0.1)   # sigma * |W| is one constant
    True
    """

    def __init__(self, x: torch.Tensor, Phi: Phi, scale: float = 0.5, rate: float = 0.1, regularization=None, words: Sequence[str] | None = None) -> None:
        super().__init__()
        words_checked = check_input(x, words)
        self.scale, self.rate = check_scale_rate(scale, rate)
        self.s, self.d = x.shape
        self.x = x.detach()  # the seed's BERT example passes embeddings with a graph; never backprop into it
        self.Phi = checked_phi(Phi)
        self._phi_b = batched(vector_phi(Phi), False)  # decides once whether Phi can be vmapped; noisy_state checks what it gives
        self.words = None if words is None else words_checked
        self.ratio = nn.Parameter(torch.randn(self.s, 1, device=x.device), requires_grad=True)
        self._hidden = hidden_state(self.Phi, x)
        self.regular = None
        if regularization is not None:
            as_regularization(regularization, self._hidden, signed=True)  # checked; the seed squares it, so a sign is harmless
            given = regularization.detach() if isinstance(regularization, torch.Tensor) else torch.as_tensor(np.asarray(regularization))
            self.regular = nn.Parameter(given.clone().to(x), requires_grad=False)  # held as given, as the seed holds it
        self._settings: dict[str, str] = {}
        self._loss = float("nan")
        self._curve: list[float] = []
        self._converged = False
        self._stderr: torch.Tensor | None = None

    def _weight(self) -> torch.Tensor:
        w = None if self.regular is None else feature_weights(self.regular.to(torch.float64).abs())
        return full_weight(self._hidden, None, w)

    def forward(self, samples: int = 1) -> torch.Tensor:
        """The seed's noisy loss at the current ``ratio``, averaged over ``samples`` draws.

        >>> loss = interpreter(samples=8)
        >>> loss.backward()
        >>> interpreter.ratio.grad.shape
        torch.Size([5, 1])
        """
        weight = self._weight()
        ratios = torch.sigmoid(self.ratio)
        eps = torch.randn(samples, self.s, self.d, device=self.x.device, dtype=self.x.dtype)
        noisy = noisy_state(self._phi_b, self.x[None] + ratios[None] * eps * self.scale, self._hidden)
        data = ((noisy - self._hidden[None]).square() * weight[None]).flatten(1).sum(1).mean()
        log_ratio = torch.log(ratios[:, 0])
        return data + penalty(log_ratio + np.log(self.scale), torch.ones_like(log_ratio, dtype=torch.bool), self.scale, self.rate)

    def optimize(self, iteration: int = 5000, lr: float = 0.01, show_progress: bool = False, samples: int = SolverSettings.samples) -> None:
        """Fits sigma to the optimum of the seed's loss in at most ``iteration`` steps, stopping as
        soon as it is there.

        The seed runs ``iteration`` single-sample Adam steps at ``lr``. Here the first step pushes
        ``samples`` noise draws through ``Phi`` as one batch and each later step what the precision
        still needs (``Phi`` is vectorised with ``torch.func.vmap`` when it allows, else called once
        per draw); each step moves sigma to the fixed point of the loss's gradient, from the linearised start; the solve stops once
        sigma's standard error is below 1.8% RMS (``explanation().converged``), usually after 2 to 15
        steps, so ``iteration`` is the most steps, not the number. ``lr`` is kept for the seed's
        signature and recorded; fixed-point steps need no learning rate. ``torch.manual_seed``
        before the call makes it reproducible, as in the seed.

        >>> interpreter.optimize(iteration=5000, lr=0.01, show_progress=True)
        """
        if int(iteration) < 1 or not lr > 0 or int(samples) < 1:
            raise InputError("iteration and samples must be at least 1 and lr positive")
        settings = SolverSettings(samples=int(samples), max_steps=int(iteration))
        seed = int(torch.randint(2**62, (1,)))
        with tqdm(total=int(iteration), disable=not show_progress, desc="optimize") as bar:
            solution = solve(
                lambda rows, xb, needed: [noisy_state(self._phi_b, xb, self._hidden)],
                self.x[None],
                torch.ones(1, self.s, dtype=torch.bool, device=self.x.device),
                [self._hidden[None]],
                [self._weight()[None]],
                scale=self.scale,
                rate=self.rate,
                seeds=[seed],
                settings=settings,
                progress=lambda step: bar.update(1),
            )[0][0]
        with torch.no_grad():
            self.ratio.copy_(torch.logit((solution.sigma / self.scale).clamp(1e-6, 1 - 1e-6))[:, None].to(self.ratio))
        self._curve, self._loss, self._converged, self._stderr = solution.curve, solution.loss, solution.converged, solution.stderr
        self._settings = {**settings.as_metadata(), "optimizer": "fixed point", "weighting": SELF_NORMALISED if self.regular is None else REGULARIZATION, "iteration": str(iteration), "lr": str(lr), "seed": str(seed)}

    def get_sigma(self) -> np.ndarray:
        """Sigma per token as a numpy array of shape [n]: small means the hidden state keeps the word.

        >>> interpreter.get_sigma().shape
        (5,)
        """
        return (torch.sigmoid(self.ratio).detach().cpu().numpy()[:, 0] * self.scale).astype(np.float32)

    def explanation(self) -> Explanation:
        """The current sigma as an ``Explanation`` (save, load, plot, information loss).

        >>> interpreter.explanation().save(tmp / "toy.safetensors")
        >>> probe.load(tmp / "toy.safetensors").words
        ['1', '2', '3', '4', '5']
        """
        return Explanation(
            sigma=torch.from_numpy(self.get_sigma()),
            words=self.words if self.words is not None else [str(i) for i in range(self.s)],
            scale=self.scale,
            rate=self.rate,
            width=self.d,
            regularization=None if self.regular is None else self.regular.detach().abs().float().cpu(),
            loss=self._loss,
            converged=self._converged,
            stderr=self._stderr,
            steps=len(self._curve),
            settings=self._settings,
            curve=self._curve,
        )

    def visualize(self):
        """Shows the seed's heatmap of sigma over the words (``plt.show``) and returns the figure.

        >>> fig = interpreter.visualize()
        """
        import matplotlib.pyplot as plt

        fig = self.explanation()._heatmap(new_figure=plt.figure)
        plt.show()
        return fig


def calculate_regularization(sampled_x: Sequence[torch.Tensor] | torch.Tensor, Phi: Phi, reduced_axes: Sequence[int] | None = None, device=None) -> np.ndarray:
    """The seed's regularization: the std over samples of ``Phi(x)``, each first averaged over ``reduced_axes``.
    ``sampled_x`` is a list of inputs x, or one tensor [samples, tokens, features] whose first axis
    is iterated, as the seed's code does.

    >>> W = torch.tensor([10., 20., 5., -20., -10.])
    >>> calculate_regularization([torch.randn(5, 256) / 100 for _ in range(100)], lambda x: W @ x).shape
    (256,)
    >>> calculate_regularization(torch.randn(100, 5, 256) / 100, lambda x: W @ x).shape
    (256,)
    """
    if isinstance(sampled_x, (torch.Tensor, np.ndarray)) and sampled_x.ndim >= 1:
        sampled_x = list(sampled_x)
    if isinstance(sampled_x, (str, bytes, torch.Tensor, np.ndarray)) or not isinstance(sampled_x, Sequence):
        raise InputError(f"sampled_x must be a list of inputs x (tensors [tokens, features]) or a tensor [samples, tokens, features], got {type(sampled_x).__name__}")
    axes = () if reduced_axes is None else reduced_axes
    if isinstance(axes, (str, bytes)) or not isinstance(axes, Sequence) or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in axes):
        raise InputError(f"reduced_axes must be a list of axis numbers (0, 1, ...), got {reduced_axes!r}")
    phi = checked_phi(Phi)
    target = None if device is None else _device(device)
    states = []
    for x in sampled_x:
        try:
            x = torch.as_tensor(x) if target is None else torch.as_tensor(x).to(target)
        except (TypeError, ValueError, RuntimeError) as err:
            raise InputError(f"sampled_x holds a {type(x).__name__} that is no tensor of numbers ({err}); pass tensors [tokens, features]") from None
        s = hidden_state(phi, x)
        for axis in axes:
            if axis >= s.ndim:
                raise InputError(f"reduced_axes names axis {axis} but Phi's output has {s.ndim} axes")
            s = s.mean(dim=axis, keepdim=True)
        states.append(s.detach().to("cpu", torch.float64))
    if not states:
        raise InputError("sampled_x is empty; pass a list of inputs x to compute the regularization")
    shapes = {tuple(s.shape) for s in states}
    if len(shapes) != 1:
        raise InputError(f"Phi's outputs have different shapes {sorted(shapes)}; average the length axis with reduced_axes")
    return torch.stack(states).std(0, unbiased=False).numpy()


def _device(device) -> torch.device:
    """``device`` (a name or a torch.device) as a torch.device, or an InputError that names the valid ones."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {device!r}; use 'cpu', 'cuda' or 'cuda:N'") from None
