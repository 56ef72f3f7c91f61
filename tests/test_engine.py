"""The sigma engine against the closed-form optimum of a linear Phi, and its guarantees.

For ``Phi(x) = W @ x`` the change ``Phi(x + eps) - s = W @ eps`` has variance
``sum_i W_i**2 sigma_i**2`` in every feature, so the seed's objective is
``sum_i W_i**2 sigma_i**2 * mean_d(1 / r_d**2) - rate * mean_i log(sigma_i / scale)``, minimised at
``sigma_i = sqrt(rate / (2 n mean_d(1 / r_d**2))) / |W_i|`` (capped at ``scale``). Without a
regularization the seed divides by ``mean(s**2)``, so ``1 / r_d**2`` becomes ``1 / mean(s**2)``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import probe
from probe.errors import InputError, RegularizationError

RATE = 0.1
TOY_W = [10.0, 20.0, 5.0, -20.0, -10.0]


def linear(W: torch.Tensor):
    """The seed's toy ``Phi``: a weighted sum of the token embeddings."""
    return lambda x: W.to(x.dtype) @ x


def closed_form(W, mean_inv_r2: float, scale: float, rate: float = RATE) -> np.ndarray:
    """The optimum of the seed's objective for ``Phi(x) = W @ x``."""
    W = np.abs(np.asarray(W, dtype=np.float64))
    with np.errstate(divide="ignore"):
        sigma = np.sqrt(rate / (2 * len(W) * mean_inv_r2)) / W
    return np.minimum(sigma, scale)


def closed_form_loss(sigma: np.ndarray, W, mean_inv_r2: float, scale: float, rate: float = RATE) -> float:
    """The seed's objective at ``sigma`` (its exact expectation, no noise)."""
    data = float(np.sum(np.square(W) * np.square(sigma)) * mean_inv_r2)
    return data - rate * float(np.mean(np.log(sigma / scale)))


def sentence(n: int, K: int, seed: int) -> torch.Tensor:
    return torch.randn(n, K, generator=torch.Generator().manual_seed(seed)) / 100


def relative_error(sigma: torch.Tensor, expected: np.ndarray) -> np.ndarray:
    return np.abs(sigma.double().numpy() / expected - 1)


@pytest.fixture(scope="module")
def toy():
    """The seed README's example: its x, Phi, sampled regularization and scale 10 x 0.1."""
    torch.manual_seed(0)
    W = torch.tensor(TOY_W)
    x = torch.randn(5, 256) / 100
    regularization = probe.calculate_regularization([torch.randn(5, 256) / 100 for _ in range(100)], linear(W))
    exp = probe.explain(linear(W), x, regularization=regularization, scale=10 * 0.1, words=["1", "2", "3", "4", "5"])
    return W, x, regularization, exp


