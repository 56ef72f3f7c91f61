"""Every sigma with its standard error: present on every result kind, kept through files, merges and
aggregates, and honest: against closed-form and high-precision optima, about 95% of words lie within
2 standard errors and nearly all within 3 (a Gaussian error bar's promise)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import probe
from probe import CorpusResult, Explanation, Sweep, TimeSeries

from conftest import SENTENCE
from test_solver_scalar import high_precision_optimum, trained_model

RATE = 0.1


def linear_case(seed: int):
    """``Phi(x) = W @ x`` over 6 tokens: optimum ``sqrt(rate / (2 n mean(1/r**2))) / |W_i|``."""
    W = torch.tensor([3.0, -1.0, 0.5, 2.0, -4.0, 1.5])
    x = torch.randn(6, 64, generator=torch.Generator().manual_seed(100 + seed)) / 10
    r = 0.5 + torch.rand(64, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    optimum = np.sqrt(RATE / (2 * 6 * float((1 / r.square()).mean()))) / np.abs(W.numpy())
    return (lambda v: W.to(v.dtype) @ v), x, r, optimum


def within(sigma: list[torch.Tensor], stderr: list[torch.Tensor], optimum) -> tuple[float, float]:
    z = torch.cat([(s.double() - torch.as_tensor(optimum, dtype=torch.float64)).abs() / e.double() for s, e in zip(sigma, stderr)])
    return float((z <= 2).double().mean()), float((z <= 3).double().mean())


def test_linear_phi_error_bars_cover_the_closed_form():
    runs = []
    for seed in range(30):
        phi, x, r, optimum = linear_case(seed)
        runs.append(probe.explain(phi, x, regularization=r, scale=1.0, seed=seed))
    assert all(e.converged for e in runs)
    two, three = within([e.sigma for e in runs], [e.stderr for e in runs], optimum)
    assert two >= 0.90 and three >= 0.97, (two, three)
    relative = torch.stack([e.stderr / e.sigma for e in runs])
    assert float(relative.square().mean(1).sqrt().max()) < 0.02, "converged means the RMS relative stderr is below tol"


@pytest.fixture(scope="module")
def hidden_state():
    """A small trained MLP's 32 tanh units (a state, so sampled, not the one-number path) and its
    high-precision optimum (Adam, 512 samples x 600 steps). That reference sums the squared change
    over the D = 32 elements where probe averages them, so it is probe's objective at rate 0.1 / D."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        layers = trained_model()[:3]
        x = torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
        return layers, x, high_precision_optimum(layers, x, 1.0)
    finally:
        torch.set_num_threads(threads)


def test_a_trained_models_error_bars_cover_its_optimum(hidden_state):
    layers, x, optimum = hidden_state
    runs = [probe.explain(layers, x, scale=1.0, rate=RATE / 32, batched_phi=True, seed=seed) for seed in range(12)]
    assert all(e.converged for e in runs)
    two, three = within([e.sigma for e in runs], [e.stderr for e in runs], optimum)
    assert two >= 0.90 and three >= 0.97, (two, three)
    error = np.mean([np.abs(e.sigma.numpy() / optimum - 1).mean() for e in runs])
    assert error < 0.02


def test_one_number_converges_with_an_error_bar_that_covers_it():
    """A small trained model's logit: within 2% of its high-precision optimum, converged, and within
    3 combined standard errors of it: the solver's and the reference's own (its seeds agree within
    0.5%, so 0.5% of sigma is taken for it)."""
    model = trained_model()
    x = torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
    optimum = high_precision_optimum(model, x, 1.0)
    exp = probe.explain(model, x, scale=1.0, batched_phi=True, seed=0)
    error = np.abs(exp.sigma.numpy() / optimum - 1)
    assert exp.converged and error.mean() < 0.02
    assert torch.isfinite(exp.stderr).all() and float((exp.stderr / exp.sigma).square().mean().sqrt()) < 0.02
    combined = np.sqrt(exp.stderr.numpy() ** 2 + (0.005 * optimum) ** 2)
    assert (np.abs(exp.sigma.numpy() - optimum) <= 3 * combined).all()


def test_a_budget_that_ends_first_says_how_far_it_got():
    phi, x, r, optimum = linear_case(0)
    exp = probe.explain(phi, x, regularization=r, scale=1.0, max_steps=1, min_steps=1, samples=2, tol=1e-4)
    assert not exp.converged
    relative = exp.stderr / exp.sigma
    assert bool((relative > 0).all()) and float(relative.square().mean().sqrt()) > 1e-4, "stderr shows the precision reached (inf: a token with too few draws)"


def test_the_default_flow_converges_on_every_minilm_layer(minilm):
    """No regularization: each feature weighted by its std over the sentence's own tokens, and every
    layer of the real MiniLM converges, with the weighting recorded."""
    names = [f"encoder.layer.{i}" for i in range(6)]
    with probe.attach(minilm.model, names) as p:
        sweep = p.explain(minilm.encode(SENTENCE))
    assert [sweep[n].converged for n in names] == [True] * 6
    assert {sweep[n].settings["weighting"] for n in names} == {"own tokens"}
    assert sweep.stderr.shape == sweep.sigma.shape and bool(torch.isfinite(sweep.stderr).all())


