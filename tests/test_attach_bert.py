"""probe.attach on the real pretrained MiniLM: tokenizer words, the same Phi as one written by hand,
a six-layer sweep, padded batches and select."""

from __future__ import annotations

import pytest
import torch

import probe
from conftest import SENTENCE

LAYER = "encoder.layer.2"
LAYERS = [f"encoder.layer.{i}" for i in range(6)]
FAST = dict(samples=8, max_steps=8)
"""Few solver steps: these tests compare Phis and plumbing, not the solver's precision."""


def relative_error(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    return (got - want).abs() / want


def hand_written_phi(model, select=None):
    """Batched Phi [R, tokens, 384] from the embeddings' output through the first three layers, as a user writes it."""

    def phi(x: torch.Tensor) -> torch.Tensor:
        for layer in model.encoder.layer[:3]:
            x = layer(x)
        return x if select is None else select(x)

    return phi


def embedded(minilm, text: str) -> torch.Tensor:
    """The embeddings module's output for one sentence: [tokens, 384]."""
    enc = minilm.encode(text)
    with torch.no_grad():
        return minilm.model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])[0]


def corpus_batches(minilm, corpus, size: int = 16, count: int = 2):
    """Padded tokenizer batches of the corpus, as a user feeds them to p.regularization."""
    return [minilm.encode(corpus[i : i + size], padding=True) for i in range(0, size * count, size)]


@pytest.fixture(scope="module")
def layer2(minilm, corpus):
    """Layer 2 explained for the seed's sentence, with its corpus regularization."""
    with probe.attach(minilm.model, LAYER) as p:
        reg = p.regularization(corpus_batches(minilm, corpus))
        exp = p.explain(minilm.encode(SENTENCE), regularization=reg, seed=0, **FAST)
    return reg, exp


def test_one_layer_gives_sigma_over_the_tokenizer_words(minilm, layer2):
    reg, exp = layer2
    ids = minilm.encode(SENTENCE)["input_ids"][0]
    assert exp.words == minilm.tokenizer.convert_ids_to_tokens(ids.tolist())
    assert len(exp.words) == 14 and exp.words[0] == "[CLS]" and exp.words[-1] == "[SEP]"
    assert exp.sigma.shape == (14,) and exp.layer == LAYER
    assert exp.scale == pytest.approx(10 * float(embedded(minilm, SENTENCE).std()), rel=0.15), "10 x the std of the perturbed tensor"
    assert (exp.relative_sigma < 0.95).all(), "layer 2 of a pretrained BERT keeps every word of the sentence"
    assert reg.shape == (1, 384)


def test_hooks_build_the_phi_written_by_hand(minilm, layer2):
    """The same noise through both paths: attach draws from the sentence's seed."""
    reg, exp = layer2
    seed = int(exp.settings["noise_seed"])  # the sentence's own noise stream, which probe.explain draws from its seed
    ref = probe.explain(hand_written_phi(minilm.model), embedded(minilm, SENTENCE), regularization=reg, scale=exp.scale, seed=seed, batched_phi=True, **FAST)
    assert relative_error(exp.sigma, ref.sigma).mean() < 0.01


@pytest.mark.parametrize(
    "select, by_hand, reg_shape",
    [(lambda h: h[:, 0], lambda h: h[:, 0], (384,)), (lambda h: h[:, 0, 7], lambda h: h[:, 0, 7:8], (1,))],
    ids=["position 0", "one neuron"],
)
def test_select_builds_the_phi_written_by_hand(minilm, corpus, select, by_hand, reg_shape):
    """A select giving one number per sentence explains it as a state of one feature."""
    with probe.attach(minilm.model, LAYER, select=select) as p:
        reg = p.regularization(minilm.encode(corpus[:16], padding=True))
        exp = p.explain(minilm.encode(SENTENCE), regularization=reg, seed=1, **FAST)
    assert reg.shape == reg_shape
    seed = int(exp.settings["noise_seed"])
    ref = probe.explain(hand_written_phi(minilm.model, by_hand), embedded(minilm, SENTENCE), regularization=reg, scale=exp.scale, seed=seed, batched_phi=True, **FAST)
    assert relative_error(exp.sigma, ref.sigma).mean() < 0.01


def test_regularization_of_padded_batches_equals_one_sentence_at_a_time(minilm, corpus, layer2):
    reg, _ = layer2
    with probe.attach(minilm.model, LAYER) as p:
        one_by_one = p.regularization(minilm.encode(s) for s in corpus[:32])
    assert relative_error(one_by_one, reg).max() < 1e-4


def test_six_layer_sweep_plots_and_round_trips(minilm, corpus, layer2, tmp_path):
    """One forward pass captures all six layers: layer 2 of the sweep is layer 2 explained alone.

    The linearised start alone (max_steps=0) is deterministic, so the two agree to rounding.
    """
    reg, single = layer2
    with probe.attach(minilm.model, LAYERS) as p:
        regs = p.regularization(corpus_batches(minilm, corpus))
        with pytest.warns(UserWarning, match="regularization of 'encoder.layer.5' are constant over the corpus") as caught:
            sweep = p.explain(minilm.encode(SENTENCE), regularization=regs, seed=0, max_steps=0)
    with probe.attach(minilm.model, LAYER) as p:
        alone = p.explain(minilm.encode(SENTENCE), regularization=reg, seed=0, max_steps=0)
    assert [w.filename for w in caught] == [__file__], "one warning, pointing at the caller's line"
    assert list(regs) == LAYERS and all(r.shape == (1, 384) for r in regs.values())
    assert torch.allclose(regs[LAYER], reg, rtol=1e-5)
    assert isinstance(sweep, probe.Sweep) and sweep.layers == LAYERS
    assert sweep.sigma.shape == (6, 14) and sweep.words == single.words
    assert torch.isfinite(sweep.sigma).all(), "the last layer's constant feature must not give NaN"
    assert relative_error(sweep[LAYER].sigma, alone.sigma).max() < 1e-5
    fig = sweep.plot(tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0 and len(fig.axes) == 2
    sweep.save(tmp_path / "sweep.safetensors")
    loaded = probe.load(tmp_path / "sweep.safetensors")
    assert isinstance(loaded, probe.Sweep) and loaded.layers == LAYERS and loaded.words == sweep.words
    assert torch.equal(loaded.sigma, sweep.sigma)


SENTENCES = ["a dull film.", SENTENCE, "the cast is superb"]


def test_padded_batch_gives_each_sentence_over_its_own_tokens(minilm):
    """The linearised start alone (max_steps=0) is a deterministic function of Phi, mask and seed."""
    with probe.attach(minilm.model, LAYER) as p:
        batch = p.explain_batch(minilm.encode(SENTENCES, padding=True), seed=5, max_steps=0)
        alone = [p.explain(minilm.encode(s), seed=5, max_steps=0) for s in SENTENCES]
    assert isinstance(batch, list) and len(batch) == 3
    for together, single in zip(batch, alone):
        assert together.words == single.words
        assert relative_error(together.sigma, single.sigma).max() < 1e-4


def test_padded_batch_equals_sentences_alone_after_refinement(minilm):
    settings = dict(samples=4, max_steps=3)
    with probe.attach(minilm.model, LAYER) as p:
        batch = p.explain_batch(minilm.encode(SENTENCES[:2], padding=True), seed=5, **settings)
        short = p.explain(minilm.encode(SENTENCES[0]), seed=5, **settings)
    assert relative_error(batch[0].sigma, short.sigma).max() < 1e-4
