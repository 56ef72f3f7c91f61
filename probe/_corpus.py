"""``probe.corpus``: the paper's corpus-level measures, and the ``CorpusResult`` that holds them.

Per layer: the mean over sentences of the sentence information loss, and the mean information loss of
each word type across the corpus (which words the layer keeps). Sentences are solved in batches of
``batch_size`` consecutive sentences; sentence ``i`` uses seed ``seed + i``, so one sentence's result
depends only on its batch, never on which process ran it: a sharded run merges into the same result.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ._attach import _tokenizer_beside, attach
from ._files import setting_metadata, write_tensors
from ._checks import settings_from
from ._objective import information_loss
from ._results import Explanation, Sweep
from ._solver import SolverSettings
from .errors import FileFormatError, InputError, LayerError, close_matches


@dataclass
class CorpusResult:
    """Per-word sigma of every layer for every sentence of a corpus, and the corpus measures.

    ``sigma[j]`` is sentence ``j``'s sigma, [layers, words]; ``index[j]`` its position in the corpus.

    >>> result = probe.corpus(model, ["encoder.layer.0", "encoder.layer.5"], sentences, tokenizer=tokenizer)
    >>> result.mean_information_loss          # per layer, nats
    tensor([-1012.3, -655.9], dtype=torch.float64)
    >>> result.word_ranking("encoder.layer.5")[:2]   # most kept word types: (word, mean loss, count)
    [('charm', -1630.2, 3), ('film', -1402.7, 9)]
    >>> result.save("corpus.safetensors"); probe.load("corpus.safetensors").layers
    ['encoder.layer.0', 'encoder.layer.5']
    """

    layers: list[str]
    words: list[list[str]]
    sigma: list[torch.Tensor]
    index: torch.Tensor
    scale: float
    rate: float
    width: int
    converged: torch.Tensor
    steps: torch.Tensor
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.sigma = [s.detach().to("cpu", torch.float32) for s in self.sigma]
        self.index = torch.as_tensor(self.index, dtype=torch.int64)
        L, S = len(self.layers), len(self.words)
        if S == 0:
            raise InputError("a corpus result needs at least one sentence")
        if len(self.sigma) != S or self.index.shape != (S,):
            raise InputError(f"a corpus result needs one sigma and one index per sentence; got {len(self.sigma)} sigma, {tuple(self.index.shape)} index for {S} sentences")
        for j, (s, w) in enumerate(zip(self.sigma, self.words)):
            if s.shape != (L, len(w)):
                raise InputError(f"sentence {j} has {len(w)} words but sigma of shape {tuple(s.shape)}; expected ({L}, {len(w)})")
        if self.converged.shape != (L, S) or self.steps.shape != (L, S):
            raise InputError(f"converged and steps must be [layers, sentences] = ({L}, {S})")

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:
        return f"CorpusResult(layers={self.layers}, sentences={len(self)}, words={sum(map(len, self.words))})"

    @cached_property
    def sentence_information_loss(self) -> torch.Tensor:
        """Each sentence's information loss (the sum over its words), [layers, sentences], nats."""
        return torch.stack([information_loss(s, self.width).to(torch.float64).sum(1) for s in self.sigma], 1)

    @property
    def mean_information_loss(self) -> torch.Tensor:
        """The paper's corpus measure: the mean over sentences of the sentence information loss, [layers]."""
        return self.sentence_information_loss.mean(1)

    @cached_property
    def _word_types(self) -> tuple[list[str], torch.Tensor, torch.Tensor]:
        vocabulary: dict[str, int] = {}
        ids = torch.tensor([vocabulary.setdefault(w, len(vocabulary)) for ws in self.words for w in ws], dtype=torch.int64)
        V = len(vocabulary)
        counts = torch.zeros(V, dtype=torch.int64).index_add_(0, ids, torch.ones_like(ids))
        loss = torch.cat([information_loss(s, self.width).to(torch.float64) for s in self.sigma], 1)
        totals = torch.zeros(len(self.layers), V, dtype=torch.float64).index_add_(1, ids, loss)
        return list(vocabulary), counts, totals / counts.clamp_min(1)

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

    def word_ranking(self, layer: str, min_count: int = 1) -> list[tuple[str, float, int]]:
        """Word types occurring at least ``min_count`` times as (word, mean loss, count), most kept first.

        >>> result.word_ranking("encoder.layer.2", min_count=3)[0]
        ('film', -1402.7, 9)
        """
        row = self.word_information_loss[self._layer_index(layer)]
        ranked = [(w, float(row[v]), int(self.word_counts[v])) for v, w in enumerate(self.vocabulary) if self.word_counts[v] >= min_count]
        return sorted(ranked, key=lambda item: item[1])

    def sweep(self, j: int) -> Sweep:
        """Sentence ``j`` of this result (``index[j]`` of the corpus) as a Sweep over the layers.

        >>> print(result.sweep(0).table())
        """
        if not 0 <= j < len(self):
            raise InputError(f"sentence {j} is out of range; this result holds {len(self)} sentences")
        return Sweep({
            name: Explanation(
                sigma=self.sigma[j][o],
                words=self.words[j],
                scale=self.scale,
                rate=self.rate,
                width=self.width,
                layer=name,
                converged=bool(self.converged[o, j]),
                steps=int(self.steps[o, j]),
                settings={**self.settings, "seed": str(int(self.settings.get("seed", 0)) + int(self.index[j]))},
            )
            for o, name in enumerate(self.layers)
        })

    def table(self, top: int = 5, min_count: int = 2) -> str:
        """Per layer: mean information loss per sentence and per word, and the most kept and most lost
        word types among those seen at least ``min_count`` times (lower loss = the layer keeps more).

        >>> print(result.table(top=3, min_count=5))
        """
        words = sum(map(len, self.words))
        width = max(5, *(len(n) for n in self.layers))
        lines = [
            f"corpus: {len(self)} sentences, {words} words; information loss in nats (lower = kept more)",
            f"{'layer':<{width}}  {'per sentence':>12}  {'per word':>10}  converged",
        ]
        per_word = self.sentence_information_loss.sum(1) / words
        for o, name in enumerate(self.layers):
            done = int(self.converged[o].sum())
            lines.append(f"{name:<{width}}  {float(self.mean_information_loss[o]):>12.1f}  {float(per_word[o]):>10.1f}  {done}/{len(self)}")
        for name in self.layers:
            ranked = self.word_ranking(name, min_count)
            if not ranked:
                lines.append(f"{name}: no word type occurs {min_count} times; lower min_count")
                continue
            kept = ", ".join(f"{w} ({h:.0f})" for w, h, _ in ranked[:top])
            lost = ", ".join(f"{w} ({h:.0f})" for w, h, _ in reversed(ranked[-top:]))
            lines.append(f"{name} keeps most: {kept}")
            lines.append(f"{' ' * len(name)} loses most: {lost}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def plot(self, path: str | Path | None = None, top: int = 5, min_count: int = 2):
        """Mean sentence information loss per layer, beside the mean loss of each layer's ``top`` most
        kept word types (seen ``min_count`` times or more) across all layers; with a path, also a PNG.

        >>> fig = result.plot("corpus.png")
        """
        from matplotlib.figure import Figure

        chosen: list[str] = []
        for name in self.layers:
            chosen += [w for w, _, _ in self.word_ranking(name, min_count)[:top] if w not in chosen]
        fig = Figure(figsize=(max(8.0, 4.0 + 0.5 * len(chosen)), 1.8 + 0.45 * max(len(self.layers), 4)), layout="constrained")
        left, right = fig.subplots(1, 2, width_ratios=[1, max(1.0, len(chosen) / 6)])
        left.barh(range(len(self.layers)), self.mean_information_loss.numpy())
        left.set_yticks(range(len(self.layers)), labels=self.layers)
        left.invert_yaxis()
        left.set_xlabel("mean information loss per sentence (nats)")
        left.set_title(f"{len(self)} sentences")
        if chosen:
            where = {w: v for v, w in enumerate(self.vocabulary)}
            values = self.word_information_loss[:, [where[w] for w in chosen]].numpy()
            image = right.imshow(values, cmap="GnBu_r", aspect="auto")
            right.set_xticks(range(len(chosen)), labels=chosen, rotation=45, ha="right")
            right.set_yticks(range(len(self.layers)), labels=self.layers)
            right.set_title("most kept words (dark = kept)")
            fig.colorbar(image, ax=right, label="mean information loss (nats)")
        else:
            right.set_axis_off()
            right.set_title(f"no word type occurs {min_count} times")
        if path is not None:
            fig.savefig(path, dpi=120)
        return fig

    def save(self, path: str | Path) -> None:
        """Writes a plain safetensors file (atomically); ``probe.load`` reads it back.

        >>> result.save("corpus.safetensors")
        """
        vocabulary, counts, per_type = self._word_types
        where = {w: v for v, w in enumerate(vocabulary)}
        lengths = torch.tensor([len(w) for w in self.words], dtype=torch.int64)
        tensors = {
            "sigma": torch.cat(self.sigma, 1),
            "offsets": torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]),
            "index": self.index,
            "word_ids": torch.tensor([where[w] for ws in self.words for w in ws], dtype=torch.int64),
            "converged": self.converged.to(torch.bool),
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
            **setting_metadata(self.scale, self.rate, self.width, self.settings),
        }
        write_tensors(path, tensors, meta)

    @classmethod
    def _from_file(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: str) -> "CorpusResult":
        try:
            layers, vocabulary = json.loads(meta["layers"]), json.loads(meta["vocabulary"])
            sigma, offsets, word_ids = tensors["sigma"], tensors["offsets"], tensors["word_ids"]
            words = [[vocabulary[v] for v in word_ids[a:b].tolist()] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
            return cls(
                layers=layers,
                words=words,
                sigma=[sigma[:, a:b] for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())],
                index=tensors["index"],
                scale=float(meta["scale"]),
                rate=float(meta["rate"]),
                width=int(meta["width"]),
                converged=tensors["converged"],
                steps=tensors["steps"],
                settings=json.loads(meta.get("settings", "{}")),
            )
        except (KeyError, ValueError, TypeError, IndexError, InputError) as err:
            raise FileFormatError(f"{path!r}: the corpus result is damaged ({err}); re-run probe corpus") from None

    @classmethod
    def merge(cls, parts: Sequence["CorpusResult"]) -> "CorpusResult":
        """One result from the shards of a run, sentences in corpus order (as one process gives them).

        >>> whole = probe.CorpusResult.merge([probe.load(f"out/shard-{r}.safetensors") for r in range(4)])
        """
        if not parts:
            raise InputError("merge needs at least one corpus result")
        first = parts[0]
        for part in parts[1:]:
            if (part.layers, part.scale, part.rate, part.width, part.settings) != (first.layers, first.scale, first.rate, first.width, first.settings):
                raise InputError("these corpus results come from different runs (layers, scale, rate, width or settings differ); merge the shards of one run")
        index = torch.cat([p.index for p in parts])
        if len(index.unique()) != len(index):
            raise InputError("the corpus results overlap (a sentence appears twice); merge each shard once")
        order = index.argsort().tolist()
        words = [w for p in parts for w in p.words]
        sigma = [s for p in parts for s in p.sigma]
        return cls(
            layers=list(first.layers),
            words=[words[j] for j in order],
            sigma=[sigma[j] for j in order],
            index=index[order],
            scale=first.scale,
            rate=first.rate,
            width=first.width,
            converged=torch.cat([p.converged for p in parts], 1)[:, order],
            steps=torch.cat([p.steps for p in parts], 1)[:, order],
            settings=dict(first.settings),
        )

    def _layer_index(self, layer: str) -> int:
        if layer not in self.layers:
            raise LayerError(f"this result has no layer {layer!r}{close_matches(layer, self.layers)}; it holds {self.layers}")
        return self.layers.index(layer)


