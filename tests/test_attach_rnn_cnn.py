"""probe.attach on LSTM and CNN classifiers trained here, saved with safetensors and reloaded.

Receptive fields are the ground truth: a forward LSTM's state at position t holds no word after t,
a kernel-3 convolution at t sees only t-1..t+1. Words outside come out at the ceiling (sigma/scale
above 0.95), the word at t well below it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import probe

VOCAB, LENGTH, T = 20, 10, 4
"""Token ids 1..19 (0 pads), sentences of 10 tokens, the explained position."""


class LSTMClassifier(nn.Module):
    """Embedding -> unidirectional LSTM -> linear on the last state; batch first unless told."""

    def __init__(self, batch_first: bool = True) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 16, padding_idx=0)
        self.lstm = nn.LSTM(16, 24, batch_first=batch_first)
        self.head = nn.Linear(24, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(ids))
        return self.head(out[:, -1] if self.lstm.batch_first else out[-1])


class PackedLSTMClassifier(LSTMClassifier):
    """Takes (ids, lengths) and packs the padded batch, as variable-length RNN code does."""

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(self.embedding(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.head(h[-1])


class CNNClassifier(nn.Module):
    """Embedding -> Conv1d (kernel 3, padding 1) -> relu -> max over time -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, 16, padding_idx=0)
        self.conv = nn.Conv1d(16, 32, 3, padding=1)
        self.head = nn.Linear(32, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(self.embedding(ids).transpose(1, 2)))
        return self.head(h.max(2).values)


