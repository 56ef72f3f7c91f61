"""Results: one layer's ``Explanation`` and a many-layer ``Sweep``; plain safetensors files."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._files import FORMAT_VERSION, read_tensors, setting_metadata, write_tensors
from ._objective import information_loss
from .errors import FileFormatError, InputError


@dataclass
class Explanation:
    """How much of each word one hidden state keeps: per-word sigma, small = kept.

    >>> exp = probe.explain(lambda x: x.sum(0), torch.randn(3, 8), words=["a", "b", "c"])
    >>> exp.sigma.shape, exp.words
    (torch.Size([3]), ['a', 'b', 'c'])
    >>> exp.save("a.safetensors"); probe.load("a.safetensors").words
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

    def __post_init__(self) -> None:
        self.sigma = self.sigma.detach().to("cpu", torch.float32)
        self.words, self.layer = [str(w) for w in self.words], str(self.layer)
        if len(self.words) != len(self.sigma):
            raise InputError(f"words has {len(self.words)} entries but sigma has {len(self.sigma)}; pass one word per token")

    @property
    def information_loss(self) -> torch.Tensor:
        """Per-word information loss ``H_i = K/2 log(2 pi e) + K log sigma_i`` in nats.

        >>> exp.information_loss.shape        # one value per word
        torch.Size([3])
        """
        return information_loss(self.sigma, self.width)

    @property
    def total_information_loss(self) -> float:
        """The sentence's information loss: the sum over its words, in nats.

        >>> exp.total_information_loss == float(exp.information_loss.double().sum())
        True
        """
        return float(self.information_loss.to(torch.float64).sum())

    @property
    def relative_sigma(self) -> torch.Tensor:
        """``sigma / scale`` in (0, 1]: near 1, the word's information is lost at this layer.

        >>> bool((exp.relative_sigma <= 1).all())
        True
        """
        return self.sigma / self.scale

    def table(self, bar_width: int = 30) -> str:
        """A per-word table: word, sigma, sigma/scale, information loss, and a bar (longer = kept more).

        >>> print(exp.table())
        """
        title = f"layer {self.layer}" if self.layer else "explanation"
        width = max([4, *(len(w) for w in self.words)])
        lines = [title, f"{'word':<{width}}  {'sigma':>10}  {'sigma/scale':>11}  {'info loss':>10}  kept"]
        for word, s, rel, h in zip(self.words, self.sigma.tolist(), self.relative_sigma.tolist(), self.information_loss.tolist()):
            bar = "#" * round(max(0.0, 1.0 - rel) * bar_width)
            lines.append(f"{word:<{width}}  {s:>10.4g}  {rel:>11.3f}  {h:>10.1f}  {bar}")
        lines.append(f"total information loss {self.total_information_loss:.1f} nats; converged {self.converged} after {self.steps} steps")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None):
        """The seed's word heatmap of sigma (dark = kept) with a colour bar; with a path, also a PNG.

        >>> fig = exp.plot("exp.png")
        """
        return self._heatmap(path)

    def _heatmap(self, path: str | Path | None = None, new_figure=None):
        """``plot``, with the figure made by ``new_figure`` (``plt.figure`` for ``plt.show``)."""
        from ._plots import word_heatmap

        return word_heatmap(self.sigma[None].numpy(), self.words, [""], self.layer or "sigma", path, new_figure)

    def save(self, path: str | Path) -> None:
        """Writes a plain safetensors file (atomically); ``probe.load`` reads it back.

        Tensors ``sigma``, ``information_loss``, ``loss_curve`` and, when given, ``regularization``;
        string metadata ``words`` (JSON list), ``layer``, ``scale``, ``rate``, ``width``, ``loss``,
        ``converged``, ``steps``, ``settings`` (JSON), ``format``, ``format_version`` and
        ``probe_version``, so any safetensors reader can use the file.

        >>> exp.save("exp.safetensors")
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
            **setting_metadata(self.scale, self.rate, self.width, self.settings),
        }

    @classmethod
    def _from_file(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: str) -> "Explanation":
        sigma = _tensor(tensors, "sigma", path, ndim=1)
        _same_shape(tensors, "information_loss", sigma.shape, path)
        return cls(
            sigma=sigma,
            regularization=_optional(tensors, "regularization", path),
            curve=_curve(tensors, "loss_curve", path),
            **_fields(meta, path, len(sigma)),
        )


class Sweep(Mapping[str, Explanation]):
    """Explanations of several layers of one sentence; ``sweep[name]`` is one layer's.

    >>> sweep.sigma.shape          # [layers, tokens]
    torch.Size([6, 14])
    >>> sweep["encoder.layer.2"].words[:2]
    ['[CLS]', 'rare']
    """

    def __init__(self, explanations: Mapping[str, Explanation]) -> None:
        if not explanations:
            raise InputError("a sweep needs at least one layer")
        self._by_layer = dict(explanations)
        words = {tuple(e.words) for e in self._by_layer.values()}
        if len(words) != 1:
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

        >>> sweep.layers[0]
        'encoder.layer.0'
        """
        return list(self._by_layer)

    @property
    def words(self) -> list[str]:
        """The sentence's words, shared by every layer.

        >>> sweep.words[:2]
        ['[CLS]', 'rare']
        """
        return next(iter(self._by_layer.values())).words

    @property
    def sigma(self) -> torch.Tensor:
        """Sigma of every layer: [layers, tokens].

        >>> sweep.sigma.shape
        torch.Size([6, 14])
        """
        return torch.stack([e.sigma for e in self._by_layer.values()])

    @property
    def information_loss(self) -> torch.Tensor:
        """Per-word information loss of every layer: [layers, tokens], nats.

        >>> sweep.information_loss.shape
        torch.Size([6, 14])
        """
        return torch.stack([e.information_loss for e in self._by_layer.values()])

    def table(self) -> str:
        """Every layer's per-word table, one after the other.

        >>> print(sweep.table())
        """
        return "\n\n".join(e.table() for e in self._by_layer.values())

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None):
        """The layer-by-word heatmap of sigma / scale (dark = kept); with a path, also a PNG.

        >>> fig = sweep.plot("sweep.png")
        """
        from ._plots import word_heatmap

        rel = torch.stack([e.relative_sigma for e in self._by_layer.values()])
        return word_heatmap(rel.numpy(), self.words, self.layers, "sigma / scale by layer", path)

    def save(self, path: str | Path) -> None:
        """Writes every layer into one safetensors file (atomically); ``probe.load`` reads it back.

        Tensors ``sigma`` and ``information_loss`` [layers, tokens], ``loss_curve.{i}`` and
        ``regularization.{i}`` per layer; string metadata ``words`` (JSON list) and ``layers`` (a JSON
        list with each layer's ``name`` and the metadata an Explanation file has).

        >>> sweep.save("sweep.safetensors")
        """
        tensors: dict[str, torch.Tensor] = {"sigma": self.sigma, "information_loss": self.information_loss}
        layers = []
        for i, (name, e) in enumerate(self._by_layer.items()):
            tensors[f"loss_curve.{i}"] = torch.tensor(e.curve, dtype=torch.float64)
            if e.regularization is not None:
                tensors[f"regularization.{i}"] = e.regularization.detach().cpu().contiguous()
            layers.append({**e._metadata(), "name": name})
        write_tensors(path, tensors, {"kind": "sweep", "words": json.dumps(self.words), "layers": json.dumps(layers)})

    @classmethod
    def _from_file(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: str) -> "Sweep":
        sigma = _tensor(tensors, "sigma", path, ndim=2)
        _same_shape(tensors, "information_loss", sigma.shape, path)
        layers = _json(meta, "layers", path)
        if not (isinstance(layers, list) and all(isinstance(m, dict) for m in layers)):
            raise FileFormatError(f"{path!r}: the metadata 'layers' is damaged; re-save the sweep")
        if len(layers) != sigma.shape[0]:
            raise FileFormatError(f"{path!r}: sigma has {sigma.shape[0]} layers but the metadata names {len(layers)}; re-save the sweep")
        explanations = {}
        for i, m in enumerate(layers):
            e = Explanation(
                sigma=sigma[i],
                regularization=_optional(tensors, f"regularization.{i}", path),
                curve=_curve(tensors, f"loss_curve.{i}", path),
                **_fields(m, path, sigma.shape[1]),
            )
            explanations[str(m.get("name", e.layer or i))] = e
        if len(explanations) != len(layers):
            raise FileFormatError(f"{path!r}: the metadata 'layers' names a layer twice; re-save the sweep")
        if len({tuple(e.words) for e in explanations.values()}) != 1:
            raise FileFormatError(f"{path!r}: the layers' metadata disagree on the words; re-save the sweep")
        return cls(explanations)


