"""Untrusted files: a saved file whose unpickling would run code is refused by every entry point that
reads files (probe.load_model, probe.load, the `probe` command), and its code never runs, unless the
user passes trust_pickle=True / --trust-pickle."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import probe
from probe._cli import main
from probe.errors import UnsafeFileError

from _tiny import tiny_bert_folder

ROOT = Path(__file__).resolve().parents[1]
LINEAR = ["--model-class", "torch.nn:Linear", "--model-kwargs", json.dumps({"in_features": 4, "out_features": 3})]


class _CreatesMarker:
    """Unpickling this creates a file: the code a malicious checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def evil_state_dict(path: Path, marker: Path) -> Path:
    """A state dict for nn.Linear(4, 3) with one entry whose unpickling creates ``marker``."""
    torch.save({"weight": torch.zeros(3, 4), "bias": torch.zeros(3), "extra": _CreatesMarker(marker)}, path)
    return path


def disguised_torchscript(path: Path, marker: Path) -> Path:
    """The evil pickle inside a zip laid out like a TorchScript archive (code/, constants.pkl)."""
    plain = evil_state_dict(path.with_suffix(".plain"), marker)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w") as out:
        root = src.namelist()[0].split("/")[0]
        for name in src.namelist():
            out.writestr(name, src.read(name))
        out.writestr(f"{root}/code/__torch__.py", "")
        out.writestr(f"{root}/constants.pkl", src.read(f"{root}/data.pkl"))
    plain.unlink()
    return path


@pytest.fixture(scope="module")
def evil(tmp_path_factory) -> dict[str, Path]:
    """Every kind of malicious model file, and the marker none of them may create."""
    folder = tmp_path_factory.mktemp("evil")
    marker = folder / "marker"
    hf = tiny_bert_folder(folder / "hf", tokenizer=False)
    state = load_file(hf / "model.safetensors")
    (hf / "model.safetensors").unlink()
    torch.save({**state, "extra": _CreatesMarker(marker)}, hf / "pytorch_model.bin")
    return {
        "marker": marker,
        ".pt": evil_state_dict(folder / "evil.pt", marker),
        ".pth": evil_state_dict(folder / "evil.pth", marker),
        ".bin": evil_state_dict(folder / "evil.bin", marker),
        "torchscript": disguised_torchscript(folder / "scripted.pt", marker),
        "hf folder": hf,
        "tokenizer": tiny_bert_folder(folder / "tok"),
    }


@pytest.fixture(autouse=True)
def never_runs(evil):
    """Every test here ends with the payload not having run."""
    yield
    assert not evil["marker"].exists(), "the malicious pickle ran"


@pytest.mark.parametrize("kind", [".pth", ".bin", "torchscript"])
def test_load_model_refuses_every_kind_of_file(evil, kind):
    with pytest.raises(probe.ProbeError, match="trust_pickle|torch.jit.load refused it"):
        probe.load_model(evil[kind], model_class="torch.nn:Linear", in_features=4, out_features=3)


def _refused_on_the_command_line(capsys, argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("kind", [".pt", "hf folder", "torchscript"])
def test_every_command_refuses_a_file_that_would_run_code(evil, capsys, tmp_path, kind):
    model = str(evil[kind])
    sentences = tmp_path / "s.txt"
    sentences.write_text("a fine film\n")
    options = ["--tokenizer", str(evil["tokenizer"]), *([] if kind == "hf folder" else LINEAR)]
    commands = [
        ["layers", model, *options],
        ["layers", model, "--text", "a fine film", *options],
        ["explain", model, "--layer", "encoder.layer.0", "--text", "a fine film", *options],
        ["corpus", model, "--layer", "encoder.layer.0", "--file", str(sentences), "--out", str(tmp_path / "out"), *options],
    ]
    for argv in commands:
        err = _refused_on_the_command_line(capsys, argv)
        assert ("--trust-pickle" in err) if kind != "torchscript" else ("torch.jit.load refused it" in err)


def test_show_and_probe_load_refuse_a_pickle(evil, capsys):
    err = _refused_on_the_command_line(capsys, ["show", str(evil[".pt"])])
    assert "not a safetensors file" in err
    with pytest.raises(probe.ProbeError, match="not a safetensors file"):
        probe.load(evil[".pt"])


def test_python_dash_m_probe_refuses_it(evil):
    done = subprocess.run([sys.executable, "-m", "probe", "layers", str(evil[".pt"]), *LINEAR], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--trust-pickle" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_the_payload_is_live_and_only_trust_pickle_runs_it(tmp_path, capsys):
    """The refusals above mean something: trusting the file does run its code."""
    marker = tmp_path / "trusted-marker"
    path = evil_state_dict(tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeFileError):
        probe.load_model(path, model_class="torch.nn:Linear", in_features=4, out_features=3)
    assert not marker.exists()
    assert main(["layers", str(path), "--trust-pickle", *LINEAR]) == 2  # what it unpickles is no model
    capsys.readouterr()
    assert marker.exists()


def _torch_loads() -> list[tuple[str, ast.Call, list[ast.AST]]]:
    """Every ``torch.load(...)`` call in probe/ and adapters/, with the chain of nodes enclosing it."""
    found = []

    def walk(node: ast.AST, parents: list[ast.AST], path: Path) -> None:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
            if isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                found.append((path.name, node, parents))
        for child in ast.iter_child_nodes(node):
            walk(child, [*parents, node], path)

    for path in [*(ROOT / "probe").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]:
        walk(ast.parse(path.read_text()), [], path)
    return found


def test_every_torch_load_is_weights_only_except_under_trust_pickle():
    """What `grep -rn "torch.load(" probe adapters` shows, checked: weights_only=True, or False only
    inside an ``if trust_pickle:`` branch."""
    calls = _torch_loads()
    assert calls
    for name, call, parents in calls:
        value = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
        assert isinstance(value, ast.Constant), f"{name}:{call.lineno} passes no literal weights_only"
        if value.value is not True:
            branch = next((p for p in reversed(parents) if isinstance(p, ast.If)), None)
            assert branch is not None and ast.unparse(branch.test) == "trust_pickle", f"{name}:{call.lineno} loads pickles outside the trust_pickle path"


def test_no_other_unpickling_in_the_package():
    """pickle.load(s), numpy's allow_pickle and torch.load are the ways a file runs code; only the last
    is used, and only as checked above."""
    for path in [*(ROOT / "probe").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = ast.unparse(node.func.value)
                assert not (owner in ("pickle", "dill", "cloudpickle", "joblib") and node.func.attr in ("load", "loads")), f"{path.name}:{node.lineno}"
                assert not any(k.arg == "allow_pickle" for k in node.keywords), f"{path.name}:{node.lineno}"
