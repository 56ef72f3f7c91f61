"""The unperturbed pass of a batch, checked, and what the solver needs from it.

It gives the embeddings the noise is added to, which tokens are real (not padding), the attached
layers' clean outputs, and each output's per-element weight in the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .hooks import HookRunner
from .._method.objective import full_weight, weighting
from ..errors import InputError, LayerError, ModelError


@dataclass
class CleanPass:
    """One batch run without noise: embeddings [B, n, K], real-token mask [B, n], attached outputs."""

    x: torch.Tensor
    mask: torch.Tensor
    outputs: list[torch.Tensor]
    embedding_input: object


def clean_pass(runner: HookRunner, inputs) -> CleanPass:
    """Runs ``inputs`` without noise and checks everything a solve relies on."""
    with torch.no_grad():
        x, embedding_input, outputs = runner.run(inputs)
    batch, tokens = x.shape[:2]
    if not torch.isfinite(x).all():
        raise ModelError("the embedding module's output holds NaN or inf; check the model's weights (are they loaded?)")
    mask = runner.adapter.token_mask(inputs, embedding_input, batch, tokens, embedding=runner.embedding).to(x.device)
    if mask.shape != (batch, tokens):
        raise InputError(f"the mask has shape {tuple(mask.shape)} but the ids have shape {(batch, tokens)}; pass a mask that matches the ids")
    if not mask.any(1).all():
        raise InputError("a sentence has no real tokens (empty text?); explain sentences of at least one token")
    for name, out in zip(runner.names, outputs):
        if out.shape[:1] != (batch,):
            raise LayerError(f"layer {name!r} gives shape {tuple(out.shape)}, whose first axis is not the batch of {batch}; use select= to make it batch first")
        if not torch.isfinite(out).all():
            raise ModelError(f"layer {name!r} holds NaN or inf for these inputs, before any noise; probe explains finite hidden states: check the model's weights and inputs")
    return CleanPass(x.detach(), mask.bool(), [o.detach() for o in outputs], embedding_input)


def valid_elements(adapter, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """Which elements of the batched output ``out`` belong to real tokens, or None when all do."""
    axis = adapter.length_axis(out.shape[1:], mask.shape[1])
    if axis is None:
        return None
    shape = [out.shape[0]] + [1] * (out.ndim - 1)
    shape[axis + 1] = mask.shape[1]
    return mask.reshape(shape)


def sentence_mean(adapter, out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each sentence's output with the token axis averaged over its real tokens (kept, of size 1),
    in float64; an output without a token axis as it is. What a corpus std is taken over."""
    valid = valid_elements(adapter, out, mask)
    if valid is None:
        return out.to(torch.float64)
    axis = adapter.length_axis(out.shape[1:], mask.shape[1]) + 1
    v = valid.to(torch.float64).expand_as(out)
    return (out.to(torch.float64) * v).sum(axis, keepdim=True) / v.sum(axis, keepdim=True)


def batch_weights(adapter, out: torch.Tensor, mask: torch.Tensor, inverse: torch.Tensor | None) -> torch.Tensor:
    """Every sentence's full weight of ``out``, padding at 0; ``inverse`` is 1/r**2 or None."""
    valid = valid_elements(adapter, out, mask)
    return torch.stack([full_weight(out[b], None if valid is None else valid[b], inverse) for b in range(out.shape[0])])


def batch_weightings(adapter, out: torch.Tensor, mask: torch.Tensor, inverse: torch.Tensor | None) -> list[str]:
    """Which weighting each sentence's ``batch_weights`` used (``objective.weighting``), for its result to record."""
    valid = valid_elements(adapter, out, mask)
    return [weighting(out[b], None if valid is None else valid[b], inverse) for b in range(out.shape[0])]
