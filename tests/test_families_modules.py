"""probe.attach on module-level cases of issue 10: modules that run several times per pass (call=),
half precision models, nn.TransformerEncoder with a padding mask, RNNs that transpose inside their
forward, words for every input form, TorchScript refused. Tiny models, fast settings."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import probe

FAST = dict(samples=4, max_steps=3)
SHARED = "encoder.albert_layer_groups.0.albert_layers.0"


@pytest.fixture(scope="module")
def albert():
    from transformers import AlbertConfig, AlbertModel

    torch.manual_seed(0)
    config = AlbertConfig(vocab_size=100, embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, max_position_embeddings=32)
    return AlbertModel(config).eval()


def ids_of(seed: int, length: int, vocab: int = 100, low: int = 5) -> torch.Tensor:
    return torch.randint(low, vocab, (1, length), generator=torch.Generator().manual_seed(seed))


# --- a module that runs several times per forward pass -------------------------------------------


def test_a_shared_module_is_refused_without_call(albert):
    with probe.attach(albert, SHARED) as p, pytest.raises(probe.ProbeError, match=r"runs 3 times in one forward pass.*call=k.*k=2 or k=-1"):
        p.explain(ids_of(0, 6), max_steps=0)


@pytest.mark.parametrize("call", [0, 1, 2, -1])
def test_albert_shared_layer_at_every_depth_equals_a_hand_written_phi(albert, call):
    """call=k explains the k-th run of the shared layer: the same sigma as probe.explain over the
    same computation written by hand (same seed and settings, so the same noise)."""
    ids = ids_of(1, 7)
    x = albert.embeddings(ids)[0].detach()
    depth = call % 3 + 1

    def phi(xb: torch.Tensor) -> torch.Tensor:
        h = albert.encoder.embedding_hidden_mapping_in(xb)
        for _ in range(depth):
            h = albert.encoder.albert_layer_groups[0](h, None)
        return h

    expected = probe.explain(phi, x, batched_phi=True, scale=2.0, seed=5, **FAST)
    with probe.attach(albert, SHARED, call=call) as p:
        got = p.explain(ids, scale=2.0, seed=5, **FAST)
    assert torch.allclose(got.sigma, expected.sigma, rtol=1e-5)
    assert got.settings["call"] == str(depth - 1)


class Twice(nn.Module):
    """One block applied twice (weights shared), then a head."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(30, 8)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.head = nn.Linear(8, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.block(self.embedding(ids))))


def test_call_takes_one_int_a_list_or_a_dict():
    torch.manual_seed(0)
    model, ids = Twice().eval(), ids_of(2, 5, vocab=30)
    x = model.embedding(ids)[0].detach()
    second = probe.explain(lambda v: model.block(model.block(v)), x, batched_phi=True, scale=1.0, seed=3, max_steps=0)
    for call in (-1, [-1, None], {"block": 1}):
        with probe.attach(model, ["block", "head"], call=call) as p:  # -1 for all: the head's only call is its last
            sweep = p.explain(ids, scale=1.0, seed=3, max_steps=0)
        assert torch.allclose(sweep["block"].sigma, second.sigma, rtol=1e-5)


@pytest.mark.parametrize(
    "call, error",
    [(2, probe.errors.LayerError), (-3, probe.errors.LayerError), (1.0, probe.errors.InputError), (True, probe.errors.InputError), ([0, 1, 2], probe.errors.InputError), ({"nope": 0}, probe.errors.InputError)],
)
def test_a_call_that_does_not_exist_is_refused(call, error):
    model = Twice().eval()
    with pytest.raises(error, match="call"):
        with probe.attach(model, ["block", "head"], call=call) as p:
            p.explain(ids_of(2, 5, vocab=30), scale=1.0, max_steps=0)


# --- TorchScript ---------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_is_refused_at_attach(tmp_path):
    scripted = torch.jit.script(Twice().eval())
    scripted.save(str(tmp_path / "scripted.pt"))
    for model in (scripted, torch.jit.load(str(tmp_path / "scripted.pt"))):
        with pytest.raises(probe.ProbeError, match="TorchScript.*no hooks.*load_state_dict"):
            probe.attach(model, "block")
    inside = Twice().eval()
    inside.block = torch.jit.script(inside.block)
    with pytest.raises(probe.ProbeError, match="TorchScript"):
        probe.attach(inside, "block")
