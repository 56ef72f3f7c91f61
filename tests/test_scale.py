"""Batches, corpora and long inputs at the speed of the hardware, with the same answers.

A padded batch is solved in buckets of similar length, each trimmed to its own longest sentence, so
every entry point gives a sentence the result it gets alone (the same noise, a shorter pass); the
corpus default solves each sentence less precisely, within 2% on the corpus figures; a long input
stays within the solver's memory budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import probe
from _tiny import tiny_bert
from probe._running.buckets import PADDING_ALLOWED, buckets
from probe._running.corpus_run import CORPUS_TOL

LAYERS = ["encoder.layer.0", "encoder.layer.1"]
MIXED = ["dull", "the cast is superb and the story moves along nicely, though it drags near the end", "a fine film", "the film is a quiet delight to watch"]
SETTINGS = dict(scale=1.0, samples=4, max_steps=6)


@pytest.fixture(scope="module")
def bert():
    return tiny_bert(128)


@pytest.fixture(scope="module")
def alone(bert, tokenizer):
    with probe.attach(bert, LAYERS) as p:
        return [p.explain(tokenizer(text, return_tensors="pt"), seed=3, **SETTINGS) for text in MIXED]


def assert_same(found, expected) -> None:
    assert found.words == expected.words
    for name in LAYERS:
        assert torch.allclose(found[name].sigma, expected[name].sigma, rtol=1e-4, atol=0), name


def lengths_run(model) -> tuple[list[int], object]:
    """The padded lengths of the model's forward passes, recorded by a hook (and its handle)."""
    seen: list[int] = []
    handle = model.embeddings.register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    return seen, handle


def test_buckets_keep_padding_within_the_allowance_and_every_sentence_once():
    lengths = [5, 30, 6, 29, 5, 12, 13, 60, 7]
    groups = buckets(lengths)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        assert max(lengths[i] for i in g) * len(g) <= PADDING_ALLOWED * sum(lengths[i] for i in g)
    assert buckets([8] * 5) == [[0, 1, 2, 3, 4]]  # equal lengths stay one batch


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_explain_batch_on_mixed_lengths_equals_one_at_a_time(bert, tokenizer, alone, padding_side):
    tokenizer.padding_side = padding_side
    try:
        inputs = tokenizer(MIXED, return_tensors="pt", padding=True)
    finally:
        tokenizer.padding_side = "right"
    seen, handle = lengths_run(bert)
    try:
        with probe.attach(bert, LAYERS) as p:
            batch = p.explain_batch(inputs, seed=3, **SETTINGS)
    finally:
        handle.remove()
    for found, expected in zip(batch, alone):
        assert_same(found, expected)
    real = [len(tokenizer(text)["input_ids"]) for text in MIXED]
    groups = buckets(real)
    assert len(groups) > 1 and set(seen[1:]) == {max(real[i] for i in g) for g in groups}  # each bucket at its own length


def test_snapshot_batch_on_mixed_lengths_equals_one_at_a_time(bert, tokenizer, alone):
    batch = probe.snapshot_batch(bert, tokenizer(MIXED, return_tensors="pt", padding=True), LAYERS, seed=3, **SETTINGS)
    for found, expected in zip(batch, alone):
        assert_same(found, expected)


def test_corpus_on_mixed_lengths_equals_one_at_a_time(bert, tokenizer, alone):
    with probe.attach(bert, LAYERS) as p:
        reg = p.regularization(tokenizer(text, return_tensors="pt") for text in MIXED)
        single = [p.explain(tokenizer(text, return_tensors="pt"), regularization=reg, seed=3, **SETTINGS) for text in MIXED]
    result = probe.corpus(bert, LAYERS, MIXED, tokenizer=tokenizer, regularization=reg, seed=3, batch_size=4, tol=probe.SolverSettings().tol, **SETTINGS)
    for j, expected in enumerate(single):
        assert torch.allclose(result.sigma[j], expected.sigma, rtol=1e-4, atol=0)


