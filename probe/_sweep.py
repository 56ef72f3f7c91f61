"""``probe.sweep``: attach and explain in one call that a training loop can make at any point.

The training must not notice the call. ``probe.attach`` already leaves gradients, ``requires_grad``
flags and train/eval modes as found (the solver differentiates only its own noise scales, with
``torch.autograd.grad``); ``isolated`` adds what only the model can break: a forward pass that
draws random numbers even in eval mode would move the training's random streams, so they are saved
before and put back after.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from ._attach import Select, attach


@contextmanager
def isolated() -> Iterator[None]:
    """Leaves every random stream a training uses as found: torch's CPU generator, each CUDA device's
    generator (when CUDA is in use), Python's ``random`` and numpy's global generator. Inside,
    autograd works even under an enclosing ``torch.inference_mode()``.

    >>> with isolated():
    ...     torch.rand(3)                 # the training's next torch.rand is unchanged
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices), torch.inference_mode(False):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def sweep(
    model: nn.Module,
    inputs,
    layers: str | Sequence[str],
    *,
    regularization=None,
    seed: int = 0,
    select: Select | None = None,
    tokenizer=None,
    scale: float | None = None,
    rate: float = 0.1,
    **solver,
):
    """Per-word sigma of ``layers`` for ``inputs``, safe to call anywhere in a training loop.

    ``probe.attach`` and ``explain`` in one call: an Explanation for one layer name, a Sweep for a
    list, a list of them for a padded batch. Gradients (``.grad``), the optimizer, ``requires_grad``
    flags, train/eval modes and the random streams the training draws from are all left as found,
    so a run with sweeps ends with bit-identical weights to one without. Pass the unwrapped model
    (``ddp_model.module``), not a DistributedDataParallel wrapper.

    >>> for step, batch in enumerate(loader):
    ...     loss = model(**batch).loss; loss.backward(); optimizer.step(); optimizer.zero_grad()
    ...     if step % 100 == 0:
    ...         s = probe.sweep(model, probe_inputs, ["encoder.layer.0", "encoder.layer.1"], samples=8)
    ...         print(step, s.sigma)
    """
    with isolated(), attach(model, layers, select=select, tokenizer=tokenizer) as p:
        return p.explain(inputs, regularization=regularization, seed=seed, scale=scale, rate=rate, **solver)


__all__ = ["isolated", "sweep"]
