"""``probe.snapshot``: attach and explain in one call that a training loop can make at any point.

The training must not notice the call: ``probe.attach`` leaves gradients, ``requires_grad`` flags,
train/eval modes and every random stream (torch, CUDA, ``random``, numpy) as found (the solver
differentiates only its own noise scales, with ``torch.autograd.grad``).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from .attach import attach
from .hooks import Select


def snapshot(model: nn.Module, inputs, layers: str | Sequence[str], *, select: Select | None = None, tokenizer=None, **explain):
    """Per-word sigma of ``layers`` for one sentence, safe to call anywhere in a training loop.

    ``probe.attach`` and ``explain`` in one call: an Explanation for one layer name, a Sweep for a
    list. Gradients (``.grad``), the optimizer, ``requires_grad`` flags, train/eval modes and the
    random streams the training draws from are all left as found, so a run with snapshots ends with
    bit-identical weights to one without. Pass the unwrapped model (``ddp_model.module``), not a
    DistributedDataParallel wrapper. ``explain`` keywords: regularization, scale, rate, seed,
    solver settings.

    >>> s = probe.snapshot(model, tokenizer("a fine film", return_tensors="pt"), ["encoder.layer.0", "encoder.layer.1"], samples=4, max_steps=2)
    >>> s.sigma.shape
    torch.Size([2, 5])
    """
    with attach(model, layers, select=select, tokenizer=tokenizer) as p:
        return p.explain(inputs, **explain)


def snapshot_batch(model: nn.Module, inputs, layers: str | Sequence[str], *, select: Select | None = None, tokenizer=None, **explain) -> list:
    """``snapshot`` for a padded batch: always a list, one result per sentence.

    >>> batch = probe.snapshot_batch(model, tokenizer(["a fine film", "a dull plot"], padding=True, return_tensors="pt"), "encoder.layer.0", samples=4, max_steps=2)
    >>> [e.words[1] for e in batch]
    ['a', 'a']
    """
    with attach(model, layers, select=select, tokenizer=tokenizer) as p:
        return p.explain_batch(inputs, **explain)


__all__ = ["snapshot", "snapshot_batch"]
