"""A sentence's sigma depends on the sentence and the seed, not on its batch.

The noise a sentence gets comes from ``sentence_seed(seed, its real token ids)``, drawn for its real
tokens only: alone, at any position of a padded batch, padded to any length, with any companions,
it gets the same draws, so the same sigma up to float32 rounding (batched matmuls may sum in another
order). The default solver runs to convergence here, so a position-dependent seed would show as a
difference of several percent.
"""

from __future__ import annotations

import pytest
import torch

import probe
from _tiny import tiny_bert
from probe._method.noise import sentence_seed, sentence_seeds

LAYERS = ["encoder.layer.0", "encoder.layer.1"]
SENTENCE = "the film is a quiet delight"
OTHERS = ["dull", "the cast is superb and the story moves along nicely"]
SETTINGS = dict(scale=1.0, samples=4, max_steps=12)


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


@pytest.fixture(scope="module")
def alone(bert, tokenizer):
    with probe.attach(bert, LAYERS) as p:
        return p.explain(tokenizer(SENTENCE, return_tensors="pt"), seed=5, **SETTINGS)


def assert_same(found, expected) -> None:
    assert found.words == expected.words
    for name in LAYERS:
        assert torch.allclose(found[name].sigma, expected[name].sigma, rtol=1e-4, atol=0), name


@pytest.mark.parametrize("position", [0, 1, 2])
def test_the_same_sentence_at_every_position_of_a_batch_of_three(bert, tokenizer, alone, position):
    texts = list(OTHERS)
    texts.insert(position, SENTENCE)
    with probe.attach(bert, LAYERS) as p:
        batch = p.explain_batch(tokenizer(texts, return_tensors="pt", padding=True), seed=5, **SETTINGS)
    assert_same(batch[position], alone)


def test_padding_to_any_length_changes_nothing(bert, tokenizer, alone):
    with probe.attach(bert, LAYERS) as p:
        padded = p.explain(tokenizer(SENTENCE, return_tensors="pt", padding="max_length", max_length=20), seed=5, **SETTINGS)
    assert_same(padded, alone)


def test_a_layer_alone_gets_the_noise_it_gets_in_a_sweep(bert, tokenizer, alone):
    with probe.attach(bert, LAYERS[1]) as p:
        single = p.explain(tokenizer(SENTENCE, return_tensors="pt"), seed=5, **SETTINGS)
    assert torch.allclose(single.sigma, alone[LAYERS[1]].sigma, rtol=1e-4, atol=0)


def test_the_seed_still_matters(bert, tokenizer, alone):
    with probe.attach(bert, LAYERS) as p:
        other = p.explain(tokenizer(SENTENCE, return_tensors="pt"), seed=6, **SETTINGS)
    assert not torch.allclose(other["encoder.layer.1"].sigma, alone["encoder.layer.1"].sigma, rtol=1e-3)


def test_sentence_seed_depends_on_the_real_tokens_only():
    ids = torch.tensor([[101, 7, 8, 102, 0, 0], [101, 9, 102, 0, 0, 0], [0, 0, 101, 7, 8, 102]])
    mask = ids != 0
    seeds = sentence_seeds(3, torch.zeros(3, 6, 4), mask, ids)
    assert seeds[0] == seeds[2] == sentence_seed(3, torch.tensor([101, 7, 8, 102]))  # right or left padded
    assert len({seeds[0], seeds[1], sentence_seed(4, torch.tensor([101, 7, 8, 102]))}) == 3
    x = torch.randn(2, 5, 16)
    x[1, :3] = x[0, :3] * (1 + 1e-7)  # the same embeddings up to float rounding, padded differently
    by_embedding = sentence_seeds(0, x, torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]).bool())
    assert by_embedding[0] == by_embedding[1]