def test_a_single_padded_sentence_is_trimmed_to_its_own_length(bert, tokenizer, alone):
    seen, handle = lengths_run(bert)
    try:
        with probe.attach(bert, LAYERS) as p:
            padded = p.explain(tokenizer(MIXED[2], return_tensors="pt", padding="max_length", max_length=40), seed=3, **SETTINGS)
    finally:
        handle.remove()
    assert_same(padded, alone[2])
    assert set(seen[1:]) == {len(alone[2].words)}  # after the first clean pass, only its own length


def test_the_corpus_default_gives_the_corpus_figures_of_precise_sentences(bert, tokenizer, corpus):
    sentences = corpus[:16]
    with probe.attach(bert, LAYERS) as p:
        reg = p.regularization(tokenizer(text, return_tensors="pt") for text in sentences)
    quick = probe.corpus(bert, LAYERS, sentences, tokenizer=tokenizer, regularization=reg, scale=1.0)
    precise = probe.corpus(bert, LAYERS, sentences, tokenizer=tokenizer, regularization=reg, scale=1.0, tol=0.01)
    assert quick.settings["solver.tol"] == str(CORPUS_TOL) and "corpus default" in quick.settings["precision"]
    assert precise.settings["solver.tol"] == "0.01" and precise.settings["precision"] == "per-sentence tol given"
    assert int(quick.steps.sum()) < int(precise.steps.sum())  # cheaper ...
    relative = (quick.mean_information_loss - precise.mean_information_loss).abs() / precise.mean_information_loss.abs()
    assert float(relative.max()) < 0.02  # ... within 2% on the corpus measure
    per_sentence = max(float(((q - s).abs() / s).max()) for q, s in zip(quick.sigma, precise.sigma))
    assert per_sentence > 0.005  # the sentences themselves do differ: the average is what is precise


MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from transformers import BertConfig, BertModel
    import probe

    def resident(field):
        line = next(l for l in Path("/proc/self/status").read_text().splitlines() if l.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, max_position_embeddings=512)
    model = BertModel(config).eval()
    inputs = {"input_ids": torch.randint(5, 1000, (1, 512)), "attention_mask": torch.ones(1, 512, dtype=torch.long)}
    budget = int(sys.argv[1])
    with probe.attach(model, "encoder.layer.1") as p:
        p.explain(inputs, scale=1.0, samples=4, max_steps=1, min_steps=1, memory=budget)  # warm-up: allocator, thread pools
        Path("/proc/self/clear_refs").write_text("5")
        before = resident("VmRSS")
        p.explain(inputs, scale=1.0, samples=8, max_steps=2, min_steps=1, memory=budget)
    print(json.dumps({"growth": resident("VmHWM") - before}))
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux's /proc peak-memory reset")
def test_a_long_input_stays_within_the_memory_budget():
    budget = 96 * 2**20
    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(budget)], capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    growth = json.loads(done.stdout.strip().splitlines()[-1])["growth"]
    assert growth <= 1.25 * budget, f"peak growth {growth / 2**20:.0f} MiB over a {budget / 2**20:.0f} MiB budget"
    assert growth > 0.2 * budget  # the budget is used, not a tiny pass that proves nothing


def test_a_training_record_defaults_to_the_trend_precision_and_a_given_tol_wins(tmp_path):
    from probe.callbacks import SnapshotCallback
    from probe.callbacks._recorder import RECORD_TOL

    default = SnapshotCallback("a fine film", "encoder.layer.0", tmp_path / "a.safetensors", every_n_steps=10)
    given = SnapshotCallback("a fine film", "encoder.layer.0", tmp_path / "b.safetensors", every_n_steps=10, tol=0.01, samples=8)
    assert default.solver == {"tol": RECORD_TOL} and RECORD_TOL > probe.SolverSettings().tol
    assert given.solver == {"tol": 0.01, "samples": 8}
