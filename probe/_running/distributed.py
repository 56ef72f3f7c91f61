"""Corpus runs across processes and machines: ``torchrun --nproc-per-node N -m probe corpus ...``.

Each rank solves its batches of the corpus (``probe.corpus(shard=(rank, world))``) and writes
``DIR/shard-RANK.safetensors``; after a barrier rank 0 merges the shards into
``DIR/corpus.safetensors``, the file one process would write. On several machines ``DIR`` must be a
folder every machine sees (a shared file system), since rank 0 reads the other ranks' shards.
Batches go to ranks round-robin, so shards finish close together; a rank waits at the barrier for at
most torch.distributed's default timeout (30 minutes). Finished batches are written under
``DIR/finished/`` as they finish (``corpus_store``): the same command after an interruption resumes.
They are kept after ``corpus.safetensors`` is written (the same command then returns at once) and
may be deleted then.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from .._utils.checks import check_output_folder
from .._results.corpus import CorpusResult
from .corpus_run import corpus
from .._results.load import load
from ..errors import InputError, ProbeFileNotFoundError

RESULT_NAME = "corpus.safetensors"


def world() -> tuple[int, int]:
    """``(rank, world size)`` from the variables torchrun sets; ``(0, 1)`` outside torchrun."""
    try:
        rank, size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError("RANK and WORLD_SIZE must be integers; launch with torchrun, or unset them") from None
    if size < 1 or not 0 <= rank < size:
        raise InputError(f"RANK={rank} and WORLD_SIZE={size} are impossible (need WORLD_SIZE >= 1 and 0 <= RANK < WORLD_SIZE); launch with torchrun, or unset them")
    return rank, size


def device(name: str) -> torch.device:
    """The device this rank runs on: ``cuda`` means this rank's GPU (``LOCAL_RANK``) under torchrun."""
    try:
        chosen = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None
    if chosen.type not in ("cpu", "cuda"):
        raise InputError(f"device {name!r} is not supported by probe; use cpu, cuda or cuda:N")
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} asked for, but this torch sees no CUDA GPU; use --device cpu")
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise InputError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} GPU(s); use cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if chosen.type == "cuda" and chosen.index is None and world()[1] > 1:
        return torch.device("cuda", _local_rank())
    return chosen


def _local_rank() -> int:
    """This process's GPU on its machine, from torchrun's ``LOCAL_RANK``."""
    try:
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise InputError("LOCAL_RANK must be an integer; launch with torchrun, or unset it") from None
    if not 0 <= local < torch.cuda.device_count():
        raise InputError(f"LOCAL_RANK={local} but this machine has {torch.cuda.device_count()} GPU(s); start at most that many processes per machine")
    return local


def run_corpus(model: nn.Module, layers: Sequence[str], sentences: Sequence[str], out: str | Path, *, progress: bool = False, **kwargs) -> CorpusResult | None:
    """``probe.corpus`` over this process's share of ``sentences``, written under the folder ``out``.

    Outside torchrun it writes ``out/corpus.safetensors`` and returns the result. Under torchrun
    every rank writes ``out/shard-RANK.safetensors``; rank 0 then merges them into
    ``out/corpus.safetensors`` and returns the merged result, the other ranks return None. A process
    group already started (by the caller) is used and left running; otherwise one on gloo is started
    from torchrun's variables and ended here.
    """
    out = check_output_folder(out, "--out")
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {str(out)!r} is a file; give a folder for the corpus results")
    rank, size = world()
    out.mkdir(parents=True, exist_ok=True)
    if size == 1:
        result = corpus(model, layers, sentences, progress=progress, checkpoint=out, **kwargs)
        result.save(out / RESULT_NAME)
        return result
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        try:
            dist.init_process_group("gloo")
        except ValueError as err:
            raise InputError(f"WORLD_SIZE is {size} but torch.distributed cannot start ({err}); launch with torchrun") from None
    try:
        part = corpus(model, layers, sentences, shard=(rank, size), progress=progress and rank == 0, checkpoint=out, **kwargs)
        part.save(out / f"shard-{rank}.safetensors")
        dist.barrier()
        if rank != 0:
            return None
        merged = CorpusResult.merge([_shard(out, r) for r in range(size)])
        if int(merged.index.max()) >= len(sentences):
            raise InputError(f"the shards in {str(out)!r} hold sentences this corpus does not have; re-run into an empty folder")
        merged.save(out / RESULT_NAME)
        return merged
    finally:
        if owned:
            dist.destroy_process_group()


def _shard(out: Path, rank: int) -> CorpusResult:
    path = out / f"shard-{rank}.safetensors"
    if not path.is_file():
        raise ProbeFileNotFoundError(f"rank 0 cannot see {str(path)!r}; on several machines --out must be a folder all of them share (e.g. NFS)")
    result = load(path)
    if not isinstance(result, CorpusResult):
        raise InputError(f"{str(path)!r} is not a corpus shard; re-run into an empty folder")
    return result
