"""Explain an LSTM classifier: which words its state at one position holds.

    python examples/explain_lstm.py

Trains a tiny sentiment-like classifier on generated sentences (a few seconds), saves it with
safetensors, reloads it as you would a saved model, and explains the LSTM state at position 3. A
forward LSTM cannot have read the words after position 3, so they come out at the ceiling
(sigma/scale = 1). Writes out/lstm.png.
"""

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

import probe

VOCAB = ["<pad>", "the", "film", "plot", "cast", "was", "is", "very", "quite", "dull", "long", "great", "and", "but"]
POSITION = 3


class Classifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(VOCAB), 16, padding_idx=0)
        self.lstm = nn.LSTM(16, 32, batch_first=True)
        self.head = nn.Linear(32, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        states, _ = self.lstm(self.embedding(ids))
        return self.head(states[:, -1])


def sentences(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 8-word sentences; the label says whether "great" appears."""
    ids = torch.randint(1, len(VOCAB), (count, 8))
    return ids, (ids == VOCAB.index("great")).any(1).long()


torch.manual_seed(0)
model = Classifier()
optimiser = torch.optim.Adam(model.parameters(), lr=0.03)
for step in range(80):
    ids, labels = sentences(32)
    loss = nn.functional.cross_entropy(model(ids), labels)
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
Path("out").mkdir(exist_ok=True)
save_file(model.state_dict(), "out/lstm.safetensors")

model = Classifier()  # a fresh model, loaded as you would load your own
model.load_state_dict(load_file("out/lstm.safetensors"))
ids, labels = sentences(500)
with torch.no_grad():
    print(f"accuracy {(model(ids).argmax(1) == labels).float().mean():.2f}")

ids = torch.tensor([[1, 2, 5, 7, 11, 13, 10, 9]])  # the film was very great but long dull
with probe.attach(model, "lstm", select=lambda states: states[:, POSITION]) as p:
    exp = p.explain(ids, words=[VOCAB[i] for i in ids[0]])
print(exp.table())
exp.plot("out/lstm.png")
print("wrote out/lstm.png")
