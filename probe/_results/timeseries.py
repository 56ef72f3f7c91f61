"""``TimeSeries``: per-word sigma of fixed sentences at several training steps, one safetensors file.

File layout (kind ``timeseries``): tensors ``sigma.{i}`` [steps, layers, tokens], its standard error
``stderr.{i}`` and ``information_loss.{i}`` (same shape, nats) for sentence ``i``; metadata ``steps``, ``epochs``,
``layers``, ``words`` (one list per sentence), ``sentences``, ``scale``, ``rate``, ``width`` and the
solver ``settings``, all JSON or plain numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .._utils import reading as read
from .._utils.text import visible
from .._utils.files import save_figure, setting_metadata, write_tensors
from .load import reads
from .._views.plots import COLORBAR_LABEL
from .explanation import Explanation, check_pieces, check_stderr, piece_kept, piece_losses
from .._views.shade import range_note, span
from .sweep import Sweep
from .._views.viewable import Viewable
from .words import by_word
from ..errors import FileFormatError, InputError

Results = Sequence[Explanation | Sweep]
"""What ``probe.snapshot_batch`` or ``p.explain_batch`` return: one result per sentence."""


@reads("timeseries")
@dataclass
class TimeSeries(Viewable):
    """Per-word sigma of fixed probe sentences over training; ``sigma[i]`` is [steps, layers, tokens].

    ``SnapshotCallback`` writes one; ``probe.load`` reads it back. Build one by hand from the results
    of ``probe.snapshot_batch`` with ``like`` and ``append``. ``convergence[k]`` is [layers,
    sentences]: which solves of step ``k`` converged. One ``scale`` serves every step, so sigma and
    the information loss compare across steps.

    >>> inputs = tokenizer(["a fine film", "a dull plot"], padding=True, return_tensors="pt")
    >>> layers = ["encoder.layer.0", "encoder.layer.1"]
    >>> series = probe.TimeSeries.like(probe.snapshot_batch(model, inputs, layers, scale=1.0, samples=4, max_steps=2))
    >>> for step in (0, 20):
    ...     series.append(step, probe.snapshot_batch(model, inputs, layers, scale=1.0, samples=4, max_steps=2))
    >>> series.steps, series.layers
    ([0, 20], ['encoder.layer.0', 'encoder.layer.1'])
    >>> series.sigma[0].shape          # sentence 0: [steps, layers, tokens]
    torch.Size([2, 2, 5])
    >>> fig = series.plot(tmp / "timestamps.png")
    """

    layers: list[str]
    words: list[list[str]]
    scale: float
    rate: float
    width: int
    sentences: list[str] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)
    epochs: list[float] = field(default_factory=list)
    sigma: list[torch.Tensor] = field(default_factory=list)
    settings: dict[str, str] = field(default_factory=dict)
    convergence: torch.Tensor | None = None
    pieces: list[list[int]] | None = None
    """After ``by_word``: per sentence, how many word pieces each word merges."""
    stderr: list[torch.Tensor] | None = None
    """Per sentence, the standard error of each sigma, [steps, layers, tokens] (NaN: not known)."""

    def __post_init__(self) -> None:
        if not self.sigma:
            self.sigma = [torch.zeros(len(self.steps), len(self.layers), len(w)) for w in self.words]
        self.sigma = [s.detach().to("cpu", torch.float32) for s in self.sigma]
        if self.stderr is not None and len(self.stderr) != len(self.sigma):
            raise InputError(f"stderr has {len(self.stderr)} tensors for {len(self.sigma)} sentences; pass one per sentence")
        self.stderr = [check_stderr(None if self.stderr is None else e, s, f"sigma[{i}]") for i, (s, e) in enumerate(zip(self.sigma, self.stderr or [None] * len(self.sigma)))]
        shape = (len(self.steps), len(self.layers), len(self.words))
        self.convergence = torch.zeros(shape, dtype=torch.bool) if self.convergence is None else torch.as_tensor(self.convergence, dtype=torch.bool)
        check_pieces(self.pieces, self.words)
        if self.convergence.shape != shape:
            raise InputError(f"convergence has shape {tuple(self.convergence.shape)}, expected [steps, layers, sentences] = {shape}")
        if len(self.sigma) != len(self.words) or (self.sentences and len(self.sentences) != len(self.words)):
            raise InputError(f"{len(self.words)} word lists, {len(self.sigma)} sigma tensors and {len(self.sentences)} sentences; pass one of each per sentence")
        if len(self.epochs) != len(self.steps):
            raise InputError(f"{len(self.steps)} steps but {len(self.epochs)} epochs; pass one epoch per step")
        for i, (s, w) in enumerate(zip(self.sigma, self.words)):
            if tuple(s.shape) != (len(self.steps), len(self.layers), len(w)):
                raise InputError(f"sigma[{i}] has shape {tuple(s.shape)}, expected [steps, layers, tokens] = {(len(self.steps), len(self.layers), len(w))}")

    @classmethod
    def like(cls, results: Results, *, sentences: Sequence[str] = ()) -> "TimeSeries":
        """An empty series for the sentences, layers, words and scale of ``results`` (what
        ``probe.sweep`` returns: an Explanation, a Sweep, or one of them per sentence).

        >>> TimeSeries.like(probe.snapshot_batch(model, inputs, layers, scale=1.0, samples=4, max_steps=2)).steps
        []
        """
        sweeps = _as_sweeps(results)
        first = next(iter(sweeps[0].values()))
        settings = {k: v for k, v in first.settings.items() if k != "seed"}
        return cls(layers=sweeps[0].layers, words=[s.words for s in sweeps], scale=first.scale, rate=first.rate, width=first.width, sentences=list(sentences), settings=settings)

    def append(self, step: int, results: Results, *, epoch: float | None = None) -> None:
        """Adds the results of one training step; they must explain this series' sentences and layers
        at its scale, and ``step`` must come after the last one.

        >>> series.append(100, probe.snapshot_batch(model, inputs, layers, scale=series.scale, samples=4, max_steps=2), epoch=0.5)
        """
        sweeps = _as_sweeps(results)
        if self.steps and step <= self.steps[-1]:
            raise InputError(f"step {step} is not after the last recorded step {self.steps[-1]}; append steps in training order")
        if len(sweeps) != len(self.words):
            raise InputError(f"the series has {len(self.words)} sentences but the results explain {len(sweeps)}; explain the same sentences every step")
        for i, s in enumerate(sweeps):
            if s.layers != self.layers or s.words != self.words[i]:
                raise InputError(f"sentence {i} explains layers {s.layers} and words {s.words}, but the series holds {self.layers} and {self.words[i]}; explain the same layers and sentences every step")
            for e in s.values():
                if (e.scale, e.rate, e.width) != (self.scale, self.rate, self.width):
                    raise InputError(f"results at scale {e.scale}, rate {e.rate}, width {e.width} differ from the series' {self.scale}, {self.rate}, {self.width}; pass scale=series.scale, rate=series.rate")
        self.steps.append(int(step))
        self.epochs.append(float("nan") if epoch is None else float(epoch))
        self.sigma = [torch.cat([old, s.sigma[None]]) for old, s in zip(self.sigma, sweeps)]
        self.stderr = [torch.cat([old, s.stderr[None]]) for old, s in zip(self.stderr, sweeps)]
        done = torch.tensor([[s[name].converged for s in sweeps] for name in self.layers], dtype=torch.bool)
        self.convergence = torch.cat([self.convergence, done[None]])

    def until(self, step: int) -> "TimeSeries":
        """The series up to and including ``step`` (to continue it when training resumes there).

        >>> series.until(20).steps
        [0, 20]
        """
        keep = sum(1 for s in self.steps if s <= step)
        return TimeSeries(
            layers=list(self.layers), words=[list(w) for w in self.words], scale=self.scale, rate=self.rate,
            width=self.width, sentences=list(self.sentences), steps=self.steps[:keep],
            epochs=self.epochs[:keep], sigma=[s[:keep] for s in self.sigma], stderr=[e[:keep] for e in self.stderr], settings=dict(self.settings),
            convergence=self.convergence[:keep], pieces=self.pieces,
        )

    @property
    def converged(self) -> bool:
        """Whether every solve of every recorded step converged (``convergence`` says which did not)."""
        return bool(self.convergence.all())

    @property
    def information_loss(self) -> list[torch.Tensor]:
        """Per-word information loss ``H_i = K/2 log(2 pi e) + K log sigma_i`` (nats), per sentence [steps, layers, tokens]."""
        return [piece_losses(s, self.width, None if self.pieces is None else self.pieces[i]) for i, s in enumerate(self.sigma)]

    @property
    def information_kept(self) -> list[torch.Tensor]:
        """Information kept relative to the ceiling, ``K log(scale / sigma)`` nats per word, per
        sentence [steps, layers, tokens], never negative.

        >>> all(bool((k >= 0).all()) for k in series.information_kept)
        True
        """
        return [piece_kept(s, self.scale, self.width, None if self.pieces is None else self.pieces[i]) for i, s in enumerate(self.sigma)]

    def by_word(self, special: bool = True) -> "TimeSeries":
        """Every sentence with word pieces merged into words (see ``Explanation.by_word``).

        >>> series.by_word(special=False).words
        [['a', 'fine', 'film'], ['a', 'dull', 'plot']]
        """
        if self.pieces is not None:
            return self
        merged = [by_word(w, s, self.width, None, special, stderr=e) for w, s, e in zip(self.words, self.sigma, self.stderr)]
        return replace(self, words=[m.words for m in merged], sigma=[m.sigma for m in merged], stderr=[m.stderr for m in merged], pieces=[m.pieces.tolist() for m in merged])

    @property
    def relative_sigma(self) -> list[torch.Tensor]:
        """``sigma / scale`` in (0, 1] per sentence; near 1, the layer has lost the word at that step."""
        return [s / self.scale for s in self.sigma]

    def __repr__(self) -> str:
        return f"TimeSeries(steps={self.steps}, layers={self.layers}, sentences={len(self.words)})"

    def save(self, path: str | Path) -> None:
        """Writes the series into one safetensors file (atomically); ``probe.load`` reads it back.

        >>> series.save(tmp / "timestamps.safetensors")
        """
        tensors: dict[str, torch.Tensor] = {"converged": self.convergence}
        for i, (s, e, h) in enumerate(zip(self.sigma, self.stderr, self.information_loss)):
            tensors[f"sigma.{i}"], tensors[f"stderr.{i}"], tensors[f"information_loss.{i}"] = s, e, h
        meta = {
            "kind": "timeseries",
            "layers": json.dumps(self.layers),
            "words": json.dumps(self.words),
            "sentences": json.dumps(self.sentences),
            "steps": json.dumps(self.steps),
            "epochs": json.dumps([None if e != e else e for e in self.epochs]),
            "pieces": json.dumps(self.pieces),
            **setting_metadata(self.scale, self.rate, self.width, self.settings),
        }
        write_tensors(path, tensors, meta)

    @classmethod
    def _from_file(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: str) -> "TimeSeries":
        common = read.settings(meta, path)
        words = read.word_lists(read.json_value(meta, "words", path), path)
        try:
            sigma = [read.sigma({"sigma": tensors[f"sigma.{i}"]}, path, 3, common["scale"]) for i in range(len(words))]
            stderr = [read.stderr(tensors, f"stderr.{i}", s.shape, path, say=i == 0) for i, s in enumerate(sigma)]
            return cls(
                layers=json.loads(meta["layers"]),
                words=words,
                sentences=json.loads(meta.get("sentences", "[]")),
                steps=[int(s) for s in json.loads(meta["steps"])],
                epochs=[float("nan") if e is None else float(e) for e in json.loads(meta["epochs"])],
                sigma=sigma,
                stderr=stderr,
                convergence=tensors.get("converged"),
                pieces=read.json_value(meta, "pieces", path, "null"),
                **common,
            )
        except (KeyError, ValueError, TypeError, InputError) as err:
            raise FileFormatError(f"{path!r}: the time series is damaged ({err}); record it again") from None

    def table(self, columns: int = 6) -> str:
        """Sigma / scale of each word (rows) at up to ``columns`` recorded steps (evenly chosen, the
        last included), per sentence and layer; small = kept.

        >>> print(series.table())  # doctest: +ELLIPSIS
        time series: 2 steps, ...
        """
        chosen = sorted({round(k * (len(self.steps) - 1) / max(columns - 1, 1)) for k in range(min(columns, len(self.steps)))})
        lines = [f"time series: {len(self.steps)} steps, {len(self.layers)} layers, {len(self.words)} sentences; sigma / scale (small = kept)"]
        for i, (words, relative) in enumerate(zip(self.words, self.relative_sigma)):
            words = [visible(w) for w in words]
            width = max([4, *(len(w) for w in words)])
            for j, layer in enumerate(self.layers):
                lines.append(f"\nsentence {i}, layer {visible(layer)}")
                lines.append(f"{'step':<{width}}  " + "  ".join(f"{self.steps[k]:>7}" for k in chosen))
                for t, word in enumerate(words):
                    lines.append(f"{word:<{width}}  " + "  ".join(f"{float(relative[k, j, t]):>7.3f}" for k in chosen))
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None):
        """Sigma / scale per word across training steps, one panel per layer (columns) and sentence
        (rows): words down, recorded steps across, dark = kept, light (1) = lost; with a path, a PNG.

        >>> fig = series.plot(tmp / "timestamps.png")
        """
        from matplotlib.colors import LogNorm
        from matplotlib.figure import Figure

        from .._views.plots import checked_path, literal

        if not self.steps:
            raise InputError("the time series has no steps yet; record at least one before plotting")
        path = checked_path(path)
        rows, cols, count = len(self.words), len(self.layers), len(self.steps)
        tallest = max(len(w) for w in self.words)
        fig = Figure(figsize=(1.5 + cols * (2.0 + min(0.3 * count, 6.0)), 1.0 + rows * (0.8 + 0.25 * tallest)), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False)
        ticks = list(range(0, count, math.ceil(count / 8)))
        low, high = span(torch.cat([r.flatten() for r in self.relative_sigma]).tolist())
        for i, (words, relative) in enumerate(zip(self.words, self.relative_sigma)):
            for j, layer in enumerate(self.layers):
                ax = axes[i][j]
                image = ax.imshow(relative[:, j].T.clamp(low, high).numpy(), cmap="GnBu_r", aspect="auto", norm=LogNorm(vmin=low, vmax=high), interpolation="nearest")
                ax.set_yticks(range(len(words)), labels=literal(words) if j == 0 else [""] * len(words))
                ax.set_xticks(ticks, labels=[str(self.steps[t]) for t in ticks])
                if i == 0:
                    ax.set_title(literal([layer])[0])
                if i == rows - 1:
                    ax.set_xlabel("training step")
        fig.colorbar(image, ax=axes, label=COLORBAR_LABEL)
        fig.suptitle(f"information per word across training\n{range_note((low, high))}", fontsize=10)
        if path is not None:
            save_figure(fig, path)
        return fig


def _as_sweeps(results: Results) -> list[Sweep]:
    """One Sweep per sentence from what ``snapshot_batch`` returns (a list of Explanations or Sweeps)."""
    if isinstance(results, (Explanation, Sweep)) or not isinstance(results, Sequence):
        raise InputError("pass one result per sentence, as a list: what probe.snapshot_batch or p.explain_batch return")
    items = list(results)
    if not items or not all(isinstance(r, (Explanation, Sweep)) for r in items):
        raise InputError("pass what probe.snapshot_batch returns: a list of Explanations or Sweeps, one per sentence")
    return [Sweep({r.layer: r}) if isinstance(r, Explanation) else r for r in items]


__all__ = ["TimeSeries"]
