"""Reading a ``CorpusResult`` file and merging the shards of one run: the checks and bookkeeping
kept apart from the result itself."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .._utils import reading as read
from ..errors import FileFormatError, InputError


def corpus_from_file(cls, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str], path: str):
    """``CorpusResult._from_file``: the result a file holds, every part checked against the rest."""
    common = read.settings(meta, path)
    sigma = read.sigma(tensors, path, 2, common["scale"])
    layers, vocabulary = read.json_value(meta, "layers", path), read.json_value(meta, "vocabulary", path)
    if not (isinstance(layers, list) and all(isinstance(n, str) for n in layers) and isinstance(vocabulary, list) and all(isinstance(w, str) for w in vocabulary)):
        raise FileFormatError(f"{path!r}: the metadata 'layers' or 'vocabulary' is damaged; re-run probe corpus")
    try:
        offsets, word_ids = tensors["offsets"].tolist(), tensors["word_ids"]
        if offsets[0] != 0 or offsets[-1] != sigma.shape[1] or any(b <= a for a, b in zip(offsets, offsets[1:])):
            raise ValueError("offsets do not split sigma into sentences")
        if word_ids.shape != (sigma.shape[1],) or (word_ids.numel() and not (0 <= int(word_ids.min()) and int(word_ids.max()) < len(vocabulary))):
            raise ValueError("word_ids do not index the vocabulary once per word")
        spans = list(zip(offsets[:-1], offsets[1:]))
        stderr = read.stderr(tensors, "stderr", sigma.shape, path)
        return cls(
            layers=layers,
            words=[[vocabulary[v] for v in word_ids[a:b].tolist()] for a, b in spans],
            sigma=[sigma[:, a:b] for a, b in spans],
            stderr=[stderr[:, a:b] for a, b in spans],
            index=tensors["index"],
            convergence=tensors["converged"],
            steps=tensors["steps"],
            pieces=read.json_value(meta, "pieces", path, "null"),
            **common,
        )
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError, InputError) as err:
        raise FileFormatError(f"{path!r}: the corpus result is damaged ({err}); re-run probe corpus") from None



def merged(cls, parts: Sequence):
    """``CorpusResult.merge``: one result from the shards of a run, sentences in corpus order."""
    if not parts:
        raise InputError("merge needs at least one corpus result")
    first = parts[0]
    for part in parts[1:]:
        if (part.layers, part.scale, part.rate, part.width, part.settings, part.pieces is None) != (first.layers, first.scale, first.rate, first.width, first.settings, first.pieces is None):
            raise InputError("these corpus results come from different runs (layers, scale, rate, width or settings differ); merge the shards of one run")
    index = torch.cat([p.index for p in parts])
    if len(index.unique()) != len(index):
        raise InputError("the corpus results overlap (a sentence appears twice); merge each shard once")
    order = index.argsort().tolist()
    words = [w for p in parts for w in p.words]
    sigma = [s for p in parts for s in p.sigma]
    stderr = [e for p in parts for e in p.stderr]
    pieces = None if first.pieces is None else [q for p in parts for q in p.pieces]
    return cls(
        layers=list(first.layers),
        words=[words[j] for j in order],
        sigma=[sigma[j] for j in order],
        stderr=[stderr[j] for j in order],
        index=index[order],
        scale=first.scale,
        rate=first.rate,
        width=first.width,
        convergence=torch.cat([p.convergence for p in parts], 1)[:, order],
        steps=torch.cat([p.steps for p in parts], 1)[:, order],
        settings=dict(first.settings),
        pieces=None if pieces is None else [pieces[j] for j in order],
    )
