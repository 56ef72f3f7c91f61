"""Comparing two runs on the same sentences: two checkpoints, or two layers (the paper's "across
models, across training" question). Per word, the change in information loss ``b - a`` in nats:
negative = ``b`` keeps the word more than ``a``, positive = ``b`` loses more of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from . import html_parts as parts
from .html import kind_of
from .html_many import type_relative_sigma
from .._utils.text import visible
from ..errors import InputError


@dataclass
class Comparison:
    """Information loss of the same words in two runs, row by row (a layer, or a pair of layers).

    ``loss_a``, ``loss_b`` and the shading ``relative_a``, ``relative_b`` (sigma / scale) are
    [rows, words]; for corpus results the words are the word types and ``counts`` their occurrences.

    >>> import torch, probe
    >>> a = probe.Explanation(sigma=torch.tensor([0.1, 0.5]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
    >>> b = probe.Explanation(sigma=torch.tensor([0.1, 0.05]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
    >>> [round(c, 2) for c in compare(a, b).change[0].tolist()]    # 2 log(0.05 / 0.5)
    [0.0, -4.61]
    """

    kind: str
    rows: list[str]
    words: list[str]
    loss_a: torch.Tensor
    loss_b: torch.Tensor
    relative_a: torch.Tensor
    relative_b: torch.Tensor
    labels: tuple[str, str] = ("a", "b")
    counts: torch.Tensor | None = None
    about_a: dict[str, str] | None = None
    about_b: dict[str, str] | None = None

    @property
    def change(self) -> torch.Tensor:
        """``loss_b - loss_a`` per row and word, nats: negative = ``b`` keeps the word more.

        >>> import torch, probe
        >>> a = probe.Explanation(sigma=torch.tensor([0.1, 0.5]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
        >>> b = probe.Explanation(sigma=torch.tensor([0.1, 0.05]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
        >>> compare(a, a).change.abs().max().item()
        0.0
        """
        return self.loss_b.to(torch.float64) - self.loss_a.to(torch.float64)

    def _order(self, row: int, top: int | None) -> list[int]:
        """The words of a row to list: all in sentence order, or for corpus types the ``top`` with
        the largest change each way (most kept by ``b`` first)."""
        if self.kind != "corpus":
            return list(range(len(self.words)))
        ranked = self.change[row].argsort().tolist()
        return ranked if top is None or 2 * top >= len(ranked) else ranked[:top] + ranked[-top:]

    def table(self, top: int | None = 10) -> str:
        """Per row: each word's information loss in ``a`` and ``b`` and the change (for corpus results
        the ``top`` word types ``b`` keeps more and the ``top`` it loses more; ``None``: all).

        >>> import torch, probe
        >>> a = probe.Explanation(sigma=torch.tensor([0.1, 0.5]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
        >>> b = probe.Explanation(sigma=torch.tensor([0.1, 0.05]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
        >>> print(compare(a, b).table().splitlines()[0])
        change in information loss, b - a, in nats (negative = b keeps the word more)
        """
        a, b = (visible(label) for label in self.labels)
        words = [visible(w) for w in self.words]
        width = max([4, *(len(w) for w in words)])
        lines = [f"change in information loss, {b} - {a}, in nats (negative = {b} keeps the word more)"]
        for o, row in enumerate(self.rows):
            lines.append(visible(row) or self.kind)
            lines.append(f"{'word':<{width}}  {a[:10]:>10}  {b[:10]:>10}  {'change':>10}" + ("  count" if self.counts is not None else ""))
            for k in self._order(o, top):
                count = f"  {int(self.counts[k]):>5}" if self.counts is not None else ""
                lines.append(f"{words[k]:<{width}}  {float(self.loss_a[o, k]):>10.1f}  {float(self.loss_b[o, k]):>10.1f}  {float(self.change[o, k]):>+10.1f}{count}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def _body(self, top: int | None = 15) -> str:
        a, b = map(parts.text, self.labels)
        largest = float(self.change.abs().max()) if self.change.numel() else 0.0
        out = [f'<p class="probe-head">change in information loss, {b} − {a}, in nats · {len(self.words)} {"word types" if self.kind == "corpus" else "words"}</p>']
        for o, row in enumerate(self.rows):
            order = self._order(o, top)
            cells_a, cells_b, cells_change = [], [], []
            for k in order:
                w = self.words[k]
                ha, hb, d = float(self.loss_a[o, k]), float(self.loss_b[o, k]), float(self.change[o, k])
                facts = [w, f"information loss in {self.labels[0]}: {parts.number(ha)} nats", f"information loss in {self.labels[1]}: {parts.number(hb)} nats", f"change: {d:+.4g} nats"]
                if self.counts is not None:
                    facts.append(f"occurrences {int(self.counts[k])}")
                title = parts.hover(facts)
                for cells, rel in ((cells_a, self.relative_a[o, k]), (cells_b, self.relative_b[o, k])):
                    cells.append(f'<td class="probe-c" style="{parts.style(parts.kept_colors(float(rel)))}" title="{title}">{parts.text(w)}</td>')
                cells_change.append(f'<td class="probe-c probe-num" style="{parts.style(parts.change_colors(d, largest))}" title="{title}">{d:+.3g}</td>')
            label = f"<h3>{parts.text(row)}</h3>" if row else ""
            if self.kind == "corpus" and len(order) < len(self.words):
                label += f'<p class="probe-head">the {len(order) // 2} word types whose loss fell most (or rose least) in {b}, then the {len(order) // 2} whose loss rose most</p>'
            out.append(
                f'{label}<table class="probe-grid"><tr><th>{a}</th>{"".join(cells_a)}</tr><tr><th>{b}</th>{"".join(cells_b)}</tr>'
                f'<tr><th>change</th>{"".join(cells_change)}</tr></table>'
            )
        return "".join(out) + parts.legend() + parts.change_legend(self.labels)

    def _repr_html_(self) -> str:
        return parts.wrap(self._body())

    def to_html(self, path: str | Path | None = None, top: int | None = 15) -> str:
        """The side-by-side page: both runs shaded (dark = kept) and the change (blue = ``b`` keeps
        more, red = ``b`` loses more); written atomically to ``path`` when given.

        >>> import torch, probe
        >>> a = probe.Explanation(sigma=torch.tensor([0.1, 0.5]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
        >>> b = probe.Explanation(sigma=torch.tensor([0.1, 0.05]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
        >>> "change" in compare(a, b).to_html()
        True
        """
        rows = {"compared": f"{self.kind}: {', '.join(r for r in self.rows if r) or 'one layer'}"}
        for label, facts in zip(self.labels, (self.about_a or {}, self.about_b or {})):
            rows[label] = "; ".join(f"{k} {v}" for k, v in facts.items())
        from .. import __version__

        rows["probe version"] = __version__
        about = "".join(f"<tr><th>{parts.text(k)}</th><td>{parts.text(v)}</td></tr>" for k, v in rows.items())
        title = f"{self.labels[1]} against {self.labels[0]}: the change in what is kept of each word"
        text = parts.page(title, self._body(top) + f'<h2>What was compared</h2><table class="probe-about">{about}</table>')
        if path is not None:
            parts.write_text(path, text)
        return text


def _facts(result) -> dict[str, str]:
    """What a run was: model, scale, rate, width, solver settings (a sweep's from its first layer)."""
    if _kind(result) == "sweep":
        result = result[result.layers[0]]
    model, solver, _ = parts.described(getattr(result, "settings", None))
    return {"model": model, "scale": parts.number(result.scale), "rate": parts.number(result.rate), "width": str(result.width), "solver": solver}


def _same_words(a_words, b_words, where: str = "") -> None:
    if list(a_words) == list(b_words):
        return
    if len(a_words) != len(b_words):
        raise InputError(f"{where}a has {len(a_words)} words but b has {len(b_words)}; compare results of the same sentences (tokenized the same way)")
    k = next(i for i, (x, y) in enumerate(zip(a_words, b_words)) if x != y)
    raise InputError(f"{where}word {k} is {a_words[k]!r} in a but {b_words[k]!r} in b; compare results of the same sentences (tokenized the same way)")


def _pairs(a_layers: list[str], b_layers: list[str]) -> list[str]:
    """Row labels: the layer names when both runs have the same, else 'a's layer → b's layer'."""
    if a_layers == b_layers:
        return list(a_layers)
    if len(a_layers) != len(b_layers):
        raise InputError(f"a explains {len(a_layers)} layers ({a_layers}) but b {len(b_layers)} ({b_layers}); compare the same layers or as many layers")
    return [f"{x} → {y}" for x, y in zip(a_layers, b_layers)]


def _kind(result) -> str:
    try:
        kind = kind_of(result)
    except InputError:
        raise InputError(f"cannot compare a {type(result).__name__}; pass two Explanations, two Sweeps or two CorpusResults") from None
    if kind == "timeseries":
        raise InputError("compare does not take time series; compare two steps' sweeps, or two Explanations")
    return kind


def compare(a, b, labels: tuple[str, str] = ("a", "b")) -> Comparison:
    """Per word, the change in information loss from run ``a`` to run ``b`` of the same sentences:
    two Explanations, two Sweeps (the same layers, or as many) or two CorpusResults (per word type).

    >>> import torch, probe
    >>> a = probe.Explanation(sigma=torch.tensor([0.1, 0.5]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
    >>> b = probe.Explanation(sigma=torch.tensor([0.1, 0.05]), words=["rare", "bird"], scale=1.0, rate=0.1, width=2)
    >>> c = compare(a, b, labels=("step 0", "step 900"))
    >>> c.rows, c.words
    ([''], ['rare', 'bird'])
    """
    kind = _kind(a)
    if _kind(b) != kind:
        raise InputError(f"a is a {type(a).__name__} but b a {type(b).__name__}; compare two results of the same kind")
    if kind == "explanation":
        _same_words(a.words, b.words)
        rows = [a.layer if a.layer == b.layer else f"{a.layer} → {b.layer}"]
        losses = [x.information_loss[None] for x in (a, b)]
        relative = [x.relative_sigma[None] for x in (a, b)]
        words, counts = list(a.words), None
    elif kind == "sweep":
        _same_words(a.words, b.words)
        rows = _pairs(list(a.layers), list(b.layers))
        losses = [torch.stack([x[n].information_loss for n in x.layers]) for x in (a, b)]
        relative = [torch.stack([x[n].relative_sigma for n in x.layers]) for x in (a, b)]
        words, counts = list(a.words), None
    else:
        if len(a.words) != len(b.words):
            raise InputError(f"a holds {len(a.words)} sentences but b {len(b.words)}; compare results of the same corpus")
        for j, (x, y) in enumerate(zip(a.words, b.words)):
            _same_words(x, y, f"sentence {j}: ")
        rows = _pairs(list(a.layers), list(b.layers))
        losses = [x.word_information_loss for x in (a, b)]
        relative = [type_relative_sigma(x) for x in (a, b)]
        words, counts = list(a.vocabulary), a.word_counts
    return Comparison(
        kind=kind, rows=rows, words=words, loss_a=losses[0], loss_b=losses[1], relative_a=relative[0],
        relative_b=relative[1], labels=(str(labels[0]), str(labels[1])), counts=counts, about_a=_facts(a), about_b=_facts(b),
    )