def generated(count: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded ids [count, LENGTH], lengths 5..10, labels: whether token 5 appears."""
    ids = torch.randint(1, VOCAB, (count, LENGTH), generator=g)
    lengths = torch.randint(5, LENGTH + 1, (count,), generator=g)
    ids[torch.arange(LENGTH)[None, :] >= lengths[:, None]] = 0
    return ids, lengths, (ids == 5).any(1).long()


def model_inputs(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor):
    """What the model takes: (ids, lengths), sequence-first ids, or ids."""
    if isinstance(model, PackedLSTMClassifier):
        return ids, lengths
    if isinstance(model, LSTMClassifier) and not model.lstm.batch_first:
        return ids.T
    return ids


def logits(model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    inputs = model_inputs(model, ids, lengths)
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def accuracy(model: nn.Module, g: torch.Generator) -> float:
    ids, lengths, labels = generated(400, g)
    with torch.no_grad():
        return float((logits(model, ids, lengths).argmax(1) == labels).float().mean())


def train_and_save(make, folder: Path) -> Path:
    """Trains a classifier for seconds and saves its state_dict as safetensors."""
    torch.manual_seed(0)
    model, g = make(), torch.Generator().manual_seed(0)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(60):
        ids, lengths, labels = generated(32, g)
        loss = nn.functional.cross_entropy(logits(model, ids, lengths), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    path = folder / "model.safetensors"
    save_file(model.state_dict(), str(path))
    return path


def reloaded(make, path: Path) -> nn.Module:
    """A fresh instance with the saved weights, checked to classify as trained."""
    model = make()
    model.load_state_dict(load_file(str(path)))
    assert accuracy(model, torch.Generator().manual_seed(1)) > 0.9, "the classifier did not learn"
    return model.eval()


def trained_and_reloaded(make, folder: Path) -> nn.Module:
    return reloaded(make, train_and_save(make, folder))


def sentence(seed: int, length: int = LENGTH) -> torch.Tensor:
    return torch.randint(1, VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


def assert_receptive_field(exp: probe.Explanation, outside: list[int]) -> None:
    """Words outside the field at the ceiling, the word at T well below it."""
    rel = exp.relative_sigma
    assert (rel[outside] > 0.95).all(), rel
    assert rel[T] < 0.5, rel


@pytest.fixture(scope="module")
def lstm_file(tmp_path_factory) -> Path:
    return train_and_save(LSTMClassifier, tmp_path_factory.mktemp("lstm"))


def lstm_state_at_t(model: LSTMClassifier, inputs) -> probe.Explanation:
    with probe.attach(model, "lstm", select=lambda h: h[:, T]) as p:
        assert p.adapter.name == "lstm"
        return p.explain(inputs)


def test_lstm_state_at_t_holds_no_later_word(lstm_file):
    model = reloaded(LSTMClassifier, lstm_file)
    exp = lstm_state_at_t(model, sentence(1))
    assert exp.sigma.shape == (LENGTH,) and exp.words == [str(i) for i in range(LENGTH)]
    assert exp.scale == pytest.approx(10 * float(model.embedding.weight.detach().std()))
    assert_receptive_field(exp, list(range(T + 1, LENGTH)))


def test_sequence_first_lstm_gives_the_batch_first_result(lstm_file):
    """The saved weights in a batch_first=False LSTM are the same network, so the same sigma."""
    ids = sentence(1)
    first = lstm_state_at_t(reloaded(LSTMClassifier, lstm_file), ids)
    seq = lstm_state_at_t(reloaded(lambda: LSTMClassifier(batch_first=False), lstm_file), ids.T)
    assert_receptive_field(seq, list(range(T + 1, LENGTH)))
    assert torch.allclose(seq.sigma, first.sigma, rtol=1e-4)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> CNNClassifier:
    return trained_and_reloaded(CNNClassifier, tmp_path_factory.mktemp("cnn"))


def test_cnn_output_at_t_sees_only_its_neighbours(cnn):
    with probe.attach(cnn, "conv", select=lambda h: h[:, :, T]) as p:
        assert p.adapter.name == "cnn"
        exp = p.explain(sentence(2))
    assert exp.sigma.shape == (LENGTH,)
    assert_receptive_field(exp, [i for i in range(LENGTH) if abs(i - T) > 1])


@pytest.mark.parametrize("embedding", [None, "embedding"], ids=["found", "named"])
def test_cnn_padded_batch_explains_real_tokens_only(cnn, embedding):
    """Padding comes from the embedding's padding_idx, whether probe finds the embedding or is told it."""
    ids = torch.cat([sentence(3), nn.functional.pad(sentence(4, 7), (0, 3))])
    with probe.attach(cnn, "conv", select=lambda h: h[:, :, T], embedding=embedding) as p:
        long, short = p.explain(ids)
    assert long.sigma.shape == (LENGTH,) and short.sigma.shape == (7,)
    assert_receptive_field(short, [0, 1, 2, 6])


def test_cnn_regularization_of_a_padded_batch_excludes_the_padding(cnn):
    """One padded batch (a tensor) gives what its sentences give one at a time; time is the last axis."""
    lengths = [LENGTH, 7, 5]
    ids = torch.cat([nn.functional.pad(sentence(10 + b, n), (0, LENGTH - n)) for b, n in enumerate(lengths)])
    with probe.attach(cnn, "conv") as p:
        batch = p.regularization(ids)
        alone = p.regularization([ids[b : b + 1, :n] for b, n in enumerate(lengths)])
    assert batch.shape == (32, 1)
    assert torch.allclose(batch, alone, rtol=1e-5)


def test_packed_lstm_padded_batch(tmp_path):
    """(ids, lengths) with pack_padded_sequence: lengths mark the padding and follow the noise samples."""
    model = trained_and_reloaded(PackedLSTMClassifier, tmp_path)
    lengths = torch.tensor([LENGTH, 6, 8])
    ids = torch.cat([nn.functional.pad(sentence(5 + b, int(n)), (0, LENGTH - int(n))) for b, n in enumerate(lengths)])
    with probe.attach(model, "lstm", select=lambda h: h[:, T]) as p:
        batch = p.explain((ids, lengths), seed=3)
        start = p.explain((ids, lengths), seed=3, max_steps=0)
        alone = [p.explain((ids[b : b + 1, :n], lengths[b : b + 1]), seed=3, max_steps=0) for b, n in enumerate(lengths.tolist())]  # noise from the sentence
        reg = p.regularization([(ids, lengths)])
        reg_alone = p.regularization([(ids[b : b + 1, :n], lengths[b : b + 1]) for b, n in enumerate(lengths.tolist())])
    assert reg.shape == (24,) and torch.allclose(reg, reg_alone, rtol=1e-5)
    for exp, n in zip(batch, lengths.tolist()):
        assert exp.sigma.shape == (n,)
        assert_receptive_field(exp, list(range(T + 1, n)))
    for together, single in zip(start, alone):
        assert ((together.sigma - single.sigma).abs() / single.sigma).max() < 1e-4
