"""probe.snapshot inside training loops: the training must end bit-identical to one without sweeps."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import probe

SOLVER = dict(samples=8, max_steps=8)



class Classifier(nn.Module):
    """Embedding, dropout, a per-token layer, mean pooling, a frozen-embedding option and a head."""

    def __init__(self, vocab: int = 20, width: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, width, padding_idx=0)
        self.drop = nn.Dropout(0.3)
        self.encoder = nn.Sequential(nn.Linear(width, width), nn.Tanh())
        self.head = nn.Linear(width, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.drop(self.embed(ids)))
        return self.head(self.drop(hidden.mean(1)))


class NoisyLayer(nn.Module):
    """Draws from every global random stream on every call, in eval mode too."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1e-3 * torch.randn_like(x) + 1e-6 * (random.random() + float(np.random.rand()))


def rng_states() -> tuple:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()


def same_rng(a: tuple, b: tuple) -> bool:
    return torch.equal(a[0], b[0]) and a[1] == b[1] and bool((a[2] == b[2]).all())


def train(optimizer_name: str, sweep_every: int | None) -> dict[str, torch.Tensor]:
    """Twelve steps on random data drawn from torch, random and numpy; sweeps between backward and step."""
    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    model = Classifier()
    model.embed.weight.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9) if optimizer_name == "sgd" else torch.optim.Adam(params, lr=0.01)
    probe_ids = torch.tensor([[3, 5, 7, 9, 11]])
    model.train()
    for step in range(12):
        ids = torch.randint(1, 20, (8, 6))
        ids[:, random.randrange(6)] = int(np.random.randint(1, 20))
        labels = (ids[:, 0] > 10).long()
        loss = nn.functional.cross_entropy(model(ids), labels)
        loss.backward()
        if sweep_every and step % sweep_every == 0:
            grads = [p.grad.clone() for p in params]
            result = probe.snapshot(model, probe_ids, ["encoder", "embed"], seed=step, scale=1.0, **SOLVER)
            assert result.sigma.shape == (2, 5) and torch.isfinite(result.sigma).all()
            assert all(torch.equal(g, p.grad) for g, p in zip(grads, params))
            assert model.embed.weight.grad is None and not model.embed.weight.requires_grad
            assert all(p.requires_grad for p in params) and all(m.training for m in model.modules())
        optimizer.step()
        optimizer.zero_grad()
    return {k: v.clone() for k, v in model.state_dict().items()}, rng_states()


@pytest.mark.parametrize("optimizer_name", ["sgd", "adam"])
def test_training_with_sweeps_ends_bit_identical(optimizer_name):
    plain, plain_rng = train(optimizer_name, None)
    swept, swept_rng = train(optimizer_name, 3)
    assert plain.keys() == swept.keys()
    assert all(torch.equal(plain[k], swept[k]) for k in plain)
    assert same_rng(plain_rng, swept_rng)


def test_sweep_restores_random_streams_a_model_draws_from():
    torch.manual_seed(1)
    model = Classifier()
    model.encoder.insert(0, NoisyLayer())
    ids = torch.tensor([[3, 5, 7, 9]])
    before = rng_states()
    model(ids)
    assert not same_rng(before, rng_states()), "the model draws random numbers: a plain forward pass moves the streams"
    before = rng_states()
    with probe.attach(model, "encoder") as p:
        p.explain(ids, scale=1.0, **SOLVER)
    assert same_rng(before, rng_states())
    probe.snapshot(model, ids, "encoder", scale=1.0, **SOLVER)
    assert same_rng(before, rng_states())


def test_sweep_returns_what_attach_explain_returns_in_any_grad_mode():
    torch.manual_seed(2)
    model = Classifier().eval()
    batch = torch.tensor([[3, 5, 7, 9], [4, 6, 8, 0]])
    with probe.attach(model, ["encoder", "head"], select=lambda h: h if h.ndim == 2 else h[:, :2]) as p:
        expected = p.explain_batch(batch, seed=5, scale=1.0, **SOLVER)
    results = {}
    results["plain"] = probe.snapshot_batch(model, batch, ["encoder", "head"], seed=5, scale=1.0, select=lambda h: h if h.ndim == 2 else h[:, :2], **SOLVER)
    with torch.no_grad():
        results["no_grad"] = probe.snapshot_batch(model, batch, ["encoder", "head"], seed=5, scale=1.0, select=lambda h: h if h.ndim == 2 else h[:, :2], **SOLVER)
    with torch.inference_mode():
        results["inference_mode"] = probe.snapshot_batch(model, batch, ["encoder", "head"], seed=5, scale=1.0, select=lambda h: h if h.ndim == 2 else h[:, :2], **SOLVER)
    for mode, result in results.items():
        assert isinstance(result, list) and len(result) == 2, mode
        assert [r.words for r in result] == [["0", "1", "2", "3"], ["0", "1", "2"]], mode
        for got, want in zip(result, expected):
            assert torch.equal(got.sigma, want.sigma), mode
    assert not model.training
    single = probe.snapshot(model, batch[:1], "encoder", seed=5, scale=1.0, select=lambda h: h[:, :2], **SOLVER)
    assert type(single) is probe.Explanation and single.layer == "encoder"
    assert torch.allclose(single.sigma, expected[0]["encoder"].sigma, rtol=1e-5), "a sentence alone is the sentence in its batch"
    (one,) = probe.snapshot_batch(model, batch[:1], ["encoder"], scale=1.0, **SOLVER)
    assert type(one) is probe.Sweep and one.layers == ["encoder"]
    with pytest.raises(probe.ProbeError, match="explain_batch"):
        probe.snapshot(model, batch, "encoder", scale=1.0, **SOLVER)


def test_sweep_errors_are_probe_errors_and_leave_the_model_as_found():
    model = Classifier().train()
    with pytest.raises(probe.ProbeError, match="did you mean 'encoder'"):
        probe.snapshot(model, torch.tensor([[3, 5]]), "encodr")
    with pytest.raises(probe.ProbeError, match="unknown solver setting"):
        probe.snapshot(model, torch.tensor([[3, 5]]), "encoder", sample=4)
    assert all(m.training for m in model.modules())
    assert not model.embed._forward_hooks and not model.encoder._forward_hooks
