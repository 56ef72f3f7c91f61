"""Explain a convolutional text classifier: which words one position of its convolution sees.

    python examples/explain_cnn.py

Trains a tiny classifier on generated sentences (a few seconds), saves it with safetensors,
reloads it as you would a saved model, and explains the convolution's output at position 3. A
kernel of width 3 sees only positions 2, 3 and 4: every other word comes out at the ceiling
(sigma/scale = 1). Writes out/cnn.png.
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
        self.conv = nn.Conv1d(16, 32, kernel_size=3, padding=1)
        self.head = nn.Linear(32, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.conv(self.embedding(ids).transpose(1, 2)))  # [batch, channels, time]
        return self.head(features.max(2).values)


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
save_file(model.state_dict(), "out/cnn.safetensors")

model = Classifier()  # a fresh model, loaded as you would load your own
model.load_state_dict(load_file("out/cnn.safetensors"))
ids, labels = sentences(500)
with torch.no_grad():
    print(f"accuracy {(model(ids).argmax(1) == labels).float().mean():.2f}")

ids = torch.tensor([[1, 2, 5, 7, 11, 13, 10, 9]])  # the film was very great but long dull
with probe.attach(model, "conv", select=lambda features: features[:, :, POSITION]) as p:
    exp = p.explain(ids, words=[VOCAB[i] for i in ids[0]])
print(exp.table())
exp.plot("out/cnn.png")
print("wrote out/cnn.png")
