"""probe.corpus and CorpusResult: the corpus measures, per-sentence seeds, shards, and a 2-rank gloo run."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import warnings

import pytest
import torch

import probe
from probe._cli import main
from probe._utils.files import read_tensors
from probe.errors import InputError, LayerError

from _tiny import tiny_bert_folder

LAYERS = ["encoder.layer.0", "encoder.layer.1"]
SENTENCES = ["the film is good.", "a bad movie.", "the film is bad.", "good acting, bad film.", "the end"]
QUICK = dict(samples=2, max_steps=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"))
    model, tokenizer = probe.load_model(folder)
    return folder, model, tokenizer


@pytest.fixture(scope="module")
def result(tiny) -> probe.CorpusResult:
    """On one thread, as the tests that compare with it run (a module fixture is made before the
    autouse one-thread fixture, and two threads may round a matrix product differently)."""
    _, model, tokenizer = tiny
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return probe.corpus(model, LAYERS, SENTENCES, tokenizer=tokenizer, batch_size=2, **QUICK)
    finally:
        torch.set_num_threads(threads)


def test_corpus_measures_are_means_of_the_sentence_results(result, tiny):
    tokenizer = tiny[2]
    assert len(result) == 5 and result.layers == LAYERS and result.index.tolist() == [0, 1, 2, 3, 4]
    assert result.words[2] == tokenizer.convert_ids_to_tokens(tokenizer(SENTENCES[2])["input_ids"])
    sweeps = [result.sentence(j) for j in range(len(result))]
    for o, name in enumerate(LAYERS):
        totals = torch.tensor([s[name].total_information_loss for s in sweeps], dtype=torch.float64)
        assert torch.allclose(result.sentence_information_loss[o], totals)
        assert float(result.mean_information_loss[o]) == pytest.approx(float(totals.mean()))
        the = [float(s[name].information_loss[t]) for s in sweeps for t, w in enumerate(s.words) if w == "the"]
        v = result.vocabulary.index("the")
        assert int(result.word_counts[v]) == len(the) == 3
        assert float(result.word_information_loss[o, v]) == pytest.approx(sum(the) / 3, rel=1e-6)
        ranking = result.word_ranking(name, min_count=2)
        assert [h for _, h, _ in ranking] == sorted(h for _, h, _ in ranking)
        assert {w for w, _, c in ranking} == {w for w, c in zip(result.vocabulary, result.word_counts.tolist()) if c >= 2}
    assert sweeps[3]["encoder.layer.1"].settings["seed"] == "0"


def test_a_sentence_in_the_corpus_is_the_sentence_alone(tiny):
    _, model, tokenizer = tiny
    with probe.attach(model, LAYERS, tokenizer=tokenizer) as p:
        reg = p.regularization(tokenizer(s, return_tensors="pt") for s in SENTENCES)
        alone = p.explain(tokenizer(SENTENCES[2], return_tensors="pt"), regularization=reg, seed=10, **QUICK)
    found = probe.corpus(model, LAYERS, SENTENCES[:3], tokenizer=tokenizer, regularization=reg, seed=10, batch_size=1, **QUICK)
    assert torch.equal(found.sigma[2], alone.sigma)


def test_shards_merge_into_the_file_one_process_writes(result, tiny, tmp_path):
    _, model, tokenizer = tiny
    shards = [probe.corpus(model, LAYERS, SENTENCES, tokenizer=tokenizer, batch_size=2, shard=(r, 2), **QUICK) for r in (1, 0)]
    assert sorted(shards[0].index.tolist() + shards[1].index.tolist()) == [0, 1, 2, 3, 4]
    assert [len(s) for s in shards] == [2, 3]  # rank 1 solves batch 1, rank 0 batches 0 and 2
    merged = probe.CorpusResult.merge(shards)
    result.save(tmp_path / "one.safetensors")
    merged.save(tmp_path / "merged.safetensors")
    (one, one_meta), (two, two_meta) = read_tensors(tmp_path / "one.safetensors"), read_tensors(tmp_path / "merged.safetensors")
    assert one_meta == two_meta and one.keys() == two.keys()  # the bytes differ only in safetensors' header order
    assert all(torch.equal(one[k], two[k]) for k in one)


def test_save_load_table_and_plot(result, tmp_path):
    result.save(tmp_path / "c.safetensors")
    back = probe.load(tmp_path / "c.safetensors")
    assert isinstance(back, probe.CorpusResult)
    assert back.words == result.words and back.layers == result.layers and back.settings == result.settings
    assert all(torch.equal(a, b) for a, b in zip(back.sigma, result.sigma))
    assert torch.equal(back.convergence, result.convergence) and torch.equal(back.steps, result.steps) and back.converged == result.converged
    table = back.table(top=2, min_count=2)
    assert table == result.table(top=2, min_count=2)
    lines = table.splitlines()
    assert lines[0].startswith("corpus: 5 sentences, ")
    row = lines[2].split()
    assert row[0] == "encoder.layer.0" and f"{float(result.mean_information_loss[0]):.1f}" in row
    assert float(row[1]) == pytest.approx(float(result.mean_information_kept[0]), abs=1)
    kept = result.word_ranking("encoder.layer.1", min_count=2)[0][0]
    assert f"encoder.layer.1 keeps most: {kept} (" in table
    back.plot(tmp_path / "c.png")
    assert (tmp_path / "c.png").stat().st_size > 0


def test_information_kept_is_the_ceilings_loss_less_the_loss(result):
    """The corpus measure on the scale the single-sentence views show: never negative, and for each
    sentence the loss every word would have at the ceiling less its information loss."""
    K, scale = result.width, result.scale
    ceiling = 0.5 * K * math.log(2 * math.pi * math.e) + K * math.log(scale)
    counts = torch.tensor([len(w) for w in result.words], dtype=torch.float64)
    expected = (counts * ceiling - result.sentence_information_loss).mean(1)
    assert torch.allclose(result.mean_information_kept, expected, rtol=1e-4)
    assert all(bool((k >= 0).all()) for k in result.information_kept)
    assert torch.allclose(result.word_information_kept, ceiling - result.word_information_loss, rtol=1e-4)


def test_mistakes(result, tiny):
    _, model, tokenizer = tiny
    with pytest.raises(InputError, match="overlap"):
        probe.CorpusResult.merge([result, result])
    with pytest.raises(InputError, match="at most 3 ranks"):
        probe.corpus(model, LAYERS, SENTENCES, tokenizer=tokenizer, batch_size=2, shard=(0, 4))
    with pytest.raises(InputError, match="sentence 1 is empty"):
        probe.corpus(model, LAYERS, ["a", " "], tokenizer=tokenizer)
    with pytest.raises(InputError, match="list of sentences"):
        probe.corpus(model, LAYERS, "one string", tokenizer=tokenizer)
    with pytest.raises(LayerError, match="did you mean 'encoder.layer.1'"):
        result.word_ranking("encoder.layer.11")
    for bad in ({"rate": None}, {"rate": -1.0}, {"scale": 0.0}):  # refused before any sentence runs, not skipped sentence by sentence
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(InputError, match="must be a positive finite number"):
                probe.corpus(model, LAYERS, SENTENCES, tokenizer=tokenizer, **bad)
    with warnings.catch_warnings():  # the call's mistake, raised once: no sentence is skipped for it
        warnings.simplefilter("error")
        with pytest.raises(probe.ProbeError, match="regularization"):
            probe.corpus(model, LAYERS[1], SENTENCES, tokenizer=tokenizer, regularization=torch.ones(3), batch_size=2)


def test_two_gloo_ranks_give_the_single_process_result(tiny, tmp_path, capsys):
    folder = str(tiny[0])
    sentences = tmp_path / "s.txt"
    sentences.write_text("\n".join(SENTENCES[:4]) + "\n")
    args = ["corpus", folder, "--layer", LAYERS[1], "--file", str(sentences), "--batch-size", "1", "--samples", "2", "--max-steps", "2", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    assert "corpus: 4 sentences" in capsys.readouterr().out
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "probe", *args, "--out", str(tmp_path / "two")]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)
    try:
        stdout, stderr = run.communicate(timeout=240)
    finally:
        if run.poll() is None:  # timed out: end torchrun and its workers, which share its session
            os.killpg(run.pid, signal.SIGKILL)
            run.communicate()
    assert run.returncode == 0, stderr[-3000:]
    assert stdout.count("corpus: 4 sentences") == 1  # only rank 0 reports
    one, two = probe.load(tmp_path / "one" / "corpus.safetensors"), probe.load(tmp_path / "two" / "corpus.safetensors")
    shards = [probe.load(tmp_path / "two" / f"shard-{r}.safetensors") for r in (0, 1)]
    assert sorted(shards[0].index.tolist() + shards[1].index.tolist()) == [0, 1, 2, 3] and len(shards[0]) == len(shards[1]) == 2
    assert two.words == one.words and two.index.tolist() == [0, 1, 2, 3]
    for a, b in zip(one.sigma, two.sigma):
        assert torch.allclose(a, b, rtol=0, atol=1e-5)


def test_batches_hold_sentences_of_similar_length_and_each_rank_takes_every_worldth():
    """Padding costs as much as real tokens, so a batch gathers sentences of similar length."""
    from probe._running.corpus_run import _batches

    lengths = [7, 6, 7, 8, 4]
    assert _batches(lengths, 2) == [[4, 1], [0, 2], [3]]
    assert _batches(lengths, 2, (0, 2)) == [[4, 1], [3]] and _batches(lengths, 2, (1, 2)) == [[0, 2]]


def test_results_come_back_in_the_order_of_the_sentences(result):
    assert result.index.tolist() == list(range(len(SENTENCES)))
    assert [words[1] for words in result.words] == ["the", "a", "the", "good", "the"]
