"""``Sweep``: one sentence explained at several layers; one safetensors file."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from .._utils import reading as read
from .._utils.files import write_tensors
from .load import reads
from .explanation import Explanation
from .._views.viewable import Viewable
from ..errors import FileFormatError, InputError


@reads("sweep")
class Sweep(Viewable, Mapping[str, Explanation]):
    """Explanations of several layers of one sentence; ``sweep[name]`` is one layer's.

    >>> with probe.attach(model, ["encoder.layer.0", "encoder.layer.5"]) as p:
    ...     sweep = p.explain(tokenizer("a fine film", return_tensors="pt"), samples=4, max_steps=2)
    >>> sweep.sigma.shape          # [layers, tokens]
    torch.Size([2, 5])
    >>> sweep["encoder.layer.5"].words[:2]
    ['[CLS]', 'a']
    """

    def __init__(self, explanations: Mapping[str, Explanation]) -> None:
        if not explanations:
            raise InputError("a sweep needs at least one layer")
        self._by_layer = dict(explanations)
        if len({tuple(e.words) for e in self._by_layer.values()}) != 1:
            raise InputError("every layer of a sweep must explain the same words")

    def __getitem__(self, layer: str) -> Explanation:
        return self._by_layer[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_layer)

    def __len__(self) -> int:
        return len(self._by_layer)

    def __repr__(self) -> str:
        return f"Sweep(layers={self.layers}, words={self.words})"

    @property
    def layers(self) -> list[str]:
        """The explained layers' names, in order.

        >>> sweep.layers
        ['encoder.layer.0', 'encoder.layer.5']
        """
        return list(self._by_layer)

    @property
    def words(self) -> list[str]:
        """The sentence's words, shared by every layer.

        >>> sweep.words
        ['[CLS]', 'a', 'fine', 'film', '[SEP]']
        """
        return self._first.words

    @property
    def word_ids(self) -> list[int | None] | None:
        """Each token's word index (None for special tokens), when the tokenizer said."""
        return self._first.word_ids

    @property
    def scale(self) -> float:
        """The ceiling of sigma, shared by every layer."""
        return self._first.scale

    @property
    def rate(self) -> float:
        """The weight of the log-sigma reward, shared by every layer."""
        return self._first.rate

    @property
    def width(self) -> int:
        """The embedding width K, shared by every layer."""
        return self._first.width

    @property
    def settings(self) -> dict[str, str]:
        """The solver settings, shared by every layer."""
        return self._first.settings

    @property
    def _first(self) -> Explanation:
        return next(iter(self._by_layer.values()))

    @property
    def converged(self) -> bool:
        """Whether every layer's solve converged (``sweep[name].converged`` for one layer).

        >>> sweep.converged in (True, False)
        True
        """
        return all(e.converged for e in self._by_layer.values())

    @property
    def sigma(self) -> torch.Tensor:
        """Sigma of every layer: [layers, tokens].

        >>> sweep.sigma.shape
        torch.Size([2, 5])
        """
        return torch.stack([e.sigma for e in self._by_layer.values()])

    @property
    def stderr(self) -> torch.Tensor:
        """The standard error of every sigma: [layers, tokens], the units of ``sigma``.

        >>> sweep.stderr.shape
        torch.Size([2, 5])
        """
        return torch.stack([e.stderr for e in self._by_layer.values()])

    @property
    def information_kept(self) -> torch.Tensor:
        """Information kept relative to the ceiling per word of every layer: [layers, tokens], nats, at least 0.

        >>> bool((sweep.information_kept >= 0).all())
        True
        """
        return torch.stack([e.information_kept for e in self._by_layer.values()])

    @property
    def relative_sigma(self) -> torch.Tensor:
        """``sigma / scale`` of every layer: [layers, tokens]; near 1, the layer has lost the word.

        >>> bool((sweep.relative_sigma <= 1).all())
        True
        """
        return torch.stack([e.relative_sigma for e in self._by_layer.values()])

    @property
    def information_loss(self) -> torch.Tensor:
        """Per-word information loss of every layer: [layers, tokens], nats.

        >>> sweep.information_loss.shape
        torch.Size([2, 5])
        """
        return torch.stack([e.information_loss for e in self._by_layer.values()])

    def by_word(self, special: bool = True) -> "Sweep":
        """Every layer with word pieces merged into words (see ``Explanation.by_word``).

        >>> sweep.by_word(special=False).words
        ['a', 'fine', 'film']
        """
        return Sweep({name: e.by_word(special) for name, e in self._by_layer.items()})

    def table(self) -> str:
        """Every layer's per-word table, one after the other, bars on one range fitted to the sweep.

        >>> print(sweep.table())  # doctest: +ELLIPSIS
        layer encoder.layer.0
        ...
        """
        from .._views.shade import span
        from .._views.tables import explanation_table

        fitted = span(self.relative_sigma.flatten().tolist())
        return "\n\n".join(explanation_table(e, fitted=fitted) for e in self._by_layer.values())

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None):
        """The layer-by-word heatmap of sigma / scale (dark = kept); with a path, also a PNG.

        >>> fig = sweep.plot(tmp / "sweep.png")
        """
        from .._views.plots import word_heatmap

        converged = [e.converged for e in self._by_layer.values()]
        return word_heatmap(self.relative_sigma.numpy(), self.words, self.layers, "sigma / scale by layer", path, None, (self.stderr / self.sigma).numpy(), converged)

    def save(self, path: str | Path) -> None:
        """Writes every layer into one safetensors file (atomically); ``probe.load`` reads it back.

        Tensors ``sigma``, ``stderr`` and ``information_loss`` [layers, tokens], ``loss_curve.{i}`` and
        ``regularization.{i}`` per layer; string metadata ``words`` (JSON list) and ``layers`` (a JSON
        list with each layer's ``name`` and the metadata an Explanation file has).

        >>> sweep.save(tmp / "sweep.safetensors")
        """
        tensors: dict[str, torch.Tensor] = {"sigma": self.sigma, "stderr": self.stderr, "information_loss": self.information_loss}
        layers = []
        for i, (name, e) in enumerate(self._by_layer.items()):
            tensors[f"loss_curve.{i}"] = torch.tensor(e.curve, dtype=torch.float64)
            if e.regularization is not None:
                tensors[f"regularization.{i}"] = e.regularization.detach().cpu().contiguous()
            layers.append({**e._metadata(), "name": name})
        write_tensors(path, tensors, {"kind": "sweep", "words": json.dumps(self.words), "layers": json.dumps(layers)})

    @classmethod
    def _from_file(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: str) -> "Sweep":
        shape = read.tensor(tensors, "sigma", path, 2).shape
        read.same_shape(tensors, "information_loss", shape, path)
        layers = read.json_value(meta, "layers", path)
        if not (isinstance(layers, list) and all(isinstance(m, dict) and all(isinstance(v, str) for v in m.values()) for m in layers)):
            raise FileFormatError(f"{path!r}: the metadata 'layers' is damaged; re-save the sweep")
        if len(layers) != shape[0]:
            raise FileFormatError(f"{path!r}: sigma has {shape[0]} layers but the metadata names {len(layers)}; re-save the sweep")
        stderr = read.stderr(tensors, "stderr", shape, path)
        explanations = {}
        for i, m in enumerate(layers):
            fields = read.explanation_fields(m, path, shape[1])
            sigma = read.sigma({"sigma": tensors["sigma"][i]}, path, 1, fields["scale"])
            e = Explanation(sigma=sigma, stderr=stderr[i], regularization=read.optional(tensors, f"regularization.{i}", path), curve=read.curve(tensors, f"loss_curve.{i}", path), **fields)
            explanations[str(m.get("name", e.layer or i))] = e
        if len(explanations) != len(layers):
            raise FileFormatError(f"{path!r}: the metadata 'layers' names a layer twice; re-save the sweep")
        if len({tuple(e.words) for e in explanations.values()}) != 1:
            raise FileFormatError(f"{path!r}: the layers' metadata disagree on the words; re-save the sweep")
        return cls(explanations)


__all__ = ["Sweep"]
