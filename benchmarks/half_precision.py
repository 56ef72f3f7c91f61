"""How far sigma of a bfloat16 / float16 model is from the float32 model's (the README's numbers).

Tiny random BERT (layer 2 of 2, scale=1) and a tiny LSTM, 5 sentences each, on the CPU: the largest
and the median relative difference of sigma per sentence, for the linearised start (max_steps=0)
and the full default solve. Run: .venv/bin/python benchmarks/half_precision.py
"""

from __future__ import annotations

import copy
import statistics

import torch
from torch import nn
from transformers import BertConfig, BertModel

import probe


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(20, 16, padding_idx=0)
        self.lstm = nn.LSTM(16, 24, batch_first=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lstm(self.embedding(ids))[0]


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=32)
    bert, lstm = BertModel(config).eval(), Recurrent().eval()
    g = torch.Generator().manual_seed(0)
    cases = [
        ("BERT", bert, [torch.randint(5, 100, (1, 9), generator=g) for _ in range(5)], "encoder.layer.1", 1.0),
        ("LSTM", lstm, [torch.randint(1, 20, (1, 10), generator=g) for _ in range(5)], "lstm", None),
    ]
    for family, model, sentences, layer, scale in cases:
        reference: dict[tuple[int, int], torch.Tensor] = {}
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            with probe.attach(copy.deepcopy(model).to(dtype), layer) as p:
                for steps in (0, 40):
                    errors = []
                    for i, ids in enumerate(sentences):
                        sigma = p.explain(ids, scale=scale, seed=1, max_steps=steps).sigma
                        if dtype == torch.float32:
                            reference[steps, i] = sigma
                        else:
                            errors.append(float(((sigma - reference[steps, i]).abs() / reference[steps, i]).max()))
                    if errors:
                        print(f"{family} {str(dtype)[6:]:9} max_steps={steps:2}: max {max(errors):.2%}, median {statistics.median(errors):.2%}")


if __name__ == "__main__":
    main()
