"""HuggingFace families explained with nothing but a layer name and the inputs a user passes.

Small randomly initialised models built from configs (hidden 32, 2 layers, vocabulary 100). Ground
truths: a sentence's result is the same alone and in right- and left-padded batches; the default
scale leaves the words of a layer-1 state below the ceiling; a causal decoder's state at position t
keeps no word after t; a classifier's logit is the Phi written by hand.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch
import transformers as tf
from torch import nn

import probe
from probe.errors import LayerError

tf.logging.set_verbosity_error()

FAST = dict(samples=4, max_steps=3)
"""A few refinement steps: these tests compare the same solve under different paddings."""
ALONE = [[5, 6, 7, 8, 9], [11, 12, 13]]
"""Two sentences of token ids (above every pad id), batched with the second one padded."""
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=100, max_position_embeddings=64)
DECODER = dict(SMALL, num_key_value_heads=2)
BART = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=100, max_position_embeddings=64)
T5 = dict(d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2, vocab_size=100)

FAMILIES = {
    # name: (model builder, the layer-1 state)
    "gpt2": (lambda: tf.GPT2Model(tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64, bos_token_id=0, eos_token_id=0)), "h.0"),
    "llama": (lambda: tf.LlamaModel(tf.LlamaConfig(**DECODER)), "layers.0"),
    "qwen2": (lambda: tf.Qwen2Model(tf.Qwen2Config(**DECODER)), "layers.0"),
    "mistral": (lambda: tf.MistralModel(tf.MistralConfig(**DECODER)), "layers.0"),
    "gemma": (lambda: tf.GemmaModel(tf.GemmaConfig(**DECODER, head_dim=16)), "layers.0"),
    "llama-pad": (lambda: tf.LlamaModel(tf.LlamaConfig(**DECODER, pad_token_id=0)), "layers.0"),
    "gpt2-lm-pad": (lambda: tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=100, n_positions=64, pad_token_id=0)), "transformer.h.0"),
    "qwen2-causal-lm": (lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**DECODER)), "model.layers.0"),
    "t5-encoder": (lambda: tf.T5EncoderModel(tf.T5Config(**T5)), "encoder.block.0"),
    "t5": (lambda: tf.T5Model(tf.T5Config(**T5)), "encoder.block.0"),
    "t5-generation": (lambda: tf.T5ForConditionalGeneration(tf.T5Config(**T5)), "encoder.block.0"),
    "bart": (lambda: tf.BartModel(tf.BartConfig(**BART)), "encoder.layers.0"),
    "bart-generation": (lambda: tf.BartForConditionalGeneration(tf.BartConfig(**BART)), "model.encoder.layers.0"),
    "bert": (lambda: tf.BertModel(tf.BertConfig(**SMALL)), "encoder.layer.0"),
    "roberta": (lambda: tf.RobertaModel(tf.RobertaConfig(**SMALL)), "encoder.layer.0"),
    "distilbert": (lambda: tf.DistilBertModel(tf.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, vocab_size=100, max_position_embeddings=64)), "transformer.layer.0"),
    "albert": (lambda: tf.AlbertModel(tf.AlbertConfig(**SMALL, embedding_size=16)), "encoder.embedding_hidden_mapping_in"),
    "electra": (lambda: tf.ElectraModel(tf.ElectraConfig(**SMALL, embedding_size=16)), "encoder.layer.0"),
    "deberta-v2": (lambda: tf.DebertaV2Model(tf.DebertaV2Config(**SMALL)), "encoder.layer.0"),
    "xlm-roberta": (lambda: tf.XLMRobertaModel(tf.XLMRobertaConfig(**SMALL)), "encoder.layer.0"),
    "mpnet": (lambda: tf.MPNetModel(tf.MPNetConfig(**SMALL)), "encoder.layer.0"),
    "modernbert": (lambda: tf.ModernBertModel(tf.ModernBertConfig(**SMALL, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2)), "layers.0"),
}
DECODERS = ["gpt2", "llama", "qwen2", "mistral", "gemma", "llama-pad", "gpt2-lm-pad", "qwen2-causal-lm"]
NO_POSITION_IDS = {"bart", "bart-generation"}
"""Learned absolute positions and no position_ids argument: left padding shifts them (warned)."""


@functools.cache
def model(family: str) -> nn.Module:
    torch.manual_seed(0)
    return FAMILIES[family][0]().eval()


def pad_id(family: str) -> int:
    found = model(family).config.pad_token_id
    return 0 if found is None else found


def batch(family: str, sentences: list[list[int]], left: bool = False) -> dict[str, torch.Tensor]:
    """The sentences padded to one length with the model's pad id (0 when it has none), on the left or right."""
    width = max(len(s) for s in sentences)
    ids = torch.full((len(sentences), width), pad_id(family))
    mask = torch.zeros(len(sentences), width, dtype=torch.long)
    for row, sentence in enumerate(sentences):
        where = slice(width - len(sentence), width) if left else slice(0, len(sentence))
        ids[row, where], mask[row, where] = torch.tensor(sentence), 1
    return {"input_ids": ids, "attention_mask": mask}


