"""The seed's ``Interpreter`` and ``calculate_regularization``, kept call for call."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

import probe
from probe import Interpreter, calculate_regularization

ITERATIONS = 5000  # the README's number: the most steps; optimize stops at the optimum after a few


def closed_form(W: torch.Tensor, regularization: np.ndarray, rate: float = 0.1) -> np.ndarray:
    """The optimum for ``Phi(x) = W @ x``: ``sqrt(rate / (2 n mean(1 / r**2))) / |W_i|``."""
    mean_inv_r2 = float(np.mean(1 / np.square(regularization.astype(np.float64))))
    return np.sqrt(rate / (2 * len(W) * mean_inv_r2)) / np.abs(W.double().numpy())


def show_quietly(interpreter: Interpreter):
    """``visualize`` under Agg, where ``plt.show`` only warns that it cannot show."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*non-interactive.*")
        return interpreter.visualize()


@pytest.fixture(scope="module")
def readme():
    """The seed README's code, with only the import changed (and fewer iterations)."""
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    x = torch.randn(5, 256) / 100
    x = x.to(device)
    words = ["1", "2", "3", "4", "5"]

    def Phi(x):
        W = torch.tensor([10.0, 20.0, 5.0, -20.0, -10.0]).to(device)
        return W @ x

    sampled_x = [torch.randn(5, 256) / 100 for _ in range(100)]
    regularization = calculate_regularization(sampled_x, Phi, device=device)

    interpreter = Interpreter(x=x, Phi=Phi, regularization=regularization, scale=10 * 0.1, words=words).to(device)
    interpreter.optimize(iteration=ITERATIONS, lr=0.5, show_progress=True)
    sigma = interpreter.get_sigma()
    fig = show_quietly(interpreter)
    yield interpreter, regularization, sigma, fig
    plt.close(fig)


def test_readme_ends_within_two_percent_of_the_closed_form(readme):
    interpreter, regularization, sigma, _ = readme
    expected = closed_form(torch.tensor([10.0, 20.0, 5.0, -20.0, -10.0]), regularization)
    assert np.abs(sigma / expected - 1).max() < 0.02
    assert list(np.argsort(sigma)[:2]) in ([1, 3], [3, 1])


def test_attributes_are_the_seeds(readme):
    interpreter, regularization, _, _ = readme
    assert (interpreter.s, interpreter.d) == (5, 256)
    assert isinstance(interpreter.ratio, nn.Parameter) and interpreter.ratio.shape == (5, 1)
    assert isinstance(interpreter.regular, torch.Tensor) and not interpreter.regular.requires_grad
    assert torch.allclose(interpreter.regular.double().cpu(), torch.from_numpy(regularization), rtol=1e-6)
    assert interpreter.words == ["1", "2", "3", "4", "5"]
    assert (interpreter.scale, interpreter.rate) == (1.0, 0.1)


def test_get_sigma_is_numpy_of_the_ratio(readme):
    interpreter, _, sigma, _ = readme
    assert isinstance(sigma, np.ndarray) and sigma.shape == (5,)
    expected = interpreter.scale * torch.sigmoid(interpreter.ratio.detach()).cpu().numpy()[:, 0]
    assert np.allclose(sigma, expected, rtol=1e-6)


def test_visualize_shows_the_words(readme):
    fig = readme[3]
    assert isinstance(fig, matplotlib.figure.Figure)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1", "2", "3", "4", "5"]
    assert plt.fignum_exists(fig.number)  # pyplot owns it, so plt.show can display it


def test_explanation_of_the_interpreter(readme):
    interpreter, regularization, sigma, _ = readme
    exp = interpreter.explanation()
    assert np.array_equal(exp.sigma.numpy(), sigma) and exp.words == interpreter.words
    assert exp.converged and exp.steps == len(exp.curve) < 100
    assert exp.settings["lr"] == "0.5" and exp.width == 256


def test_forward_is_the_seeds_loss(readme):
    """At sigma, the loss averages to data + penalty; the data term is rate / 2 at the optimum."""
    interpreter = readme[0]
    torch.manual_seed(1)
    with torch.no_grad():
        loss = float(interpreter(samples=256))
    log_ratio = np.log(interpreter.get_sigma() / interpreter.scale)
    assert loss == pytest.approx(0.1 / 2 - 0.1 * log_ratio.mean(), abs=0.005)


def test_words_of_the_wrong_length_are_refused():
    with pytest.raises(probe.ProbeError, match="5 tokens"):
        Interpreter(x=torch.randn(5, 8), Phi=lambda x: x.sum(0), words=["only", "four", "of", "them"])


def test_without_words_or_regularization():
    interpreter = Interpreter(x=torch.randn(3, 8), Phi=lambda x: x.sum(0))
    assert interpreter.words is None and interpreter.regular is None
    interpreter.optimize(iteration=3, lr=0.01)
    assert interpreter.explanation().words == ["0", "1", "2"]


def test_regularization_of_the_wrong_shape_is_refused():
    with pytest.raises(probe.errors.RegularizationError, match=r"\(8,\)"):
        Interpreter(x=torch.randn(3, 8), Phi=lambda x: x.sum(0), regularization=np.ones(7))


def test_x_with_a_graph_is_explained_without_touching_it():
    """The seed's BERT example passes ``model.embeddings(...)``, whose graph optimize must not use."""
    embedding = nn.Embedding(10, 16)
    x = embedding(torch.tensor([1, 2, 3]))
    W = torch.tensor([1.0, 2.0, 4.0])
    interpreter = Interpreter(x=x, Phi=lambda x: W @ x, scale=1.0)
    interpreter.optimize(iteration=20, lr=0.1)
    sigma = interpreter.get_sigma()
    assert embedding.weight.grad is None
    assert sigma[2] < sigma[1] < sigma[0]


def test_optimize_refuses_zero_iterations():
    with pytest.raises(probe.ProbeError):
        Interpreter(x=torch.randn(3, 8), Phi=lambda x: x.sum(0)).optimize(iteration=0)


def _states(sampled, Phi):
    return [Phi(x).numpy().astype(np.float64) for x in sampled]


def test_calculate_regularization_is_the_numpy_std():
    g = torch.Generator().manual_seed(0)
    sampled = [torch.randn(4, 6, generator=g) for _ in range(30)]
    Phi = lambda x: torch.tanh(2 * x)
    expected = np.std(np.stack(_states(sampled, Phi)), axis=0)
    got = calculate_regularization(sampled, Phi)
    assert got.shape == (4, 6) and np.allclose(got, expected, rtol=1e-12)


def test_calculate_regularization_averages_reduced_axes_first():
    """Sentences of different lengths: the length axis averaged away, keeping its dimension."""
    g = torch.Generator().manual_seed(1)
    sampled = [torch.randn(n, 6, generator=g) for n in (3, 5, 4, 7, 2, 6)]
    Phi = lambda x: torch.tanh(2 * x)
    expected = np.std(np.stack([s.mean(axis=0, keepdims=True) for s in _states(sampled, Phi)]), axis=0)
    got = calculate_regularization(sampled, Phi, reduced_axes=[0])
    assert got.shape == (1, 6) and np.allclose(got, expected, rtol=1e-6)
    with pytest.raises(probe.ProbeError, match="reduced_axes"):
        calculate_regularization(sampled, Phi)
    with pytest.raises(probe.ProbeError, match="axis 2"):
        calculate_regularization(sampled, Phi, reduced_axes=[2])
