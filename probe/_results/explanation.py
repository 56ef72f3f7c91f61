"""``Explanation``: how much of each word one hidden state keeps; a plain safetensors file."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from .._utils import reading as read
from .._utils.checks import check_scale_rate, check_words
from .._utils.files import setting_metadata, write_tensors
from .load import reads
from .._method.objective import information_loss
from .._views.viewable import Viewable
from .words import by_word
from ..errors import InputError


def piece_losses(sigma: torch.Tensor, width: int, pieces: Sequence[int] | None) -> torch.Tensor:
    """Information loss per token, or per word of ``pieces`` word pieces: the sum of its pieces' losses,
    which is ``pieces`` times the loss of their geometric-mean sigma. [..., tokens or words]."""
    loss = information_loss(sigma, width)
    return loss if pieces is None else loss * torch.tensor(pieces, dtype=loss.dtype)


def check_pieces(pieces, words: Sequence[Sequence[str]]) -> None:
    """Piece counts of several sentences: None, or one whole number of at least 1 per word."""
    if pieces is not None and not (
        isinstance(pieces, list)
        and [len(p) if isinstance(p, list) else -1 for p in pieces] == [len(w) for w in words]
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for p in pieces for n in p)
    ):
        raise InputError("pieces must give one piece count (at least 1) per word of every sentence")


@reads("explanation")
@dataclass
class Explanation(Viewable):
    """How much of each word one hidden state keeps: per-word sigma, small = kept.

    >>> exp = probe.explain(lambda x: x.sum(0), torch.randn(3, 8), words=["a", "b", "c"])
    >>> exp.sigma.shape, exp.words
    (torch.Size([3]), ['a', 'b', 'c'])
    >>> exp.save(tmp / "a.safetensors"); probe.load(tmp / "a.safetensors").words
    ['a', 'b', 'c']
    """

    sigma: torch.Tensor
    words: list[str]
    scale: float
    rate: float
    width: int
    layer: str = ""
    regularization: torch.Tensor | None = None
    loss: float = math.nan
    converged: bool = False
    steps: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    curve: list[float] = field(default_factory=list)
    word_ids: list[int | None] | None = None
    """For each token, the index of the word it is a piece of (None for special tokens), when the
    tokenizer said; ``by_word`` uses it."""
    pieces: list[int] | None = None
    """After ``by_word``: how many word pieces each word merges (its sigma is their geometric mean)."""

    def __post_init__(self) -> None:
        if not isinstance(self.sigma, torch.Tensor) or not self.sigma.is_floating_point():
            raise InputError(f"sigma must be a float tensor of one value per word, got {type(self.sigma).__name__}")
        self.sigma = self.sigma.detach().to("cpu", torch.float32)
        self.scale, self.rate = check_scale_rate(self.scale, self.rate)
        if isinstance(self.width, bool) or not isinstance(self.width, int) or self.width < 1:
            raise InputError(f"width (the embedding width K) must be a whole number of at least 1, got {self.width!r}")
        if isinstance(self.words, (str, bytes)) or not isinstance(self.words, Sequence):
            raise InputError(f"words must be a list of strings, one per word, got {type(self.words).__name__}")
        self.words, self.layer = check_words(self.words, len(self.words)), str(self.layer)
        if self.sigma.ndim != 1 or len(self.words) != len(self.sigma):
            raise InputError(f"words has {len(self.words)} entries but sigma has shape {tuple(self.sigma.shape)}; pass one word per token")
        if self.sigma.numel() and not (torch.isfinite(self.sigma).all() and (self.sigma > 0).all() and (self.sigma <= self.scale * (1 + 1e-5)).all()):
            raise InputError(f"sigma must lie in (0, scale = {self.scale:g}]; it is a noise scale that never exceeds the ceiling")
        if self.word_ids is not None and len(self.word_ids) != len(self.words):
            raise InputError(f"word_ids has {len(self.word_ids)} entries for {len(self.words)} tokens; pass one per token")
        check_pieces(None if self.pieces is None else [self.pieces], [self.words])

    @classmethod
    def of(cls, solution, **fields) -> "Explanation":
        """The Explanation of one solver ``Solution``; ``fields`` are the rest (words, scale, ...)."""
        return cls(sigma=solution.sigma, loss=solution.loss, converged=solution.converged, steps=solution.steps, curve=solution.curve, **fields)

    @property
    def information_loss(self) -> torch.Tensor:
        """Per-word information loss ``H_i = K/2 log(2 pi e) + K log sigma_i`` in nats, [tokens].

        >>> exp.information_loss.shape
        torch.Size([3])
        """
        return piece_losses(self.sigma, self.width, self.pieces)

    @property
    def total_information_loss(self) -> float:
        """The sentence's information loss: the sum over its words, in nats.

        >>> exp.total_information_loss == float(exp.information_loss.double().sum())
        True
        """
        return float(self.information_loss.to(torch.float64).sum())

    @property
    def relative_sigma(self) -> torch.Tensor:
        """``sigma / scale`` in (0, 1], [tokens]: near 1, the word's information is lost at this layer.

        >>> exp.relative_sigma.shape
        torch.Size([3])
        """
        return self.sigma / self.scale

    @property
    def layers(self) -> list[str]:
        """The explained layer, as a list like every result kind's.

        >>> exp.layers
        ['']
        """
        return [self.layer]

    def by_word(self, special: bool = True) -> "Explanation":
        """The words the user wrote instead of the tokenizer's pieces: a word's information loss is the
        sum of its pieces' (independent noise), its sigma their geometric mean. Word boundaries come
        from the tokenizer when it said (``word_ids``), else from the ``##``, ``Ġ`` and ``▁``
        conventions; ``special=False`` drops special tokens such as [CLS] and [SEP].

        >>> memorable = probe.Explanation(sigma=torch.tensor([0.5, 0.1, 0.4, 0.5]), words=["[CLS]", "memo", "##rable", "[SEP]"], scale=1.0, rate=0.1, width=4)
        >>> words = memorable.by_word(special=False)
        >>> words.words, words.pieces
        (['memorable'], [2])
        >>> torch.allclose(words.information_loss, memorable.information_loss[1:3].sum())
        True
        """
        if self.pieces is not None:
            return self
        merged = by_word(self.words, self.sigma, self.width, self.word_ids, special)
        return replace(self, sigma=merged.sigma, words=merged.words, word_ids=None, pieces=merged.pieces.tolist())

    def table(self, bar_width: int = 30) -> str:
        """A per-word table: word, sigma, sigma/scale, information loss, and a bar (longer = kept more).

        >>> print(exp.table())  # doctest: +ELLIPSIS
        explanation
        word ...
        """
        from .._utils.text import visible

        title = f"layer {visible(self.layer)}" if self.layer else "explanation"
        words = [visible(w) for w in self.words]
        width = max([4, *(len(w) for w in words)])
        lines = [title, f"{'word':<{width}}  {'sigma':>10}  {'sigma/scale':>11}  {'info loss':>10}  kept"]
        for word, s, rel, h in zip(words, self.sigma.tolist(), self.relative_sigma.tolist(), self.information_loss.tolist()):
            bar = "#" * round(max(0.0, 1.0 - rel) * bar_width)
            lines.append(f"{word:<{width}}  {s:>10.4g}  {rel:>11.3f}  {h:>10.1f}  {bar}")
        lines.append(f"total information loss {self.total_information_loss:.1f} nats; converged {self.converged} after {self.steps} steps")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None):
        """The seed's word heatmap of sigma / scale (dark = kept) with a colour bar; with a path, also a PNG.

        >>> fig = exp.plot(tmp / "exp.png")
        """
        return self._heatmap(path)

    def _heatmap(self, path: str | Path | None = None, new_figure=None):
        """``plot``, with the figure made by ``new_figure`` (``plt.figure`` for ``plt.show``)."""
        from .._views.plots import word_heatmap

        return word_heatmap(self.relative_sigma[None].numpy(), self.words, [self.layer], "sigma / scale", path, new_figure)

    def save(self, path: str | Path) -> None:
        """Writes a plain safetensors file (atomically); ``probe.load`` reads it back.

        Tensors ``sigma``, ``information_loss``, ``loss_curve`` and, when given, ``regularization``;
        string metadata ``words`` (JSON list), ``layer``, ``scale``, ``rate``, ``width``, ``loss``,
        ``converged``, ``steps``, ``settings`` (JSON), ``word_ids``, ``format``, ``format_version``
        and ``probe_version``, so any safetensors reader can use the file.

        >>> exp.save(tmp / "exp.safetensors")
        """
        tensors = {"sigma": self.sigma, "information_loss": self.information_loss, "loss_curve": torch.tensor(self.curve, dtype=torch.float64)}
        if self.regularization is not None:
            tensors["regularization"] = self.regularization.detach().cpu().contiguous()
        write_tensors(path, tensors, {"kind": "explanation", **self._metadata()})

    def _metadata(self) -> dict[str, str]:
        return {
            "words": json.dumps(self.words),
            "layer": self.layer,
            "loss": repr(float(self.loss)),
            "converged": json.dumps(bool(self.converged)),
            "steps": str(self.steps),
            "word_ids": json.dumps(self.word_ids),
            "pieces": json.dumps(self.pieces),
            **setting_metadata(self.scale, self.rate, self.width, self.settings),
        }

    @classmethod
    def _from_file(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: str) -> "Explanation":
        fields = read.explanation_fields(meta, path, read.tensor(tensors, "sigma", path, 1).shape[0])
        sigma = read.sigma(tensors, path, 1, fields["scale"])
        read.same_shape(tensors, "information_loss", sigma.shape, path)
        return cls(sigma=sigma, regularization=read.optional(tensors, "regularization", path), curve=read.curve(tensors, "loss_curve", path), **fields)


__all__ = ["Explanation"]
