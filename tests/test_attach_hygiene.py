"""probe.attach leaves the model exactly as found on every exit path; its errors say what to fix;
the adapter registry picks, forces and accepts adapters."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import probe
import probe.adapters
from probe.errors import InputError, LayerError, ModelError


class Boxed(nn.Module):
    """Returns its input wrapped in an object: a layer output that is not a tensor."""

    def forward(self, h: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(hidden=h)


class Toy(nn.Module):
    """Embedding -> dropout -> linear block -> head, with a layer before the embedding and one never run."""

    def __init__(self) -> None:
        super().__init__()
        self.before = nn.Identity()
        self.embedding = nn.Embedding(20, 8, padding_idx=0)
        self.dropout = nn.Dropout(0.5)
        self.block = nn.Sequential(nn.Linear(8, 8), nn.Tanh())
        self.boxed = Boxed()
        self.head = nn.Linear(8, 2)
        self.unused = nn.Linear(8, 8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.block(self.dropout(self.embedding(self.before(ids))))
        return self.head(self.boxed(h).hidden.mean(1))


IDS = torch.tensor([[3, 7, 1, 12, 5]])
FAST = dict(samples=4, max_steps=3)


def mixed_toy() -> Toy:
    """A toy in train mode with one block in eval mode, a frozen embedding and a user's own hook."""
    torch.manual_seed(0)
    model = Toy().train()
    model.block.eval()
    model.embedding.weight.requires_grad_(False)
    model.head.register_forward_hook(lambda module, args, output: None)
    return model


def snapshot(model: nn.Module) -> dict:
    """Everything probe must leave as found: hooks, modes, flags, values, grad mode, the global RNG."""
    return {
        "hooks": {n: (list(m._forward_hooks), list(m._forward_pre_hooks)) for n, m in model.named_modules()},
        "training": {n: m.training for n, m in model.named_modules()},
        "requires_grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "values": {n: p.detach().clone() for n, p in model.named_parameters()},
        "grads": {n: p.grad for n, p in model.named_parameters()},
        "grad_enabled": torch.is_grad_enabled(),
        "rng": torch.get_rng_state(),
    }


def assert_as_found(model: nn.Module, before: dict) -> None:
    after = snapshot(model)
    for key in ("hooks", "training", "requires_grad", "grads", "grad_enabled"):
        assert after[key] == before[key], key
    assert all(torch.equal(after["values"][n], v) for n, v in before["values"].items())
    assert torch.equal(after["rng"], before["rng"]), "explain drew from torch's global RNG"


def raise_after(calls: int, error: BaseException):
    """A select that works ``calls`` times, then raises ``error``: a failure mid-solve."""
    count = 0

    def select(h: torch.Tensor) -> torch.Tensor:
        nonlocal count
        count += 1
        if count > calls:
            raise error
        return h

    return select


RUNS = {
    "explain": (None, lambda p: p.explain(IDS, **FAST), None),
    "regularization": (None, lambda p: p.regularization([IDS, IDS[:, :3]]), None),
    "select raises": (raise_after(0, ValueError("bad select")), lambda p: p.explain(IDS), InputError),
    "select raises mid-solve": (raise_after(5, ValueError("bad select")), lambda p: p.explain(IDS, **FAST), InputError),
    "model rejects inputs": (None, lambda p: p.explain(torch.tensor([[3, 99]])), ModelError),
    "keyboard interrupt mid-solve": (raise_after(5, KeyboardInterrupt()), lambda p: p.explain(IDS, **FAST), KeyboardInterrupt),
}


@pytest.mark.parametrize("grad_enabled", [True, False], ids=["grad on", "grad off"])
@pytest.mark.parametrize("run", RUNS)
def test_the_model_is_left_as_found(run, grad_enabled):
    select, call, error = RUNS[run]
    model = mixed_toy()
    with torch.set_grad_enabled(grad_enabled):
        before = snapshot(model)
        with probe.attach(model, "block", select=select) as p:
            if error is None:
                call(p)
            else:
                with pytest.raises(error):
                    call(p)
            assert torch.is_grad_enabled() == grad_enabled
        assert_as_found(model, before)


def test_dropout_is_off_inside_explain():
    """A model in train mode explains as in eval mode: the same seed gives the same sigma."""
    model = mixed_toy()
    with probe.attach(model, "block") as p:
        in_train_mode = p.explain(IDS, **FAST)
    model.eval()
    with probe.attach(model, "block") as p:
        in_eval_mode = p.explain(IDS, **FAST)
    assert torch.equal(in_train_mode.sigma, in_eval_mode.sigma)


