"""Finished work of a corpus run, kept as it finishes, so an interrupted run resumes where it stopped.

Each solved batch is written at once (atomically) as a small corpus result in
``FOLDER/finished/RUN/``, where ``RUN`` is a fingerprint of everything the results depend on: the
sentences as tokenized, the layers, the solver settings, seed and scale, the regularization and the
model's weights. The same command after a kill (Ctrl-C, SIGKILL, out of memory) finds them and
solves only the rest; a sentence's result depends on nothing but the seed and the sentence, so
the resumed run equals an uninterrupted one. A different run into the same folder gets its own
fingerprint and never reads or overwrites another's work. A sentence that fails is reported and
skipped; the others' results are kept.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from .._results.corpus import CorpusResult
from .._results.load import load
from .._results.sweep import Sweep
from .._utils.memory import out_of_memory
from .._utils.text import one_line
from ..errors import InputError, LayerError, ProbeError, RegularizationError

FINISHED = "finished"
"""The subfolder of a corpus folder that holds finished batches."""


def fingerprint(model: nn.Module, token_ids: Sequence[Sequence[int]], names: Sequence[str], settings: Mapping[str, str], regularization) -> str:
    """A hex digest of everything a corpus run's results depend on (20 characters)."""
    digest = hashlib.blake2b(digest_size=10)
    digest.update(json.dumps({"tokens": [list(map(int, ids)) for ids in token_ids], "layers": list(names), "settings": dict(settings)}, sort_keys=True).encode())
    tensors = [(f"reg/{k}", v) for k, v in sorted((regularization or {}).items())] + [(f"model/{k}", v) for k, v in model.state_dict().items()]
    for name, tensor in tensors:
        digest.update(name.encode())
        if isinstance(tensor, torch.Tensor):
            flat = tensor.detach().to("cpu").contiguous().reshape(-1)
            digest.update(str((flat.dtype, tuple(tensor.shape))).encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    return digest.hexdigest()


class CorpusStore:
    """The sentences solved so far, by index; with a folder, each batch is also written as it finishes."""

    def __init__(self, names: Sequence[str], settings: Mapping[str, str]) -> None:
        self.names, self.settings = list(names), dict(settings)
        self.folder: Path | None = None
        self.done: dict[int, tuple] = {}
        self.common: dict = {}
        self.failed: dict[int, str] = {}

    def resume(self, folder: str | Path, run: str) -> None:
        """Keeps finished batches in ``folder``'s ``finished/run`` from now on, and loads those a
        previous call of this run (any rank) wrote there; a damaged one is solved again."""
        self.folder = Path(folder) / FINISHED / run
        for path in sorted(self.folder.glob("part-*.safetensors")) if self.folder.is_dir() else []:
            try:
                part = load(path)
            except ProbeError as err:
                warnings.warn(f"{str(path)!r} cannot be read ({one_line(str(err), 120)}); its sentences are solved again", stacklevel=3)
                continue
            if isinstance(part, CorpusResult) and part.layers == self.names:
                self._keep(part)

    def _keep(self, part: CorpusResult) -> None:
        self.common = self.common or {"scale": part.scale, "rate": part.rate, "width": part.width, **_model_settings(part.settings)}
        for j, i in enumerate(part.index.tolist()):
            self.done[i] = (part.words[j], part.sigma[j], part.convergence[:, j], part.steps[:, j], part.stderr[j])

    def add(self, rows: Sequence[int], sweeps: Sequence[Sweep]) -> None:
        """Keeps the solved sentences ``rows`` (and writes them, with a folder)."""
        first = sweeps[0][self.names[0]]
        common = {"scale": first.scale, "rate": first.rate, "width": first.width, **_model_settings(first.settings)}
        part = _result(self.names, {**self.settings, **_model_settings(common)}, common, list(rows), [
            (s.words, s.sigma, torch.tensor([e.converged for e in s.values()]), torch.tensor([e.steps for e in s.values()]), s.stderr) for s in sweeps
        ])
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            part.save(self.folder / f"part-{min(rows):08d}.safetensors")  # a sentence is solved once per run: unique
        self._keep(part)

    def result(self, wanted: Sequence[int]) -> CorpusResult:
        """The corpus result of the sentences ``wanted`` that are solved, in corpus order."""
        rows = sorted(i for i in set(wanted) if i in self.done)
        if not rows:
            first = next(iter(self.failed.values()), "no sentence was solved")
            raise InputError(f"every sentence failed, so there is no result; the first error: {first}")
        return _result(self.names, {**self.settings, **_model_settings(self.common)}, self.common, rows, [self.done[i] for i in rows])


def _model_settings(settings: Mapping[str, str]) -> dict[str, str]:
    """The settings a corpus result takes from its sentences' results: how the model was reached."""
    return {"adapter": settings.get("adapter", ""), "wrapper": settings.get("wrapper", "none"), "weighting": settings.get("weighting", "")}


def _result(names: list[str], settings: dict, common: dict, rows: list[int], found: list[tuple]) -> CorpusResult:
    return CorpusResult(
        layers=names,
        words=[f[0] for f in found],
        sigma=[f[1] for f in found],
        stderr=[f[4] for f in found],
        index=torch.tensor(rows, dtype=torch.int64),
        scale=common["scale"],
        rate=common["rate"],
        width=common["width"],
        convergence=torch.stack([torch.as_tensor(f[2], dtype=torch.bool) for f in found], 1),
        steps=torch.stack([torch.as_tensor(f[3], dtype=torch.int64) for f in found], 1),
        settings=settings,
    )


def regularization_or_skip(measure: Callable[[list[list[int]]], dict], batches: list[list[int]], store: CorpusStore) -> dict:
    """The corpus regularization over ``batches`` of sentence indices; if a sentence breaks it,
    each sentence is tried alone, those that fail are reported, skipped and marked failed in
    ``store``, and the regularization is taken over the rest."""
    try:
        return measure(batches)
    except (ProbeError, RuntimeError, MemoryError):
        pass
    kept = []
    for rows in batches:
        for i in rows:
            try:
                measure([[i]])
                kept.append(i)
            except (ProbeError, RuntimeError, MemoryError) as err:
                _skip(i, err, store)
    if not kept:
        raise InputError(f"every sentence failed, so there is no result; the first error: {next(iter(store.failed.values()))}")
    return measure([kept[k : k + len(batches[0])] for k in range(0, len(kept), len(batches[0]))])


def solve_or_skip(solve: Callable[[list[int]], list[Sweep]], rows: list[int], store: CorpusStore) -> None:
    """Solves the sentences ``rows`` together; if that fails, each alone, and a sentence that still
    fails is reported (a warning) and skipped, so it never costs the rest of the corpus. A wrong
    regularization or layer is the call's mistake, not a sentence's: it is raised at once."""
    try:
        store.add(rows, solve(rows))
        return
    except (RegularizationError, LayerError):
        raise
    except (ProbeError, RuntimeError, MemoryError) as err:
        if len(rows) == 1:
            _skip(rows[0], err, store)
            return
    for i in rows:
        try:
            store.add([i], solve([i]))
        except (RegularizationError, LayerError):
            raise
        except (ProbeError, RuntimeError, MemoryError) as err:
            _skip(i, err, store)


def _skip(i: int, err: BaseException, store: CorpusStore) -> None:
    what = "ran out of memory" if out_of_memory(err) else "failed"
    store.failed[i] = f"sentence {i}: {type(err).__name__}: {one_line(str(err), 160)}"
    warnings.warn(f"sentence {i} {what} and is left out of the result ({type(err).__name__}: {one_line(str(err), 160)})", stacklevel=3)