@functools.cache
def explained(family: str):
    """Each sentence alone, then both in a right-padded and in a left-padded batch, same seed; and
    every warning probe gave."""
    with warnings.catch_warnings(record=True) as caught, probe.attach(model(family), FAMILIES[family][1]) as p:
        warnings.simplefilter("always")
        alone = [p.explain(batch(family, [s]), seed=3, **FAST) for s in ALONE]
        right = p.explain_batch(batch(family, ALONE), seed=3, **FAST)
        left = p.explain_batch(batch(family, ALONE, left=True), seed=3, **FAST)
    return alone, right, left, [str(w.message) for w in caught]


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float(((got - want).abs() / want).max())


@pytest.mark.parametrize("family", FAMILIES)
def test_right_padded_batch_gives_each_sentence_its_result_alone(family):
    alone, right, _, _ = explained(family)
    for one, padded in zip(alone, right):
        assert len(padded.sigma) == len(one.sigma), "pad tokens are not words"
        assert relative_error(padded.sigma, one.sigma) < 1e-4


@pytest.mark.parametrize("family", sorted(set(FAMILIES) - NO_POSITION_IDS))
def test_left_padded_batch_gives_each_sentence_its_result_alone(family):
    alone, _, left, _ = explained(family)
    for one, padded in zip(alone, left):
        assert len(padded.sigma) == len(one.sigma), "pad tokens are not words"
        assert relative_error(padded.sigma, one.sigma) < 1e-4


def test_left_padding_a_model_without_position_ids_is_warned_about():
    *_, messages = explained("bart")
    assert any("left padding shifts its learned positions" in m for m in messages)


@pytest.mark.parametrize("family", FAMILIES)
def test_default_scale_leaves_the_words_of_a_layer_1_state_below_the_ceiling(family):
    alone, _, _, messages = explained(family)
    for exp in alone:
        assert (exp.relative_sigma < 0.5).all(), f"{family}: {exp.relative_sigma}"
    assert not any("ceiling" in m for m in messages)


@pytest.mark.parametrize("family", ["gpt2", "llama", "t5-encoder", "mistral"])
def test_default_scale_on_raw_word_embeddings_is_the_papers_advice(family):
    """Noise on an nn.Embedding's output: 10 x the std of its weights."""
    table = model(family).get_input_embeddings()
    assert explained(family)[0][0].scale == pytest.approx(10 * float(table.weight.detach().std()), rel=1e-6)


def test_default_scale_on_a_scaled_word_embedding_is_measured_on_its_output():
    """Gemma's table multiplies its rows by sqrt(hidden): the ceiling grows with them (the std is
    measured on a sample of 256 ids, so it is the weights' within a few percent)."""
    table = model("gemma").get_input_embeddings()
    want = 10 * float(table.embed_scale) * float(table.weight.detach().std())
    assert explained("gemma")[0][0].scale == pytest.approx(want, rel=0.03)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "deberta-v2", "modernbert"])
def test_default_scale_after_a_layernorm_is_ten_times_its_std(family):
    """Fresh LayerNorm outputs have std 1: the ceiling is 10, not 10 x the word weights' 0.02."""
    exp = explained(family)[0][0]
    assert exp.scale == pytest.approx(10, rel=0.05)


def test_every_word_at_the_ceiling_is_warned_about_and_not_converged():
    """The old default on a fresh BERT (10 x the word weights' std, noise after the LayerNorm): the
    noise barely moves the state, every word sits at the ceiling, and the solver's own stopping test
    passes; the result must not claim convergence."""
    bert = model("bert")
    old = 10 * float(bert.embeddings.word_embeddings.weight.detach().std())
    with probe.attach(bert, "encoder.layer.0") as p, pytest.warns(UserWarning, match="scale is too small for this layer") as caught:
        exp = p.explain(batch("bert", ALONE[:1]), scale=old, samples=2, max_steps=8, regularization=torch.tensor(1e3))  # a weighting as loose as the seed's self-normalisation there
    assert [w.filename for w in caught if "ceiling" in str(w.message)] == [__file__], "the warning points at the caller's line"
    assert (exp.relative_sigma > 0.9999).all()
    assert exp.steps >= int(exp.settings["solver.min_steps"]) and not exp.converged


