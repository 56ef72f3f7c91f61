"""HTML views of many sentences: a CorpusResult's per-layer totals and ranked words, a TimeSeries'
step-by-word grids."""

from __future__ import annotations

import torch

from . import html_parts as parts
from .html_one import not_converged
from .shade import span


MAX_STEPS = 100
"""Most training steps a time-series grid shows; beyond, evenly spaced steps (the page says so)."""


def type_relative_sigma(result) -> torch.Tensor:
    """Each word type's geometric-mean sigma over its occurrences, / scale: [layers, types] (the
    sigma whose information loss is the type's mean loss).

    >>> import torch, probe
    >>> result = probe.CorpusResult(layers=["l0"], words=[["a", "film"], ["a"]], sigma=[torch.tensor([[0.2, 0.9]]), torch.tensor([[0.8]])],
    ...     index=[0, 1], scale=1.0, rate=0.1, width=8, convergence=torch.ones(1, 2, dtype=torch.bool), steps=torch.ones(1, 2))
    >>> result.vocabulary, type_relative_sigma(result)        # "a": sqrt(0.2 * 0.8)
    (['a', 'film'], tensor([[0.4000, 0.9000]], dtype=torch.float64))
    """
    where = {w: v for v, w in enumerate(result.vocabulary)}
    ids = torch.tensor([where[w] for ws in result.words for w in ws], dtype=torch.int64)
    logs = torch.cat([torch.as_tensor(s, dtype=torch.float64).log() for s in result.sigma], 1)
    totals = torch.zeros(logs.shape[0], len(where), dtype=torch.float64).index_add_(1, ids, logs)
    counts = torch.zeros(len(where), dtype=torch.float64).index_add_(0, ids, torch.ones(len(ids), dtype=torch.float64))
    return torch.exp(totals / counts.clamp_min(1)) / result.scale


def _ranked_chips(ranked, relative_row, where, fitted) -> str:
    chips = []
    for w, h, count in ranked:
        r = float(relative_row[where[w]])
        title = parts.hover([w, f"mean information loss {parts.number(h)} nats", f"occurrences {count}", f"geometric-mean sigma/scale {parts.number(r)}"])
        chips.append(parts.chip(w, r, title, fitted))
    return f'<div class="probe-words">{"".join(chips)}</div>'


def _corpus_body(result, top: int = 8, min_count: int = 2) -> str:
    """Per layer: the corpus measures, and the word types it keeps most and least (seen ``min_count``
    times or more; all types when none is)."""
    n_words = sum(len(w) for w in result.words)
    count = min_count if int(result.word_counts.max()) >= min_count else 1
    note = "" if count == min_count else f" (no word type occurs {min_count} times: all types ranked)"
    head = (f'<p class="probe-head">{len(result.words)} sentences · {n_words} words · information kept relative to the ceiling '
            f"and the paper's information loss, nats{parts.text(note)}</p>")
    kept_total, mean = result.mean_information_kept.tolist(), result.mean_information_loss.tolist()
    per_word = [float(result.mean_information_loss[o]) * len(result.words) / n_words for o in range(len(result.layers))]
    converged = torch.as_tensor(result.convergence)
    rows = ['<tr><th>layer</th><th class="probe-num">kept per sentence</th><th class="probe-num">loss per sentence</th><th class="probe-num">loss per word</th>'
            f'<th class="probe-num">converged</th><th>keeps most (top {top})</th><th>loses most</th></tr>']
    relative = type_relative_sigma(result)
    where = {w: v for v, w in enumerate(result.vocabulary)}
    shown = [(ranked[:top], list(reversed(ranked[-top:]))) for ranked in (result.word_ranking(layer, count) for layer in result.layers)]
    fitted = span(float(relative[o][where[w]]) for o, pair in enumerate(shown) for words in pair for w, _, _ in words)
    for o, layer in enumerate(result.layers):
        kept, lost = (_ranked_chips(words, relative[o], where, fitted) for words in shown[o])
        done = f"{int(converged[o].sum())}/{converged.shape[1]}"
        rows.append(
            f'<tr><th>{parts.text(layer)}</th><td class="probe-num">{parts.number(kept_total[o])}</td><td class="probe-num">{parts.number(mean[o])}</td><td class="probe-num">{parts.number(per_word[o])}</td>'
            f'<td class="probe-num">{done}</td><td>{kept}</td><td>{lost}</td></tr>'
        )
    warn = not_converged(converged, result.steps)
    return head + warn + f'<table class="probe-grid">{"".join(rows)}</table>' + parts.legend(fitted)


def corpus_fragment(result, top: int = 8, min_count: int = 2) -> str:
    """``CorpusResult._repr_html_``.

    >>> import torch, probe
    >>> result = probe.CorpusResult(layers=["l0"], words=[["a", "film"], ["a"]], sigma=[torch.tensor([[0.2, 0.9]]), torch.tensor([[0.4]])],
    ...     index=[0, 1], scale=1.0, rate=0.1, width=8, convergence=torch.ones(1, 2, dtype=torch.bool), steps=torch.ones(1, 2))
    >>> corpus_fragment(result).startswith('<div class="probe">')
    True
    """
    return parts.wrap(_corpus_body(result, top, min_count))


