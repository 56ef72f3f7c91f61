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

    with probe.attach(albert, SHARED, call=call) as p:
        got = p.explain(ids, scale=2.0, seed=5, regularization=torch.tensor(1.0), **FAST)  # one weighting on both sides
    expected = probe.explain(phi, x, batched_phi=True, scale=2.0, regularization=torch.tensor(1.0), seed=int(got.settings["noise_seed"]), **FAST)
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
    for call in (-1, [-1, None], {"block": 1}):
        with probe.attach(model, ["block", "head"], call=call) as p:  # -1 for all: the head's only call is its last
            sweep = p.explain(ids, scale=1.0, seed=3, max_steps=0, regularization={"block": torch.tensor(1.0)})  # one weighting on both sides
        second = probe.explain(lambda v: model.block(model.block(v)), x, batched_phi=True, scale=1.0, regularization=torch.tensor(1.0), seed=int(sweep["block"].settings["noise_seed"]), max_steps=0)
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


# --- half precision ------------------------------------------------------------------------------


class Recurrent(nn.Module):
    """Embedding -> batch-first LSTM; returns the states."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 16, padding_idx=0)
        self.lstm = nn.LSTM(16, 24, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lstm(self.embedding(ids))[0]


@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=32)
    return BertModel(config).eval()


@pytest.mark.parametrize("dtype, tolerance", [(torch.bfloat16, 0.03), (torch.float16, 0.008)], ids=["bf16", "fp16"])
@pytest.mark.parametrize("family", ["bert", "lstm"])
def test_half_precision_agrees_with_float32(tiny_bert, family, dtype, tolerance):
    """The model runs in its own dtype, the solver in float32: sigma within the dtype's precision of
    the float32 model's (measured on the linearised start, one probe of 0.05 x scale: bf16 <= 2.1%,
    fp16 <= 0.52%; the half model's rounding is a larger share of a smaller probe's change)."""
    torch.manual_seed(0)
    model, layer, inputs, scale = (tiny_bert, "encoder.layer.1", ids_of(3, 9), 1.0) if family == "bert" else (Recurrent().eval(), "lstm", ids_of(3, 10, vocab=20, low=1), None)
    results = {}
    for dt in (torch.float32, dtype):
        half = copy.deepcopy(model).to(dt)
        with probe.attach(half, layer) as p:
            results[dt] = p.explain(inputs, scale=scale, seed=1, max_steps=0)
        assert next(half.parameters()).dtype == dt
    got, expected = results[dtype].sigma, results[torch.float32].sigma
    assert got.dtype == torch.float32
    assert (got / got.new_tensor(results[dtype].scale) < 0.9).any(), "every word at the ceiling: the comparison would be empty"
    assert ((got - expected).abs() / expected).max() < tolerance


def test_half_precision_refinement_runs_and_agrees(tiny_bert):
    """The refinement back-propagates through the bfloat16 model into float32 sigma."""
    results = []
    for dt in (torch.float32, torch.bfloat16):
        with probe.attach(copy.deepcopy(tiny_bert).to(dt), "encoder.layer.0") as p:
            results.append(p.explain(ids_of(4, 8), scale=1.0, seed=2, **FAST))
    assert results[1].steps == 3
    assert ((results[1].sigma - results[0].sigma).abs() / results[0].sigma).max() < 0.03


# --- nn.TransformerEncoder with a key padding mask -----------------------------------------------


class Encoder(nn.Module):
    """Embedding (no padding_idx) -> nn.TransformerEncoder; padding only through the mask."""

    def __init__(self, batch_first: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(30, 16)
        layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 2)

    def forward(self, ids: torch.Tensor, src_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.encoder(self.embedding(ids), src_key_padding_mask=src_key_padding_mask)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.filterwarnings("ignore:The PyTorch API of nested tensors")
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "sequence-first"])
@pytest.mark.parametrize("layer", ["encoder", "encoder.layers.1"])
def test_transformer_encoder_padded_batch_equals_each_sentence_alone(batch_first, layer):
    torch.manual_seed(0)
    model, lengths = Encoder(batch_first).eval(), [7, 4, 5]
    ids = torch.randint(1, 30, (3, 7), generator=torch.Generator().manual_seed(0))
    pad = torch.arange(7)[None] >= torch.tensor(lengths)[:, None]

    def layout(i: torch.Tensor) -> torch.Tensor:
        return i if batch_first else i.T

    fastpath = torch.backends.mha.get_fastpath_enabled()
    with probe.attach(model, layer) as p:
        assert p.adapter.name == "transformer"
        batch = p.explain_batch({"ids": layout(ids), "src_key_padding_mask": pad}, scale=1.0, seed=2, max_steps=0)
        as_tuple = p.explain_batch((layout(ids), pad), scale=1.0, seed=2, max_steps=0)
        alone = [p.explain({"ids": layout(ids[b : b + 1, :n]), "src_key_padding_mask": pad[b : b + 1, :n]}, scale=1.0, seed=2, max_steps=0) for b, n in enumerate(lengths)]
    assert torch.backends.mha.get_fastpath_enabled() == fastpath
    for together, tupled, single, n in zip(batch, as_tuple, alone, lengths):
        assert together.sigma.shape == (n,)
        assert torch.allclose(together.sigma, single.sigma, rtol=1e-5)
        assert torch.equal(together.sigma, tupled.sigma)


# --- RNNs that transpose inside their own forward ------------------------------------------------

T = 3


class Transposing(nn.Module):
    """[batch, time] ids in; a sequence-first RNN inside, reached by transposing the ids
    (``where="ids"``: the embedding output is already [time, batch]) or the embeddings."""

    def __init__(self, cell: type[nn.RNNBase], where: str, packed: bool) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 8, padding_idx=0)
        self.rnn = cell(8, 12)
        self.where, self.packed = where, packed

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        e = self.embedding(ids.T) if self.where == "ids" else self.embedding(ids).transpose(0, 1)
        if self.packed:
            e = nn.utils.rnn.pack_padded_sequence(e, lengths, enforce_sorted=False)
        return self.rnn(e)[0]


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
@pytest.mark.parametrize("where", ["ids", "embeddings"])
@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN], ids=["lstm", "gru", "rnn"])
def test_rnn_that_transposes_keeps_no_later_word(cell, where, packed):
    """A unidirectional state at T holds no word after T; a padded batch equals each sentence alone."""
    torch.manual_seed(0)
    model, lengths = Transposing(cell, where, packed).eval(), torch.tensor([8, 5, 6])
    ids = torch.randint(1, 20, (3, 8), generator=torch.Generator().manual_seed(1))
    ids[torch.arange(8)[None] >= lengths[:, None]] = 0

    def inputs(rows: slice, n: int):
        return (ids[rows, :n], lengths[rows]) if packed else ids[rows, :n]

    with probe.attach(model, "rnn", select=lambda h: h[:, T]) as p:
        batch = p.explain_batch(inputs(slice(0, 3), 8), max_steps=0)
        alone = [p.explain(inputs(slice(b, b + 1), n), max_steps=0) for b, n in enumerate(lengths.tolist())]
    for together, single, n in zip(batch, alone, lengths.tolist()):
        rel = together.relative_sigma
        assert rel.shape == (n,)
        assert (rel[T + 1 :] > 0.95).all() and rel[T] < 0.5, rel
        assert torch.allclose(together.sigma, single.sigma, rtol=1e-4)


# --- words for every input form ------------------------------------------------------------------


class Tagger(nn.Module):
    """Embedding over a tokenizer's vocabulary -> LSTM; takes ids, (ids, lengths) or ids=..., lengths=..."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, 8, padding_idx=0)
        self.lstm = nn.LSTM(8, 8, batch_first=True)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        e = self.embedding(ids)
        if lengths is not None:
            e = nn.utils.rnn.pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
        return self.lstm(e)[0]


