"""Text tables of results that hold many sentences."""

from __future__ import annotations

from .._utils.text import visible


def corpus_table(result, top: int, min_count: int) -> str:
    """``CorpusResult.table``: per layer, mean information loss per sentence and per word, and the
    most kept and most lost word types among those seen at least ``min_count`` times."""
    words = sum(map(len, result.words))
    layers = [visible(n) for n in result.layers]
    width = max(5, *(len(n) for n in layers))
    lines = [
        f"corpus: {len(result)} sentences, {words} words; information loss in nats (lower = kept more)",
        f"{'layer':<{width}}  {'per sentence':>12}  {'per word':>10}  converged",
    ]
    per_word = result.sentence_information_loss.sum(1) / words
    for o, name in enumerate(layers):
        done = int(result.convergence[o].sum())
        lines.append(f"{name:<{width}}  {float(result.mean_information_loss[o]):>12.1f}  {float(per_word[o]):>10.1f}  {done}/{len(result)}")
    for name, shown in zip(result.layers, layers):
        ranked = result.word_ranking(name, min_count)
        if not ranked:
            lines.append(f"{shown}: no word type occurs {min_count} times; lower min_count")
            continue
        kept = ", ".join(f"{visible(w)} ({h:.0f})" for w, h, _ in ranked[:top])
        lost = ", ".join(f"{visible(w)} ({h:.0f})" for w, h, _ in reversed(ranked[-top:]))
        lines.append(f"{shown} keeps most: {kept}")
        lines.append(f"{' ' * len(shown)} loses most: {lost}")
    return "\n".join(lines)