def _tensor(tensors: Mapping[str, torch.Tensor], name: str, path: str, ndim: int) -> torch.Tensor:
    t = tensors.get(name)
    if t is None or t.ndim != ndim or not t.is_floating_point():
        got = "missing" if t is None else f"a {t.dtype} tensor of shape {tuple(t.shape)}"
        raise FileFormatError(f"{path!r}: tensor {name!r} is {got}, expected a float tensor of {ndim} axes; re-save the result")
    return t


def _same_shape(tensors: Mapping[str, torch.Tensor], name: str, shape: torch.Size, path: str) -> None:
    """A tensor that, when present, must have ``shape`` (that of sigma)."""
    t = tensors.get(name)
    if t is not None and t.shape != shape:
        raise FileFormatError(f"{path!r}: tensor {name!r} has shape {tuple(t.shape)} but sigma has {tuple(shape)}; re-save the result")


def _optional(tensors: Mapping[str, torch.Tensor], name: str, path: str) -> torch.Tensor | None:
    """An optional float tensor such as a regularization."""
    t = tensors.get(name)
    if t is not None and not t.is_floating_point():
        raise FileFormatError(f"{path!r}: tensor {name!r} holds {t.dtype}, not floats; re-save the result")
    return t


def _curve(tensors: Mapping[str, torch.Tensor], name: str, path: str) -> list[float]:
    """A loss curve: one float per solver step, or none stored."""
    t = tensors.get(name)
    if t is None:
        return []
    if t.ndim != 1 or not t.is_floating_point():
        raise FileFormatError(f"{path!r}: tensor {name!r} has shape {tuple(t.shape)} and dtype {t.dtype}, not a float curve; re-save the result")
    return t.tolist()