@pytest.mark.parametrize(
    "W, regularized",
    [
        (TOY_W, True),
        (TOY_W, False),
        ([1.0, -3.0, 0.5, 7.0], True),
        ([1.0, -3.0, 0.5, 7.0], False),
        ([2.0, 2.0, -2.0, 2.0, 2.0, 2.0, 2.0, 2.0], True),
        ([0.3, -40.0, 6.0], False),
    ],
)
def test_linear_phi_reaches_the_closed_form(W, regularized):
    K = 256
    x = sentence(len(W), K, seed=len(W))
    Wt = torch.tensor(W)
    if regularized:
        r = 0.5 + torch.rand(K, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        exp = probe.explain(linear(Wt), x, regularization=r, scale=1.0)
        mean_inv_r2 = float((1 / r.square()).mean())
    else:
        exp = probe.explain(linear(Wt), x, scale=1.0)
        mean_inv_r2 = 1 / float((Wt.double() @ x.double()).square().mean())
    assert exp.converged
    error = relative_error(exp.sigma, closed_form(W, mean_inv_r2, 1.0))
    # default tol: 1.8% standard error, RMS over tokens (mean error about 1.4% over seeds; bounds at about 2 standard errors)
    assert error.mean() < 0.03 and error.max() < 0.06


def test_many_samples_converge_to_the_optimum_not_near_it():
    """With more samples per step and a tighter stopping test the error shrinks: no bias."""
    W = [10.0, 20.0, 5.0, -20.0, -10.0]
    x = sentence(5, 256, seed=3)
    exp = probe.explain(linear(torch.tensor(W)), x, scale=1.0, samples=64, tol=0.003, max_steps=120)
    mean_inv_r2 = 1 / float((torch.tensor(W, dtype=torch.float64) @ x.double()).square().mean())
    assert exp.converged
    assert relative_error(exp.sigma, closed_form(W, mean_inv_r2, 1.0)).max() < 0.01


def test_words_the_hidden_state_ignores_sit_at_the_ceiling():
    """A zero weight, or one whose closed form exceeds ``scale``, gives sigma = scale exactly."""
    W = [10.0, 0.0, -20.0, 1e-4]
    x = sentence(4, 128, seed=5)
    exp = probe.explain(linear(torch.tensor(W)), x, regularization=torch.ones(128), scale=0.05)
    expected = closed_form(W, 1.0, 0.05)
    assert expected[1] == expected[3] == 0.05 and expected[0] < 0.05
    assert torch.allclose(exp.sigma[[1, 3]], torch.tensor([0.05, 0.05]), rtol=1e-6)
    assert relative_error(exp.sigma[[0, 2]], expected[[0, 2]]).max() < 0.03


def test_seed_readme_toy_through_explain(toy):
    """Default settings stop at a 1.8% standard error (RMS); a tighter tol gets closer."""
    W, x, regularization, exp = toy
    expected = closed_form(TOY_W, float(np.mean(1 / np.square(regularization))), 1.0)
    assert relative_error(exp.sigma, expected).mean() < 0.03
    assert relative_error(exp.sigma, expected).max() < 0.06
    precise = probe.explain(lambda v: W @ v, x, regularization=regularization, scale=1.0, tol=0.004)
    assert relative_error(precise.sigma, expected).max() < 0.015
    order = [exp.words[i] for i in exp.sigma.argsort().tolist()]
    assert set(order[:2]) == {"2", "4"} and order[-1] == "3"


def test_result_records_loss_convergence_steps_and_settings(toy):
    W, x, regularization, exp = toy
    mean_inv_r2 = float(np.mean(1 / np.square(regularization)))
    optimum = closed_form(TOY_W, mean_inv_r2, 1.0)
    assert exp.loss == pytest.approx(closed_form_loss(optimum, TOY_W, mean_inv_r2, 1.0), abs=0.01)
    assert exp.converged is True
    assert 1 <= exp.steps <= 40 and len(exp.curve) == exp.steps
    assert exp.settings["solver.samples"] == str(probe.SolverSettings().samples) and exp.settings["seed"] == "0"
    assert (exp.scale, exp.rate, exp.width) == (1.0, RATE, 256)
    assert torch.allclose(exp.regularization.double(), torch.from_numpy(regularization), rtol=1e-6)


def test_settings_are_keyword_arguments_and_recorded():
    x = sentence(3, 32, seed=7)
    exp = probe.explain(linear(torch.tensor([1.0, 2.0, 3.0])), x, scale=1.0, samples=8, max_steps=5, tol=1e-6, seed=11)
    assert exp.steps == 5 and len(exp.curve) == 5
    assert exp.settings["solver.samples"] == "8" and exp.settings["solver.max_steps"] == "5"
    assert exp.settings["seed"] == "11"
    with pytest.raises(InputError, match="samples"):
        probe.explain(linear(torch.tensor([1.0, 2.0, 3.0])), x, scale=1.0, sampels=8)


@pytest.mark.parametrize("tiny", [0.0, 1e-33])
def test_constant_feature_gets_weight_zero_not_nan(tiny):
    """MiniLM's last layer has a feature with std ~5e-33: r**2 underflows in float32."""
    K = 256
    W = [10.0, 20.0, 5.0]
    r = torch.ones(K, dtype=torch.float32)
    r[[3, 100]] = tiny
    with pytest.warns(UserWarning, match=r"\b2 of 256 features"):
        exp = probe.explain(linear(torch.tensor(W)), sentence(3, K, seed=2), regularization=r, scale=1.0)
    assert torch.isfinite(exp.sigma).all() and torch.isfinite(exp.information_loss).all()
    expected = closed_form(W, (K - 2) / K, 1.0)
    assert relative_error(exp.sigma, expected).max() < 0.03


def test_same_seed_same_sigma_other_seed_close():
    W = torch.tensor([3.0, -1.0, 4.0, 1.5])
    x = sentence(4, 64, seed=9)
    Phi = lambda x: torch.tanh(3 * W @ x)  # nonlinear: vmap and a loop differ in the last bits
    first = probe.explain(Phi, x, scale=1.0, seed=5)
    again = probe.explain(Phi, x, scale=1.0, seed=5)
    other = probe.explain(Phi, x, scale=1.0, seed=6)
    assert torch.equal(first.sigma, again.sigma) and first.curve == again.curve
    assert not torch.equal(first.sigma, other.sigma)
    assert torch.allclose(first.sigma, other.sigma, rtol=0.05)


def test_information_loss_per_word_and_total(toy):
    exp = toy[3]
    K = 256
    expected = K / 2 * math.log(2 * math.pi * math.e) + K * np.log(exp.sigma.double().numpy())
    assert np.allclose(exp.information_loss.numpy(), expected, rtol=1e-6)
    assert exp.total_information_loss == pytest.approx(expected.sum(), rel=1e-6)


@pytest.mark.parametrize("shape", [(255,), (2, 256), (256, 1)])
def test_regularization_of_wrong_shape_names_the_expected_shape(shape):
    with pytest.raises(RegularizationError, match=r"\(256,\)") as err:
        probe.explain(linear(torch.tensor([1.0, 2.0])), sentence(2, 256, seed=0), regularization=torch.ones(shape))
    assert isinstance(err.value, probe.ProbeError) and str(shape) in str(err.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_regularization_with_nan_inf_or_negative_is_refused(bad):
    r = np.ones(16)
    r[4] = bad
    with pytest.raises(RegularizationError) as err:
        probe.explain(linear(torch.tensor([1.0, 2.0])), sentence(2, 16, seed=0), regularization=r)
    assert isinstance(err.value, probe.ProbeError)


def test_regularization_as_list_broadcasts_like_a_tensor():
    x = sentence(3, 4, seed=4)
    Phi = lambda x: x * torch.tensor([[1.0], [2.0], [3.0]])  # hidden state [3, 4]
    as_list = probe.explain(Phi, x, regularization=[1.0, 2.0, 0.5, 1.0], scale=1.0)
    as_tensor = probe.explain(Phi, x, regularization=torch.tensor([[1.0, 2.0, 0.5, 1.0]]), scale=1.0)
    assert torch.equal(as_list.sigma, as_tensor.sigma)


def test_all_zero_hidden_state_without_regularization_is_a_probe_error():
    with pytest.raises(probe.ProbeError, match="regularization"):
        probe.explain(lambda x: 0 * x.sum(0), sentence(2, 8, seed=0))


def test_finite_inputs_never_give_nan():
    """Huge and tiny embeddings, a saturating Phi: sigma stays finite and inside (0, scale]."""
    x = sentence(4, 32, seed=8) * 1e4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = probe.explain(lambda x: torch.tanh(x).sum(0), x, scale=1e-3)
    assert torch.isfinite(exp.sigma).all() and bool(((exp.sigma > 0) & (exp.sigma <= 1e-3)).all())


def test_a_tokens_samples_are_kept_while_sigma_stays_near_where_they_were_drawn():
    """The refinement's energy average restarts by the distance from the mean log sigma its samples
    were drawn at: sigma that creeps (0, then 0.10, then 0.16) keeps all of them, a jump does not."""
    from probe._method import solver as _solver

    t = _solver._Target(0, 0, torch.ones(1, dtype=torch.bool), torch.Generator(), torch.zeros(1))
    energies = torch.full((16, 1), 2.0, dtype=torch.float64) + torch.linspace(-1e-3, 1e-3, 16, dtype=torch.float64)[:, None]
    for target in (0.10, 0.16):
        _solver._average(t, energies)
        _solver._move(t, torch.tensor([target]), math.log(2.0), 10.0, RATE)
    assert t.count.tolist() == [32]  # 0.16 is 0.11 from the samples' mean log sigma (0.05)
    _solver._average(t, energies)
    _solver._move(t, torch.tensor([0.6]), math.log(2.0), 10.0, RATE)
    assert t.count.tolist() == [0]


def test_draws_follow_the_precision_asked_for():
    """Each step draws what the standard error says is still needed, so the draws grow as 1/tol**2
    (13x from tol 0.018 to 0.005) and an easy target stops near the Monte Carlo floor instead of at
    a fixed schedule (3 steps of 16 draws before)."""
    W = torch.tensor(TOY_W)
    x = sentence(5, 256, seed=3)

    def draws(tol: float, seed: int) -> int:
        rows = [0]

        def phi(xb: torch.Tensor) -> torch.Tensor:
            if torch.is_grad_enabled():
                rows[0] += xb.shape[0]
            return torch.einsum("n,bnk->bk", W, xb)

        assert probe.explain(phi, x, scale=1.0, batched_phi=True, seed=seed, tol=tol, max_steps=200).converged
        return rows[0] - 1  # less the one row that sizes the memory chunks

    loose = np.median([draws(0.018, s) for s in range(5)])
    tight = np.median([draws(0.005, s) for s in range(5)])
    assert loose < 30
    assert 8 < tight / loose < 18
