"""Explanation and Sweep: safetensors round trips, the file layout, plots and bad files."""

from __future__ import annotations

import json
import math
import os
import stat

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import probe
from probe import Explanation, Sweep

WORDS = ["[CLS]", "rare", "bird", "é", "[SEP]"]


def explanation(layer: str = "encoder.layer.2", shift: float = 0.0, regularized: bool = True) -> Explanation:
    """A hand-made result with every field set, so a round trip has something to lose."""
    return Explanation(
        sigma=torch.tensor([0.01, 0.2, 0.05, 0.48, 0.3]) + shift,
        words=list(WORDS),
        scale=0.5,
        rate=0.1,
        width=384,
        layer=layer,
        regularization=torch.linspace(0.1, 2.0, 384) if regularized else None,
        loss=0.4321,
        converged=True,
        steps=17,
        settings={"solver.samples": "16", "seed": "3"},
        curve=[1.5, 0.9, 0.1 / 3],
    )


def assert_same(loaded: Explanation, saved: Explanation) -> None:
    assert torch.equal(loaded.sigma, saved.sigma)
    assert loaded.words == saved.words and loaded.layer == saved.layer
    assert (loaded.scale, loaded.rate, loaded.width) == (saved.scale, saved.rate, saved.width)
    assert (loaded.loss, loaded.converged, loaded.steps) == (saved.loss, saved.converged, saved.steps)
    assert loaded.settings == saved.settings and loaded.curve == saved.curve
    if saved.regularization is None:
        assert loaded.regularization is None
    else:
        assert torch.equal(loaded.regularization, saved.regularization)


@pytest.fixture
def saved(tmp_path):
    exp = explanation()
    path = tmp_path / "exp.safetensors"
    exp.save(path)
    return exp, path


def test_explanation_round_trip(saved):
    exp, path = saved
    loaded = probe.load(path)
    assert isinstance(loaded, Explanation)
    assert_same(loaded, exp)
    assert torch.equal(loaded.information_loss, exp.information_loss)


def test_explanation_without_regularization_round_trip(tmp_path):
    exp = explanation(layer="", regularized=False)
    exp.save(str(tmp_path / "plain.safetensors"))
    assert_same(probe.load(str(tmp_path / "plain.safetensors")), exp)


def test_information_loss_is_the_papers_formula():
    exp = explanation()
    expected = 384 / 2 * math.log(2 * math.pi * math.e) + 384 * np.log(exp.sigma.double().numpy())
    assert np.allclose(exp.information_loss.numpy(), expected, rtol=1e-6)
    assert exp.total_information_loss == pytest.approx(expected.sum(), rel=1e-6)
    assert torch.allclose(exp.relative_sigma, exp.sigma / 0.5)


def test_sweep_round_trip(tmp_path):
    sweep = Sweep({"encoder.layer.0": explanation("encoder.layer.0"), "encoder.layer.5": explanation("encoder.layer.5", 0.01, False)})
    sweep.save(tmp_path / "sweep.safetensors")
    loaded = probe.load(tmp_path / "sweep.safetensors")
    assert isinstance(loaded, Sweep) and loaded.layers == sweep.layers and loaded.words == WORDS
    assert torch.equal(loaded.sigma, sweep.sigma) and loaded.sigma.shape == (2, 5)
    for name in sweep:
        assert_same(loaded[name], sweep[name])


def test_sweep_keeps_its_names_when_they_differ_from_the_layers(tmp_path):
    """Two layers both called '' must not collapse into one on load."""
    sweep = Sweep({"first": explanation(""), "second": explanation("", 0.02)})
    sweep.save(tmp_path / "sweep.safetensors")
    loaded = probe.load(tmp_path / "sweep.safetensors")
    assert loaded.layers == ["first", "second"]
    assert torch.equal(loaded["second"].sigma, sweep["second"].sigma)


def test_file_is_plain_safetensors_with_documented_names(saved):
    exp, path = saved
    tensors = load_file(path)
    assert set(tensors) == {"sigma", "stderr", "information_loss", "loss_curve", "regularization"}
    assert torch.equal(tensors["sigma"], exp.sigma)
    assert torch.equal(tensors["information_loss"], exp.information_loss)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["words"]) == WORDS
    assert meta["layer"] == "encoder.layer.2"
    assert float(meta["scale"]) == 0.5 and float(meta["rate"]) == 0.1
    assert meta["format"] == "probe" and meta["format_version"] == "1"
    assert meta["probe_version"] == probe.__version__
    assert json.loads(meta["settings"]) == {"solver.samples": "16", "seed": "3"}


def test_sweep_file_is_plain_safetensors(tmp_path):
    Sweep({"a": explanation("a"), "b": explanation("b")}).save(tmp_path / "s.safetensors")
    tensors = load_file(tmp_path / "s.safetensors")
    assert tensors["sigma"].shape == (2, 5) and tensors["regularization.1"].shape == (384,)
    with safe_open(str(tmp_path / "s.safetensors"), "pt") as f:
        meta = f.metadata()
    assert json.loads(meta["words"]) == WORDS
    assert [m["name"] for m in json.loads(meta["layers"])] == ["a", "b"]


