"""HTML views of every result kind, parsed with html.parser: every word there, the numbers on hover,
nothing fetched from the network, text escaped, kept words darker, and what was explained."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import torch

import probe
from probe._views import html as _html
from probe._views.html_parts import kept_colors
from probe.errors import InputError, ProbeFileNotFoundError

SETTINGS = {"model": "tiny-bert", "solver.samples": "8", "solver.max_steps": "40", "seed": "0", "adapter": "bert"}
WORDS = ["[CLS]", "rare", "<b>&bird", "memo", "##rable", "[SEP]"]
SIGMA = [0.5, 0.0006, 0.3, 0.1, 0.45, 0.49]


class Parsed(HTMLParser):
    """Elements with their attributes and the text inside them, in document order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.elements: list[dict] = []
        self.open: list[dict] = []
        self.texts: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": ""}
        self.elements.append(element)
        if tag not in ("meta", "br"):
            self.open.append(element)

    def handle_endtag(self, tag):
        while self.open and self.open.pop()["tag"] != tag:
            pass

    def handle_data(self, data):
        self.texts.append(data)
        for element in self.open:
            element["text"] += data

    def titled(self) -> list[dict]:
        """The shaded cells: every element with hover text."""
        return [e for e in self.elements if e.get("title") and e["tag"] in ("span", "td")]


def explanation(sigma=SIGMA, words=WORDS, converged=True) -> probe.Explanation:
    return probe.Explanation(sigma=torch.tensor(sigma), words=list(words), scale=0.5, rate=0.1, width=16, layer="encoder.layer.2",
                             converged=converged, steps=12, settings=dict(SETTINGS))


def sweep() -> probe.Sweep:
    return probe.Sweep({f"encoder.layer.{i}": probe.Explanation(sigma=torch.tensor(SIGMA) * (1 - 0.2 * i), words=WORDS, scale=0.5, rate=0.1,
                                                                 width=16, layer=f"encoder.layer.{i}", converged=True, settings=dict(SETTINGS)) for i in range(3)})


SENTENCES = [["the", "film", "is", "a", "charm"], ["a", "film", "without", "charm"], ["the", "bird", "is", "rare"]]


def corpus() -> probe.CorpusResult:
    sigma = [torch.linspace(0.05, 0.5, len(s)).expand(2, -1).clone() for s in SENTENCES]
    return probe.CorpusResult(layers=["encoder.layer.0", "encoder.layer.5"], words=SENTENCES, sigma=sigma, index=torch.arange(3), scale=0.5,
                              rate=0.1, width=16, convergence=torch.ones(2, 3, dtype=torch.bool), steps=torch.full((2, 3), 9), settings=dict(SETTINGS))


def series(steps=(0, 10, 20)) -> probe.TimeSeries:
    words = [WORDS[:3], ["a", "film"]]
    sigma = [torch.rand(len(steps), 2, len(w)) * 0.45 + 0.02 for w in words]
    return probe.TimeSeries(layers=["l0", "l1"], words=words, scale=0.5, rate=0.1, width=16, sentences=["rare <b>&bird", "a film"],
                            steps=list(steps), epochs=[s / 10 for s in steps], sigma=sigma, settings=dict(SETTINGS))


KINDS = {"explanation": explanation, "sweep": sweep, "corpus": corpus, "timeseries": series}
NETWORK = re.compile(r"https?:|//|@import|<script|<link|<iframe|<img|url\(", re.IGNORECASE)


