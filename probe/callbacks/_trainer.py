"""``SnapshotCallback``: probe's records inside a ``transformers.Trainer``, and in its TensorBoard.

>>> from probe.callbacks import SnapshotCallback
"""

from __future__ import annotations

from transformers import TrainerCallback

from ..errors import InputError
from ._recorder import Recorder
from ._tensorboard import summary_writer, trainer_log_dir


class SnapshotCallback(Recorder, TrainerCallback):
    """Explains fixed probe sentences at named layers while a ``transformers.Trainer`` trains, and
    keeps the results as one time series in a safetensors file: the paper's "timestamps" study.

    It records every ``every_n_steps`` optimizer steps, at the end of each epoch
    (``on_epoch_end=True``), and before the first step (``at_start``), and rewrites ``path``
    atomically after each record. The training does not notice: gradients, optimizer, random
    streams and train mode are left as found, so the weights end bit-identical to a run without it.

    ``sentences`` are explained as one padded batch with ``tokenizer`` (default: the Trainer's
    ``processing_class``). ``scale`` is fixed for the whole series (default: probe's default at
    the first record) and so is the noise (``seed``), so steps compare. ``corpus`` (sentences)
    recomputes the regularization at every record; without it the seed's self-normalisation is used.
    ``select`` and solver settings (``samples``, ``max_steps``, ...) are passed to ``probe.attach``
    and ``explain``; each record is solved to ``tol=0.05`` unless ``tol`` is given. Only the main
    process records. When training resumes from a checkpoint, the series in ``path`` continues from
    that step.

    When the Trainer reports to TensorBoard (``report_to=["tensorboard"]``), each record is also
    logged into the Trainer's TensorBoard folder at the training step: every sentence's
    layer-by-word heatmap as an image (``probe/heatmap/sentence_0``, ...) and its information loss at
    every layer as a scalar (``probe/information_loss/LAYER/sentence_0``, ...); ``tensorboard=False``
    turns that off.

    >>> cb = SnapshotCallback(["the film was great", "a dull plot"], ["bert.encoder.layer.0", "bert.encoder.layer.1"],
    ...                       tmp / "timestamps.safetensors", tokenizer=tokenizer, every_n_steps=50)
    >>> cb.every_n_steps
    50

    Then ``Trainer(model=model, args=args, train_dataset=data, callbacks=[cb]).train()`` and
    ``cb.plot("timestamps.png")``.
    """

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if self.tokenizer is None:
            if processing_class is None or not callable(processing_class):
                raise InputError("SnapshotCallback needs a tokenizer for its sentences: pass tokenizer= or give the Trainer processing_class=tokenizer")
            self.tokenizer = processing_class
        if self.tensorboard and args is not None and "tensorboard" in (args.report_to or []):
            self._log_to(summary_writer(trainer_log_dir(args.output_dir)))
        self._begin(model, state.global_step, state.epoch)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and self._due(state.global_step):
            self._record(model, state.global_step, state.epoch)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and self.record_epoch_end:
            self._record(model, state.global_step, state.epoch)

    def on_train_end(self, args, state, control, **kwargs):
        if self.log is not None:
            self.log.writer.close()
            self._log_to(None)


__all__ = ["SnapshotCallback"]