def test_plot_is_the_word_heatmap(tmp_path):
    exp = explanation()
    fig = exp.plot()
    assert isinstance(fig, Figure)
    heatmap, colorbar = fig.axes
    assert [t.get_text() for t in heatmap.get_xticklabels()] == WORDS
    assert [t.get_text() for t in heatmap.get_yticklabels()] == ["encoder.layer.2"]
    assert np.allclose(heatmap.images[0].get_array(), (exp.sigma / 0.5)[None].numpy())
    relative = (exp.sigma / 0.5).tolist()
    assert heatmap.images[0].get_clim() == pytest.approx((min(relative), max(relative))), "the colours span this result's own range"
    assert type(heatmap.images[0].norm).__name__ == "LogNorm"
    assert colorbar.get_ylabel() == "sigma / scale, log (dark = kept more; 1 = lost)"
    assert f"{min(relative):.3g} (darkest" in heatmap.get_xlabel() and f"to {max(relative):.3g} (lightest)" in heatmap.get_xlabel(), "the range is stated on the figure"


def test_plot_with_a_path_writes_a_png(tmp_path):
    path = tmp_path / "exp.png"
    explanation().plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_plot_has_layers_as_rows(tmp_path):
    sweep = Sweep({"encoder.layer.0": explanation("encoder.layer.0"), "encoder.layer.1": explanation("encoder.layer.1", 0.01)})
    fig = sweep.plot(tmp_path / "sweep.png")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == sweep.layers
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == WORDS
    assert len(fig.axes) == 2 and (tmp_path / "sweep.png").stat().st_size > 0


def test_load_of_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        probe.load(tmp_path / "nope.safetensors")
    assert isinstance(err.value, probe.ProbeError)
    assert "nope.safetensors" in str(err.value) and "check the path" in str(err.value)


def test_load_of_a_folder(tmp_path):
    with pytest.raises(probe.ProbeError, match="is a folder; give the path"):
        probe.load(tmp_path)


@pytest.mark.parametrize("keep", [-7, 20, 5, 0])
def test_load_of_a_truncated_file(saved, keep):
    _, path = saved
    blob = path.read_bytes()
    path.write_bytes(blob[:keep])
    with pytest.raises(probe.ProbeError, match="truncated or not a safetensors file.*re-save"):
        probe.load(path)


def test_load_of_garbage(tmp_path):
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + bytes(range(256)))
    with pytest.raises(probe.ProbeError, match="not a safetensors file"):
        probe.load(path)


def test_load_of_a_foreign_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"weight": torch.zeros(3, 2)}, str(path))
    with pytest.raises(probe.ProbeError, match="not a probe result.*safetensors.torch.load_file"):
        probe.load(path)


def test_load_of_a_newer_format(tmp_path):
    path = tmp_path / "future.safetensors"
    save_file({"sigma": torch.ones(1)}, str(path), metadata={"format": "probe", "format_version": "99", "probe_version": "9.0"})
    with pytest.raises(probe.ProbeError, match="format 99.*upgrade sigma-probe"):
        probe.load(path)


def test_load_of_damaged_metadata(saved):
    _, path = saved
    tensors = load_file(path)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    save_file(tensors, str(path), metadata={**meta, "words": json.dumps(WORDS[:2])})
    with pytest.raises(probe.ProbeError, match="words"):
        probe.load(path)


def test_save_leaves_no_temporary_files(tmp_path):
    exp = explanation()
    exp.save(tmp_path / "exp.safetensors")
    explanation(shift=0.01).save(tmp_path / "exp.safetensors")  # overwrite in place
    assert os.listdir(tmp_path) == ["exp.safetensors"]
    assert torch.equal(probe.load(tmp_path / "exp.safetensors").sigma, exp.sigma + 0.01)


def test_failed_save_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "exp.safetensors"
    explanation().save(path)
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        explanation(shift=0.01).save(path)
    assert os.listdir(tmp_path) == ["exp.safetensors"] and path.read_bytes() == before


def test_saved_file_mode_follows_the_umask(tmp_path):
    """A temporary-then-rename write must not leave mkstemp's private 0600 mode on the result."""
    old = os.umask(0o022)
    try:
        explanation().save(tmp_path / "exp.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "exp.safetensors").stat().st_mode) == 0o644


def test_save_into_a_missing_folder_is_a_probe_error(tmp_path):
    with pytest.raises(probe.ProbeError, match="does not exist"):
        explanation().save(tmp_path / "missing" / "exp.safetensors")


def test_words_must_match_sigma():
    with pytest.raises(probe.ProbeError, match="one word per token"):
        Explanation(sigma=torch.ones(3), words=["a"], scale=1.0, rate=0.1, width=4)


def test_sweep_layers_must_share_words():
    other = explanation("b")
    other.words = ["x"] * 5
    with pytest.raises(probe.ProbeError, match="same words"):
        Sweep({"a": explanation("a"), "b": other})