def explanation(layer: str = "l0", shift: float = 0.0) -> Explanation:
    sigma = torch.tensor([0.1, 0.2, 0.4, 0.8]) + shift
    return Explanation(sigma=sigma, stderr=sigma * torch.tensor([0.01, 0.02, 0.03, 0.2]), words=["[CLS]", "memo", "##rable", "[SEP]"], scale=1.0, rate=RATE, width=8, layer=layer)


def corpus_result() -> CorpusResult:
    sigma = [torch.tensor([[0.1, 0.2], [0.3, 0.4]]), torch.tensor([[0.5], [0.6]])]
    stderr = [s * 0.01 for s in sigma]
    return CorpusResult(layers=["l0", "l1"], words=[["a", "film"], ["a"]], sigma=sigma, stderr=stderr, index=torch.tensor([0, 1]), scale=1.0, rate=RATE, width=8, convergence=torch.ones(2, 2), steps=torch.ones(2, 2))


def series() -> TimeSeries:
    sweep = Sweep({"l0": explanation("l0"), "l1": explanation("l1", 0.05)})
    s = TimeSeries.like([sweep])
    s.append(0, [sweep])
    s.append(10, [sweep])
    return s


KINDS = {
    "explanation": (explanation, lambda r: [r.stderr]),
    "sweep": (lambda: Sweep({"l0": explanation("l0"), "l1": explanation("l1", 0.05)}), lambda r: [r.stderr]),
    "corpus": (corpus_result, lambda r: r.stderr),
    "timeseries": (series, lambda r: r.stderr),
}


@pytest.mark.parametrize("kind", KINDS)
def test_stderr_has_sigmas_shape_and_round_trips(kind, tmp_path):
    make, stderr_of = KINDS[kind]
    result = make()
    sigma = result.sigma if isinstance(result.sigma, list) else [result.sigma]
    assert [e.shape for e in stderr_of(result)] == [s.shape for s in sigma]
    result.save(tmp_path / "r.safetensors")
    loaded = probe.load(tmp_path / "r.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(stderr_of(loaded), stderr_of(result)))


@pytest.mark.parametrize("kind", KINDS)
def test_an_old_file_without_stderr_loads_with_nan_and_says_so(kind, tmp_path):
    make, stderr_of = KINDS[kind]
    path = tmp_path / "old.safetensors"
    make().save(path)
    from safetensors import safe_open

    with safe_open(path, "pt") as f:
        meta = f.metadata()
    save_file({k: v for k, v in load_file(path).items() if not k.startswith("stderr")}, path, metadata=meta)
    with pytest.warns(UserWarning, match="before probe kept error bars"):
        loaded = probe.load(path)
    assert all(bool(torch.isnan(e).all()) for e in stderr_of(loaded))
    assert "+/- ?" in loaded.table() if kind in ("explanation", "sweep") else True


def test_by_word_merges_errors_of_independent_pieces():
    """A word's sigma is its pieces' geometric mean, so its relative error is sqrt(sum rel_i**2) / m."""
    words = explanation().by_word(special=False)
    assert words.words == ["memorable"]
    expected = math.sqrt(0.02**2 + 0.03**2) / 2 * math.sqrt(0.2 * 0.4)
    assert float(words.stderr[0]) == pytest.approx(expected, rel=1e-5)
    assert float(words.information_loss_stderr[0]) == pytest.approx(8 * 2 * expected / math.sqrt(0.2 * 0.4), rel=1e-5)


def test_corpus_aggregates_carry_the_solvers_error():
    result = corpus_result()
    per_word = [8 * 0.01] * 3  # K * stderr / sigma for every word
    assert result.sentence_information_loss_stderr[0].tolist() == pytest.approx([math.sqrt(2) * per_word[0], per_word[0]])
    assert result.mean_information_loss_stderr.tolist() == pytest.approx([math.sqrt(3) * per_word[0] / 2] * 2)
    assert result.word_information_loss_stderr[0].tolist() == pytest.approx([math.sqrt(2) * per_word[0] / 2, per_word[0]])
    merged = CorpusResult.merge([result])
    assert all(torch.equal(a, b) for a, b in zip(merged.stderr, result.stderr))
    assert torch.equal(result.sentence(1).stderr, result.stderr[1])


def test_tables_pages_and_plots_show_the_error_and_mark_wide_ones(tmp_path):
    exp = explanation()
    table = exp.table().splitlines()
    assert "0.1 +/- 0.001" in table[2] and not table[2].endswith("!")
    assert table[5].endswith("!"), "[SEP]'s 20% error is marked"
    page = exp.to_html()
    assert page.count("probe-wide") >= 2 and "0.8 +/- 0.16" in page
    fig = exp.plot()
    assert [t.get_text() for t in fig.axes[0].texts] == ["!"]


def test_information_kept_is_never_negative_and_the_shade_spans_the_result():
    from probe._views.shade import kept, span

    exp = explanation()
    assert bool((exp.information_kept >= 0).all()) and float(exp.information_kept[-1]) == pytest.approx(8 * math.log(1 / 0.8), rel=1e-5)
    fitted = span(exp.relative_sigma.tolist())
    assert fitted == pytest.approx((0.1, 0.8))
    assert [kept(r, fitted) for r in (0.1, 0.8)] == pytest.approx([1.0, 0.0], abs=1e-6)


def test_a_solve_without_draws_has_an_infinite_error():
    phi, x, r, _ = linear_case(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exp = probe.explain(phi, x, regularization=r, scale=1.0, max_steps=0)
    assert bool(torch.isinf(exp.stderr).all()) and not exp.converged
