"""The paper's Interpreter accepts what the paper's code accepts (a signed regularization, a Phi that
returns one number, numpy and torch scalars) and refuses NaN or inf from Phi instead of returning
NaN sigma. Closed forms: for a linear Phi(x) = W @ x with regularization r,
sigma_i = sqrt(rate / (2 n mean_d(1 / r_d**2))) / |W_i|; for the single number s = sum(W @ x),
sigma_i = |s| sqrt(rate / (2 n K)) / |W_i|."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probe import Interpreter
from probe.errors import ModelError

W = torch.tensor([10.0, 20.0, 5.0, -20.0, -10.0])
N, K, RATE = 5, 16, 0.1
X = torch.randn(N, K, generator=torch.Generator().manual_seed(0)) / 10 + 0.3
R = torch.linspace(0.5, 2.0, K)


def solved(iteration: int = 300, **kwargs) -> np.ndarray:
    torch.manual_seed(1)
    interpreter = Interpreter(x=X, scale=1.0, rate=RATE, **kwargs)
    interpreter.optimize(iteration=iteration, lr=0.1)
    return interpreter.get_sigma()


def test_a_regularization_with_negative_entries_is_used_squared():
    expected = np.sqrt(RATE / (2 * N * float((1 / R**2).mean()))) / W.abs().numpy()
    signed = R * torch.tensor([1.0, -1.0] * (K // 2))
    sigma = solved(Phi=lambda x: W @ x, regularization=signed.numpy())
    np.testing.assert_allclose(sigma, expected, rtol=0.05)
    assert np.array_equal(sigma, solved(Phi=lambda x: W @ x, regularization=R.numpy()))


def test_a_phi_that_returns_a_single_number():
    s = float((W @ X).sum())
    expected = abs(s) * np.sqrt(RATE / (2 * N * K)) / W.abs().numpy()
    torch.manual_seed(1)
    interpreter = Interpreter(x=X, Phi=lambda x: (W @ x).sum(), scale=1.0, rate=RATE)
    interpreter.optimize(iteration=1000, lr=0.1)
    np.testing.assert_allclose(interpreter.get_sigma(), expected, rtol=0.06)


@pytest.mark.parametrize("scale, rate", [(np.float32(1.0), np.float64(0.1)), (torch.tensor(1.0), torch.tensor(0.1, dtype=torch.float64)), (np.int64(1), 0.1)])
def test_scale_and_rate_as_numpy_or_torch_scalars(scale, rate):
    torch.manual_seed(1)
    interpreter = Interpreter(x=X, Phi=lambda x: W @ x, scale=scale, rate=rate)
    interpreter.optimize(iteration=50, lr=0.1)
    assert interpreter.scale == 1.0 and interpreter.rate == pytest.approx(0.1)
    assert np.array_equal(interpreter.get_sigma(), solved(Phi=lambda x: W @ x, iteration=50))


def test_a_phi_that_overflows_under_noise_is_refused_not_nan():
    """exp(80 x) is finite at x (entries below 1) and overflows float32 once noise of scale 100 is added."""
    phi = lambda x: torch.exp(80 * x)  # noqa: E731
    assert torch.isfinite(phi(X)).all()
    interpreter = Interpreter(x=X, Phi=phi, scale=100.0)
    with pytest.raises(ModelError, match="NaN or inf.*smaller scale"):
        interpreter.optimize(iteration=20, lr=0.1)


def test_a_phi_that_is_nan_at_x_is_refused_at_construction():
    with pytest.raises(ModelError, match="NaN or inf"):
        Interpreter(x=X, Phi=lambda x: torch.log(x - 10))