def _json(meta: Mapping[str, str], key: str, path: str, default: str | None = None):
    """One JSON metadata value; a missing, invalid or absurdly nested one is a damaged file."""
    try:
        return json.loads(meta[key] if default is None else meta.get(key, default))
    except (KeyError, TypeError, ValueError, RecursionError):
        raise FileFormatError(f"{path!r}: the metadata {key!r} is missing or damaged; re-save the result") from None


def _fields(meta: Mapping[str, str], path: str, tokens: int) -> dict:
    """The Explanation fields stored as string metadata, checked against the tensors."""
    words = _json(meta, "words", path)
    try:
        fields = dict(
            words=words,
            layer=str(meta.get("layer", "")),
            scale=float(meta["scale"]),
            rate=float(meta["rate"]),
            width=int(meta["width"]),
            loss=float(meta.get("loss", "nan")),
            converged=bool(_json(meta, "converged", path, "false")),
            steps=int(meta.get("steps", "0")),
            settings=_json(meta, "settings", path, "{}"),
        )
    except (KeyError, ValueError, TypeError) as err:
        raise FileFormatError(f"{path!r}: metadata is missing or damaged ({err}); re-save the result") from None
    if not (isinstance(words, list) and all(isinstance(w, str) for w in words)) or len(words) != tokens:
        raise FileFormatError(f"{path!r}: metadata 'words' does not match the {tokens} tokens of sigma")
    if not isinstance(fields["settings"], dict):
        raise FileFormatError(f"{path!r}: metadata 'settings' is damaged")
    return fields


def load(path: str | Path):
    """Reads any file probe wrote: an Explanation, a Sweep, a CorpusResult or a TimeSeries.

    >>> exp = probe.load("exp.safetensors")
    """
    tensors, meta = read_tensors(path)
    kind = meta.get("kind")
    if kind == "explanation":
        return Explanation._from_file(tensors, meta, str(path))
    if kind == "sweep":
        return Sweep._from_file(tensors, meta, str(path))
    if kind == "corpus":
        from ._corpus import CorpusResult

        return CorpusResult._from_file(tensors, meta, str(path))
    if kind == "timeseries":
        from ._timeseries import TimeSeries

        return TimeSeries._from_file(tensors, meta, str(path))
    raise FileFormatError(f"{str(path)!r} is a probe file of kind {kind!r}, which probe.load does not read")


__all__ = ["Explanation", "Sweep", "load", "FORMAT_VERSION"]
