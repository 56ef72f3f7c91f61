"""What every training-loop callback shares: checked settings, one record, resuming a series.

``Recorder`` knows nothing of the loop that calls it: the HF Trainer and Lightning callbacks tell it
the model, the step and the epoch, and give it a TensorBoard writer when the loop has one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._method.settings import SolverSettings
from .._results.load import load
from .._results.sweep import Sweep
from .._results.timeseries import TimeSeries
from .._running.attach import attach
from .._running.hooks import Select
from .._utils.checks import check_positive, check_scale_rate, check_seed, settings_from
from ..errors import InputError, ProbeFileNotFoundError
from ._tensorboard import TensorBoardLog

RECORD_TOL = 0.05
"""The per-record precision (``tol``) unless told: a trend over training compares records many steps
apart, whose changes are larger than a 5% standard error, so a record needs less precision than a
figure in a paper (``tol=0.02``); ``benchmarks/bench_callback.py`` measures what a record costs."""

_CORPUS_BATCH = 64
"""Corpus sentences per padded forward pass when the regularization is recomputed."""


class Recorder:
    """Explains fixed sentences at named layers whenever a training loop asks, into one ``TimeSeries``."""

    def __init__(
        self,
        sentences: str | Sequence[str],
        layers: str | Sequence[str],
        path: str | Path,
        *,
        tokenizer=None,
        every_n_steps: int | None = None,
        on_epoch_end: bool = False,
        at_start: bool = True,
        corpus: Sequence[str] | None = None,
        select: Select | None = None,
        scale: float | None = None,
        rate: float = 0.1,
        seed: int = 0,
        tensorboard: bool = True,
        **solver,
    ) -> None:
        self.sentences = [sentences] if isinstance(sentences, str) else list(sentences)
        if not self.sentences or not all(isinstance(s, str) and s.strip() for s in self.sentences):
            raise InputError("sentences must be one or more non-empty strings, e.g. ['the film was great']")
        self.layers = [layers] if isinstance(layers, str) else list(layers)
        if not self.layers:
            raise InputError("layers must name at least one module, e.g. 'bert.encoder.layer.0' (list them with `probe layers MODEL`)")
        if every_n_steps is not None and (isinstance(every_n_steps, bool) or not isinstance(every_n_steps, int) or every_n_steps < 1):
            raise InputError(f"every_n_steps must be a positive whole number of steps, got {every_n_steps!r}")
        if every_n_steps is None and not on_epoch_end:
            raise InputError(f"{type(self).__name__} records nothing: pass every_n_steps=N, on_epoch_end=True, or both")
        if corpus is not None and (isinstance(corpus, str) or not list(corpus)):
            raise InputError("corpus must be a list of sentences to compute the regularization from, e.g. corpus=train_texts[:200]")
        settings_from(solver, SolverSettings)
        if scale is not None:
            check_scale_rate(scale, rate)
        check_positive("rate", rate)
        check_seed(seed)
        if select is not None and not callable(select):
            raise InputError("select must be a function of the layer's output, e.g. select=lambda h: h[:, 0]")
        if not isinstance(tensorboard, bool):
            raise InputError(f"tensorboard must be True (log each record where the loop logs to TensorBoard) or False, got {tensorboard!r}")
        if tokenizer is not None and not callable(tokenizer):
            raise InputError(f"tokenizer must be a tokenizer (callable on text), got {type(tokenizer).__name__}")
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"{str(self.path)!r} is a folder; give a file name such as {str(self.path / 'timestamps.safetensors')!r}")
        if not self.path.parent.is_dir():
            raise ProbeFileNotFoundError(f"the folder {str(self.path.parent)!r} does not exist; create it before training")
        self.tokenizer = tokenizer
        self.every_n_steps = every_n_steps
        self.record_epoch_end = on_epoch_end
        self.at_start = at_start
        self.corpus = None if corpus is None else list(corpus)
        self.select = select
        self.scale = scale
        self.rate = rate
        self.seed = seed
        self.solver = {"tol": RECORD_TOL, **solver}
        self.tensorboard = tensorboard
        self.series: TimeSeries | None = None
        """What was recorded so far; None before the first record."""
        self.log: TensorBoardLog | None = None
        """Where each record also goes in TensorBoard; None when the loop has no TensorBoard (or ``tensorboard=False``)."""

    def plot(self, path: str | Path | None = None):
        """Sigma / scale per word across the recorded steps (dark = kept), one panel per layer and sentence.

        >>> from probe.callbacks import SnapshotCallback
        >>> cb = SnapshotCallback("a fine film", "encoder.layer.0", tmp / "t.safetensors", every_n_steps=10)
        >>> cb.plot(tmp / "timestamps.png")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        probe.errors.InputError: SnapshotCallback has recorded nothing yet; ...
        """
        if self.series is None:
            raise InputError(f"{type(self).__name__} has recorded nothing yet; plot after training, or probe.load(path).plot()")
        return self.series.plot(path)

    def _begin(self, model, step: int, epoch: float | None) -> None:
        """Checks the layers on the real model, picks up a recorded series, records the start."""
        attach(model, self.layers, select=self.select, tokenizer=self.tokenizer)  # a wrong layer name fails now, not at the first record
        self.series = self._resumed(step) if step > 0 else None
        if self.at_start:
            self._record(model, step, epoch)

    def _due(self, step: int) -> bool:
        return bool(self.every_n_steps) and step % self.every_n_steps == 0

    def _resumed(self, step: int) -> TimeSeries | None:
        """The series in ``path`` up to ``step``, when it records these sentences and layers."""
        if not self.path.is_file():
            return None
        found = load(self.path)
        if not isinstance(found, TimeSeries) or found.sentences != self.sentences or found.layers != self.layers:
            raise InputError(f"{str(self.path)!r} holds other results than this callback's sentences and layers; resume with the same ones or record into another path")
        if (self.scale is not None and self.scale != found.scale) or self.rate != found.rate:
            raise InputError(f"{str(self.path)!r} was recorded at scale {found.scale}, rate {found.rate}; resume with the same scale and rate")
        return found.until(step)

    def _corpus_batches(self):
        """The corpus as padded batches of tokenizer outputs, for ``attach.regularization``."""
        for start in range(0, len(self.corpus), _CORPUS_BATCH):
            yield self.tokenizer(self.corpus[start : start + _CORPUS_BATCH], padding=True, return_tensors="pt")

    def _record(self, model, step: int, epoch: float | None) -> None:
        if self.series is not None and self.series.steps and self.series.steps[-1] == step:
            return  # an epoch end on a step already recorded
        inputs = self.tokenizer(self.sentences, padding=True, return_tensors="pt")
        scale = self.series.scale if self.series is not None else self.scale
        with attach(model, self.layers, select=self.select, tokenizer=self.tokenizer) as p:
            regularization = None if self.corpus is None else p.regularization(self._corpus_batches())
            results: list[Sweep] = p.explain_batch(inputs, regularization=regularization, scale=scale, rate=self.rate, seed=self.seed, **self.solver)
        if self.series is None:
            self.series = TimeSeries.like(results, sentences=self.sentences)
        self.series.append(step, results, epoch=epoch)
        self.series.save(self.path)
        if self.log is not None:
            self.log.record(step, results)

    def _log_to(self, writer) -> None:
        """Logs each record to ``writer`` from now on (None: to no TensorBoard)."""
        self.log = TensorBoardLog(writer) if writer is not None and self.tensorboard else None
