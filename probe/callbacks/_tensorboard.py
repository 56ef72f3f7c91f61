"""One record in TensorBoard: each sentence's layer-by-word heatmap as an image, and each layer's
information loss as a scalar, at the training step; and where the HF Trainer's TensorBoard log is.

Tags: ``probe/heatmap/sentence_{i}`` (an RGB image, the picture ``Sweep.plot`` draws) and
``probe/information_loss/{layer}/sentence_{i}`` (the sentence's total information loss at that
layer, nats: the sum over its tokens, the paper's measure of how much the layer has dropped).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._results.sweep import Sweep


def heatmap_tag(sentence: int) -> str:
    return f"probe/heatmap/sentence_{sentence}"


def loss_tag(layer: str, sentence: int) -> str:
    return f"probe/information_loss/{layer}/sentence_{sentence}"


def signature(figure, sweep: Sweep) -> tuple:
    """What the heatmap of ``sweep`` shows besides its cells: its size, its colour range, its labels
    (the words, the layers and whether each converged) and every title and text of its axes."""
    image = figure.axes[0].images[0]
    texts = tuple((ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), *(t.get_text() for t in ax.texts)) for ax in figure.axes)
    labels = tuple(sweep.words), tuple(sweep.layers), tuple(sweep[layer].converged for layer in sweep.layers)
    return tuple(figure.get_size_inches()), image.norm.vmin, image.norm.vmax, texts, labels


class Heatmap:
    """A heatmap figure drawn once, whose cells can then be redrawn alone.

    The figure (``Sweep.plot``) is laid out and drawn once without what lies on its cells (the
    image, the axes' frame, any text on the cells); ``pixels`` restores that background and draws
    just those on top, in the order a full draw uses: the pixels of a full draw (the tests compare
    them) without a constrained layout each time.
    """

    def __init__(self, figure, signature: tuple) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        self.signature = signature
        self.canvas = FigureCanvasAgg(figure)
        self.axes = figure.axes[0]
        self.front = sorted([*self.axes.images, *self.axes.spines.values(), *self.axes.texts], key=lambda artist: artist.get_zorder())
        for artist in self.front:
            artist.set_visible(False)
        self.canvas.draw()
        figure.set_layout_engine("none")  # keep the positions the layout found
        self.background = self.canvas.copy_from_bbox(figure.bbox)
        for artist in self.front:
            artist.set_visible(True)

    def pixels(self, cells: np.ndarray) -> np.ndarray:
        """The heatmap with ``cells`` (the image's values) as an RGB array [height, width, 3]."""
        self.axes.images[0].set_data(cells)
        self.canvas.restore_region(self.background)
        for artist in self.front:
            self.axes.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


class TensorBoardLog:
    """Writes records to a TensorBoard ``SummaryWriter``.

    A sentence's heatmap usually differs from record to record in its cells alone (the same words,
    layers, colour range and texts), so its drawn figure is kept and only the cells redrawn; when
    anything else differs, the new figure is drawn in full and kept instead.
    """

    def __init__(self, writer) -> None:
        self.writer = writer
        self._heatmaps: dict[int, Heatmap] = {}

    def heatmap(self, sentence: int, sweep: Sweep) -> np.ndarray:
        figure = sweep.plot()
        shown = signature(figure, sweep)
        kept = self._heatmaps.get(sentence)
        if kept is None or kept.signature != shown:
            kept = self._heatmaps[sentence] = Heatmap(figure, shown)
        return kept.pixels(figure.axes[0].images[0].get_array())

    def record(self, step: int, results: Sequence[Sweep]) -> None:
        """Writes one record of ``results`` (one Sweep per sentence) at ``step`` and flushes."""
        for i, sweep in enumerate(results):
            self.writer.add_image(heatmap_tag(i), self.heatmap(i, sweep), step, dataformats="HWC")
            for layer, loss in zip(sweep.layers, sweep.information_loss.sum(-1).tolist()):
                self.writer.add_scalar(loss_tag(layer, i), loss, step)
        self.writer.flush()


def trainer_log_dir(output_dir: str | os.PathLike) -> Path:
    """The folder the Trainer's ``TensorBoardCallback`` writes to in this process.

    It is ``$TENSORBOARD_LOGGING_DIR`` when set, else a fresh ``output_dir/runs/DATE_HOST`` whose
    writer has already written its first event file (the Trainer's own callbacks begin before the
    user's): the newest such folder holding an event file of this process. Without one (the
    Trainer's writer not started yet) a folder of that pattern is made for probe's events.
    """
    chosen = os.getenv("TENSORBOARD_LOGGING_DIR")
    if chosen:
        return Path(chosen).expanduser()
    runs = Path(output_dir) / "runs"
    ours = sorted(runs.glob(f"*/events.out.tfevents.*.{os.getpid()}.*"), key=lambda f: f.stat().st_mtime)
    if ours:
        return ours[-1].parent
    from transformers.integrations.integration_utils import default_logdir

    return Path(output_dir) / default_logdir()


def summary_writer(log_dir: str | os.PathLike):
    """A ``SummaryWriter`` appending a new event file to ``log_dir``."""
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(log_dir))
