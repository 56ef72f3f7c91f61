"""The paper's tutorial flow (``Interpreter(...).optimize(iteration=5000, lr=0.01)``) at full speed.

A hand-written ``Phi`` over one sentence [tokens, features] is vectorised with ``torch.func.vmap``
when it allows and called once per noise draw when it does not; either way ``optimize`` stops at the
optimum, long before 5000 steps. For ``Phi(x) = W @ x`` the optimum is
``sigma_i = sqrt(rate / (2 n mean_d(1 / r_d**2))) / |W_i|``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe import Interpreter, calculate_regularization
from probe._phi.phi import AutoBatched

W = torch.tensor([10.0, 20.0, 5.0, -20.0, -10.0])


def batchable(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(W @ x / 50) * 50  # nearly linear at this noise: the closed form holds within 1%


def unbatchable(x: torch.Tensor) -> torch.Tensor:
    if float(x.detach().abs().sum()) < 0:  # data-dependent control flow: vmap refuses it
        return x[0]
    return torch.tanh(W @ x / 50) * 50


def closed_form(regularization: np.ndarray, rate: float = 0.1) -> np.ndarray:
    mean_inv_r2 = float(np.mean(1 / np.square(regularization.astype(np.float64))))
    return np.sqrt(rate / (2 * len(W) * mean_inv_r2)) / np.abs(W.double().numpy())


@pytest.mark.parametrize("Phi, vmapped", [(batchable, True), (unbatchable, False)], ids=["vmap", "loop"])
def test_the_tutorial_ends_at_the_optimum_long_before_5000_steps(Phi, vmapped):
    torch.manual_seed(0)
    x = torch.randn(5, 256) / 100
    regularization = calculate_regularization([torch.randn(5, 256) / 100 for _ in range(100)], Phi)
    interpreter = Interpreter(x=x, Phi=Phi, regularization=regularization, scale=1.0, words=list("abcde"))
    interpreter.optimize(iteration=5000, lr=0.01)
    assert interpreter._phi_b.vmapped is vmapped
    exp = interpreter.explanation()
    assert exp.converged and exp.steps < 100
    error = np.abs(interpreter.get_sigma() / closed_form(regularization) - 1)
    assert error.mean() < 0.02 and error.max() < 0.05


def test_the_same_manual_seed_gives_the_same_sigma():
    x = torch.randn(5, 64) / 100
    runs = []
    for _ in range(2):
        torch.manual_seed(3)
        interpreter = Interpreter(x=x, Phi=batchable, scale=1.0)
        interpreter.optimize(iteration=50)
        runs.append(interpreter.get_sigma())
    assert np.array_equal(runs[0], runs[1])


def test_vmap_and_loop_agree_and_the_choice_is_made_once():
    calls = []

    def counted(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return x.sum(0).item() * x[0] if x.abs().sum() < 0 else x.sum(0)  # .item() under a branch: loop

    xb = torch.randn(4, 3, 8)
    looped = AutoBatched(counted)
    out = looped(xb)
    assert looped.vmapped is False and torch.allclose(out, xb.sum(1))
    before = len(calls)
    looped(xb)
    assert len(calls) - before == 4  # no second attempt at vmap: one call per row
    vmapped = AutoBatched(lambda x: x.sum(0))
    assert torch.allclose(vmapped(xb), xb.sum(1)) and vmapped.vmapped is True
