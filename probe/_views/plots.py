"""Heatmaps of sigma over words, drawn without pyplot's global state.

Words and layer names are drawn literally: ``$x$`` is no formula, a control character shows as its
escape, and the file is checked before drawing and written atomically (``save_figure``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from .._utils.checks import check_image_path
from .._utils.files import save_figure
from .._utils.text import visible
from .shade import WIDE, range_note, span

COLORBAR_LABEL = "sigma / scale, log (dark = kept more; 1 = lost)"


def literal(labels: list[str]) -> list[str]:
    r"""Labels as matplotlib draws them literally: dollar signs escaped (no mathtext), controls visible.

    >>> literal(["$x$", "a\nb"])
    ['\\$x\\$', 'a\\nb']
    """
    return [visible(str(label)).replace("$", r"\$") for label in labels]


def checked_path(path: str | Path | None) -> str | Path | None:
    """``path`` checked as an image to write (before any drawing), or None."""
    return None if path is None else check_image_path(path, "path")


def word_heatmap(
    values: np.ndarray,
    words: list[str],
    rows: list[str],
    title: str,
    path: str | Path | None = None,
    new_figure: Callable | None = None,
    relative_error: np.ndarray | None = None,
    converged: list[bool] | None = None,
):
    """A [rows, words] heatmap of sigma / scale in the seed's colours (dark = kept), on a log range
    fitted to ``values`` (``shade.span``, stated under the colour bar), words as labels. A cell whose
    ``relative_error`` (stderr / sigma) is over ``WIDE`` shows ``!``; a row that did not converge
    says so in its label.

    ``new_figure`` makes the empty figure: a plain ``Figure`` by default, so nothing piles up in
    pyplot; ``plt.figure`` for a figure that ``plt.show`` can display on any matplotlib version.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    path = checked_path(path)
    low, high = span(values.flatten().tolist())
    height = 2.0 + 0.45 * len(rows)
    fig = (new_figure or Figure)(figsize=(max(5.0, 0.6 * len(words) + 3.0), height), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.clip(values, low, high), cmap="GnBu_r", aspect="auto", norm=LogNorm(vmin=low, vmax=high))
    ax.set_xticks(range(len(words)), labels=literal(words), rotation=45, ha="right")
    labels = [r if converged is None or converged[o] else f"{r} (not converged)" for o, r in enumerate(rows)]
    ax.set_yticks(range(len(rows)), labels=literal(labels))
    marked = 0
    if relative_error is not None:
        for o, k in zip(*np.nonzero(~(relative_error <= WIDE) & ~np.isnan(relative_error))):
            ax.text(k, o, "!", ha="center", va="center", color="#b2182b", fontweight="bold")
            marked += 1
    ax.set_title(literal([title])[0])
    fig.colorbar(image, ax=ax, label=COLORBAR_LABEL)
    note = range_note((low, high)) + (f"; ! = standard error over {WIDE:.0%} of sigma" if marked else "")
    ax.set_xlabel(note, fontsize=8)
    if path is not None:
        save_figure(fig, path)
    return fig


def corpus_figure(result, path: str | Path | None, top: int, min_count: int):
    """``CorpusResult.plot``: mean information kept per sentence per layer (with its standard error),
    beside the mean kept information of each layer's ``top`` most kept word types (seen
    ``min_count`` times or more) across all layers: the number the single-sentence views show."""
    from matplotlib.figure import Figure

    path = checked_path(path)
    chosen: list[str] = []
    for name in result.layers:
        chosen += [w for w, _, _ in result.word_ranking(name, min_count)[:top] if w not in chosen]
    fig = Figure(figsize=(max(8.0, 4.0 + 0.5 * len(chosen)), 1.8 + 0.45 * max(len(result.layers), 4)), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, max(1.0, len(chosen) / 6)])
    left.barh(range(len(result.layers)), result.mean_information_kept.numpy(), xerr=result.mean_information_loss_stderr.numpy())
    left.set_yticks(range(len(result.layers)), labels=literal(result.layers))
    left.invert_yaxis()
    left.set_xlabel("mean information kept per sentence (nats)")
    left.set_title(f"{len(result)} sentences")
    if chosen:
        where = {w: v for v, w in enumerate(result.vocabulary)}
        values = result.word_information_kept[:, [where[w] for w in chosen]].numpy()
        image = right.imshow(values, cmap="GnBu", aspect="auto")
        right.set_xticks(range(len(chosen)), labels=literal(chosen), rotation=45, ha="right")
        right.set_yticks(range(len(result.layers)), labels=literal(result.layers))
        right.set_title("most kept words (dark = kept)")
        fig.colorbar(image, ax=right, label="mean information kept (nats)")
    else:
        right.set_axis_off()
        right.set_title(f"no word type occurs {min_count} times")
    if path is not None:
        save_figure(fig, path)
    return fig
