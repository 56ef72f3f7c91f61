"""probe._utils.checks: every setting is refused out of its range, with a message naming the range, before
any work; numbers the paper's code accepts (numpy and torch scalars) are accepted."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import probe
from probe._utils.checks import check_positive, check_seed, check_settings, check_words, settings_from
from probe.errors import InputError

W = torch.tensor([10.0, 20.0, 5.0, -20.0, -10.0])
X = torch.randn(5, 16, generator=torch.Generator().manual_seed(0)) / 100


def linear(x):
    return W @ x


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("samples", 0, "samples must be a whole number >= 1, got 0"),
        ("samples", 2.0, "samples must be a whole number >= 1"),
        ("samples", True, "samples must be a whole number >= 1"),
        ("max_steps", -1, "max_steps must be a whole number >= 0, got -1"),
        ("min_steps", -3, "min_steps must be a whole number >= 0"),
        ("probes", 0, "probes must be a whole number >= 1"),
        ("memory", 0, "memory must be a whole number >= 1"),
        ("tol", 0, "tol must be a finite number > 0, got 0"),
        ("tol", math.nan, "tol must be a finite number > 0"),
        ("tol", "0.1", "tol must be a finite number > 0, got '0.1' \\(str\\)"),
        ("probe_step", -0.1, "probe_step must be a finite number > 0"),
        ("max_move", 1.0, "max_move must be a finite number > 1, got 1.0"),
        ("max_move", 0.5, "max_move must be a finite number > 1"),
        ("max_move", math.inf, "max_move must be a finite number > 1"),
    ],
)
def test_each_setting_out_of_range_names_its_range_before_phi_runs(name, value, message):
    calls = []

    def phi(x):
        calls.append(1)
        return W @ x

    with pytest.raises(InputError, match=message):
        probe.explain(phi, X, scale=1.0, **{name: value})
    assert calls == [], "Phi ran before the settings were checked"


def test_the_edges_of_each_range_are_accepted():
    settings = settings_from({"samples": 1, "max_steps": 0, "min_steps": 0, "tol": 1e-9, "probes": 1, "probe_step": 1e-6, "max_move": 1.001, "memory": 1}, probe.SolverSettings)
    assert (settings.samples, settings.max_steps, settings.max_move) == (1, 0, 1.001)
    check_settings(probe.SolverSettings(samples=np.int64(4)))


@pytest.mark.parametrize("value", [np.float32(0.5), np.float64(0.5), np.int64(1), torch.tensor(0.5), torch.tensor(0.5, dtype=torch.float64), 1])
def test_scale_and_rate_as_numpy_or_torch_scalars_are_numbers(value):
    assert check_positive("scale", value) == float(value)
    a = probe.explain(linear, X, scale=value, rate=value, seed=3)
    b = probe.explain(linear, X, scale=float(value), rate=float(value), seed=3)
    assert torch.equal(a.sigma, b.sigma) and a.scale == float(value)


@pytest.mark.parametrize("value", [0, -1.0, math.nan, math.inf, "1", None, True, np.bool_(True), torch.tensor([0.5, 0.5]), torch.tensor(True), [0.5], 1j])
def test_scale_that_is_not_a_positive_number_is_refused(value):
    with pytest.raises(InputError, match=r"scale must be a positive finite number \(0 < scale < inf\)"):
        probe.explain(linear, X, scale=value)


@pytest.mark.parametrize("seed", ["3", True, 3.0, None, [3]])
def test_a_seed_that_is_not_a_whole_number_is_refused(seed):
    with pytest.raises(InputError, match="seed must be a whole number"):
        probe.explain(linear, X, scale=1.0, seed=seed)


def test_numpy_integer_seeds_are_seeds():
    assert check_seed(np.int32(7)) == 7
    assert torch.equal(probe.explain(linear, X, scale=1.0, seed=np.int64(7)).sigma, probe.explain(linear, X, scale=1.0, seed=7).sigma)


@pytest.mark.parametrize("words, message", [(5, "list of strings"), ("abcde", "list of strings"), ([1, 2, 3, 4, 5], "holds a int"), (["a"] * 4, "words has 4 entries but x has 5 tokens")])
def test_words_must_be_a_list_of_one_string_per_token(words, message):
    with pytest.raises(InputError, match=message):
        probe.explain(linear, X, scale=1.0, words=words)
    assert check_words(("a", "b"), 2) == ["a", "b"]


@pytest.mark.parametrize("x", [None, 5, [[0.0]], torch.zeros(3), torch.zeros(2, 3, 4), torch.zeros(3, 4, dtype=torch.long), torch.zeros(0, 4), torch.zeros(3, 0)])
def test_x_that_is_not_tokens_by_features_is_refused(x):
    with pytest.raises(InputError, match="x "):
        probe.explain(linear, x, scale=1.0)


def test_phi_that_is_not_a_function_is_refused():
    with pytest.raises(InputError, match="Phi must be a function"):
        probe.explain("W @ x", X, scale=1.0)



@pytest.mark.parametrize("change", [{"samples": 0}, {"max_move": 0.5}, {"tol": -1.0}, {"memory": "1GB"}])
def test_solver_settings_built_directly_are_checked(change):
    with pytest.raises(InputError, match="must be"):
        probe.SolverSettings(**change)
