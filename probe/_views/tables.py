"""Text tables of results: one sentence's words, and the corpus measures of many sentences."""

from __future__ import annotations

import math

from .._utils.text import visible
from .shade import kept, range_note, span, wide


def plus_minus(value: float, error: float) -> str:
    """``value +/- error`` for a table cell; ``?`` for an unknown error.

    >>> plus_minus(0.03125, 0.0004), plus_minus(0.5, float("nan")), plus_minus(0.5, float("inf"))
    ('0.03125 +/- 0.0004', '0.5 +/- ?', '0.5 +/- inf')
    """
    shown = "?" if error != error else ("inf" if math.isinf(error) else f"{error:.2g}")
    return f"{value:.4g} +/- {shown}"


def explanation_table(exp, bar_width: int = 30, fitted: tuple[float, float] | None = None) -> str:
    """``Explanation.table``: per word sigma +/- stderr, sigma/scale, information kept relative to the
    ceiling (nats, never negative) and a bar on the shade's range (``fitted``: this result's own by
    default), ``!`` after a word whose error bar is wide; a footer with the totals and the paper's
    information loss."""
    fitted = fitted or span(exp.relative_sigma.tolist())
    title = f"layer {visible(exp.layer)}" if exp.layer else "explanation"
    words = [visible(w) for w in exp.words]
    width = max([4, *(len(w) for w in words)])
    cells = [plus_minus(s, e) for s, e in zip(exp.sigma.tolist(), exp.stderr.tolist())]
    column = max([16, *(len(c) for c in cells)])
    lines = [title, f"{'word':<{width}}  {'sigma +/- stderr':>{column}}  {'sigma/scale':>11}  {'kept (nats)':>11}  bar"]
    rows = zip(words, exp.sigma.tolist(), exp.stderr.tolist(), cells, exp.relative_sigma.tolist(), exp.information_kept.tolist())
    for word, s, e, cell, rel, k in rows:
        bar = "#" * round(kept(rel, fitted) * bar_width)
        lines.append(f"{word:<{width}}  {cell:>{column}}  {rel:>11.3f}  {k:>11.1f}  {bar}{'  !' if wide(s, e) else ''}")
    relative = (exp.stderr / exp.sigma).square().mean().sqrt()
    lines.append(
        f"total kept {float(exp.information_kept.double().sum()):.1f} nats; the paper's information loss {exp.total_information_loss:.1f} nats "
        f"(.information_loss); converged {exp.converged} after {exp.steps} steps; stderr/sigma root-mean-square {float(relative):.2%}"
    )
    lines.append(f"bar: longer = kept more; {range_note(fitted)}; kept (nats) = K log(scale / sigma), 0 for a lost word")
    if any(wide(s, e) for s, e in zip(exp.sigma.tolist(), exp.stderr.tolist())):
        lines.append("! = standard error over 10% of sigma: this word's sigma is uncertain")
    return "\n".join(lines)


def corpus_table(result, top: int, min_count: int) -> str:
    """``CorpusResult.table``: per layer, mean information kept and lost per sentence and per word,
    and the most kept and most lost word types among those seen at least ``min_count`` times, with
    their mean information kept."""
    words = sum(map(len, result.words))
    layers = [visible(n) for n in result.layers]
    width = max(5, *(len(n) for n in layers))
    lines = [
        f"corpus: {len(result)} sentences, {words} words; information kept relative to the ceiling and the paper's information loss, nats per sentence",
        f"{'layer':<{width}}  {'kept +/- stderr':>20}  {'loss (lower = kept more)':>24}  {'loss per word':>13}  converged",
    ]
    per_word = result.sentence_information_loss.sum(1) / words
    kept_total = result.mean_information_kept
    for o, name in enumerate(layers):
        done = int(result.convergence[o].sum())
        error = float(result.mean_information_loss_stderr[o])
        kept = plus_minus(float(kept_total[o]), error)
        mean = plus_minus(float(result.mean_information_loss[o]), error)
        lines.append(f"{name:<{width}}  {kept:>20}  {mean:>24}  {float(per_word[o]):>13.1f}  {done}/{len(result)}")
    where = {w: v for v, w in enumerate(result.vocabulary)}
    for o, (name, shown) in enumerate(zip(result.layers, layers)):
        ranked = result.word_ranking(name, min_count)
        if not ranked:
            lines.append(f"{shown}: no word type occurs {min_count} times; lower min_count")
            continue
        row = result.word_information_kept[o]
        kept = ", ".join(f"{visible(w)} ({float(row[where[w]]):.0f})" for w, _, _ in ranked[:top])
        lost = ", ".join(f"{visible(w)} ({float(row[where[w]]):.0f})" for w, _, _ in reversed(ranked[-top:]))
        lines.append(f"{shown} keeps most: {kept}")
        lines.append(f"{' ' * len(shown)} loses most: {lost}")
    return "\n".join(lines)
