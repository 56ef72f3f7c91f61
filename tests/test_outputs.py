"""No output destroys an input or a non-file: every path probe writes, checked before any work,
written atomically (issue 18). Each case counts in the tally (``PROBE_FUZZ_COUNT``, tests/_fuzz.py)."""

from __future__ import annotations

import contextlib
import io
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import probe
from probe._cli import main

from _fuzz import held
from _tiny import tiny_bert_folder

SPELLINGS = ("as given", "relative", "symlink", "hardlink")
"""Ways to name the same file: the path, a relative path from elsewhere, a symlink, a hard link."""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("outputs")
    model = tiny_bert_folder(root / "hf")
    (root / "sentences.txt").write_text("a fine film\na dull film\n")
    (root / "corpus.txt").write_text("a film\nthe plot\n")
    for name, sigma in (("a.safetensors", [0.1, 0.2]), ("b.safetensors", [0.2, 0.1])):
        probe.Explanation(sigma=torch.tensor(sigma), words=["a", "b"], scale=0.5, rate=0.1, width=4).save(root / name)
    (root / "links").mkdir()
    return {"root": root, "model": model, "weights": model / "model.safetensors", "config": model / "config.json", "vocab": model / "tokenizer.json",
            "sentences": root / "sentences.txt", "corpus": root / "corpus.txt", "a": root / "a.safetensors", "b": root / "b.safetensors"}


def spelled(files, target: Path, how: str, n: int) -> str:
    if how == "relative":
        return os.path.relpath(target)
    link = files["root"] / "links" / f"{how}-{n}{target.suffix}"
    link.unlink(missing_ok=True)
    (os.symlink if how == "symlink" else os.link)(target, link)
    return str(link)


def run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def commands(f) -> list[tuple[str, list[str], str]]:
    """(what, argv without the output option, inputs it reads) for each command that writes."""
    model = ["--layer", "encoder.layer.0", "--samples", "2", "--max-steps", "1", "--no-progress"]
    return [
        ("explain --text", ["explain", str(f["model"]), "--text", "a fine film", *model], ["weights", "config", "vocab"]),
        ("explain --file", ["explain", str(f["model"]), "--file", str(f["sentences"]), "--corpus", str(f["corpus"]), *model], ["weights", "config", "sentences", "corpus"]),
        ("show", ["show", str(f["a"])], ["a"]),
        ("compare", ["compare", str(f["a"]), str(f["b"])], ["a", "b"]),
    ]


OPTIONS = {"explain --text": ("--out", "--plot", "--html"), "explain --file": ("--out", "--plot", "--html"), "show": ("--plot", "--html"), "compare": ("--html",)}


def test_every_output_option_refuses_every_input_file_however_named(files):
    """The property: for every command, output option, input file and way of naming it, the command
    exits 2 with one line before any work and the input keeps every byte."""
    n = 0
    for what, argv, read in commands(files):
        for option in OPTIONS[what]:
            for name in read:
                for how in SPELLINGS:
                    n += 1
                    target = files[name]
                    before = target.read_bytes()
                    path = spelled(files, target, how, n)

                    def check():
                        code, err = run([*argv, option, path])
                        assert code == 2 and len(err.strip().splitlines()) == 1, (code, err)
                        assert target.read_bytes() == before, "the input was overwritten"

                    held(f"{what} {option} <{name}, {how}>", check)
                    if target.read_bytes() != before:
                        target.write_bytes(before)


def test_corpus_out_may_not_be_the_model_folder(files):
    def check():
        listing = sorted(os.listdir(files["model"]))
        code, err = run(["corpus", str(files["model"]), "--layer", "encoder.layer.0", "--file", str(files["sentences"]), "--out", str(files["model"]), "--no-progress"])
        assert code == 2 and "input folder" in err, err
        assert sorted(os.listdir(files["model"])) == listing

    held("corpus --out MODEL", check)


def test_python_writes_refuse_files_of_another_kind(files):
    """save / to_html / plot replace only their own kind of file: never model weights, a result, text."""
    exp = probe.load(files["a"])
    for name, write in (("save", exp.save), ("to_html", exp.to_html), ("plot", exp.plot)):
        for target in ("weights", "sentences", "config") + (("a",) if name != "save" else ()):
            before = files[target].read_bytes()

            def check():
                with pytest.raises(probe.ProbeError):
                    write(files[target])
                assert files[target].read_bytes() == before

            held(f"{name} onto {target}", check)
            files[target].write_bytes(before)  # for the next case, when this one escaped


def test_two_outputs_of_one_command_may_not_be_one_file(files, tmp_path):
    def check():
        code, err = run(["show", str(files["a"]), "--plot", str(tmp_path / "x"), "--html", str(tmp_path / "x")])
        assert code == 2 and "same file" in err, err

    held("show --plot X --html X", check)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_writes_refuse_a_fifo_or_a_device(files, tmp_path, kind):
    if kind == "fifo":
        target = tmp_path / "pipe.safetensors"
        os.mkfifo(target)
    else:  # a private copy of /dev/null: code that replaced a device must never reach the real one
        target = tmp_path / "null"
        try:
            os.mknod(target, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("creating a device node needs CAP_MKNOD")
    exp = probe.load(files["a"])
    for name, write in (("save", exp.save), ("to_html", exp.to_html), ("plot", exp.plot)):
        def check():
            with pytest.raises(probe.ProbeError):
                write(target)
            assert not target.is_file() and target.exists(), f"{target} was replaced by a regular file"

        held(f"{name} onto a {kind}", check)
    for option in ("--plot", "--html"):
        def check_cli():
            code, err = run(["show", str(files["a"]), option, str(target)])
            assert code == 2 and "regular file" in err, err
            assert not target.is_file()

        held(f"show {option} onto a {kind}", check_cli)


FULL_DISK = """
import resource, signal, sys, torch, probe
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
exp = probe.Explanation(sigma=torch.tensor([0.1, 0.2, 0.3]), words=["rare", "bird", "x"], scale=0.5, rate=0.1, width=4)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
try:
    exp.plot(sys.argv[1])
except probe.ProbeError as err:
    print("refused:", err)
except OSError as err:
    print("raw:", type(err).__name__)
"""


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_a_plot_on_a_full_disk_leaves_the_old_file(tmp_path, suffix):
    """A file-size limit (RLIMIT_FSIZE) stands for a full disk: the write fails part-way."""
    old = tmp_path / f"old{suffix}"
    probe.Explanation(sigma=torch.tensor([0.1]), words=["a"], scale=0.5, rate=0.1, width=4).plot(old)
    before = old.read_bytes()
    new = tmp_path / f"new{suffix}"

    def check():
        for path in (old, new):
            out = subprocess.run([sys.executable, "-c", textwrap.dedent(FULL_DISK), str(path)], capture_output=True, text=True, timeout=120)
            assert out.stdout.startswith("refused:"), out.stdout + out.stderr[-300:]
        assert old.read_bytes() == before, "the old plot was damaged"
        assert not new.exists(), "a partial plot was left"
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".probe-")], "a temporary file was left"

    held(f"plot{suffix} on a full disk", check)


def test_pgf_is_refused_before_the_solve(files):
    def check():
        code, err = run(commands(files)[0][1] + ["--plot", str(files["root"] / "x.pgf")])
        assert code == 2 and "'.pgf'" in err, err

    held("explain --plot x.pgf", check)