def numbers(title: str) -> dict[str, float]:
    """'sigma 0.1' lines of a hover text as {name: value}; 'sigma 0.1 +/- 0.002' also gives 'stderr'."""
    found = {}
    for line in title.splitlines():
        match = re.fullmatch(r"(sigma|sigma/scale|information loss|information kept|mean information loss|geometric-mean sigma/scale) (-?[\d.e+-]+)( \+/- (\S+))?( nats.*)?", line)
        if match:
            found[match.group(1)] = float(match.group(2))
            if match.group(4) is not None:
                found["stderr"] = float("nan") if match.group(4) == "unknown" else float(match.group(4))
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_pages_and_fragments_are_self_contained(kind):
    result = KINDS[kind]()
    page, fragment = _html.page(result), _html.fragment(result)
    for text in (page, fragment):
        assert not NETWORK.search(text), NETWORK.search(text)
        assert "print-color-adjust: exact" in text
    assert page.startswith("<!DOCTYPE html>") and "@media print" in page and '<meta charset="utf-8">' in page
    assert fragment.startswith('<div class="probe"><style>')
    about = {e["text"] for e in Parsed(page).elements if e["tag"] == "td"}
    assert {"tiny-bert", "0.5", "0.1", probe.__version__, "samples 8, max_steps 40"} <= about


def test_explanation_every_word_with_its_numbers_on_hover():
    exp = explanation()
    for text in (_html.explanation_page(exp), _html.explanation_fragment(exp)):
        cells = Parsed(text).titled()
        assert [c["text"] for c in cells] == WORDS
        for k, cell in enumerate(cells):
            found = numbers(cell["title"])
            assert found["sigma"] == pytest.approx(SIGMA[k], rel=1e-3)
            assert found["sigma/scale"] == pytest.approx(SIGMA[k] / 0.5, rel=1e-3)
            assert found["information loss"] == pytest.approx(float(exp.information_loss[k]), rel=1e-3)
            assert cell["title"].splitlines()[0] == WORDS[k]


def test_words_are_escaped_not_markup():
    text = _html.explanation_page(explanation())
    assert "<b>&bird" not in text and "&lt;b&gt;&amp;bird" in text
    assert not any(e["tag"] == "b" and e["text"] == "&bird" for e in Parsed(text).elements)


def luminance(color: str) -> float:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_kept_words_are_darker_with_white_text():
    cells = {c["text"]: dict(re.findall(r"(background|color):(#[0-9a-f]{6})", c["style"])) for c in Parsed(_html.explanation_fragment(explanation())).titled()}
    assert luminance(cells["rare"]["background"]) < luminance(cells["memo"]["background"]) < luminance(cells["[SEP]"]["background"])
    assert cells["rare"]["color"] == "#ffffff" and cells["[SEP]"]["color"] == "#111111"
    assert kept_colors(1.0)[0] == "#f7fcf0" and kept_colors(0.0) == ("#084081", "#ffffff")


def test_a_solve_that_did_not_converge_says_so():
    assert "Not converged after 12 steps" in _html.explanation_page(explanation(converged=False))
    assert "Not converged" not in _html.explanation_page(explanation())


def test_sweep_is_a_layer_by_word_grid():
    s = sweep()
    parsed = Parsed(_html.sweep_page(s))
    rows = [e for e in parsed.elements if e["tag"] == "tr" and e["text"].startswith("encoder.layer.")]
    assert [r["text"].split("[CLS]")[0] for r in rows] == s.layers
    cells = parsed.titled()
    assert [c["text"] for c in cells] == WORDS * 3
    for o, layer in enumerate(s.layers):
        for k in range(len(WORDS)):
            cell = cells[o * len(WORDS) + k]
            assert layer in cell["title"].splitlines()
            assert numbers(cell["title"])["sigma"] == pytest.approx(float(s.sigma[o, k]), rel=1e-3)
    totals = [float(e["text"]) for e in parsed.elements if e["tag"] == "td" and "probe-num" in e.get("class", "")]
    assert totals == pytest.approx([float(s[n].information_kept.double().sum()) for n in s.layers], rel=1e-3), "the last column: information kept relative to the ceiling"
    assert all(t >= 0 for t in totals)


