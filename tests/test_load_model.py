"""probe.load_model: HuggingFace folders, state dicts into a class, TorchScript, and refusing unsafe pickles."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import probe
from probe.errors import InputError, ProbeFileNotFoundError, UnsafeFileError

from _tiny import tiny_bert_folder

ROOT = Path(__file__).resolve().parents[1]


class Tagger(nn.Module):
    """A small word tagger: embedding, LSTM, linear head."""

    def __init__(self, vocab: int = 20, dim: int = 6):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, 3)

    def forward(self, ids):
        return self.head(self.lstm(self.embed(ids))[0])


class _CreatesMarker:
    """Unpickling this creates a file: the code a malicious checkpoint would run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    return tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"))


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_huggingface_folder_gives_model_and_tokenizer(tiny_bert):
    model, tokenizer = probe.load_model(tiny_bert)
    assert type(model).__name__ == "BertModel" and not model.training
    assert tokenizer.convert_ids_to_tokens(tokenizer("a fine film")["input_ids"]) == ["[CLS]", "a", "fine", "film", "[SEP]"]
    assert model.config.hidden_size == 32


def test_huggingface_folder_without_tokenizer(tmp_path):
    loaded = probe.load_model(tiny_bert_folder(tmp_path, tokenizer=False))
    assert isinstance(loaded, probe.LoadedModel) and loaded.tokenizer is None


def test_state_dict_files_into_a_class(tmp_path):
    torch.manual_seed(1)
    original = Tagger(vocab=30, dim=4)
    save_file(original.state_dict(), tmp_path / "w.safetensors")
    torch.save(original.state_dict(), tmp_path / "w.pt")
    by_class = probe.load_model(tmp_path / "w.safetensors", model_class=Tagger, vocab=30, dim=4)
    by_name = probe.load_model(tmp_path / "w.pt", model_class=f"{__name__}:Tagger", vocab=30, dim=4)
    for loaded in (by_class, by_name):
        assert isinstance(loaded.model, Tagger) and loaded.tokenizer is None and not loaded.model.training
        assert _same_weights(loaded.model, original)


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_file(tmp_path):
    original = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    torch.jit.script(original).save(str(tmp_path / "scripted.pt"))
    model, _ = probe.load_model(tmp_path / "scripted.pt")
    x = torch.randn(2, 4)
    assert isinstance(model, torch.jit.ScriptModule)
    assert torch.equal(model(x), original(x))


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    payload = {"weight": torch.zeros(3, 4), "bias": _CreatesMarker(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(UnsafeFileError, match="trust_pickle"):
        probe.load_model(path, model_class="torch.nn:Linear", in_features=4, out_features=3)
    assert not marker.exists()
    # the payload is live: trusting the file runs it (and what it gives is no model)
    with pytest.raises(InputError):
        probe.load_model(path, model_class="torch.nn:Linear", trust_pickle=True, in_features=4, out_features=3)
    assert marker.exists()


def test_huggingface_folder_with_a_malicious_pickle_is_refused(tmp_path, tiny_bert):
    from safetensors.torch import load_file

    folder = tiny_bert_folder(tmp_path / "hf", tokenizer=False)
    state = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "marker"
    torch.save({**state, "extra": _CreatesMarker(marker)}, folder / "pytorch_model.bin")
    with pytest.raises(UnsafeFileError):
        probe.load_model(folder)
    assert not marker.exists()


def test_whole_pickled_module_needs_trust_pickle(tmp_path):
    original = Tagger()
    torch.save(original, tmp_path / "whole.pt")
    with pytest.raises(UnsafeFileError, match="--trust-pickle"):
        probe.load_model(tmp_path / "whole.pt")
    model, _ = probe.load_model(tmp_path / "whole.pt", trust_pickle=True)
    assert isinstance(model, Tagger) and _same_weights(model, original)


def test_user_mistakes_are_probe_errors_that_say_the_fix(tmp_path):
    torch.save(Tagger().state_dict(), tmp_path / "w.pt")
    with pytest.raises(ProbeFileNotFoundError, match="no file or folder"):
        probe.load_model(tmp_path / "missing.pt")
    with pytest.raises(InputError, match="model_class="):
        probe.load_model(tmp_path / "w.pt")
    with pytest.raises(InputError, match="missing .*unexpected"):
        probe.load_model(tmp_path / "w.pt", model_class="torch.nn:Linear", in_features=2, out_features=2)
    with pytest.raises(InputError, match="cannot import"):
        probe.load_model(tmp_path / "w.pt", model_class="no_such_module_xyz:Tagger")
    with pytest.raises(InputError, match="'module:Class'"):
        probe.load_model(tmp_path / "w.pt", model_class="Tagger")
    with pytest.raises(InputError, match="constructor"):
        probe.load_model(tmp_path / "w.pt", model_class=Tagger, colour="red")
    with pytest.raises(InputError, match="config.json"):
        probe.load_model(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match="not a model file"):
        probe.load_model(tmp_path / "notes.txt")


def test_every_torch_load_in_the_project_passes_weights_only():
    calls = []
    for path in [*(ROOT / "probe").rglob("*.py"), *(ROOT / "adapters").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load":
                if isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
                    calls.append((path.name, {k.arg for k in node.keywords}))
    assert calls, "load_model reads .pt files with torch.load"
    assert all("weights_only" in keywords for _, keywords in calls), calls