def encode(model: nn.Module, tokenizer, texts: Sequence[str]):
    """Model inputs for ``texts`` as one padded batch: a HuggingFace model takes the tokenizer's whole
    output (ids, attention mask, token types), any other module the ``input_ids`` tensor alone."""
    encoded = tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True)
    transformers = sys.modules.get("transformers")  # a HuggingFace model has imported it already
    return encoded if transformers is not None and isinstance(model, transformers.PreTrainedModel) else encoded["input_ids"]


def _batches(count: int, batch_size: int, shard: tuple[int, int] | None = None) -> list[range]:
    """The batches of sentence indices to solve (only rank's, for ``shard = (rank, world)``): batch ``k``
    holds the sentences from ``k * batch_size`` on and goes to rank ``k % world``."""
    all_batches = [range(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if shard is None:
        return all_batches
    rank, world = shard
    return all_batches[rank::world]


def corpus(
    model: nn.Module,
    layers: str | Sequence[str],
    sentences: Sequence[str],
    *,
    tokenizer=None,
    regularization=None,
    seed: int = 0,
    batch_size: int = 8,
    shard: tuple[int, int] | None = None,
    scale: float | None = None,
    rate: float = 0.1,
    progress: bool = False,
    **solver,
) -> CorpusResult:
    """Explains ``layers`` on every sentence and returns the corpus measures as a CorpusResult.

    ``regularization`` defaults to the per-feature std over ``sentences`` themselves (pass a
    ``{layer: tensor}`` dict, e.g. from ``p.regularization``, to use another corpus). Sentence ``i``
    uses seed ``seed + i``. ``shard=(rank, world)`` solves only that rank's batches (every
    ``world``-th batch of ``batch_size`` sentences); ``CorpusResult.merge`` joins the shards into
    exactly the result of one process. Solver settings (``samples``, ``max_steps``, ...) are keywords.

    >>> result = probe.corpus(model, ["encoder.layer.0", "encoder.layer.5"], sentences, tokenizer=tokenizer)
    >>> print(result.table())
    """
    names = [layers] if isinstance(layers, str) else [str(n) for n in layers]
    texts = _check_sentences(sentences)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    mine = _batches(len(texts), batch_size, _check_shard(shard, len(texts), batch_size))
    settings = {**settings_from(solver, SolverSettings).as_metadata(), "seed": str(seed), "batch_size": str(batch_size)}
    tokenizer = tokenizer if tokenizer is not None else _tokenizer_beside(model)
    if tokenizer is None:
        raise InputError("the model has no tokenizer beside it; pass tokenizer= (e.g. AutoTokenizer.from_pretrained(folder))")

    with attach(model, names, tokenizer=tokenizer) as p:
        if regularization is None:
            all_batches = _batches(len(texts), batch_size)
            regularization = p.regularization((encode(model, tokenizer, [texts[i] for i in rows]) for rows in all_batches), progress=progress)
        elif not isinstance(regularization, Mapping):
            if len(names) > 1:
                raise InputError("several layers: pass regularization as {layer name: tensor}, e.g. what p.regularization(corpus) returns")
            regularization = {names[0]: regularization}
        sweeps: list[Sweep] = []
        with tqdm(total=sum(map(len, mine)), disable=not progress, desc="corpus", unit="sentence") as bar:
            for rows in mine:
                found = p.explain(encode(model, tokenizer, [texts[i] for i in rows]), regularization=regularization, scale=scale, rate=rate, seed=seed + rows.start, **solver)
                sweeps += found if len(rows) > 1 else [found]
                bar.update(len(rows))
    first = sweeps[0][names[0]]
    return CorpusResult(
        layers=names,
        words=[s.words for s in sweeps],
        sigma=[s.sigma for s in sweeps],
        index=torch.tensor([i for rows in mine for i in rows], dtype=torch.int64),
        scale=first.scale,
        rate=first.rate,
        width=first.width,
        converged=torch.tensor([[e.converged for e in s.values()] for s in sweeps], dtype=torch.bool).T,
        steps=torch.tensor([[e.steps for e in s.values()] for s in sweeps], dtype=torch.int64).T,
        settings={**settings, "adapter": first.settings.get("adapter", "")},
    )


def _check_sentences(sentences: Sequence[str]) -> list[str]:
    if isinstance(sentences, str):
        raise InputError("sentences is one string; pass a list of sentences, e.g. text.splitlines()")
    texts = list(sentences)
    if not texts:
        raise InputError("the corpus has no sentences; pass at least one")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"sentence {i} is {'empty' if isinstance(text, str) else type(text).__name__}; pass non-empty strings")
    return texts


def _check_shard(shard: tuple[int, int] | None, count: int, batch_size: int) -> tuple[int, int] | None:
    if shard is None:
        return None
    rank, world = shard
    if not (isinstance(rank, int) and isinstance(world, int) and 0 <= rank < world):
        raise InputError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
    total = math.ceil(count / batch_size)
    if world > total:
        raise InputError(f"{world} ranks but only {total} batches of {batch_size} sentences; use at most {total} ranks or a smaller batch size")
    return rank, world


__all__ = ["CorpusResult", "corpus"]
