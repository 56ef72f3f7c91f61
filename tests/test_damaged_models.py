"""Damaged model files and folders end in a ProbeError that names the file (CLI: one line, exit 2):
garbage tokenizer.json, truncated or mismatched model.safetensors, odd `architectures`, a constructor
that raises, a corrupt zip. Weights missing from a folder are a warning, never silent."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import probe
from probe._cli import main
from probe.errors import InputError, ModelError

from _tiny import tiny_bert_folder

QUERY = "encoder.layer.0.attention.self.query.weight"


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return tiny_bert_folder(tmp_path_factory.mktemp("good") / "bert")


def damaged(good: Path, tmp_path: Path, change) -> Path:
    folder = tmp_path / "bert"
    shutil.copytree(good, folder)
    change(folder)
    return folder


def _garbage_tokenizer(folder: Path) -> None:
    (folder / "tokenizer.json").write_text("{not json")


def _truncated_weights(folder: Path) -> None:
    blob = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(blob[: len(blob) // 2])


def _mismatched_weights(folder: Path) -> None:
    state = load_file(folder / "model.safetensors")
    save_file({**state, QUERY: torch.zeros(3, 3)}, folder / "model.safetensors", metadata={"format": "pt"})


def _config(**change):
    def edit(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, **change}))

    return edit


CASES = [
    (_garbage_tokenizer, InputError, "tokenizer files in .* are damaged"),
    (_truncated_weights, ModelError, "could not load the model in .*SafetensorError"),
    (_mismatched_weights, ModelError, "could not load the model in .*(mismatch|size)"),
    (_config(architectures=[5]), InputError, "'architectures' .* is \\[5\\], not a list of class names"),
    (_config(architectures="BertModel"), InputError, "not a list of class names"),
    (_config(hidden_size=30, num_attention_heads=7), ModelError, "could not load the model"),
    (lambda folder: (folder / "config.json").write_text("[1, 2]"), InputError, "not a JSON object"),
    (lambda folder: (folder / "config.json").write_bytes(b"\xff\xfe{"), InputError, "not valid JSON"),
]


@pytest.mark.parametrize("change, error, message", CASES)
def test_a_damaged_folder_is_a_probe_error_naming_it(good, tmp_path, capsys, change, error, message):
    folder = damaged(good, tmp_path, change)
    with pytest.raises(error, match=message):
        probe.load_model(folder)
    capsys.readouterr()
    assert main(["layers", str(folder)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(folder) in err and "Traceback" not in err, err


@pytest.mark.parametrize("names", [["pipeline"], ["NoSuchModel"], ["__class__"]])
def test_architectures_that_name_no_model_class_fall_back_to_automodel(good, tmp_path, names):
    model, _ = probe.load_model(damaged(good, tmp_path, _config(architectures=names)))
    assert type(model).__name__ == "BertModel"


def test_weights_missing_from_the_folder_are_a_warning(good, tmp_path):
    def drop(folder: Path) -> None:
        state = load_file(folder / "model.safetensors")
        del state[QUERY]
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})

    with pytest.warns(UserWarning, match=f"1 weight\\(s\\) of BertModel are not in .* start random \\({QUERY}\\)"):
        probe.load_model(damaged(good, tmp_path, drop))


class Raises(torch.nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        raise RuntimeError(f"cannot build a model of width {width}")


def test_a_model_constructor_that_raises(tmp_path, capsys):
    torch.save({"w": torch.zeros(2)}, tmp_path / "w.pt")
    with pytest.raises(InputError, match="cannot build Raises.*RuntimeError: cannot build a model of width 4"):
        probe.load_model(tmp_path / "w.pt", model_class=Raises)
    assert main(["layers", str(tmp_path / "w.pt"), "--model-class", "test_damaged_models:Raises"]) == 2
    assert "cannot build Raises" in capsys.readouterr().err


def test_a_corrupt_zip(tmp_path, capsys):
    torch.save({"weight": torch.zeros(3, 4), "bias": torch.zeros(3)}, tmp_path / "w.pt")
    blob = (tmp_path / "w.pt").read_bytes()
    assert zipfile.is_zipfile(tmp_path / "w.pt")
    for name, data in [("cut.pt", blob[: len(blob) - 40]), ("flipped.pt", blob[:200] + bytes(b ^ 0xFF for b in blob[200:400]) + blob[400:])]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(probe.ProbeError, match=f"{name}.* damaged|{name}.*TorchScript"):
            probe.load_model(tmp_path / name, model_class="torch.nn:Linear", in_features=4, out_features=3)
        assert main(["layers", str(tmp_path / name), "--model-class", "torch.nn:Linear", "--model-kwargs", '{"in_features": 4, "out_features": 3}']) == 2
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("path", [5, None, ["model"]])
def test_a_path_that_is_no_file_name(path):
    with pytest.raises(InputError, match="path must be a file or folder name"):
        probe.load_model(path)


@pytest.mark.parametrize("flag", ["trust_pickle", "trust_remote_code"])
def test_trust_flags_must_be_booleans(tmp_path, flag):
    with pytest.raises(InputError, match=f"{flag} must be True or False"):
        probe.load_model(tmp_path, **{flag: "yes"})
