"""``LightningSnapshotCallback``: probe's records inside a Lightning ``Trainer``, and in its
TensorBoard logger (optional extra ``lightning``).

>>> from probe.callbacks import LightningSnapshotCallback
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch import Callback
from lightning.pytorch.loggers import TensorBoardLogger

from ..errors import InputError
from ._recorder import Recorder


class LightningSnapshotCallback(Recorder, Callback):
    """``SnapshotCallback`` for Lightning: explains fixed probe sentences at named layers while a
    ``lightning.pytorch.Trainer`` fits, into one time series in a safetensors file.

    The same arguments and the same behaviour as ``probe.callbacks.SnapshotCallback``: it records
    every ``every_n_steps`` optimizer steps (``trainer.global_step``), at the end of each training
    epoch (``on_epoch_end=True``) and before the first step (``at_start``); the training does not
    notice; only global rank 0 records; a fit resumed from a checkpoint continues the series in
    ``path``. ``tokenizer`` is required (Lightning has no processing class).

    The layers are named inside ``module``, the attribute of the ``LightningModule`` that holds the
    model to explain (e.g. ``module="model"`` with layers ``"bert.encoder.layer.0"``); without it
    they are named inside the ``LightningModule`` itself, whose ``forward`` must then take the
    tokenizer's output as keywords, and it is explained as a model of its own (probe warns when it
    holds a model an adapter knows). When the trainer has a ``TensorBoardLogger``, each record is
    also logged to it at the step: every sentence's layer-by-word heatmap as an image
    (``probe/heatmap/sentence_0``, ...) and its information loss at every layer as a scalar
    (``probe/information_loss/LAYER/sentence_0``, ...); ``tensorboard=False`` turns that off.

    >>> cb = LightningSnapshotCallback(["the film was great", "a dull plot"], ["bert.encoder.layer.0"],
    ...                                tmp / "lightning.safetensors", tokenizer=tokenizer, module="model", every_n_steps=50)
    >>> cb.module, cb.every_n_steps
    ('model', 50)

    Then ``lightning.pytorch.Trainer(callbacks=[cb]).fit(lit_module, loader)`` and ``cb.plot("timestamps.png")``.
    """

    def __init__(self, sentences: str | Sequence[str], layers: str | Sequence[str], path: str | Path, *, module: str | None = None, **options) -> None:
        super().__init__(sentences, layers, path, **options)
        if self.tokenizer is None:
            raise InputError("LightningSnapshotCallback needs a tokenizer for its sentences: pass tokenizer=")
        if module is not None and not (isinstance(module, str) and module):
            raise InputError(f"module must name the LightningModule's attribute that holds the model, e.g. module='model', got {module!r}")
        self.module = module

    def _model(self, pl_module):
        if self.module is None:
            return pl_module
        try:
            return pl_module.get_submodule(self.module)
        except AttributeError:
            children = ", ".join(name for name, _ in pl_module.named_children()) or "none"
            raise InputError(f"the LightningModule has no submodule {self.module!r}; its children: {children}") from None

    def _epoch(self, trainer, batch_idx: int) -> float:
        batches = trainer.num_training_batches
        done = (batch_idx + 1) / batches if isinstance(batches, int) and batches > 0 else 0.0
        return trainer.current_epoch + done

    def on_train_start(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        self._log_to(loggers[0].experiment if loggers else None)
        self._begin(self._model(pl_module), trainer.global_step, float(trainer.current_epoch))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if trainer.is_global_zero and self._due(trainer.global_step):
            self._record(self._model(pl_module), trainer.global_step, self._epoch(trainer, batch_idx))

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and self.record_epoch_end:
            self._record(self._model(pl_module), trainer.global_step, float(trainer.current_epoch + 1))

    def on_train_end(self, trainer, pl_module) -> None:
        self._log_to(None)  # the logger's own writer: Lightning closes it


__all__ = ["LightningSnapshotCallback"]
