"""No code from a model folder runs unless the user opts in: a folder whose config.json (or
tokenizer_config.json) names its own Python file through ``auto_map`` is refused by probe.load_model
and every command, even with ``y`` on stdin; ``trust_remote_code=True`` / ``--trust-remote-code``
runs it. ``trust_pickle=True`` applies to a folder's pickled ``pytorch_model.bin`` too."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import probe
from probe._cli import main
from probe.errors import UnsafeFileError

from _tiny import tiny_bert_folder

PAYLOAD = """from pathlib import Path
Path({marker!r}).write_text("ran")
from transformers import BertConfig, BertModel


class EvilConfig(BertConfig):
    model_type = "evil"


class EvilModel(BertModel):
    config_class = EvilConfig
"""


def remote_code_folder(folder: Path, marker: Path, in_tokenizer: bool = False) -> Path:
    """A tiny BERT folder whose config.json (or tokenizer_config.json) maps to its own evil.py."""
    tiny_bert_folder(folder)
    (folder / "evil.py").write_text(PAYLOAD.format(marker=str(marker)))
    name = "tokenizer_config.json" if in_tokenizer else "config.json"
    config = json.loads((folder / name).read_text())
    if in_tokenizer:
        config["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    else:
        config.update(model_type="evil", architectures=["EvilModel"], auto_map={"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"})
    (folder / name).write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def evil(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("remote")
    marker = root / "marker"
    return {"marker": marker, "model": remote_code_folder(root / "model", marker), "tokenizer": remote_code_folder(root / "tok", marker, in_tokenizer=True)}


@pytest.fixture
def yes_on_stdin(monkeypatch):
    """A user (or a script) who answers every question with y."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 20))


def test_load_model_refuses_a_folder_with_its_own_code_even_with_yes_on_stdin(evil, yes_on_stdin):
    for folder in (evil["model"], evil["tokenizer"]):
        with pytest.raises(UnsafeFileError, match=r"auto_map.*trust_remote_code=True \(--trust-remote-code\)"):
            probe.load_model(folder)
    assert not evil["marker"].exists()


def test_every_command_refuses_it_in_one_line(evil, yes_on_stdin, capsys, tmp_path):
    sentences = tmp_path / "s.txt"
    sentences.write_text("a fine film\n")
    for folder in (evil["model"], evil["tokenizer"]):
        for argv in (
            ["layers", str(folder)],
            ["explain", str(folder), "--layer", "encoder.layer.0", "--text", "a fine film"],
            ["corpus", str(folder), "--layer", "encoder.layer.0", "--file", str(sentences), "--out", str(tmp_path / "out")],
        ):
            assert main(argv) == 2
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1 and "--trust-remote-code" in err and "Traceback" not in err, err
    clean = tiny_bert_folder(tmp_path / "clean", tokenizer=False)
    assert main(["layers", str(clean), "--tokenizer", str(evil["tokenizer"]), "--text", "a film"]) == 2
    assert "--trust-remote-code" in capsys.readouterr().err
    assert not evil["marker"].exists()


def _probe(args: list[str], stdin: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "probe", *args], input=stdin, capture_output=True, text=True, timeout=180, env={**os.environ, **env})


def test_a_real_stdin_answering_y_runs_nothing_and_only_the_opt_in_runs_the_code(evil, tmp_path):
    """The refusal means something: the same folder with --trust-remote-code does run evil.py."""
    env = {"HF_MODULES_CACHE": str(tmp_path / "modules")}
    done = _probe(["layers", str(evil["model"])], "y\ny\ny\n", env)
    assert done.returncode == 2 and "--trust-remote-code" in done.stderr and "Do you wish" not in done.stderr + done.stdout, done.stderr
    assert not evil["marker"].exists()
    _probe(["layers", str(evil["model"]), "--trust-remote-code"], "", env)
    assert evil["marker"].read_text() == "ran"
    evil["marker"].unlink()


@pytest.fixture
def pickled_folder(tmp_path) -> tuple[Path, Path, dict]:
    """A HuggingFace folder whose weights are a pytorch_model.bin that runs code when unpickled."""

    class CreatesMarker:
        def __reduce__(self):
            return (open, (str(tmp_path / "pickle-marker"), "w"))

    folder = tiny_bert_folder(tmp_path / "hf")
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save({**state, "extra": CreatesMarker()}, folder / "pytorch_model.bin")
    return folder, tmp_path / "pickle-marker", state


def test_trust_pickle_applies_to_a_folders_pytorch_model_bin(pickled_folder):
    folder, marker, state = pickled_folder
    with pytest.raises(UnsafeFileError, match="trust_pickle=True"):
        probe.load_model(folder)
    assert not marker.exists()
    model, tokenizer = probe.load_model(folder, trust_pickle=True)
    assert marker.exists() and tokenizer is not None
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items() if k in loaded)
    assert torch.equal(loaded["embeddings.word_embeddings.weight"], state["embeddings.word_embeddings.weight"])


def test_a_plain_pytorch_model_bin_loads_without_trust(tmp_path):
    folder = tiny_bert_folder(tmp_path / "hf", tokenizer=False)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(state, folder / "pytorch_model.bin")
    model, _ = probe.load_model(folder)
    assert torch.equal(model.state_dict()["encoder.layer.1.output.dense.weight"], state["encoder.layer.1.output.dense.weight"])


def test_every_from_pretrained_passes_trust_remote_code_explicitly():
    """What `grep -rn from_pretrained probe` shows, checked: no call leaves it to transformers."""
    import ast

    root = Path(__file__).resolve().parents[1]
    calls = 0
    for path in [*(root / "probe").rglob("*.py"), *(root / "adapters").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "from_pretrained":
                calls += 1
                assert any(k.arg == "trust_remote_code" for k in node.keywords), f"{path.name}:{node.lineno}"
    assert calls >= 4
