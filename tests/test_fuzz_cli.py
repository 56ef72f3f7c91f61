"""Property-based: each subcommand with one wrong option value, run in-process; every attempt ends in
exit 2 with one line on stderr (see tests/_fuzz.py for the tally)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from probe._cli import main
from _fuzz import FUZZ, one_line_exit_2
from _tiny import tiny_bert_folder


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("fuzz-cli")
    (root / "sentences.txt").write_text("a fine film\na dull one\n")
    (root / "empty.txt").write_text("\n\n")
    (root / "binary.txt").write_bytes(b"\xff\xfe\x00\x81")
    (root / "garbage.pt").write_bytes(b"PK\x03\x04garbage")
    (root / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    (root / "a-file").write_text("x")
    torch.save(torch.nn.Linear(2, 2), root / "whole.pt")
    (root / "no-config").mkdir()
    return {
        "bert": str(tiny_bert_folder(root / "bert")),
        **{name: str(root / name) for name in ("sentences.txt", "empty.txt", "binary.txt", "garbage.pt", "garbage.safetensors", "a-file", "whole.pt", "no-config")},
        "missing": str(root / "missing.txt"),
        "under-file": str(root / "a-file" / "x.png"),
        "root": str(root),
    }


bad_model = st.sampled_from(["missing", "a-file", "garbage.pt", "garbage.safetensors", "whole.pt", "no-config", "sentences.txt"])
bad_int = st.one_of(st.integers(max_value=-1).map(str), st.sampled_from(["x", "1.5", "", "nan", "1e3"]))
bad_count = st.one_of(st.integers(max_value=0).map(str), st.sampled_from(["x", "1.5", ""]))
bad_real = st.one_of(st.floats(max_value=0.0).map(repr), st.sampled_from(["nan", "inf", "-inf", "x", "", "0"]))
bad_plot = st.one_of(st.sampled_from(["x.xyz", "x.exe", "x.png/", "under-file"]), st.text(alphabet="abc", min_size=1, max_size=3).map(lambda s: f"x.{s}q"))
bad_device = st.sampled_from(["mps", "gpu", "cuda:99", "xla", "", "cpu:0:1", "meta", "cuda"])
bad_json = st.sampled_from(["{", "[]", "5", '"x"', '{"bogus": 1}', '{"vocab": "x"}'])
bad_sentences = st.sampled_from(["missing", "empty.txt", "binary.txt", "root"])


def real(files, value: str) -> str:
    """A key of ``files`` stands for that file's path; anything else is a literal value."""
    return files.get(value, value)


@FUZZ
@given(
    st.one_of(
        bad_model.map(lambda v: ["MODEL", v]),
        st.sampled_from(["torch.nn:Nope", "nope:X", "x", ":", "math:pi"]).map(lambda v: ["--model-class", v]),
        bad_json.map(lambda v: ["--model-kwargs", v]),
        bad_sentences.map(lambda v: ["--tokenizer", v]),
    )
)
def test_layers(files, option):
    name, value = option
    argv = ["layers", real(files, value) if name == "MODEL" else files["bert"], *([] if name == "MODEL" else [name, real(files, value)])]
    one_line_exit_2(f"layers {name}", main, argv)


explain_options = st.one_of(
    bad_model.map(lambda v: ("MODEL", v)),
    st.sampled_from(["encoder.layr.0", "nope.0", "encoder.layer.9", "encoder.layer.0.x"]).map(lambda v: ("--layer", v)),
    bad_count.map(lambda v: ("--samples", v)),
    bad_int.map(lambda v: ("--max-steps", v)),
    bad_real.map(lambda v: ("--tol", v)),
    bad_real.map(lambda v: ("--scale", v)),
    bad_real.map(lambda v: ("--rate", v)),
    st.sampled_from(["x", "1.5", ""]).map(lambda v: ("--seed", v)),
    bad_plot.map(lambda v: ("--plot", v)),
    st.sampled_from(["root", "under-file", "/no/such/folder/x.safetensors"]).map(lambda v: ("--out", v)),
    bad_device.map(lambda v: ("--device", v)),
    bad_sentences.map(lambda v: ("--corpus", v)),
    bad_sentences.map(lambda v: ("--file", v)),
)


