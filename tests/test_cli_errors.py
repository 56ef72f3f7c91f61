"""The command line fails fast and in one line: bad values are refused before the model loads (exit 2),
an internal error says it is a bug and how to report it (exit 1), and output the terminal cannot
encode is printed with replacements instead of failing."""

from __future__ import annotations

import io
import re
import sys

import pytest
import torch

import probe
from probe._cli import commands, parser
from probe._cli import main

from _tiny import tiny_bert_folder


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> str:
    return str(tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert")))


@pytest.fixture
def no_model_load(monkeypatch):
    """Fails the test if the command gets as far as loading the model."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the mistake was found")

    monkeypatch.setattr(commands, "load_model", refuse)


def one_line(capsys, code: int, status: int = 2) -> str:
    err = capsys.readouterr().err
    assert code == status and "Traceback" not in err and len(err.strip().splitlines()) == 1, (code, err)
    return err


EXPLAIN = ["explain", "MODEL", "--layer", "encoder.layer.0", "--text", "a fine film"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--samples=-1"], "samples must be a whole number >= 1, got -1"),
        (["--samples=0"], "samples must be a whole number >= 1"),
        (["--max-steps=-2"], "max_steps must be a whole number >= 0"),
        (["--tol=0"], "tol must be a finite number > 0"),
        (["--tol=nan"], "tol must be a finite number > 0"),
        (["--scale=-1"], "--scale must be a positive finite number"),
        (["--rate=inf"], "--rate must be a positive finite number"),
        (["--plot", "x.xyz"], "matplotlib cannot draw '.xyz' files; use one of .*\\.png"),
        (["--plot", "/no/such/folder/x.png"], "the folder '/no/such/folder' of --plot .* does not exist"),
        (["--out", "/no/such/folder/x.safetensors"], "the folder '/no/such/folder' of --out"),
        (["--device", "mps"], "device 'mps' is not supported by probe; use cpu, cuda or cuda:N"),
        (["--device", "gpu"], "unknown device 'gpu'"),
    ],
)
def test_bad_values_are_refused_before_the_model_loads(no_model_load, capsys, tmp_path, extra, message):
    err = one_line(capsys, main([*EXPLAIN, *extra]))
    assert re.search(message, err), err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["demo", "--samples", "0"], "samples must be a whole number >= 1"),
        (["demo", "--out", "/etc/passwd/out"], "is under the file"),
        (["show", "x.safetensors", "--plot", "x.xyz"], "cannot draw '.xyz'"),
        (["corpus", "MODEL", "--layer", "l", "--file", "f", "--out", "o", "--batch-size", "0"], "--batch-size must be at least 1"),
        (["corpus", "MODEL", "--layer", "l", "--file", "f", "--out", "o", "--top", "0"], "--top must be at least 1"),
    ],
)
def test_every_command_checks_its_options_first(no_model_load, capsys, argv, message):
    assert message in one_line(capsys, main(argv))


@pytest.mark.parametrize("rank, world", [("2", "2"), ("-1", "2"), ("0", "0"), ("x", "2")])
def test_an_impossible_rank_fails_at_once(no_model_load, monkeypatch, capsys, tmp_path, rank, world):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", world)
    err = one_line(capsys, main(["corpus", "MODEL", "--layer", "l", "--file", "f", "--out", str(tmp_path / "o")]))
    assert "RANK" in err and "WORLD_SIZE" in err and "torchrun" in err


def test_an_impossible_rank_never_reaches_the_process_group(monkeypatch, tmp_path):
    import torch.distributed as dist

    monkeypatch.setattr(dist, "init_process_group", lambda *a, **k: pytest.fail("would wait for ranks that never come"))
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(probe.ProbeError, match="RANK=3 and WORLD_SIZE=2 are impossible"):
        probe._running.distributed.run_corpus(torch.nn.Linear(2, 2), ["x"], ["a"], tmp_path / "o")


def test_missing_input_files_are_found_before_the_model_loads(no_model_load, capsys, tmp_path):
    err = one_line(capsys, main(["explain", "MODEL", "--layer", "l", "--file", str(tmp_path / "none.txt")]))
    assert "no file" in err
    err = one_line(capsys, main(["explain", "MODEL", "--layer", "l", "--text", "a", "--corpus", str(tmp_path / "none.txt")]))
    assert "no file" in err


def test_an_internal_error_says_it_is_a_bug_and_how_to_report_it(monkeypatch, capsys, tiny_bert):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(commands, "module_tree", broken)
    err = one_line(capsys, main(["layers", tiny_bert]), status=1)
    assert "internal error (a bug in probe" in err and "ZeroDivisionError" in err and "--debug" in err
    with pytest.raises(ZeroDivisionError):
        main(["layers", tiny_bert, "--debug"])


def test_output_the_terminal_cannot_encode_is_replaced(monkeypatch, tmp_path):
    probe.Explanation(sigma=torch.tensor([0.1, 0.2]), words=["😀", "ᚠᚢ"], scale=0.5, rate=0.1, width=4).save(tmp_path / "e.safetensors")
    stdout, stderr = io.TextIOWrapper(io.BytesIO(), encoding="ascii"), io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)
    assert main(["show", str(tmp_path / "e.safetensors")]) == 0
    assert main(["show", str(tmp_path / "😀.safetensors")]) == 2
    stdout.seek(0)
    stderr.seek(0)
    table, err = stdout.buffer.read().decode("ascii"), stderr.buffer.read().decode("ascii")
    assert "?" in table and "0.1" in table
    assert err.count("\n") == 1 and "no file" in err and "?.safetensors" in err


def test_trust_remote_code_is_an_option_of_every_model_command():
    for command in ("layers", "explain", "corpus"):
        assert "--trust-remote-code" in parser._parser()._subparsers._group_actions[0].choices[command].format_help()
