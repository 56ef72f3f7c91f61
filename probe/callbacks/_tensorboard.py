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
from .._views.shade import FLOOR


def heatmap_tag(sentence: int) -> str:
    return f"probe/heatmap/sentence_{sentence}"


def loss_tag(layer: str, sentence: int) -> str:
    return f"probe/information_loss/{layer}/sentence_{sentence}"


class Heatmap:
    """One sentence's heatmap, redrawn cheaply at every record.

    The words, layers and colour range stay the same from record to record, so only the image's
    values change: the figure (``Sweep.plot``) is laid out and drawn once without its image and the
    axes' frame, and each record restores that background and draws just those on top, in the order
    a full draw uses. The pixels are those of a fresh ``Sweep.plot`` (the tests compare them), at a
    small fraction of the cost of a constrained layout per record.
    """

    def __init__(self, sweep: Sweep) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        figure = sweep.plot()
        self.canvas = FigureCanvasAgg(figure)
        self.axes = figure.axes[0]
        self.front = [self.axes.images[0], *self.axes.spines.values()]
        for artist in self.front:
            artist.set_visible(False)
        self.canvas.draw()
        figure.set_layout_engine("none")  # keep the positions the layout found
        self.background = self.canvas.copy_from_bbox(figure.bbox)
        for artist in self.front:
            artist.set_visible(True)

    def pixels(self, sweep: Sweep) -> np.ndarray:
        """The heatmap of ``sweep`` as an RGB array [height, width, 3]."""
        self.axes.images[0].set_data(np.clip(sweep.relative_sigma.numpy(), FLOOR, 1.0))
        self.canvas.restore_region(self.background)
        for artist in self.front:
            self.axes.draw_artist(artist)
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


class TensorBoardLog:
    """Writes records to a TensorBoard ``SummaryWriter``, keeping one ``Heatmap`` per sentence."""

    def __init__(self, writer) -> None:
        self.writer = writer
        self._heatmaps: dict[int, Heatmap] = {}

    def record(self, step: int, results: Sequence[Sweep]) -> None:
        """Writes one record of ``results`` (one Sweep per sentence) at ``step`` and flushes."""
        for i, sweep in enumerate(results):
            if i not in self._heatmaps:
                self._heatmaps[i] = Heatmap(sweep)
            self.writer.add_image(heatmap_tag(i), self._heatmaps[i].pixels(sweep), step, dataformats="HWC")
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
