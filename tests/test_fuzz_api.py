"""Property-based: arguments of every wrong type and range, one at a time, on each public function;
nothing but a ProbeError comes out (see tests/_fuzz.py for the tally)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from torch import nn

import probe
from _fuzz import FUZZ, bad_positive, bad_regularization, bad_seed, bad_setting, bad_words, junk, refused

W = torch.tensor([10.0, 20.0, 5.0, -20.0, -10.0])
X = torch.randn(5, 16, generator=torch.Generator().manual_seed(0)) / 10
QUICK = {"samples": 2, "max_steps": 1}


def linear(x):
    return W @ x


bad_x = st.one_of(
    junk,
    st.integers(),
    st.just(torch.zeros(5)),
    st.just(torch.zeros(2, 5, 16)),
    st.just(torch.zeros(5, 16, dtype=torch.long)),
    st.just(torch.zeros(0, 16)),
    st.just(torch.full((5, 16), math.nan)),
    st.just(np.zeros((5, 16))),
    st.just([[0.0] * 16] * 5),
)
bad_phi = st.one_of(
    junk,
    st.integers(),
    st.sampled_from(
        [
            lambda x: "state",
            lambda x: None,
            lambda x: x.long(),
            lambda x: x / 0,
            lambda x: x[99],
            lambda x: torch.full((3,), math.nan),
            lambda x: (_ for _ in ()).throw(RuntimeError("user bug")),
        ]
    ),
)
"""Phi that is no function, or a function that fails or returns no usable hidden state."""

explain_mistakes = st.one_of(
    bad_x.map(lambda v: ("x", v)),
    bad_phi.map(lambda v: ("Phi", v)),
    bad_words.map(lambda v: ("words", v)),
    bad_regularization.map(lambda v: ("regularization", v)),
    bad_positive.map(lambda v: ("scale", v)),
    bad_positive.map(lambda v: ("rate", v)),
    bad_seed.map(lambda v: ("seed", v)),
    bad_setting,
)


@FUZZ
@given(explain_mistakes)
def test_probe_explain(mistake):
    name, value = mistake
    args = {"Phi": linear, "x": X, "scale": 1.0, **QUICK, name: value}
    refused(f"probe.explain({name}=)", lambda: probe.explain(args.pop("Phi"), args.pop("x"), **args))


@FUZZ
@given(st.one_of(explain_mistakes.filter(lambda m: m[0] in ("x", "Phi", "words", "scale", "rate")), bad_regularization.filter(lambda r: not (isinstance(r, torch.Tensor) and r.shape == (1,) and r.item() < 0)).map(lambda v: ("regularization", v))))
def test_the_papers_interpreter(mistake):
    name, value = mistake
    args = {"Phi": linear, "x": X, "scale": 1.0, name: value}
    refused(f"Interpreter({name}=)", lambda: probe.Interpreter(**args))


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 8, padding_idx=0)
        self.block = nn.Linear(8, 8)

    def forward(self, ids):
        return self.block(self.embedding(ids))


TOY = Toy().eval()
IDS = torch.tensor([[3, 7, 1, 12, 5]])

attach_mistakes = st.one_of(
    st.one_of(junk, st.integers(), st.just(torch.zeros(2))).map(lambda v: ("model", v)),
    st.one_of(st.none(), st.integers(), st.just([]), st.just([5]), st.just(["nope"]), st.just("blok"), st.just(["block", "block"]), st.just([["block"]])).map(lambda v: ("layers", v)),
    st.one_of(st.integers(), st.text(max_size=3), st.just(lambda h: "x")).map(lambda v: ("select", v)),
    st.one_of(st.integers(), st.text(min_size=1, max_size=3), st.just(["bert"])).map(lambda v: ("adapter", v)),
    st.one_of(st.integers(), st.text(min_size=1, max_size=3), st.just("block")).map(lambda v: ("embedding", v)),
)


@FUZZ
@given(attach_mistakes)
def test_probe_attach(mistake):
    name, value = mistake
    args = {"model": TOY, "layers": "block", name: value}

    def call():
        with probe.attach(args.pop("model"), args.pop("layers"), **args) as p:
            p.explain(IDS, **QUICK)

    refused(f"attach({name}=)", call)


bad_inputs = st.one_of(junk, st.just(torch.tensor([[3.0, 7.0]])), st.just(torch.tensor([[3, 99]])), st.just(torch.tensor([[-1, 3]])), st.just(torch.zeros(1, 0, dtype=torch.long)), st.just(torch.zeros(1, 2, 3, dtype=torch.long)))
attach_explain_mistakes = st.one_of(
    bad_inputs.map(lambda v: ("inputs", v)),
    bad_regularization.map(lambda v: ("regularization", v)),
    bad_positive.map(lambda v: ("scale", v)),
    bad_positive.map(lambda v: ("rate", v)),
    bad_setting,
)


@FUZZ
@given(attach_explain_mistakes)
def test_attach_explain_settings_scale_rate_regularization_inputs(mistake):
    name, value = mistake
    args = {"inputs": IDS, **QUICK, name: value}

    def call():
        with probe.attach(TOY, "block") as p:
            p.explain(args.pop("inputs"), **args)

    refused(f"p.explain({name}=)", call)


@FUZZ
@given(st.one_of(bad_seed.map(lambda v: ("seed", v)), bad_words.map(lambda v: ("words", v))))
def test_attach_explain_seed_and_words(mistake):
    name, value = mistake

    def call():
        with probe.attach(TOY, "block") as p:
            p.explain(IDS, **QUICK, **{name: value})

    refused(f"p.explain({name}=)", call)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-files")
    probe.Explanation(sigma=torch.tensor([0.1, 0.2]), words=["a", "b"], scale=0.5, rate=0.1, width=4).save(folder / "e.safetensors")
    return folder


@FUZZ
@given(st.one_of(junk.filter(lambda v: v is not None), st.integers(), st.binary(max_size=64), st.sampled_from(["", "nowhere.safetensors", ".", "/", "x" * 300])), st.booleans())
def test_probe_load_of_a_path_or_garbage(saved, path, as_file):
    if as_file and isinstance(path, bytes):
        (saved / "garbage.safetensors").write_bytes(path)
        path = saved / "garbage.safetensors"
    refused("probe.load(path)", lambda: probe.load(path))


@FUZZ
@given(st.sampled_from(["scale", "rate", "width", "words", "converged", "steps", "loss", "settings"]), st.sampled_from(["-1", "0", "nan", "inf", "x", "[]", "{}", '["a"]', "", "1e999"]))
def test_probe_load_of_metadata_that_contradicts_the_tensors(saved, key, value):
    assume((key, value) not in {("steps", "0"), ("settings", "{}"), ("loss", "nan"), ("loss", "inf"), ("loss", "-1"), ("loss", "0"), ("loss", "1e999")})  # legal values
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    with safe_open(saved / "e.safetensors", "pt") as f:
        meta = f.metadata()
    save_file(load_file(saved / "e.safetensors"), saved / "bad.safetensors", metadata={**meta, key: value})
    refused(f"probe.load(metadata {key}=)", lambda: probe.load(saved / "bad.safetensors"))


@FUZZ
@given(st.one_of(junk.filter(lambda v: not isinstance(v, str)), st.integers(), st.sampled_from(["", "/no/such/folder/e.safetensors", ".", "/", "/proc/version/x", "x" * 300])))
def test_explanation_save_to_a_bad_path(saved, path):
    exp = probe.load(saved / "e.safetensors")
    refused("Explanation.save(path)", lambda: exp.save(path))


@FUZZ
@given(st.sampled_from(["sigma", "words", "scale", "rate", "width"]), st.one_of(junk, st.just(torch.tensor([-1.0, 0.2])), st.just(torch.zeros(3)), st.integers(max_value=0)))
def test_explanation_constructor(name, value):
    args = {"sigma": torch.tensor([0.1, 0.2]), "words": ["a", "b"], "scale": 0.5, "rate": 0.1, "width": 4, name: value}
    refused(f"Explanation({name}=)", lambda: probe.Explanation(**args))


@FUZZ
@given(
    st.one_of(
        st.one_of(junk.filter(lambda v: v is not None), st.integers()).map(lambda v: ("path", v)),
        st.sampled_from([".pt", ".bin", ".pth", ".safetensors", ".txt", ""]).flatmap(lambda s: st.binary(max_size=80).map(lambda b: ("garbage", (s, b)))),
        st.one_of(st.integers(), st.text(max_size=6), st.just("torch.nn:Nope"), st.just("no_such_module:X"), st.just("math:pi"), st.just(len)).map(lambda v: ("model_class", v)),
        st.sampled_from([{"in_features": "x"}, {"bogus": 1}, {"in_features": -4, "out_features": 3}, {}]).map(lambda v: ("kwargs", v)),
        st.one_of(st.text(max_size=2), st.integers(), st.none()).map(lambda v: ("trust_pickle", v)),
    )
)
def test_probe_load_model(tmp_path_factory, mistake):
    name, value = mistake
    folder = tmp_path_factory.getbasetemp()
    weights = folder / "linear.pt"
    if not weights.exists():
        torch.save(nn.Linear(4, 3).state_dict(), weights)
    args = {"path": weights, "model_class": "torch.nn:Linear", "in_features": 4, "out_features": 3}
    if name == "garbage":
        suffix, blob = value
        args["path"] = folder / f"garbage{suffix}"
        args["path"].write_bytes(blob)
    elif name == "kwargs":
        args = {"path": weights, "model_class": "torch.nn:Linear", **value}
    else:
        args[name] = value
    refused(f"load_model({name}=)", lambda: probe.load_model(args.pop("path"), **args))


@FUZZ
@given(
    st.one_of(
        st.one_of(st.text(max_size=3), st.just([]), st.just([5]), st.just([""]), st.just([None]), st.integers()).map(lambda v: ("sentences", v)),
        st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=2), st.none()).map(lambda v: ("batch_size", v)),
        st.one_of(st.just((2, 2)), st.just((-1, 2)), st.just((0,)), st.just("0/2"), st.just((0, 0)), st.just((0.0, 1))).map(lambda v: ("shard", v)),
        bad_positive.map(lambda v: ("rate", v)),
        bad_setting,
    )
)
def test_probe_corpus(tokenizer, mistake):
    name, value = mistake
    args = {"sentences": ["a fine film", "a dull one"], "tokenizer": tokenizer, "batch_size": 2, **QUICK, name: value}
    refused(f"corpus({name}=)", lambda: probe.corpus(BERT(), "encoder.layer.0", args.pop("sentences"), **args))


@FUZZ
@given(st.one_of(bad_seed.map(lambda v: ("seed", v)), st.one_of(st.none(), st.integers(), st.just([]), st.just(["nope"])).map(lambda v: ("layers", v)), st.just(("shard", (0,))), st.just(("shard", "0/2"))))
def test_probe_corpus_seed_layers_shard(tokenizer, mistake):
    name, value = mistake
    args = {"layers": "encoder.layer.0", "sentences": ["a fine film", "a dull one"], "tokenizer": tokenizer, "batch_size": 2, **QUICK, name: value}
    refused(f"corpus({name}=)", lambda: probe.corpus(BERT(), args.pop("layers"), args.pop("sentences"), **args))


_BERT: list = []


def BERT() -> nn.Module:
    """A tiny random BERT, built once."""
    if not _BERT:
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        _BERT.append(BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32)).eval())
    return _BERT[0]


@FUZZ
@given(
    st.one_of(
        st.one_of(junk, st.integers(), st.just([]), st.just([torch.zeros(5, 16), torch.zeros(4, 16)])).map(lambda v: ("sampled_x", v)),
        bad_phi.map(lambda v: ("Phi", v)),
        st.one_of(st.integers(), st.text(max_size=2), st.just([9]), st.just(["a"])).map(lambda v: ("reduced_axes", v)),
        st.one_of(st.integers(min_value=-3, max_value=-1), st.text(min_size=1, max_size=3)).map(lambda v: ("device", v)),
    )
)
def test_calculate_regularization(mistake):
    name, value = mistake
    args = {"sampled_x": [X, X * 2], "Phi": linear, name: value}
    refused(f"calculate_regularization({name}=)", lambda: probe.calculate_regularization(**args))


def test_the_tally_counts():
    """The fuzz tests above did run their attempts (a guard against a tally that counts nothing)."""
    from _fuzz import TALLY

    assert TALLY["tried"] > 0
    json.dumps(dict(TALLY))
