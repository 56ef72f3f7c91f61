"""``CorpusResult``: the paper's corpus-level measures over many sentences; one safetensors file.

Per layer: the mean over sentences of the sentence information loss, and the mean information loss of
each word type across the corpus (which words the layer keeps).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import torch

from .._utils.files import setting_metadata, write_tensors
from .corpus_file import corpus_from_file, merged
from .load import reads
from .explanation import Explanation, check_pieces, check_stderr, loss_errors, piece_kept, piece_losses
from .sweep import Sweep
from .._views.tables import corpus_table
from .._views.viewable import Viewable
from .words import by_word
from ..errors import InputError, LayerError, close_matches


@reads("corpus")
@dataclass
class CorpusResult(Viewable):
    """Per-word sigma of every layer for every sentence of a corpus, and the corpus measures.

    ``sigma[j]`` is sentence ``j``'s sigma, [layers, words], ``stderr[j]`` its standard error;
    ``index[j]`` its position in the corpus; ``convergence[o, j]`` whether layer ``o`` of sentence
    ``j`` converged.

    >>> result = probe.corpus(model, ["encoder.layer.0", "encoder.layer.5"], ["a fine film", "a dull film"], tokenizer=tokenizer, samples=4, max_steps=2)
    >>> result.mean_information_loss.shape          # per layer, nats
    torch.Size([2])
    >>> result.save(tmp / "corpus.safetensors"); probe.load(tmp / "corpus.safetensors").layers
    ['encoder.layer.0', 'encoder.layer.5']
    """

    layers: list[str]
    words: list[list[str]]
    sigma: list[torch.Tensor]
    index: torch.Tensor
    scale: float
    rate: float
    width: int
    convergence: torch.Tensor
    steps: torch.Tensor
    settings: dict[str, str] = field(default_factory=dict)
    pieces: list[list[int]] | None = None
    """After ``by_word``: per sentence, how many word pieces each word merges."""
    stderr: list[torch.Tensor] | None = None
    """Per sentence, the standard error of each sigma, [layers, words] (NaN: not known)."""

    def __post_init__(self) -> None:
        self.sigma = [s.detach().to("cpu", torch.float32) for s in self.sigma]
        if self.stderr is not None and len(self.stderr) != len(self.sigma):
            raise InputError(f"stderr has {len(self.stderr)} tensors for {len(self.sigma)} sentences; pass one per sentence")
        self.stderr = [check_stderr(None if self.stderr is None else e, s, f"sentence {j}'s sigma") for j, (s, e) in enumerate(zip(self.sigma, self.stderr or [None] * len(self.sigma)))]
        self.index = torch.as_tensor(self.index, dtype=torch.int64)
        L, S = len(self.layers), len(self.words)
        if S == 0:
            raise InputError("a corpus result needs at least one sentence")
        if len(self.sigma) != S or self.index.shape != (S,):
            raise InputError(f"a corpus result needs one sigma and one index per sentence; got {len(self.sigma)} sigma, {tuple(self.index.shape)} index for {S} sentences")
        for j, (s, w) in enumerate(zip(self.sigma, self.words)):
            if s.shape != (L, len(w)):
                raise InputError(f"sentence {j} has {len(w)} words but sigma of shape {tuple(s.shape)}; expected ({L}, {len(w)})")
        check_pieces(self.pieces, self.words)
        self.convergence, self.steps = torch.as_tensor(self.convergence, dtype=torch.bool), torch.as_tensor(self.steps, dtype=torch.int64)
        if self.convergence.shape != (L, S) or self.steps.shape != (L, S):
            raise InputError(f"convergence and steps must be [layers, sentences] = ({L}, {S})")

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"CorpusResult(layers={self.layers}, sentences={len(self)}, words={sum(map(len, self.words))})"

    @property
    def converged(self) -> bool:
        """Whether every layer of every sentence converged (``convergence`` says which did not)."""
        return bool(self.convergence.all())

    @property
    def relative_sigma(self) -> list[torch.Tensor]:
        """``sigma / scale`` per sentence, [layers, words] each; near 1, the layer has lost the word."""
        return [s / self.scale for s in self.sigma]

    @property
    def information_loss(self) -> list[torch.Tensor]:
        """Per-word information loss per sentence, [layers, words] each, nats (the shape of ``sigma``)."""
        return [piece_losses(s, self.width, None if self.pieces is None else self.pieces[j]) for j, s in enumerate(self.sigma)]

    @property
    def information_kept(self) -> list[torch.Tensor]:
        """Per-word information kept, ``K log(scale / sigma)`` nats, per sentence [layers, words]; at least 0.

        >>> all(bool((k >= 0).all()) for k in result.information_kept)
        True
        """
        return [piece_kept(s, self.scale, self.width, None if self.pieces is None else self.pieces[j]) for j, s in enumerate(self.sigma)]

    @property
    def mean_information_kept(self) -> torch.Tensor:
        """The mean over sentences of the sentence information kept, [layers], nats; never negative.

        >>> bool((result.mean_information_kept >= 0).all())
        True
        """
        return torch.stack([k.to(torch.float64).sum(1) for k in self.information_kept], 1).mean(1)

    @property
    def information_loss_stderr(self) -> list[torch.Tensor]:
        """The standard error of each word's information loss, per sentence [layers, words], nats."""
        return [loss_errors(s, e, self.width, None if self.pieces is None else self.pieces[j]) for j, (s, e) in enumerate(zip(self.sigma, self.stderr))]

    @cached_property
    def sentence_information_loss(self) -> torch.Tensor:
        """Each sentence's information loss (the sum over its words), [layers, sentences], nats."""
        return torch.stack([h.to(torch.float64).sum(1) for h in self.information_loss], 1)

    @cached_property
    def sentence_information_loss_stderr(self) -> torch.Tensor:
        """The standard error of each sentence's information loss, [layers, sentences], nats (independent words)."""
        return torch.stack([e.to(torch.float64).square().sum(1).sqrt() for e in self.information_loss_stderr], 1)

    @property
    def mean_information_loss(self) -> torch.Tensor:
        """The paper's corpus measure: the mean over sentences of the sentence information loss, [layers]."""
        return self.sentence_information_loss.mean(1)

    @property
    def mean_information_loss_stderr(self) -> torch.Tensor:
        """The solver's standard error of ``mean_information_loss``, [layers], nats (not the spread
        over sentences: how far the Monte Carlo answer may sit from the exact one)."""
        return self.sentence_information_loss_stderr.square().sum(1).sqrt() / len(self)

    @cached_property
    def _word_types(self) -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        vocabulary: dict[str, int] = {}
        ids = torch.tensor([vocabulary.setdefault(w, len(vocabulary)) for ws in self.words for w in ws], dtype=torch.int64)
        counts = torch.zeros(len(vocabulary), dtype=torch.int64).index_add_(0, ids, torch.ones_like(ids))

        def summed(per_sentence: list[torch.Tensor]) -> torch.Tensor:
            values = torch.cat([v.to(torch.float64) for v in per_sentence], 1)
            return torch.zeros(len(self.layers), len(vocabulary), dtype=torch.float64).index_add_(1, ids, values)

        n = counts.clamp_min(1)
        spread = summed([e.square() for e in self.information_loss_stderr]).sqrt()
        return list(vocabulary), counts, summed(self.information_loss) / n, spread / n, summed(self.information_kept) / n

    @property
    def vocabulary(self) -> list[str]:
        """The word types (tokens) of the corpus, in order of first appearance."""
        return self._word_types[0]

    @property
    def word_counts(self) -> torch.Tensor:
        """How often each word type of ``vocabulary`` occurs, [types]."""
        return self._word_types[1]

    @property
    def word_information_loss(self) -> torch.Tensor:
        """Mean information loss of each word type over its occurrences, [layers, types], nats."""
        return self._word_types[2]

    @property
    def word_information_loss_stderr(self) -> torch.Tensor:
        """The solver's standard error of ``word_information_loss``, [layers, types], nats."""
        return self._word_types[3]

    @property
    def word_information_kept(self) -> torch.Tensor:
        """Mean information kept of each word type over its occurrences, [layers, types], nats, at least 0."""
        return self._word_types[4]

    def word_ranking(self, layer: str, min_count: int = 1) -> list[tuple[str, float, int]]:
        """Word types occurring at least ``min_count`` times as (word, mean loss, count), most kept first.

        >>> sorted(w for w, loss, count in result.word_ranking("encoder.layer.5", min_count=2))
        ['[CLS]', '[SEP]', 'a', 'film']
        """
        row = self.word_information_loss[self._layer_index(layer)]
        ranked = [(w, float(row[v]), int(self.word_counts[v])) for v, w in enumerate(self.vocabulary) if self.word_counts[v] >= min_count]
        return sorted(ranked, key=lambda item: item[1])

    def sentence(self, j: int) -> Sweep:
        """Sentence ``j`` of this result (``index[j]`` of the corpus) as a Sweep over the layers.

        >>> result.sentence(0).words
        ['[CLS]', 'a', 'fine', 'film', '[SEP]']
        """
        if not 0 <= j < len(self):
            raise InputError(f"sentence {j} is out of range; this result holds {len(self)} sentences")
        return Sweep({
            name: Explanation(
                sigma=self.sigma[j][o],
                stderr=self.stderr[j][o],
                words=self.words[j],
                scale=self.scale,
                rate=self.rate,
                width=self.width,
                layer=name,
                converged=bool(self.convergence[o, j]),
                steps=int(self.steps[o, j]),
                settings=dict(self.settings),
                pieces=None if self.pieces is None else list(self.pieces[j]),
            )
            for o, name in enumerate(self.layers)
        })

    def by_word(self, special: bool = True) -> "CorpusResult":
        """Every sentence with word pieces merged into words (see ``Explanation.by_word``), so the word
        types ranked are the words the user wrote.

        >>> result.by_word(special=False).vocabulary
        ['a', 'fine', 'film', 'dull']
        """
        if self.pieces is not None:
            return self
        merged = [by_word(w, s, self.width, None, special, stderr=e) for w, s, e in zip(self.words, self.sigma, self.stderr)]
        return replace(self, words=[m.words for m in merged], sigma=[m.sigma for m in merged], stderr=[m.stderr for m in merged], pieces=[m.pieces.tolist() for m in merged])

    def table(self, top: int = 5, min_count: int = 2) -> str:
        """Per layer: mean information loss per sentence and per word, and the most kept and most lost
        word types among those seen at least ``min_count`` times (lower loss = the layer keeps more).

        >>> print(result.table(top=3))  # doctest: +ELLIPSIS
        corpus: 2 sentences, 10 words; ...
        """
        return corpus_table(self, top, min_count)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None, top: int = 5, min_count: int = 2):
        """Mean sentence information loss per layer, beside the mean loss of each layer's ``top`` most
        kept word types (seen ``min_count`` times or more) across all layers; with a path, also a PNG.

        >>> fig = result.plot(tmp / "corpus.png")
        """
        from .._views.plots import corpus_figure

        return corpus_figure(self, path, top, min_count)

    def save(self, path: str | Path) -> None:
        """Writes a plain safetensors file (atomically); ``probe.load`` reads it back.

        >>> result.save(tmp / "corpus.safetensors")
        """
        vocabulary, counts, per_type = self._word_types[:3]
        where = {w: v for v, w in enumerate(vocabulary)}
        lengths = torch.tensor([len(w) for w in self.words], dtype=torch.int64)
        tensors = {
            "sigma": torch.cat(self.sigma, 1),
            "stderr": torch.cat(self.stderr, 1),
            "offsets": torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]),
            "index": self.index,
            "word_ids": torch.tensor([where[w] for ws in self.words for w in ws], dtype=torch.int64),
            "converged": self.convergence,
            "steps": self.steps.to(torch.int64),
            "sentence_information_loss": self.sentence_information_loss,
            "mean_information_loss": self.mean_information_loss,
            "word_information_loss": per_type,
            "word_counts": counts,
        }
        meta = {
            "kind": "corpus",
            "layers": json.dumps(self.layers),
            "vocabulary": json.dumps(vocabulary),
            "pieces": json.dumps(self.pieces),
            **setting_metadata(self.scale, self.rate, self.width, self.settings),
        }
        write_tensors(path, tensors, meta)

    @classmethod
    def _from_file(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: str) -> "CorpusResult":
        return corpus_from_file(cls, tensors, meta, path)

    @classmethod
    def merge(cls, parts: Sequence["CorpusResult"]) -> "CorpusResult":
        """One result from the shards of a run, sentences in corpus order (as one process gives them).

        >>> whole = probe.CorpusResult.merge([result])
        >>> whole.layers == result.layers
        True
        """
        return merged(cls, parts)

    def _layer_index(self, layer: str) -> int:
        if layer not in self.layers:
            raise LayerError(f"this result has no layer {layer!r}{close_matches(layer, self.layers)}; it holds {self.layers}")
        return self.layers.index(layer)


