"""Property-based tests of probe's files: random Explanations and Sweeps round-trip exactly, and
no damage to a file's bytes lets anything but a probe.ProbeError out of probe.load."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import probe
from probe import Explanation, Sweep

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

text = st.text(max_size=12)
name = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
"""A layer name: any unicode but lone surrogates, which a file stores only inside JSON (words do)."""
fraction = st.floats(min_value=2.0**-60, max_value=1.0)
"""sigma / scale: sigma lies in (0, scale]."""
scale_values = st.floats(min_value=1e-20, max_value=1e20)
"""A scale whose sigma float32 holds."""
positive = st.floats(min_value=5e-324, allow_infinity=False)
number = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def explanations(draw, words: list[str] | None = None, layer: str | None = None) -> Explanation:
    """An Explanation with every field random: words, sigma, shapes, metadata, curve."""
    words = draw(st.lists(text, min_size=1, max_size=8)) if words is None else words
    features = draw(st.integers(1, 6))
    scale = draw(scale_values)
    return Explanation(
        sigma=torch.tensor([scale * f for f in draw(st.lists(fraction, min_size=len(words), max_size=len(words)))], dtype=torch.float32),
        words=words,
        scale=scale,
        rate=draw(positive),
        width=draw(st.integers(1, 4096)),
        layer=draw(name) if layer is None else layer,
        regularization=draw(st.none() | st.just(torch.rand(1, features) + 0.1)),
        loss=draw(st.floats(allow_infinity=False)),
        converged=draw(st.booleans()),
        steps=draw(st.integers(0, 10_000)),
        settings=draw(st.dictionaries(text, text, max_size=3)),
        curve=draw(st.lists(number, max_size=5)),
    )


@st.composite
def sweeps(draw) -> Sweep:
    """A Sweep of one to four layers with distinct random names over the same random words."""
    words = draw(st.lists(text, min_size=1, max_size=6))
    names = draw(st.lists(text, min_size=1, max_size=4, unique=True))
    return Sweep({n: draw(explanations(words=words, layer=draw(name))) for n in names})


def assert_same(loaded: Explanation, saved: Explanation) -> None:
    assert torch.equal(loaded.sigma, saved.sigma)
    assert loaded.words == saved.words and loaded.layer == saved.layer
    assert (loaded.scale, loaded.rate, loaded.width, loaded.steps) == (saved.scale, saved.rate, saved.width, saved.steps)
    assert loaded.loss == saved.loss or (math.isnan(loaded.loss) and math.isnan(saved.loss))
    assert (loaded.converged, loaded.settings, loaded.curve) == (saved.converged, saved.settings, saved.curve)
    assert (loaded.regularization is None) == (saved.regularization is None)
    if saved.regularization is not None:
        assert torch.equal(loaded.regularization, saved.regularization)


def round_trip(result):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "result.safetensors"
        result.save(path)
        return probe.load(path)


@SETTINGS
@given(explanations())
def test_random_explanations_round_trip(exp):
    loaded = round_trip(exp)
    assert isinstance(loaded, Explanation)
    assert_same(loaded, exp)


@SETTINGS
@given(sweeps())
def test_random_sweeps_round_trip(sweep):
    loaded = round_trip(sweep)
    assert isinstance(loaded, Sweep) and loaded.layers == sweep.layers and loaded.words == sweep.words
    for name in sweep:
        assert_same(loaded[name], sweep[name])


def valid_files() -> dict[str, bytes]:
    """The bytes of one saved file of each kind probe.load reads: what the fuzzer damages."""
    exp = Explanation(
        sigma=torch.tensor([0.1, 0.2, 0.3]),
        words=["[CLS]", "é", "[SEP]"],
        scale=0.5,
        rate=0.1,
        width=8,
        layer="l",
        regularization=torch.ones(1, 4),
        curve=[1.0, 0.5],
        steps=2,
    )
    series = probe.TimeSeries(layers=["a", "b"], words=[["x", "y"]], scale=0.5, rate=0.1, width=8, steps=[0, 5], epochs=[0.0, 1.0], sigma=[0.01 + 0.4 * torch.rand(2, 2, 2)])
    corpus = probe.CorpusResult(
        layers=["a"],
        words=[["x", "y"], ["x"]],
        sigma=[0.01 + 0.4 * torch.rand(1, 2), 0.01 + 0.4 * torch.rand(1, 1)],
        index=torch.tensor([0, 1]),
        scale=0.5,
        rate=0.1,
        width=8,
        convergence=torch.zeros(1, 2, dtype=torch.bool),
        steps=torch.ones(1, 2, dtype=torch.int64),
    )
    results = {"explanation": exp, "sweep": Sweep({"a": exp, "b": exp}), "timeseries": series, "corpus": corpus}
    with tempfile.TemporaryDirectory() as folder:
        for name, result in results.items():
            result.save(Path(folder) / name)
        return {name: (Path(folder) / name).read_bytes() for name in results}


VALID = valid_files()


@st.composite
def damaged(draw) -> bytes:
    """A valid file with a few bytes flipped, cut off, inserted or overwritten, or random garbage."""
    blob = bytearray(VALID[draw(st.sampled_from(sorted(VALID)))])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "overwrite", "garbage"]))
        at = draw(st.integers(0, max(0, len(blob) - 1)))
        if kind == "flip" and blob:
            blob[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del blob[at:]
        elif kind == "insert":
            blob[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "overwrite":
            chunk = draw(st.binary(min_size=1, max_size=16))
            blob[at : at + len(chunk)] = chunk
        else:
            blob = bytearray(draw(st.binary(max_size=512)))
    return bytes(blob)


@settings(max_examples=300, deadline=None)
@given(damaged())
def test_damaged_files_raise_only_probe_errors(blob):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "damaged.safetensors"
        path.write_bytes(blob)
        try:
            loaded = probe.load(path)
        except probe.ProbeError:
            return
    assert_consistent(loaded)  # damage to the numbers alone may still read, but never as an impossible result


def assert_consistent(result) -> None:
    """What every loaded result promises: sigma in (0, scale], one word per token, a bool converged."""
    sigmas = result.sigma if isinstance(result.sigma, list) else [result.sigma]
    words = result.words if isinstance(result, (probe.TimeSeries, probe.CorpusResult)) else [result.words]
    assert math.isfinite(result.scale) and result.scale > 0 and math.isfinite(result.rate) and result.rate > 0 and result.width >= 1
    assert type(result.converged) is bool
    for s, w in zip(sigmas, words, strict=True):
        assert s.shape[-1] == len(w)
        assert bool(((s > 0) & (s <= result.scale * (1 + 1e-5))).all())


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["words", "layers", "settings", "scale", "width", "steps", "converged", "kind", "format_version"]),
    st.text(max_size=40) | st.sampled_from(["explanation", "sweep", "corpus", "timeseries", "[]", "{}", "[{}]", "[1]", "0", "2", "-1", "null"]),
)
def test_damaged_metadata_raises_only_probe_errors(key, value):
    """Metadata a valid safetensors file carries, rewritten: the parser behind each field must hold."""
    from safetensors.torch import load, save

    for blob in VALID.values():
        tensors = load(blob)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "f.safetensors"
            meta = _metadata(blob)
            path.write_bytes(save(tensors, metadata={**meta, key: value}))
            try:
                loaded = probe.load(path)
            except probe.ProbeError:
                continue
            assert_consistent(loaded)
            if key == "scale" and not isinstance(loaded, Sweep):  # a sweep keeps each layer's scale with the layer
                assert loaded.scale == float(value)
            if key == "converged" and isinstance(loaded, Explanation):
                assert loaded.converged is json.loads(value)


def _metadata(blob: bytes) -> dict[str, str]:
    import json
    import struct

    (size,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8 : 8 + size])["__metadata__"]


def test_deeply_nested_metadata_is_a_probe_error(tmp_path):
    """json's recursion limit is a RecursionError, not a ValueError: it must not escape either."""
    from safetensors.torch import load, save

    blob = VALID["explanation"]
    path = tmp_path / "deep.safetensors"
    path.write_bytes(save(load(blob), metadata={**_metadata(blob), "words": "[" * 100_000}))
    try:
        probe.load(path)
    except probe.ProbeError as err:
        assert "damaged" in str(err)
    else:
        raise AssertionError("a file with damaged words loaded")
