"""Nothing from a file reaches the terminal or a page unescaped, no kernel runs without trust, and
every refusal is one clear line before any long work (issue 18). Each case counts in the tally."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tracemalloc

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import probe
from probe._cli import main

from _fuzz import held
from _tiny import tiny_bert_folder

HOSTILE = ["\x1b[2J\x1b[H", "\x1b]0;owned\x07", "\x1b]52;c;aGVsbG8=\x07", "ok\ntotal information loss 0.0 nats; converged True after 1 steps", "\r\x1b[1A", "\u202eevil", "\x9b31m"]
"""Words that clear the screen, set the window title, write the clipboard (OSC 52), forge a line, move
the cursor, reverse the text (bidi) and start a C1 control sequence."""
RAW = ("\x1b", "\x07", "\r", "\u202e", "\x9b")


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    layer = "encoder\x1b]0;title\x07.layer.0"
    a = probe.Explanation(sigma=torch.full((len(HOSTILE),), 0.1), words=HOSTILE, scale=0.5, rate=0.1, width=4, layer=layer)
    b = probe.Explanation(sigma=torch.full((len(HOSTILE),), 0.2), words=HOSTILE, scale=0.5, rate=0.1, width=4, layer=layer)
    a.save(root / "a.safetensors")
    b.save(root / "b.safetensors")
    series = probe.TimeSeries.like([a])
    series.append(10, [a])
    series.save(root / "t.safetensors")
    return root


@pytest.mark.parametrize("command", ["show", "show --by-word", "compare", "show timeseries"])
def test_words_and_names_from_files_reach_the_terminal_escaped(hostile, command):
    argv = {"show": ["show", str(hostile / "a.safetensors")], "show --by-word": ["show", str(hostile / "a.safetensors")],
            "compare": ["compare", str(hostile / "a.safetensors"), str(hostile / "b.safetensors")], "show timeseries": ["show", str(hostile / "t.safetensors")]}[command]

    def check():
        code, out, err = run(argv)
        assert code == 0, err
        assert not any(c in out + err for c in RAW), repr(out)[:300]
        assert sum(line.startswith("total information loss") for line in out.splitlines()) <= 1, "a word forged a line"

    held(f"{command} of hostile words", check)


def test_words_reach_a_page_escaped(hostile):
    def check():
        page = probe.load(hostile / "a.safetensors").to_html()
        assert not any(c in page for c in RAW), "a control character reached the page"

    held("to_html of hostile words", check)


@pytest.mark.parametrize("label", ["$x$", r"$\foo$", "a$b", "\x1b[2J"])
def test_plot_labels_are_drawn_literally(tmp_path, label):
    def check():
        exp = probe.Explanation(sigma=torch.tensor([0.1, 0.2]), words=[label, "b"], scale=0.5, rate=0.1, width=4, layer=label)
        fig = exp.plot(tmp_path / "x.png")
        ax = fig.axes[0]  # the heatmap (the colour bar's own ticks are formulas: 10^-2)
        texts = [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.title]
        assert not any(t._preprocess_math(t.get_text())[1] for t in texts), "a label was drawn as a formula"
        assert not any("\x1b" in t.get_text() for t in texts)

    held(f"plot label {label!r}", check)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("kernel-bert"))


KERNEL_KEYS = {
    "attn_implementation": "someorg/kernel",
    "_attn_implementation": "someorg/kernel:fn",
    "text_config": {"attn_implementation": "paged|someorg/kernel@v1"},
    "experts_implementation": "someorg/moe",
    "quantization_config": {"quant_method": "fp8"},
}


@pytest.mark.parametrize("key", sorted(KERNEL_KEYS))
def test_no_hub_kernel_without_trust_remote_code(folder, tmp_path, key):
    import shutil

    copy = shutil.copytree(folder, tmp_path / "m")
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, key: KERNEL_KEYS[key]}))

    def check():
        with pytest.raises(probe.errors.UnsafeFileError, match="trust_remote_code"):
            probe.load_model(copy)

    held(f"config.json {key}", check)


@pytest.mark.parametrize("kwargs", [{"attn_implementation": "someorg/kernel"}, {"use_kernels": True}])
def test_no_hub_kernel_from_model_keywords_without_trust(folder, kwargs):
    def check():
        code, _, err = run(["layers", str(folder), "--model-kwargs", json.dumps(kwargs)])
        assert code == 2 and "trust" in err and len(err.strip().splitlines()) == 1, err

    held(f"--model-kwargs {kwargs}", check)


def test_trust_remote_code_in_model_kwargs_says_which_option(folder):
    def check():
        code, _, err = run(["layers", str(folder), "--model-kwargs", '{"trust_remote_code": true}'])
        assert code == 2 and "--trust-remote-code" in err and len(err.strip().splitlines()) == 1, err

    held("--model-kwargs trust_remote_code", check)


def test_show_reads_a_header_before_a_body(tmp_path):
    """A 64 MB safetensors file that is not a probe result is refused without reading its tensors."""
    path = tmp_path / "weights.safetensors"
    save_file({"w": torch.zeros(16, 2**20)}, str(path))

    def check():
        tracemalloc.start()
        try:
            code, _, err = run(["show", str(path)])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert code == 2 and "not a probe result" in err, err
        assert peak < 8 * 2**20, f"{peak / 2**20:.0f} MB read to refuse it"

    held("show a 64 MB non-probe safetensors", check)


def test_a_huge_line_is_refused_as_soon_as_it_is_read(folder, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("a fine film\n" + "word " * 2_200_000 + "\n")

    def check():
        tracemalloc.start()
        try:
            code, _, err = run(["explain", str(folder), "--layer", "encoder.layer.0", "--file", str(path), "--no-progress"])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert code == 2 and "line 2" in err and len(err.strip().splitlines()) == 1, err
        assert peak < 16 * 2**20, f"{peak / 2**20:.0f} MB for an 11 MB line"

    held("--file with an 11 MB line", check)


def test_truncation_at_the_models_length_is_announced(folder, tmp_path):
    from transformers import AutoTokenizer

    short = tmp_path / "short"
    import shutil

    shutil.copytree(folder, short)
    AutoTokenizer.from_pretrained(str(folder), model_max_length=12).save_pretrained(short)

    def check():
        code, out, err = run(["explain", str(short), "--layer", "encoder.layer.0", "--text", " ".join(["film"] * 30), "--samples", "2", "--max-steps", "1", "--no-progress"])
        assert code == 0, err
        assert "12 tokens" in err and "cut" in err, err

    held("a sentence longer than the model reads", check)


def test_a_damaged_time_series_is_a_file_format_error(hostile, tmp_path):
    tensors = load_file(str(hostile / "t.safetensors"))
    with safe_open(str(hostile / "t.safetensors"), "pt") as f:
        meta = f.metadata()
    for key, value in (("steps", "[1e999]"), ("layers", "[" * 100_000 + "]" * 100_000), ("epochs", '["x"]')):
        path = tmp_path / f"{key}.safetensors"
        save_file(tensors, str(path), metadata={**meta, key: value})

        def check():
            with pytest.raises(probe.errors.FileFormatError):
                probe.load(path)

        held(f"time series with damaged {key}", check)


def test_out_of_memory_mid_solve_is_reported_as_memory(tmp_path):
    model, tokenizer = probe.load_model(tiny_bert_folder(tmp_path / "m"))
    calls = []

    def exhaust(module, args, output):
        calls.append(1)
        if len(calls) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    handle = model.encoder.layer[1].register_forward_hook(exhaust)

    def check():
        with probe.attach(model, "encoder.layer.1") as p:
            with pytest.raises(probe.ProbeError, match="out of memory") as err:
                p.explain(tokenizer("a fine film", return_tensors="pt"), samples=2, max_steps=3)
        assert "rejected" not in str(err.value)

    try:
        held("out of memory mid-solve", check)
    finally:
        handle.remove()


def test_a_broken_pipe_is_no_path_problem(hostile):
    def check():
        process = subprocess.Popen([sys.executable, "-m", "probe", "show", str(hostile / "t.safetensors")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        process.stdout.close()
        err = process.stderr.read().decode()
        code = process.wait(timeout=120)
        assert "path" not in err and "Traceback" not in err and code != 2, (code, err)

    held("probe show | (closed)", check)


def test_tol_help_says_root_mean_square():
    def check():
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            main(["explain", "--help"])
        assert "root-mean-square" in " ".join(out.getvalue().split())

    held("--tol help", check)