def test_words_from_a_given_tokenizer_for_every_input_form(tokenizer):
    """attach(..., tokenizer=tok) on a model built in memory: words for a tensor, a tuple (ids,
    lengths) and a mapping alike, over each sentence's real tokens."""
    torch.manual_seed(0)
    model = Tagger(tokenizer.vocab_size).eval()
    encoded = tokenizer(["a fine film", "rare bird"], padding=True, return_tensors="pt")
    ids, lengths = encoded["input_ids"], encoded["attention_mask"].sum(1)
    expected = [tokenizer.convert_ids_to_tokens(ids[b, :n].tolist()) for b, n in enumerate(lengths.tolist())]
    assert expected[0][:2] == ["[CLS]", "a"]
    with probe.attach(model, "lstm", tokenizer=tokenizer) as p:
        for inputs in (ids, (ids, lengths), {"ids": ids, "lengths": lengths}):
            assert [e.words for e in p.explain_batch(inputs, max_steps=0)] == expected
        assert p.explain((ids[:1], lengths[:1]), max_steps=0).words == expected[0]


def test_words_from_a_vocabulary_and_from_ids_a_model_transposes():
    vocabulary = ["<pad>"] + [f"w{i}" for i in range(1, 20)]
    model = Transposing(nn.GRU, "embeddings", packed=True).eval()
    ids, lengths = torch.tensor([[3, 1, 4, 1, 5], [9, 2, 6, 0, 0]]), torch.tensor([5, 3])
    with probe.attach(model, "rnn", tokenizer=vocabulary) as p:
        first, second = p.explain_batch((ids, lengths), max_steps=0)
    assert first.words == ["w3", "w1", "w4", "w1", "w5"] and second.words == ["w9", "w2", "w6"]
    with pytest.raises(probe.ProbeError, match="tokenizer must be"):
        probe.attach(model, "rnn", tokenizer=42)


