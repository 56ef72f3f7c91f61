"""The Gaussian noise every solver draws, in one place.

A sentence's draws depend on the user's seed and on the sentence itself, never on its batch: not on
its position in the batch, the padded length, the other sentences or the rank that solves it. So a
sentence gets the same sigma alone or inside any padded batch. Draws are made for the real tokens
only (padding gets zero noise), in the same order whatever the padding.
"""

from __future__ import annotations

import hashlib
import math

import torch

DIRECTIONS = 7919
"""Stream number of the linearised start's probe directions (the refinement's samples use 0)."""


def sentence_seed(seed: int, content: torch.Tensor) -> int:
    """The seed of one sentence: a stable hash of the user's ``seed`` and the sentence's real tokens.

    ``content`` is the sentence's real token ids [tokens] (the robust choice) or, for a model fed
    embeddings, its real tokens' embeddings [tokens, features]; these are summarised coarsely (per
    token mean and mean absolute value, two decimals of their overall scale) so that rounding
    differences between a batched and an unbatched embedding pass cannot change the seed. Two
    different sentences that share a seed only share noise draws, which does not bias either.

    >>> sentence_seed(0, torch.tensor([101, 2307, 102])) == sentence_seed(0, torch.tensor([101, 2307, 102]))
    True
    """
    data = content.detach().to("cpu")
    if data.is_floating_point():
        rows = data.to(torch.float64).reshape(data.shape[0], -1) if data.ndim else data.to(torch.float64).reshape(1, 1)
        unit = float(rows.abs().mean()) or 1.0
        data = torch.round(torch.stack([rows.mean(1), rows.abs().mean(1)], 1) / unit * 100).to(torch.int64)
    else:
        data = data.to(torch.int64)
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{int(seed)}|{tuple(data.shape)}|".encode())
    digest.update(data.contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest(), "little") >> 1


def sentence_seeds(seed: int, x: torch.Tensor, mask: torch.Tensor, ids: torch.Tensor | None = None) -> list[int]:
    """``sentence_seed`` of every sentence of a padded batch: from its real ``ids`` [B, n] when the
    inputs hold token ids, else from its real tokens' embeddings ``x`` [B, n, K].

    >>> ids = torch.tensor([[101, 7, 102, 0], [101, 7, 102, 0]])    # the same sentence twice, padded
    >>> a, b = sentence_seeds(0, torch.zeros(2, 4, 8), ids != 0, ids=ids)
    >>> a == b == sentence_seed(0, torch.tensor([101, 7, 102]))
    True
    """
    mask = mask.bool()
    if ids is not None and tuple(ids.shape) == tuple(mask.shape):
        return [sentence_seed(seed, ids[b][mask[b].to(ids.device)]) for b in range(mask.shape[0])]
    return [sentence_seed(seed, x[b][mask[b].to(x.device)]) for b in range(mask.shape[0])]


def generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    """A generator for one sentence (``seed``, from ``sentence_seed``) and one use of noise (``stream``)."""
    g = torch.Generator(device=device)
    g.manual_seed((int(seed) * 1_000_003 + stream) % (2**63))
    return g


def gaussian(g: torch.Generator, samples: int, tokens: torch.Tensor, K: int, like: torch.Tensor) -> torch.Tensor:
    """Standard Gaussian noise on the real ``tokens`` (bool [n]) only, zero on padding: [samples, n, K]."""
    z = torch.zeros(samples, tokens.shape[0], K, device=like.device, dtype=like.dtype)
    z[:, tokens] = torch.randn(samples, int(tokens.sum()), K, generator=g, device=like.device, dtype=like.dtype)
    return z


def directions(g: torch.Generator, count: int, K: int, k: int, like: torch.Tensor) -> torch.Tensor:
    """``k`` orthonormal random directions for each of ``count`` real tokens, scaled to norm sqrt(K)
    (the norm of a standard Gaussian draw): [count, k, K]."""
    out = torch.empty(count, k, K, device=like.device, dtype=like.dtype)
    for i in range(count):
        q, _ = torch.linalg.qr(torch.randn(K, k, generator=g, device=like.device, dtype=like.dtype))
        out[i] = q.T[:k] * math.sqrt(K)
    return out


def noisy(x: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """The perturbed embeddings ``x + sigma_i * z``: x [R, n, K], sigma [R, n], z [R, n, K]."""
    return x + sigma[:, :, None] * z
