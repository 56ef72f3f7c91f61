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
from .shade import FLOOR

COLORBAR_LABEL = "sigma / scale, log scale (dark = kept, 1 = lost)"


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
):
    """A [rows, words] heatmap of sigma / scale in the seed's colours (dark = kept), on one fixed
    log range [``FLOOR``, 1] so colours compare across plots, words as labels, a colour bar.

    ``new_figure`` makes the empty figure: a plain ``Figure`` by default, so nothing piles up in
    pyplot; ``plt.figure`` for a figure that ``plt.show`` can display on any matplotlib version.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    path = checked_path(path)
    height = 1.6 + 0.45 * len(rows)
    fig = (new_figure or Figure)(figsize=(max(4.0, 0.6 * len(words) + 2.0), height), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.clip(values, FLOOR, 1.0), cmap="GnBu_r", aspect="auto", norm=LogNorm(vmin=FLOOR, vmax=1.0))
    ax.set_xticks(range(len(words)), labels=literal(words), rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), labels=literal(rows))
    ax.set_title(literal([title])[0])
    fig.colorbar(image, ax=ax, label=COLORBAR_LABEL)
    if path is not None:
        save_figure(fig, path)
    return fig


def corpus_figure(result, path: str | Path | None, top: int, min_count: int):
    """``CorpusResult.plot``: mean sentence information loss per layer, beside the mean loss of each
    layer's ``top`` most kept word types (seen ``min_count`` times or more) across all layers."""
    from matplotlib.figure import Figure

    path = checked_path(path)
    chosen: list[str] = []
    for name in result.layers:
        chosen += [w for w, _, _ in result.word_ranking(name, min_count)[:top] if w not in chosen]
    fig = Figure(figsize=(max(8.0, 4.0 + 0.5 * len(chosen)), 1.8 + 0.45 * max(len(result.layers), 4)), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1, max(1.0, len(chosen) / 6)])
    left.barh(range(len(result.layers)), result.mean_information_loss.numpy())
    left.set_yticks(range(len(result.layers)), labels=literal(result.layers))
    left.invert_yaxis()
    left.set_xlabel("mean information loss per sentence (nats)")
    left.set_title(f"{len(result)} sentences")
    if chosen:
        where = {w: v for v, w in enumerate(result.vocabulary)}
        values = result.word_information_loss[:, [where[w] for w in chosen]].numpy()
        image = right.imshow(values, cmap="GnBu_r", aspect="auto")
        right.set_xticks(range(len(chosen)), labels=literal(chosen), rotation=45, ha="right")
        right.set_yticks(range(len(result.layers)), labels=literal(result.layers))
        right.set_title("most kept words (dark = kept)")
        fig.colorbar(image, ax=right, label="mean information loss (nats)")
    else:
        right.set_axis_off()
        right.set_title(f"no word type occurs {min_count} times")
    if path is not None:
        save_figure(fig, path)
    return fig
