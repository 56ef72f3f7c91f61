"""HTML views of one sentence: an Explanation's shaded words and a Sweep's layer-by-word grid,
with the blocks the other views share (a sentence of chips, a grid, a not-converged warning)."""

from __future__ import annotations

import torch

from . import html_parts as parts
from .shade import span, wide


def not_converged(converged, steps) -> str:
    """A warning when any solve stopped before converging: its numbers may be off."""
    flags = torch.as_tensor(converged).reshape(-1)
    if bool(flags.all()):
        return ""
    if flags.numel() == 1:
        return f'<p class="probe-warn">Not converged after {int(torch.as_tensor(steps).reshape(-1)[0])} steps: these numbers may be off; explain again with more max_steps.</p>'
    return f'<p class="probe-warn">{int((~flags.bool()).sum())} of {flags.numel()} solves did not converge: their numbers may be off.</p>'


def chips(words, sigma, relative, loss, stderr=None, width: int = 0, fitted=None) -> str:
    """A sentence: each word shaded on the range ``fitted`` (this sentence's own by default), its
    numbers on hover, a word with a wide error bar marked."""
    fitted = fitted or span(relative.tolist())
    stderr = torch.full_like(sigma, float("nan")) if stderr is None else stderr
    rows = zip(words, sigma.tolist(), relative.tolist(), loss.tolist(), stderr.tolist())
    chips = [parts.chip(w, r, parts.word_hover(w, s, r, h, stderr=e, width=width), fitted, wide(s, e)) for w, s, r, h, e in rows]
    return f'<div class="probe-words">{"".join(chips)}</div>'


def totals(result) -> str:
    """The sentence's information kept relative to the ceiling, and the paper's information loss."""
    kept = float(result.information_kept.double().sum())
    return f"information kept {parts.number(kept)} nats relative to the ceiling (the paper's information loss: {parts.number(result.total_information_loss)} nats)"


def _explanation_body(exp) -> str:
    """The sentence with each word shaded by how much ``exp.layer`` keeps it."""
    layer = f"layer <b>{parts.text(exp.layer)}</b> · " if exp.layer else ""
    head = f'<p class="probe-head">{layer}{totals(exp)} · scale {parts.number(exp.scale)}</p>'
    fitted = span(exp.relative_sigma.tolist())
    body = chips(exp.words, exp.sigma, exp.relative_sigma, exp.information_loss, exp.stderr, exp.width, fitted)
    marked = any(wide(s, e) for s, e in zip(exp.sigma.tolist(), exp.stderr.tolist()))
    return head + not_converged(exp.converged, exp.steps) + body + parts.legend(fitted, marked)


def explanation_fragment(exp) -> str:
    """``Explanation._repr_html_``.

    >>> import torch, probe
    >>> exp = probe.Explanation(sigma=torch.tensor([0.1, 0.9]), words=["rare", "bird"], scale=1.0, rate=0.1, width=8)
    >>> explanation_fragment(exp).count('class="probe-w"')
    2
    """
    return parts.wrap(_explanation_body(exp))


def explanation_page(exp) -> str:
    """``Explanation.to_html``: the shaded sentence and what was explained.

    >>> import torch, probe
    >>> exp = probe.Explanation(sigma=torch.tensor([0.1, 0.9]), words=["rare", "bird"], scale=1.0, rate=0.1, width=8)
    >>> "probe version" in explanation_page(exp)
    True
    """
    extra = {"solve": f"{'converged' if exp.converged else 'not converged'} after {exp.steps} steps"}
    title = f"What layer {exp.layer} keeps of each word" if exp.layer else "What the hidden state keeps of each word"
    return parts.page(title, _explanation_body(exp) + parts.about(exp, "one sentence", [exp.layer] if exp.layer else [], extra))


def grid(row_labels, words, sigma, relative, loss, totals, stderr=None, width: int = 0, fitted=None, converged=None) -> str:
    """A row-by-word table: every cell the word, shaded on ``fitted`` (the table's own range by
    default); hover gives the row and the numbers; a wide error bar and a row that did not converge
    are marked. ``totals`` fill the last column: information kept relative to the ceiling, nats."""
    fitted = fitted or span(relative.flatten().tolist())
    stderr = torch.full_like(sigma, float("nan")) if stderr is None else stderr
    head = f'<tr><th></th><th colspan="{len(words)}">words</th><th class="probe-num">kept (nats)</th></tr>'
    rows = [head]
    sigma, relative, loss, stderr = sigma.tolist(), relative.tolist(), loss.tolist(), stderr.tolist()
    for o, label in enumerate(row_labels):
        cells = []
        for k, w in enumerate(words):
            s, r, h, e = sigma[o][k], relative[o][k], loss[o][k], stderr[o][k]
            title = parts.word_hover(w, s, r, h, [label], stderr=e, width=width)
            marked = ' class="probe-c probe-wide"' if wide(s, e) else ' class="probe-c"'
            cells.append(f'<td{marked} style="{parts.style(parts.kept_colors(r, fitted))}" title="{title}">{parts.text(w)}</td>')
        flag = "" if converged is None or converged[o] else ' <span class="probe-warn">(not converged)</span>'
        rows.append(f'<tr><th>{parts.text(label)}{flag}</th>{"".join(cells)}<td class="probe-num">{parts.number(totals[o])}</td></tr>')
    return f'<table class="probe-grid">{"".join(rows)}</table>'


def _sweep_body(sweep) -> str:
    """The layer-by-word grid of a sweep: one row per layer, each word shaded on the sweep's range."""
    explanations = [sweep[name] for name in sweep.layers]
    first = explanations[0]
    relative = sweep.relative_sigma
    fitted = span(relative.flatten().tolist())
    kept = [float(e.information_kept.double().sum()) for e in explanations]
    converged = [e.converged for e in explanations]
    head = f'<p class="probe-head">{len(explanations)} layers · {len(first.words)} words · scale {parts.number(first.scale)} · last column: information kept relative to the ceiling (hover a word for the paper\'s information loss)</p>'
    warn = not_converged(converged, [e.steps for e in explanations])
    marked = any(wide(s, e) for s, e in zip(sweep.sigma.flatten().tolist(), sweep.stderr.flatten().tolist()))
    table = grid(sweep.layers, first.words, sweep.sigma, relative, sweep.information_loss, kept, sweep.stderr, first.width, fitted, converged)
    return head + warn + table + parts.legend(fitted, marked)


def sweep_fragment(sweep) -> str:
    """``Sweep._repr_html_``.

    >>> import torch, probe
    >>> exp = probe.Explanation(sigma=torch.tensor([0.1, 0.9]), words=["rare", "bird"], scale=1.0, rate=0.1, width=8)
    >>> sweep = probe.Sweep({"l0": exp, "l1": exp})
    >>> sweep_fragment(sweep).startswith('<div class="probe">')
    True
    """
    return parts.wrap(_sweep_body(sweep))


def sweep_page(sweep) -> str:
    """``Sweep.to_html``: the layer-by-word grid and what was explained.

    >>> import torch, probe
    >>> exp = probe.Explanation(sigma=torch.tensor([0.1, 0.9]), words=["rare", "bird"], scale=1.0, rate=0.1, width=8)
    >>> sweep = probe.Sweep({"l0": exp, "l1": exp})
    >>> "l1" in sweep_page(sweep)
    True
    """
    first = sweep[sweep.layers[0]]
    return parts.page("What each layer keeps of each word", _sweep_body(sweep) + parts.about(first, "one sentence, several layers", sweep.layers))
