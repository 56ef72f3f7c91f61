"""The seed's ``Interpreter`` and ``calculate_regularization``, kept call for call.

Code written for the paper's repository runs with only its import changed. ``optimize`` keeps the
seed's meaning (``iteration`` Adam steps at ``lr``) but draws several noise samples per step as one
batch, starts from the linearised estimate and returns the average of the last half of the steps
instead of the luckiest noisy one, so it ends closer to the optimum than the seed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ._checks import check_input, check_scale_rate, checked_phi
from ._objective import as_regularization, feature_weights, full_weight, penalty
from ._phi import Phi, batched, hidden_state
from ._results import Explanation
from ._solver import SolverSettings, solve
from .errors import InputError


class Interpreter(nn.Module):
    """The seed's explainer of ``Phi`` at ``x``: a drop-in replacement for ``Interpreter.Interpreter``.

    >>> interpreter = Interpreter(x=x, Phi=Phi, regularization=regularization, scale=1.0, words=words)
    >>> interpreter.optimize(iteration=5000, lr=0.5)
    >>> interpreter.get_sigma()
    array([0.00315, 0.00181, 0.00633, 0.00174, 0.00308], dtype=float32)
    """

    def __init__(self, x: torch.Tensor, Phi: Phi, scale: float = 0.5, rate: float = 0.1, regularization=None, words: Sequence[str] | None = None) -> None:
        super().__init__()
        words_checked = check_input(x, words)
        self.scale, self.rate = check_scale_rate(scale, rate)
        self.s, self.d = x.shape
        self.x = x.detach()  # the seed's BERT example passes embeddings with a graph; never backprop into it
        self.Phi = checked_phi(Phi)
        self.words = None if words is None else words_checked
        self.ratio = nn.Parameter(torch.randn(self.s, 1, device=x.device), requires_grad=True)
        self._hidden = hidden_state(self.Phi, x)
        self.regular = None
        if regularization is not None:
            r = as_regularization(regularization, self._hidden, signed=True)  # the seed squares it: a sign is harmless
            self.regular = nn.Parameter(r.to(x.dtype), requires_grad=False)
        self._settings: dict[str, str] = {}
        self._loss = float("nan")
        self._curve: list[float] = []

    def _weight(self) -> torch.Tensor:
        w = None if self.regular is None else feature_weights(self.regular.to(torch.float64))
        return full_weight(self._hidden, None, w)

    def forward(self, samples: int = 1) -> torch.Tensor:
        """The seed's noisy loss at the current ``ratio``, averaged over ``samples`` draws.

        >>> interpreter(samples=8).backward()
        """
        phi_b = batched(self.Phi, False)
        return self._loss_of(phi_b, self._weight(), samples)

    def _loss_of(self, phi_b, weight: torch.Tensor, samples: int) -> torch.Tensor:
        ratios = torch.sigmoid(self.ratio)
        eps = torch.randn(samples, self.s, self.d, device=self.x.device, dtype=self.x.dtype)
        noisy = phi_b(self.x[None] + ratios[None] * eps * self.scale)
        data = ((noisy - self._hidden[None]).square() * weight[None]).flatten(1).sum(1).mean()
        log_ratio = torch.log(ratios[:, 0])
        return data + penalty(log_ratio + np.log(self.scale), torch.ones_like(log_ratio, dtype=torch.bool), self.scale, self.rate)

    def optimize(self, iteration: int = 5000, lr: float = 0.01, show_progress: bool = False, samples: int = 8) -> None:
        """``iteration`` Adam steps at ``lr`` on the seed's loss, ``samples`` noise draws per step.

        >>> interpreter.optimize(iteration=500, lr=0.5, show_progress=True)
        """
        if int(iteration) < 1 or not lr > 0 or int(samples) < 1:
            raise InputError("iteration and samples must be at least 1 and lr positive")
        phi_b = batched(self.Phi, False)
        weight = self._weight()
        start = solve(
            lambda rows, xb, needed: [phi_b(xb)],
            self.x[None].detach(),
            torch.ones(1, self.s, dtype=torch.bool, device=self.x.device),
            [self._hidden[None]],
            [weight[None]],
            scale=self.scale,
            rate=self.rate,
            seeds=[0],
            settings=SolverSettings(max_steps=0),
        )[0][0]
        with torch.no_grad():
            self.ratio.copy_(torch.logit((start.sigma / self.scale).clamp(1e-6, 1 - 1e-6))[:, None].to(self.ratio))
        optimizer = torch.optim.Adam([self.ratio], lr=lr)
        average, counted, curve = torch.zeros_like(self.ratio), 0, []
        half = int(iteration) // 2
        steps = tqdm(range(int(iteration)), disable=not show_progress, desc="optimize")
        with torch.enable_grad():
            for step in steps:
                optimizer.zero_grad()
                loss = self._loss_of(phi_b, weight, int(samples))
                loss.backward()
                optimizer.step()
                curve.append(float(loss.detach()))
                if step >= half:
                    counted += 1
                    average += (self.ratio.detach() - average) / counted
        with torch.no_grad():
            self.ratio.copy_(average)
        self._curve = curve
        self._loss = float(np.mean(curve[half:]))
        self._settings = {"optimizer": "adam", "iteration": str(iteration), "lr": str(lr), "samples": str(samples)}

    def get_sigma(self) -> np.ndarray:
        """Sigma per token as a numpy array of shape [n]: small means the hidden state keeps the word.

        >>> interpreter.get_sigma().shape
        (5,)
        """
        return (torch.sigmoid(self.ratio).detach().cpu().numpy()[:, 0] * self.scale).astype(np.float32)

    def explanation(self) -> Explanation:
        """The current sigma as an ``Explanation`` (save, load, plot, information loss).

        >>> interpreter.explanation().save("toy.safetensors")
        """
        return Explanation(
            sigma=torch.from_numpy(self.get_sigma()),
            words=self.words if self.words is not None else [str(i) for i in range(self.s)],
            scale=self.scale,
            rate=self.rate,
            width=self.d,
            regularization=None if self.regular is None else self.regular.detach().float().cpu(),
            loss=self._loss,
            converged=False,
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


def calculate_regularization(sampled_x: Sequence[torch.Tensor], Phi: Phi, reduced_axes: Sequence[int] | None = None, device=None) -> np.ndarray:
    """The seed's regularization: the std over samples of ``Phi(x)``, each first averaged over ``reduced_axes``.

    >>> regularization = calculate_regularization([torch.randn(5, 256) for _ in range(100)], Phi)
    """
    states = []
    for x in sampled_x:
        x = torch.as_tensor(x) if device is None else torch.as_tensor(x).to(device)
        with torch.no_grad():
            s = Phi(x)
        for axis in reduced_axes or ():
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