@FUZZ
@given(explain_options)
def test_explain(files, option):
    name, value = option
    model = real(files, value) if name == "MODEL" else files["bert"]
    argv = ["explain", model, "--layer", "encoder.layer.0", "--samples", "2", "--max-steps", "1", "--no-progress"]
    if name == "--file":
        argv += ["--file", real(files, value)]
    else:
        argv += ["--text", "a fine film"]
        if name == "--layer":
            argv[3] = value
        elif name != "MODEL":
            argv += [name, real(files, value)]
    one_line_exit_2(f"explain {name}", main, argv)


@FUZZ
@given(st.one_of(st.sampled_from(["missing", "garbage.safetensors", "garbage.pt", "root", "sentences.txt", "whole.pt"]).map(lambda v: ("FILE", v)), bad_plot.map(lambda v: ("--plot", v))))
def test_show(files, saved_result, option):
    name, value = option
    argv = ["show", real(files, value)] if name == "FILE" else ["show", saved_result, "--plot", real(files, value)]
    one_line_exit_2(f"show {name}", main, argv)


@pytest.fixture(scope="module")
def saved_result(files) -> str:
    import probe

    path = Path(files["root"]) / "e.safetensors"
    probe.Explanation(sigma=torch.tensor([0.1, 0.2]), words=["a", "b"], scale=0.5, rate=0.1, width=4).save(path)
    return str(path)


@FUZZ
@given(
    st.one_of(
        bad_count.map(lambda v: ("--samples", v)),
        bad_int.map(lambda v: ("--max-steps", v)),
        bad_real.filter(lambda v: v not in ("inf",)).map(lambda v: ("--tol", v)),
        st.sampled_from(["under-file", "a-file"]).map(lambda v: ("--out", v)),
        st.sampled_from(["--layer", "--text", "--bogus"]).map(lambda v: (v, "x")),
    )
)
def test_demo_with_bad_flags(files, option):
    name, value = option
    one_line_exit_2(f"demo {name}", main, ["demo", name, real(files, value), "--no-progress"])


@FUZZ
@given(
    st.one_of(
        bad_model.map(lambda v: ("MODEL", v)),
        bad_sentences.map(lambda v: ("--file", v)),
        bad_sentences.map(lambda v: ("--corpus", v)),
        st.sampled_from(["a-file", "under-file"]).map(lambda v: ("--out", v)),
        bad_count.map(lambda v: ("--batch-size", v)),
        bad_count.map(lambda v: ("--top", v)),
        bad_count.map(lambda v: ("--min-count", v)),
        bad_count.map(lambda v: ("--samples", v)),
        bad_device.map(lambda v: ("--device", v)),
        st.sampled_from([("2", "2"), ("-1", "2"), ("0", "0"), ("x", "1"), ("5", "-3")]).map(lambda v: ("RANK", v)),
    )
)
def test_corpus(files, option):
    name, value = option
    argv = ["corpus", files["bert"], "--layer", "encoder.layer.0", "--file", files["sentences.txt"], "--out", str(Path(files["root"]) / "out"), "--samples", "2", "--max-steps", "1", "--no-progress"]
    env = {}
    if name == "MODEL":
        argv[1] = real(files, value)
    elif name == "RANK":
        env = {"RANK": value[0], "WORLD_SIZE": value[1]}
    elif name in ("--file", "--out"):
        argv[argv.index(name) + 1] = real(files, value)
    else:
        argv += [name, real(files, value)]
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        one_line_exit_2(f"corpus {name}", main, argv)
    finally:
        for k, v in before.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def test_show_prints_a_time_series(tmp_path, capsys):
    import probe

    exp = probe.Explanation(sigma=torch.tensor([0.1, 0.2]), words=["a", "b"], scale=0.5, rate=0.1, width=4, layer="l")
    series = probe.TimeSeries.like([exp])
    series.append(10, [exp])
    series.save(tmp_path / "t.safetensors")
    assert main(["show", str(tmp_path / "t.safetensors")]) == 0
    assert "10" in capsys.readouterr().out