def test_errors_at_attach_time_install_no_hook():
    model = mixed_toy()
    before = snapshot(model)
    with pytest.raises(LayerError, match=r"no submodule 'blok'.*did you mean 'block'"):
        probe.attach(model, "blok")
    with pytest.raises(InputError, match=r"no adapter 'lstn'.*did you mean 'lstm'"):
        probe.attach(model, "block", adapter="lstn")
    assert_as_found(model, before)


@pytest.mark.parametrize(
    "layer, message",
    [
        ("unused", r"never reached layer\(s\) \['unused'\]"),
        ("before", r"'before' runs before the embedding"),
        ("boxed", r"'boxed' gives a SimpleNamespace, not a float tensor; pass select="),
    ],
    ids=["never reached", "before the embedding", "not a tensor"],
)
def test_layers_that_cannot_be_explained(layer, message):
    model = mixed_toy()
    before = snapshot(model)
    with probe.attach(model, layer) as p, pytest.raises(LayerError, match=message):
        p.explain(IDS)
    assert_as_found(model, before)


def test_a_bert_layer_inside_the_embeddings_runs_before_them(minilm):
    with probe.attach(minilm.model, "embeddings.word_embeddings") as p, pytest.raises(LayerError, match="runs before the embedding"):
        p.explain(minilm.encode("a fine film"))


def test_errors_are_probe_errors_with_clear_messages():
    model = mixed_toy()
    with probe.attach(model, "block") as p, pytest.raises(ModelError, match="the model rejected the inputs: IndexError"):
        p.explain(torch.tensor([[3, 99]]))
    with probe.attach(model, "block", select=lambda h: h[:, 7]) as p, pytest.raises(InputError, match="select failed on the output of layer 'block'.*IndexError"):
        p.explain(IDS)
    outside = probe.attach(model, "block")
    with pytest.raises(InputError, match="use attach as a context manager"):
        outside.explain(IDS)
    with outside:
        pass
    with pytest.raises(InputError, match="use attach as a context manager"):
        outside.regularization([IDS])
    for error in (LayerError, InputError, ModelError):
        assert issubclass(error, probe.ProbeError)


class ConvToy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 8)
        self.conv = nn.Conv1d(8, 8, 3, padding=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.conv(self.embedding(ids).transpose(1, 2))


class GRUToy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 8)
        self.gru = nn.GRU(8, 8, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.gru(self.embedding(ids))[0]


def test_adapters_are_chosen_from_the_model(minilm):
    chosen = {
        "bert": (minilm.model, "encoder.layer.0"),
        "lstm": (GRUToy(), "gru"),
        "cnn": (ConvToy(), "conv"),
        "generic": (Toy(), "block"),
    }
    for name, (model, layer) in chosen.items():
        assert probe.attach(model, layer).adapter.name == name
    assert probe.attach(minilm.model, "encoder.layer.0", adapter="generic").adapter.name == "generic"
    assert probe.adapters.available()[-1] == "generic"


def test_forcing_generic_on_bert_perturbs_the_input_embeddings(minilm):
    """HuggingFace models without their own adapter perturb get_input_embeddings()."""
    with probe.attach(minilm.model, "encoder.layer.0", adapter="generic") as p:
        exp = p.explain(minilm.encode("a fine film"), max_steps=0)
    with probe.attach(minilm.model, "encoder.layer.0", embedding="embeddings.word_embeddings") as p:
        named = p.explain(minilm.encode("a fine film"), max_steps=0)
    assert torch.equal(exp.sigma, named.sigma) and exp.words == named.words


@pytest.fixture
def registry(monkeypatch):
    """The adapter registry, restored after the test."""
    monkeypatch.setattr(probe.adapters, "_REGISTRY", dict(probe.adapters._REGISTRY))


def test_a_registered_adapter_is_used(registry):
    @probe.adapters.register
    class Letters(probe.adapters.Adapter):
        """Names each token by a letter: a visible sign that probe used it."""

        name = "letters"

        @classmethod
        def matches(cls, model, layers):
            return isinstance(model, Toy)

        def words(self, inputs, tokenizer, row, mask):
            return [chr(ord("a") + i) for i in range(int(mask.sum()))]

    assert probe.adapters.available()[0] == "letters"
    with probe.attach(Toy(), "block") as p:
        exp = p.explain(IDS, max_steps=0)
    assert p.adapter.name == "letters" and exp.words == ["a", "b", "c", "d", "e"]
    assert probe.attach(ConvToy(), "conv").adapter.name == "cnn"
    with pytest.raises(InputError, match="subclass of probe.adapters.Adapter"):
        probe.adapters.register(object)


def test_explain_works_under_the_callers_inference_mode():
    model = mixed_toy()
    with probe.attach(model, "block") as p:
        outside = p.explain(IDS, **FAST)
        with torch.inference_mode():
            inside = p.explain(IDS, **FAST)
            assert torch.is_inference_mode_enabled()
    assert torch.equal(inside.sigma, outside.sigma)