class WithHead(Transposing):
    """A linear head on the sequence-first states: its output is [time, batch, 2]."""

    def __init__(self) -> None:
        super().__init__(nn.LSTM, "embeddings", packed=False)
        self.head = nn.Linear(12, 2)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(super().forward(ids, lengths))


def test_a_sequence_first_output_is_refused_until_select_makes_it_batch_first():
    """The batch size comes from the RNN's input, not from the attached output, so a head's
    [time, batch] output is not taken for a batch of `time` sentences."""
    torch.manual_seed(0)
    model, ids = WithHead().eval(), torch.randint(1, 20, (3, 8), generator=torch.Generator().manual_seed(2))
    with probe.attach(model, "head") as p, pytest.raises(probe.errors.LayerError, match="not the batch of 3"):
        p.explain_batch(ids, max_steps=0)
    with probe.attach(model, "head", select=lambda h: h.transpose(0, 1)[:, T]) as p:
        for exp in p.explain_batch(ids, max_steps=0):
            assert (exp.relative_sigma[T + 1 :] > 0.95).all() and exp.relative_sigma[T] < 0.5


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed"])
def test_a_square_batch_is_read_from_what_the_rnn_received(packed):
    """n sentences of n tokens: the batch size cannot tell the axes apart, the RNN's input can."""
    model = Transposing(nn.GRU, "embeddings", packed=packed).eval()
    ids, lengths = torch.randint(1, 20, (4, 4), generator=torch.Generator().manual_seed(3)), torch.tensor([4, 3, 4, 2])
    ids[torch.arange(4)[None] >= lengths[:, None]] = 0

    def inputs(b: slice):
        return (ids[b], lengths[b]) if packed else ids[b]

    with probe.attach(model, "rnn", select=lambda h: h[:, 1]) as p:
        batch = p.explain_batch(inputs(slice(0, 4)), max_steps=0)
        alone = [p.explain(inputs(slice(b, b + 1)), max_steps=0) for b in range(4)]
    for together, single, n in zip(batch, alone, lengths.tolist()):
        assert together.sigma.shape == (n,) and together.relative_sigma[1] < 0.5
        assert (together.relative_sigma[2:] > 0.95).all()
        assert torch.allclose(together.sigma, single.sigma[:n], rtol=1e-4)


class Scaled(Transposing):
    """Takes sequence-first ids and scales their embeddings: the RNN's input is no copy of the
    embedding output, so only the RNN's batch_first flag is left to go by."""

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.rnn(2 * self.embedding(ids))[0]


def test_a_square_batch_that_cannot_be_read_warns_and_trusts_the_flag():
    model = Scaled(nn.GRU, "embeddings", packed=False).eval()
    ids = torch.randint(1, 20, (4, 4), generator=torch.Generator().manual_seed(3))
    with probe.attach(model, "rnn", select=lambda h: h[:, 1]) as p, pytest.warns(UserWarning, match="4 sentences of 4 tokens"):
        batch = p.explain_batch(ids.T, max_steps=0)
    for exp in batch:
        assert (exp.relative_sigma[2:] > 0.95).all() and exp.relative_sigma[1] < 0.5
