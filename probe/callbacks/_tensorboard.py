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


def figure_pixels(figure) -> np.ndarray:
    """A matplotlib figure as an RGB array [height, width, 3], drawn without pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def log_record(writer, step: int, results: Sequence[Sweep]) -> None:
    """Writes one record of ``results`` (one Sweep per sentence) at ``step`` and flushes."""
    for i, sweep in enumerate(results):
        writer.add_image(heatmap_tag(i), figure_pixels(sweep.plot()), step, dataformats="HWC")
        for layer, loss in zip(sweep.layers, sweep.information_loss.sum(-1).tolist()):
            writer.add_scalar(loss_tag(layer, i), loss, step)
    writer.flush()


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
