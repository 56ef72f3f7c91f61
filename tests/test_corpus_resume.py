"""Long runs survive interruption (issue 18): a corpus run writes finished batches as it goes, the same
command resumes it recomputing nothing finished, and a sentence that fails costs only itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import probe
from probe._running.attach import attach

from _fuzz import held
from _tiny import tiny_bert_folder

LAYER = "encoder.layer.1"
SENTENCES = [f"sentence number {i} is {'a fine film' if i % 2 else 'rather dull'} with {i % 5} words more" for i in range(16)]
SLOW = dict(samples=8, max_steps=25, tol=1e-9)
"""A budget that always runs every step: a batch takes long enough to be interrupted after it."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tiny_bert_folder(tmp_path_factory.mktemp("resume-bert"))
    model, tokenizer = probe.load_model(folder)
    return folder, model, tokenizer


def same(a: probe.CorpusResult, b: probe.CorpusResult) -> bool:
    return (a.index.tolist() == b.index.tolist() and a.words == b.words and all(torch.equal(x, y) for x, y in zip(a.sigma, b.sigma))
            and torch.equal(a.convergence, b.convergence) and torch.equal(a.steps, b.steps))


def test_a_python_run_interrupted_resumes_where_it_stopped(tiny, tmp_path, monkeypatch):
    _, model, tokenizer = tiny
    whole = probe.corpus(model, LAYER, SENTENCES, tokenizer=tokenizer, batch_size=4, samples=2, max_steps=2)
    calls: list[int] = []
    original = attach.explain_batch

    def interrupted(self, inputs, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, inputs, **kwargs)

    def check():
        monkeypatch.setattr(attach, "explain_batch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            probe.corpus(model, LAYER, SENTENCES, tokenizer=tokenizer, batch_size=4, samples=2, max_steps=2, checkpoint=tmp_path)
        calls.clear()
        monkeypatch.setattr(attach, "explain_batch", lambda self, inputs, **kw: (calls.append(1), original(self, inputs, **kw))[1])
        resumed = probe.corpus(model, LAYER, SENTENCES, tokenizer=tokenizer, batch_size=4, samples=2, max_steps=2, checkpoint=tmp_path)
        assert len(calls) == 2, f"{len(calls)} batches solved on resume; 2 of 4 were left"
        assert same(resumed, whole)

    held("probe.corpus(checkpoint=) resumes", check)


def test_another_run_into_the_same_folder_does_not_use_this_ones_work(tiny, tmp_path):
    _, model, tokenizer = tiny

    def check():
        probe.corpus(model, LAYER, SENTENCES[:4], tokenizer=tokenizer, batch_size=2, samples=2, max_steps=2, checkpoint=tmp_path)
        other = probe.corpus(model, LAYER, SENTENCES[:4], tokenizer=tokenizer, batch_size=2, samples=2, max_steps=2, seed=1, checkpoint=tmp_path)
        fresh = probe.corpus(model, LAYER, SENTENCES[:4], tokenizer=tokenizer, batch_size=2, samples=2, max_steps=2, seed=1)
        assert same(other, fresh)

    held("a different run reuses nothing", check)


def test_a_sentence_that_fails_is_reported_and_skipped(tiny):
    """The tiny model has 64 positions: a sentence of 100 tokens fails inside it, last of the corpus."""
    _, model, tokenizer = tiny
    good = SENTENCES[:5]
    bad = " ".join(["word"] * 100)

    def check():
        with pytest.warns(UserWarning, match="sentence 5"):
            result = probe.corpus(model, LAYER, [*good, bad], tokenizer=tokenizer, batch_size=2, samples=2, max_steps=2)
        alone = probe.corpus(model, LAYER, good, tokenizer=tokenizer, batch_size=2, samples=2, max_steps=2)
        assert same(result, alone)

    held("a failing sentence costs only itself", check)


def parts(out: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in out.glob("finished/*/part-*.safetensors")}


def test_a_killed_corpus_command_resumes_and_equals_an_uninterrupted_run(tiny, tmp_path):
    """``probe corpus`` in a subprocess, SIGKILLed once its first batch is written; the same command
    again solves only the rest and writes the result of one uninterrupted run (``probe.corpus``)."""
    folder, model, tokenizer = tiny
    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")

    def command(out: Path) -> list[str]:
        budget = ["--samples", str(SLOW["samples"]), "--max-steps", str(SLOW["max_steps"]), "--tol", str(SLOW["tol"])]
        return [sys.executable, "-m", "probe", "corpus", str(folder), "--layer", LAYER, "--file", str(tmp_path / "sentences.txt"), "--out", str(out), "--batch-size", "2", "--no-progress", *budget]

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}

    def check():
        out = tmp_path / "killed"
        process = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 240
        while not parts(out) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        finished = parts(out)
        assert finished, "no finished batch was written before the kill"
        assert not (out / "corpus.safetensors").exists(), "the run finished before the kill: slow it down"
        again = subprocess.run(command(out), env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr[-500:]
        after = parts(out)
        assert all(after[p] == t for p, t in finished.items()), "a finished batch was solved again"
        assert len(after) == len(SENTENCES) // 2
        whole = probe.corpus(model, LAYER, SENTENCES, tokenizer=tokenizer, batch_size=2, **SLOW)
        assert same(probe.load(out / "corpus.safetensors"), whole)

    held("probe corpus killed and resumed", check)