@pytest.mark.parametrize("family", DECODERS)
def test_a_causal_decoder_state_keeps_no_word_after_its_position(family):
    """Position 2 of a 5-token sentence: words 3 and 4 at the ceiling, word 2 well below."""
    with probe.attach(model(family), FAMILIES[family][1], select=lambda h: h[:, 2]) as p:
        exp = p.explain(batch(family, ALONE[:1]), samples=4, max_steps=0)
    assert (exp.relative_sigma[3:] > 0.95).all()
    assert exp.relative_sigma[2] < 0.5


def test_a_classifier_logit_through_select_is_the_phi_written_by_hand():
    """BertForSequenceClassification's logit 1: embeddings' output -> encoder -> pooler -> classifier."""
    torch.manual_seed(0)
    classifier = tf.BertForSequenceClassification(tf.BertConfig(**SMALL, num_labels=2)).eval()
    inputs = batch("bert", ALONE[:1])

    def phi(x: torch.Tensor) -> torch.Tensor:
        hidden = classifier.bert.encoder(x).last_hidden_state
        return classifier.classifier(classifier.bert.pooler(hidden))[:, 1:2]

    with probe.attach(classifier, "classifier", select=lambda logits: logits[:, 1]) as p:
        exp = p.explain(inputs, seed=2, **FAST)
    with torch.no_grad():
        x = classifier.bert.embeddings(inputs["input_ids"])[0]
    ref = probe.explain(phi, x, scale=exp.scale, seed=int(exp.settings["noise_seed"]), batched_phi=True, **FAST)
    assert relative_error(exp.sigma, ref.sigma) < 1e-3


@pytest.mark.parametrize("pad", [None, 0], ids=["no pad id", "pad id 0"])
def test_a_decoder_classifier_logit_at_the_last_position_does_not_depend_on_left_padding(pad):
    """LlamaForSequenceClassification scores every position and reads the last real token: left
    padding puts it at position -1 for every sentence."""
    torch.manual_seed(0)
    head = tf.LlamaForSequenceClassification(tf.LlamaConfig(**DECODER, pad_token_id=pad, num_labels=2)).eval()
    with probe.attach(head, "score", select=lambda logits: logits[:, -1, 1]) as p:
        alone = p.explain(batch("gpt2", ALONE[1:]), seed=4, **FAST)
        padded = p.explain_batch(batch("gpt2", ALONE, left=True), seed=4, **FAST)[1]
    assert alone.relative_sigma[-1] < 0.5, "the logit is read at the last word"
    assert relative_error(padded.sigma, alone.sigma) < 1e-4


def test_t5_perturbs_the_word_embeddings_its_encoder_calls():
    """``shared`` (what get_input_embeddings gives) never runs in the encoder: naming it is refused
    with advice that names the module the encoder calls."""
    t5 = model("t5-generation")
    with probe.attach(t5, "encoder.block.0") as p:
        assert p._runner.embedding is t5.encoder.embed_tokens
    with probe.attach(t5, "encoder.block.0", embedding="shared") as p, pytest.raises(LayerError, match="encoder.embed_tokens"):
        p.explain(batch("t5-generation", ALONE[:1]), **FAST)


class _MaskedModel(nn.Module):
    """A plain PyTorch model taking (input_ids, attention_mask), its embedding without padding_idx."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(100, 8)
        self.mix = nn.Linear(8, 8)

    def forward(self, input_ids, attention_mask):
        return self.mix(self.embedding(input_ids) * attention_mask[..., None]).cumsum(1)


def test_an_attention_mask_marks_padding_for_any_architecture():
    torch.manual_seed(0)
    masked = _MaskedModel()
    with probe.attach(masked, "mix") as p:
        alone = p.explain(batch("gpt2", ALONE[1:]), seed=1, **FAST)
        padded = p.explain_batch(batch("gpt2", ALONE), seed=1, **FAST)[1]
    assert len(padded.sigma) == 3
    assert relative_error(padded.sigma, alone.sigma) < 1e-4