def test_corpus_totals_and_the_words_kept_most_and_least():
    result = corpus()
    parsed = Parsed(_html.corpus_page(result))
    nums = [float(e["text"]) for e in parsed.elements if e["tag"] == "td" and "probe-num" in e.get("class", "") and "/" not in e["text"]]
    assert nums[0] == pytest.approx(float(result.mean_information_kept[0]), rel=1e-3), "first: information kept per sentence"
    assert nums[1] == pytest.approx(float(result.mean_information_loss[0]), rel=1e-3), "then the paper's loss"
    chips = [c for c in parsed.titled() if c["tag"] == "span"]
    ranked = result.word_ranking("encoder.layer.0", 2)  # the, film, is, a, charm occur twice; bird, rare, without once
    kept = [c["text"] for c in chips[: len(ranked)]]
    assert kept == [w for w, _, _ in ranked] and "bird" not in kept
    assert [c["text"] for c in chips[len(ranked) : 2 * len(ranked)]] == [w for w, _, _ in reversed(ranked)]
    first = numbers(chips[0]["title"])
    assert first["mean information loss"] == pytest.approx(ranked[0][1], rel=1e-3)
    assert f"occurrences {ranked[0][2]}" in chips[0]["title"]


def test_corpus_of_single_occurrences_ranks_them_all():
    one = probe.CorpusResult(layers=["l0"], words=[["a", "film"]], sigma=[torch.tensor([[0.1, 0.4]])], index=[0], scale=0.5, rate=0.1, width=4,
                             convergence=torch.ones(1, 1, dtype=torch.bool), steps=torch.ones(1, 1))
    text = _html.corpus_fragment(one)
    assert "no word type occurs 2 times: all types ranked" in text
    assert [c["text"] for c in Parsed(text).titled()] == ["a", "film", "film", "a"]


def test_timeseries_grids_per_sentence_and_layer():
    s = series()
    parsed = Parsed(_html.timeseries_page(s))
    cells = parsed.titled()
    assert len(cells) == sum(len(w) for w in s.words) * len(s.layers) * len(s.steps)
    labels = {e["text"] for e in parsed.elements if e["tag"] == "th"}
    assert set(WORDS[:3]) | {"a", "film"} <= labels
    first = cells[0]
    assert first["title"].splitlines()[:2] == ["[CLS]", "l0, step 0"]
    assert numbers(first["title"])["sigma"] == pytest.approx(float(s.sigma[0][0, 0, 0]), rel=1e-3)
    assert "Sentence 1: rare &lt;b&gt;&amp;bird" in _html.timeseries_page(s)


def test_long_timeseries_shows_evenly_spaced_steps_and_says_so():
    s = series(steps=range(0, 3000, 10))
    text = _html.timeseries_fragment(s)
    assert f"showing {_html.MAX_STEPS} of 300 steps" in text
    cells = Parsed(text).titled()
    assert len(cells) == sum(len(w) for w in s.words) * len(s.layers) * _html.MAX_STEPS
    assert "step 2990" in cells[_html.MAX_STEPS - 1]["title"]
    empty = probe.TimeSeries(layers=["l0"], words=[["a"]], scale=0.5, rate=0.1, width=4)
    assert "no recorded step" in _html.timeseries_fragment(empty)


def test_page_is_written_when_given_a_path(tmp_path):
    exp = explanation()
    out = tmp_path / "exp.html"
    assert _html.page(exp, out) == out.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["exp.html"]  # no temporary file left
    with pytest.raises(ProbeFileNotFoundError, match="does not exist"):
        _html.page(exp, tmp_path / "missing" / "exp.html")
    with pytest.raises(InputError, match="is a folder"):
        _html.page(exp, tmp_path)


def test_other_objects_are_refused():
    with pytest.raises(InputError, match="cannot show a dict"):
        _html.fragment({})


def test_corpus_page_top_and_min_count():
    result = corpus()
    chips = [c["text"] for c in Parsed(_html.corpus_page(result, top=1, min_count=1)).titled()]
    ranked = [w for w, _, _ in result.word_ranking("encoder.layer.0", 1)]
    assert chips[:2] == [ranked[0], ranked[-1]] and len(chips) == 4  # two layers, one most kept and one most lost each


@pytest.mark.parametrize("kind", KINDS)
def test_settings_and_layer_names_are_escaped(kind):
    result = KINDS[kind]()
    hostile = "<script>alert(1)</script>"
    for target in ([result[n] for n in result.layers] if kind == "sweep" else [result]):
        target.settings = {**target.settings, "model": hostile, hostile: hostile}
    text = _html.page(result)
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
