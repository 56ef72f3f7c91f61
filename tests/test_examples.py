"""The examples a new user copies run from a clean folder and write what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.mark.parametrize(
    "script, written, printed",
    [
        ("explain_bert.py", ["bert_layers.png", "bert_layers.safetensors", "bert_layers.html"], ["layer encoder.layer.5", "memorable"]),
        ("explain_lstm.py", ["lstm.png", "lstm.safetensors"], ["layer lstm", "accuracy"]),
        ("explain_cnn.py", ["cnn.png", "cnn.safetensors"], ["layer conv", "accuracy"]),
    ],
    ids=["bert", "lstm", "cnn"],
)
def test_example_runs(tmp_path, script, written, printed):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(EXAMPLES / script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert all((tmp_path / "out" / name).stat().st_size > 0 for name in written)
    assert all(text in done.stdout for text in printed)
