"""The cases of a public copy of the paper's ``Interpreter`` unit tests (microsoft/nlp-recipes,
tests/unit/test_interpreter.py), in our words: code written against the paper's API passes with only
its import changed (issue 18). A tensor of samples is iterated on its first axis; ``regular`` holds
the regularization exactly as given, negative entries included."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from probe import Interpreter, calculate_regularization

from _fuzz import held


def signed_sum(x: torch.Tensor) -> torch.Tensor:
    return 10 * x[0] + 20 * x[1] - 20 * x[2] - 10 * x[3]


def per_token(layer: nn.Module):
    return lambda x: layer(x.unsqueeze(0))[0][0]


def test_a_tensor_of_samples_is_iterated_on_its_first_axis():
    samples = torch.randn(10, 4, 10)

    def check():
        truth = np.std(np.array([signed_sum(x).tolist() for x in samples]), axis=0)
        assert np.abs(calculate_regularization(samples, signed_sum) - truth).sum() < 1e-5

    held("calculate_regularization(tensor [10, 4, 10])", check)


def test_variable_lengths_averaged_over_tokens():
    lstm = nn.LSTM(10, 10)
    samples = [torch.randn(random.Random(i).randint(5, 9), 10) for i in range(10)]

    def check():
        truth = np.std(np.array([np.mean(per_token(lstm)(x).tolist(), axis=0, keepdims=True) for x in samples]), axis=0)
        found = calculate_regularization(samples, per_token(lstm), reduced_axes=[0])
        assert found.shape == (1, 10) and np.abs(found - truth).sum() < 1e-5

    held("calculate_regularization(reduced_axes=[0])", check)


def test_regular_holds_the_regularization_as_given():
    given = torch.tensor([-1.5, 0.3, -0.2, 2.0, 0.7, -0.1, 1.1, -3.0, 0.4, 0.9])

    def check():
        interpreter = Interpreter(torch.randn(4, 10), signed_sum, regularization=given)
        assert (interpreter.s, interpreter.d) == (4, 10)
        assert interpreter.regular.tolist() == given.tolist()

    held("Interpreter.regular as given", check)


@pytest.mark.parametrize("variable", [False, True], ids=["fixed length", "variable length"])
def test_optimize_moves_the_ratio_and_keeps_the_regularization(variable):
    torch.manual_seed(0)
    phi = per_token(nn.LSTM(10, 10)) if variable else signed_sum
    regularization = torch.randn(1, 10) if variable else torch.randn(10)

    def check():
        interpreter = Interpreter(torch.randn(4, 10), phi, regularization=regularization)
        ratio, regular = interpreter.ratio + 0.0, interpreter.regular + 0.0
        interpreter.optimize(iteration=10)
        assert torch.abs(interpreter.ratio - ratio).sum() > 1e-5
        assert torch.abs(interpreter.regular - regular).sum() < 1e-5
        assert interpreter.get_sigma().shape == (4,)

    held(f"optimize ({'variable' if variable else 'fixed'} length)", check)