def corpus_page(result, top: int = 8, min_count: int = 2) -> str:
    """``CorpusResult.to_html``: per-layer totals, the ``top`` most kept and most lost word types
    (seen ``min_count`` times or more), and what was explained.

    >>> import torch, probe
    >>> result = probe.CorpusResult(layers=["l0"], words=[["a", "film"], ["a"]], sigma=[torch.tensor([[0.2, 0.9]]), torch.tensor([[0.4]])],
    ...     index=[0, 1], scale=1.0, rate=0.1, width=8, convergence=torch.ones(1, 2, dtype=torch.bool), steps=torch.ones(1, 2))
    >>> "What was explained" in corpus_page(result)
    True
    """
    extra = {"sentences": str(len(result.words))}
    return parts.page("What each layer keeps across a corpus", _corpus_body(result, top, min_count) + parts.about(result, "a corpus", result.layers, extra))


def _shown_steps(count: int) -> list[int]:
    """Indices of the steps a grid shows: all, or ``MAX_STEPS`` evenly spaced ones with the last."""
    if count <= MAX_STEPS:
        return list(range(count))
    return sorted({round(k * (count - 1) / (MAX_STEPS - 1)) for k in range(MAX_STEPS)})


def _steps_grid(words, steps, shown, sigma, relative, loss, layer) -> str:
    """Words down, training steps across; each cell shaded, its step and numbers on hover."""
    ticks = "".join(f"<span>{steps[t]}</span>" for t in dict.fromkeys([shown[0], shown[len(shown) // 2], shown[-1]]))
    head = f'<tr><th></th><th colspan="{len(shown)}"><div class="probe-ticks">{ticks}</div></th></tr>'
    foot = f'<tr><th></th><th colspan="{len(shown)}">training step</th></tr>'
    rows = [head]
    sigma, relative, loss = sigma.T.tolist(), relative.T.tolist(), loss.T.tolist()
    for k, w in enumerate(words):
        cells = []
        for t in shown:
            s, r, h = sigma[k][t], relative[k][t], loss[k][t]
            title = parts.word_hover(w, s, r, h, [f"{layer}, step {steps[t]}"])
            cells.append(f'<td class="probe-c" style="{parts.style(parts.kept_colors(r))}" title="{title}"></td>')
        rows.append(f"<tr><th>{parts.text(w)}</th>{''.join(cells)}</tr>")
    return f'<div><h3>{parts.text(layer)}</h3><table class="probe-steps">{"".join(rows)}{foot}</table></div>'


def _timeseries_body(series) -> str:
    """Per sentence, one words-by-steps grid per layer: how each word's sigma moved in training."""
    steps = list(series.steps)
    if not steps:
        return '<p class="probe-head">This time series has no recorded step yet.</p>'
    shown = _shown_steps(len(steps))
    note = "" if len(shown) == len(steps) else f" · showing {len(shown)} of {len(steps)} steps, evenly spaced"
    head = f'<p class="probe-head">{len(series.words)} sentences · {len(series.layers)} layers · steps {steps[0]} to {steps[-1]}{note} · scale {parts.number(series.scale)}</p>'
    sentences = list(getattr(series, "sentences", []) or [])
    out = [head]
    for i, (words, sigma, relative, loss) in enumerate(zip(series.words, series.sigma, series.relative_sigma, series.information_loss)):
        title = parts.text(sentences[i]) if i < len(sentences) and sentences[i] else " ".join(map(parts.text, words))
        panels = "".join(_steps_grid(words, steps, shown, sigma[:, o], relative[:, o], loss[:, o], layer) for o, layer in enumerate(series.layers))
        out.append(f'<h2>Sentence {i + 1}: {title}</h2><div class="probe-panels">{panels}</div>')
    return "".join(out) + parts.legend()


def timeseries_fragment(series) -> str:
    """``TimeSeries._repr_html_``.

    >>> import torch, probe
    >>> series = probe.TimeSeries(layers=["l0"], words=[["a", "film"]], scale=1.0, rate=0.1, width=8, steps=[0, 10], epochs=[0.0, 0.5],
    ...     sigma=[torch.full((2, 1, 2), 0.5)])
    >>> timeseries_fragment(series).startswith('<div class="probe">')
    True
    """
    return parts.wrap(_timeseries_body(series))


def timeseries_page(series) -> str:
    """``TimeSeries.to_html``: the grids of every sentence and what was explained.

    >>> import torch, probe
    >>> series = probe.TimeSeries(layers=["l0"], words=[["a", "film"]], scale=1.0, rate=0.1, width=8, steps=[0, 10], epochs=[0.0, 0.5],
    ...     sigma=[torch.full((2, 1, 2), 0.5)])
    >>> "training steps" in timeseries_page(series)
    True
    """
    steps = series.steps
    recorded = f"{len(steps)}: {steps[0]} to {steps[-1]}" if steps else "none yet"
    extra = {"training steps": recorded, "sentences": str(len(series.words))}
    return parts.page("What each layer keeps of each word across training", _timeseries_body(series) + parts.about(series, "sentences across training", series.layers, extra))
