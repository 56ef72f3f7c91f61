"""Heatmaps of sigma over words, drawn without pyplot's global state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ._shade import FLOOR

COLORBAR_LABEL = "sigma / scale, log scale (dark = kept, 1 = lost)"


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

    height = 1.6 + 0.45 * len(rows)
    fig = (new_figure or Figure)(figsize=(max(4.0, 0.6 * len(words) + 2.0), height), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(np.clip(values, FLOOR, 1.0), cmap="GnBu_r", aspect="auto", norm=LogNorm(vmin=FLOOR, vmax=1.0))
    ax.set_xticks(range(len(words)), labels=words, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), labels=rows)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=COLORBAR_LABEL)
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig
