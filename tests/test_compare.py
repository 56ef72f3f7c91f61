"""compare(a, b): per word, the change in information loss between two runs of the same sentences,
against the closed form K log(sigma_b / sigma_a); mismatched runs refused; table and page."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import pytest
import torch

import probe
from probe._views.compare import compare
from probe.errors import InputError

WORDS = ["[CLS]", "rare", "bird", "[SEP]"]
K = 16


def explanation(sigma, layer="encoder.layer.2", words=WORDS, model="base") -> probe.Explanation:
    return probe.Explanation(sigma=torch.tensor(sigma), words=list(words), scale=0.5, rate=0.1, width=K, layer=layer, settings={"model": model})


def sweep(scales, names=("l0", "l1"), model="base") -> probe.Sweep:
    return probe.Sweep({n: explanation([0.4 * f, 0.1 * f, 0.2 * f, 0.45 * f], n, model=model) for n, f in zip(names, scales)})


def corpus(factor: float, words=(("a", "film"), ("a", "charm"))) -> probe.CorpusResult:
    sigma = [torch.tensor([[0.1, 0.4], [0.2, 0.3]][: 2]) * factor, torch.tensor([[0.3, 0.2], [0.1, 0.4]]) * factor]
    return probe.CorpusResult(layers=["l0", "l1"], words=[list(w) for w in words], sigma=sigma, index=[0, 1], scale=0.5, rate=0.1, width=K,
                              convergence=torch.ones(2, 2, dtype=torch.bool), steps=torch.ones(2, 2))


def test_two_explanations_closed_form():
    a, b = explanation([0.4, 0.1, 0.2, 0.45]), explanation([0.4, 0.05, 0.4, 0.45], model="finetuned")
    c = compare(a, b, labels=("base", "finetuned"))
    assert c.kind == "explanation" and c.rows == ["encoder.layer.2"] and c.words == WORDS
    expected = [0.0, K * math.log(0.05 / 0.1), K * math.log(0.4 / 0.2), 0.0]
    assert c.change[0].tolist() == pytest.approx(expected, abs=1e-3)
    assert torch.allclose(c.loss_a[0], a.information_loss) and torch.allclose(c.loss_b[0], b.information_loss)


def test_two_layers_of_one_sentence():
    c = compare(explanation([0.4, 0.1, 0.2, 0.45], "l2"), explanation([0.4, 0.2, 0.2, 0.45], "l5"))
    assert c.rows == ["l2 → l5"]
    assert c.change[0, 1].item() == pytest.approx(K * math.log(2), rel=1e-4)


def test_sweeps_with_the_same_layers_or_as_many():
    c = compare(sweep([1.0, 1.0]), sweep([0.5, 1.0]))
    assert c.rows == ["l0", "l1"]
    assert c.change[0].tolist() == pytest.approx([K * math.log(0.5)] * 4, rel=1e-4)
    assert c.change[1].abs().max().item() == pytest.approx(0.0, abs=1e-4)
    other = compare(sweep([1.0, 1.0]), sweep([1.0, 0.5], names=("l4", "l5")))
    assert other.rows == ["l0 → l4", "l1 → l5"]
    with pytest.raises(InputError, match="a explains 2 layers .* but b 1"):
        compare(sweep([1.0, 1.0]), sweep([1.0], names=("l0",)))


def test_corpus_results_per_word_type():
    a, b = corpus(1.0), corpus(0.5)
    c = compare(a, b)
    assert c.words == a.vocabulary == ["a", "film", "charm"] and c.counts.tolist() == [2, 1, 1]
    assert torch.allclose(c.change, (b.word_information_loss - a.word_information_loss).double())
    assert c.change.flatten().tolist() == pytest.approx([K * math.log(0.5)] * 6, rel=1e-4)


def test_mismatched_runs_are_refused():
    a = explanation([0.4, 0.1, 0.2, 0.45])
    with pytest.raises(InputError, match="word 2 is 'bird' in a but 'birds' in b"):
        compare(a, explanation([0.4, 0.1, 0.2, 0.45], words=["[CLS]", "rare", "birds", "[SEP]"]))
    with pytest.raises(InputError, match="a has 4 words but b has 3"):
        compare(a, explanation([0.4, 0.1, 0.2], words=WORDS[:3]))
    with pytest.raises(InputError, match="sentence 1: word 1 is 'charm' in a but 'film' in b"):
        compare(corpus(1.0), corpus(1.0, words=(("a", "film"), ("a", "film"))))
    with pytest.raises(InputError, match="a is a Explanation but b a Sweep"):
        compare(a, sweep([1.0, 1.0]))
    series = probe.TimeSeries(layers=["l0"], words=[["a"]], scale=0.5, rate=0.1, width=4)
    with pytest.raises(InputError, match="does not take time series"):
        compare(series, series)


def test_table_lists_each_word_with_both_losses_and_the_change():
    a, b = explanation([0.4, 0.1, 0.2, 0.45]), explanation([0.4, 0.05, 0.4, 0.45])
    lines = compare(a, b, labels=("base", "tuned")).table().splitlines()
    assert lines[0] == "change in information loss, tuned - base, in nats (negative = tuned keeps the word more)"
    row = lines[4].split()  # title, layer, header, [CLS], rare
    assert row[0] == "rare" and float(row[3]) == pytest.approx(K * math.log(0.5), abs=0.06)
    corpus_lines = compare(corpus(1.0), corpus(0.5)).table(top=1).splitlines()
    assert len(corpus_lines) == 1 + 2 * (2 + 2)  # per layer: name, header, 1 most kept, 1 most lost


class Cells(HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.cells, self.current, self.all_text = [], None, []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "td" and "title" in attrs:
            self.current = {**attrs, "text": ""}
            self.cells.append(self.current)

    def handle_endtag(self, tag):
        if tag == "td":
            self.current = None

    def handle_data(self, data):
        self.all_text.append(data)
        if self.current is not None:
            self.current["text"] += data


def test_page_side_by_side_with_the_numbers_on_hover(tmp_path):
    a, b = explanation([0.4, 0.1, 0.2, 0.45]), explanation([0.4, 0.05, 0.4, 0.45], model="finetuned")
    c = compare(a, b, labels=("base", "finetuned"))
    out = tmp_path / "cmp.html"
    text = c.to_html(out)
    assert out.read_text(encoding="utf-8") == text and text.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:|//|@import|<script|<link", text)
    cells = Cells(text).cells
    assert [x["text"] for x in cells[:4]] == WORDS and [x["text"] for x in cells[4:8]] == WORDS
    changes = cells[8:12]
    assert float(changes[1]["text"]) == pytest.approx(K * math.log(0.5), rel=1e-2)
    assert f"change: {K * math.log(0.5):+.4g} nats" in changes[1]["title"]
    assert "information loss in base" in changes[1]["title"] and "information loss in finetuned" in changes[1]["title"]
    blue, red = (re.search(r"background:#([0-9a-f]{6})", changes[k]["style"]).group(1) for k in (1, 2))
    assert int(blue[4:], 16) > int(blue[:2], 16) and int(red[:2], 16) > int(red[4:], 16)  # kept more: blue; lost more: red
    assert "model finetuned" in "".join(Cells(text).all_text)
    assert c._repr_html_().startswith('<div class="probe">')


def test_other_objects_are_refused():
    with pytest.raises(InputError, match="cannot compare a dict"):
        compare({}, {})
