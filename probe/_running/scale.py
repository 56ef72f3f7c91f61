"""The default scale (the ceiling of sigma), and the check that it left room below the ceiling.

The rule: 10 x the std of the tensor the noise is added to. For a plain ``nn.Embedding`` that tensor
holds rows of its weight, so the rule is the paper's advice, 10 x the std of the word-embedding
weights. For any other module (BERT's ``embeddings``, which add positions and token types and end
in a LayerNorm; a scaled word embedding) it is measured once per model, by running that module on a
fixed sample of token ids, so it depends neither on the sentence nor on the batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._utils.warnings import warn
from ..errors import InputError, ModelError

SAMPLE_SHAPE = (32, 8)
"""Sentences x tokens of the fixed sample of ids the embedding module runs on (short sentences:
small models have few positions)."""
CEILING = 0.9999
"""sigma / scale above this is at the ceiling: the solve never found noise that hurts the state."""


def default_scale(embedding: nn.Module | None, weight: torch.Tensor | None) -> float:
    """10 x the std of what ``embedding`` outputs; ``weight`` is the word-embedding matrix (its rows
    are the vocabulary the sample is drawn from, and its std the fallback for a module that cannot
    run alone on ids)."""
    if weight is None:
        raise InputError("no word-embedding weights to set the default scale; pass scale=")
    values = None if _plain_embedding(embedding) else _sampled_output(embedding, weight.shape[0])
    what = "word-embedding weights" if values is None else "embedding module's outputs for a sample of ids"
    values = weight if values is None else values
    std = float(values.detach().float().std())
    if not math.isfinite(std):
        raise ModelError(f"the {what} hold NaN or inf, so they cannot set the default scale; check the model's weights, or pass scale=")
    return 10 * std


def _plain_embedding(embedding: nn.Module | None) -> bool:
    return isinstance(embedding, nn.Embedding) and type(embedding).forward is nn.Embedding.forward


def _sampled_output(embedding: nn.Module | None, vocabulary: int) -> torch.Tensor | None:
    """The module's output for a fixed sample of ids (padding index left out), or None when it
    does not run on ids alone or gives no [sentences, tokens, features] float tensor."""
    if embedding is None:
        return None
    parameter = next(embedding.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, max(vocabulary - 1, 1), SAMPLE_SHAPE, generator=generator)
    padding = getattr(_word_table(embedding), "padding_idx", None)
    if padding is not None:
        ids = ids + (ids >= padding).long()
    try:
        with torch.no_grad():
            out = embedding.forward(ids.to(device))  # no hook runs: the user's hooks see no extra call
    except Exception:  # a module that needs more than ids: the word-embedding weights stand in
        return None
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or tuple(out.shape[:2]) != SAMPLE_SHAPE:
        return None
    return out


def _word_table(embedding: nn.Module) -> nn.Module | None:
    """The first nn.Embedding inside the module: the word table of BERT-style embeddings."""
    return next((m for m in embedding.modules() if isinstance(m, nn.Embedding)), None)


def flag_ceiling(solutions: list[list], names: list[str], scale: float) -> None:
    """Marks not converged, with one warning, every solve whose words all sit at the ceiling: the
    noise never changed the state, so sigma says only that the scale was too small for the layer
    (or that the state does not depend on these words)."""
    stuck = []
    for b, per_layer in enumerate(solutions):
        for name, solution in zip(names, per_layer):
            if solution.sigma.numel() and bool((solution.sigma >= CEILING * scale).all()):
                solution.converged = False
                stuck.append(f"sentence {b} at {name!r}")
    if stuck:
        shown = ", ".join(stuck[:5]) + (f" and {len(stuck) - 5} more" if len(stuck) > 5 else "")
        warn(
            f"every word sits at the ceiling sigma = scale = {scale:g} ({shown}): noise that large barely changes the "
            f"state, so the scale is too small for this layer (or the state does not depend on these words); "
            f"pass a larger scale=, e.g. scale={10 * scale:g}"
        )
