"""``probe.corpus``: every sentence of a corpus explained at named layers, in padded batches.

Sentences are solved in padded batches of ``batch_size`` sentences of similar length (a batch costs
as much as its longest sentence); a sentence's noise comes from the seed and the sentence alone, so
its result depends neither on its batch nor on which process ran it: a sharded run merges into the
result of one process, and results come back in the order of the sentences given.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from torch import nn
from tqdm.auto import tqdm

from .attach import attach
from .corpus_store import CorpusStore, fingerprint, regularization_or_skip, solve_or_skip
from .truncation import warn_truncated
from .._results.corpus import CorpusResult
from .._utils.checks import check_positive, check_seed, settings_from
from ..adapters.wrappers import unwrap
from .model_state import tokenizer_beside
from .._method.settings import SolverSettings
from .._results.sweep import Sweep
from ..errors import InputError


CORPUS_TOL = 0.05
"""The per-sentence precision (``tol``) ``probe.corpus`` solves at unless told: a corpus figure is a
mean over many sentences, whose independent errors shrink in it, so each sentence needs less
precision than its own plot (``tol=0.02``). ``benchmarks/bench_corpus_default.py`` times it (6 MiniLM
layers: 208-357x the paper's algorithm); ``benchmarks/bench_corpus_precision.py`` compares it with a
converged ``tol=0.01`` reference (8 sentences, seeds 0-4: mean loss per layer within 0.34% of the
information kept, 2.53% of the loss in nats, mostly noise that shrinks with the corpus; word types
seen twice within 1.9% of their information kept)."""


def encode(model: nn.Module, tokenizer, texts: Sequence[str]):
    """Model inputs for ``texts`` as one padded batch: a HuggingFace model (or a wrapper of one: PEFT,
    SentenceTransformer, compiled, parallel) takes the tokenizer's whole output (ids, attention mask,
    token types), any other module the ``input_ids`` tensor alone."""
    encoded = tokenizer(list(texts), return_tensors="pt", padding=True, truncation=True)
    transformers = sys.modules.get("transformers")  # a HuggingFace model has imported it already
    inner = unwrap(model)[-1][0]
    return encoded if transformers is not None and isinstance(inner, transformers.PreTrainedModel) else encoded["input_ids"]


def _batches(lengths: Sequence[int], batch_size: int, shard: tuple[int, int] | None = None) -> list[list[int]]:
    """The batches of sentence indices to solve (only rank's, for ``shard = (rank, world)``): the
    sentences ordered by token count (ties by position), cut into runs of ``batch_size``; batch ``k``
    goes to rank ``k % world``. Similar lengths keep the padding, which costs as much as real
    tokens, small."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    all_batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    if shard is None:
        return all_batches
    rank, world = shard
    return all_batches[rank::world]


def _token_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return list(tokenizer(list(texts), truncation=True)["input_ids"])


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
    checkpoint: str | Path | None = None,
    **solver,
) -> CorpusResult:
    """Explains ``layers`` on every sentence and returns the corpus measures as a CorpusResult.

    ``regularization`` defaults to the per-feature std over ``sentences`` themselves (pass a
    ``{layer: tensor}`` dict, e.g. from ``p.regularization``, to use another corpus).
    Sentences are batched by similar length, ``batch_size`` at a time; results come back in the
    order of ``sentences``. ``shard=(rank, world)`` solves only that rank's batches (every
    ``world``-th); ``CorpusResult.merge`` joins the shards into exactly the result of one process.
    Solver settings (``samples``, ``max_steps``, ...) are keywords. Each sentence is solved to
    ``tol=CORPUS_TOL`` (0.05), meant for means over many sentences (over 8 MiniLM sentences the mean
    loss per layer lands within 2.53% of a converged ``tol=0.01`` run, 0.34% of the information
    kept); pass ``tol=0.02`` for sentences whose own
    plots must be precise. ``settings["precision"]`` of the result says which was used. With
    ``checkpoint=FOLDER`` each finished batch is written there at once, and the same call after an
    interruption solves only the rest (same results as one uninterrupted run). A sentence that fails
    is reported (a warning) and left out; ``result.index`` says which sentences the result holds.

    >>> result = probe.corpus(model, ["encoder.layer.0", "encoder.layer.5"], ["a fine film", "a dull film"], tokenizer=tokenizer, samples=4, max_steps=2)
    >>> len(result), result.layers
    (2, ['encoder.layer.0', 'encoder.layer.5'])
    """
    if not isinstance(layers, str) and not (isinstance(layers, Sequence) and layers and all(isinstance(n, str) for n in layers)):
        raise InputError(f"layers must be a layer name or a list of names, got {layers!r}; e.g. ['encoder.layer.0', 'encoder.layer.5']")
    names = [layers] if isinstance(layers, str) else list(layers)
    check_seed(seed)
    check_positive("rate", rate)
    if scale is not None:
        check_positive("scale", scale)
    texts = _check_sentences(sentences)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
    shard = _check_shard(shard, len(texts), batch_size)
    precision = "per-sentence tol given" if "tol" in solver else f"corpus default: per-sentence tol {CORPUS_TOL}, for corpus means"
    solver = {"tol": CORPUS_TOL, **solver}
    settings = {**settings_from(solver, SolverSettings).as_metadata(), "seed": str(seed), "batch_size": str(batch_size), "precision": precision}
    tokenizer = tokenizer if tokenizer is not None else tokenizer_beside(model)
    if tokenizer is None:
        raise InputError("the model has no tokenizer beside it; pass tokenizer= (e.g. AutoTokenizer.from_pretrained(folder, trust_remote_code=False))")
    ids = _token_ids(tokenizer, texts)
    lengths = [len(row) for row in ids]
    mine = _batches(lengths, batch_size, shard)
    warn_truncated(tokenizer, texts)

    store = CorpusStore(names, settings)
    with attach(model, names, tokenizer=tokenizer) as p:
        if regularization is None:
            def measure(batches: list[list[int]]) -> dict:
                return p.regularization((encode(model, tokenizer, [texts[i] for i in rows]) for rows in batches), progress=progress)

            regularization = regularization_or_skip(measure, _batches(lengths, batch_size), store)
        elif not isinstance(regularization, Mapping):
            if len(names) > 1:
                raise InputError("several layers: pass regularization as {layer name: tensor}, e.g. what p.regularization(corpus) returns")
            regularization = {names[0]: regularization}
        if checkpoint is not None:
            store.resume(checkpoint, fingerprint(model, ids, names, {**settings, "scale": repr(scale), "rate": repr(rate)}, regularization))

        def solve(rows: list[int]) -> list[Sweep]:
            return p.explain_batch(encode(model, tokenizer, [texts[i] for i in rows]), regularization=regularization, scale=scale, rate=rate, seed=seed, **solver)

        with tqdm(total=sum(map(len, mine)), disable=not progress, desc="corpus", unit="sentence") as bar:
            for rows in mine:
                todo = [i for i in rows if i not in store.done and i not in store.failed]
                if todo:
                    solve_or_skip(solve, todo, store)
                bar.update(len(rows))
    return store.result([i for rows in mine for i in rows])


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
    if not (isinstance(shard, tuple) and len(shard) == 2):
        raise InputError(f"shard must be a pair (rank, world), got {shard!r}")
    rank, world = shard
    if not (isinstance(rank, int) and isinstance(world, int) and not isinstance(rank, bool) and not isinstance(world, bool) and 0 <= rank < world):
        raise InputError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
    total = math.ceil(count / batch_size)
    if world > total:
        raise InputError(f"{world} ranks but only {total} batches of {batch_size} sentences; use at most {total} ranks or a smaller batch size")
    return rank, world


__all__ = ["corpus", "encode"]
