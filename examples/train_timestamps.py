"""Watch the layers of a tiny BERT keep and drop words as it learns: the paper's "timestamps" study.

A 2-layer BERT (64 features) learns a generated sentiment task: a sentence of filler words is
positive or negative by its one cue word (great, good, superb; awful, bad, dull), or neutral without
one. Every 15 steps,
``probe.callbacks.SnapshotCallback`` explains what the [CLS] state of each layer (the state the
classifier reads) holds of two probe sentences, with the regularization from 256 training sentences.

    python examples/train_timestamps.py          # CPU, well under a minute

It writes ``out/timestamps.safetensors`` (read it back with ``probe.load``), ``out/timestamps.png``
and prints how sigma / scale of each word moved (small = kept, 1 = lost).
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast, PrinterCallback, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

import probe
from probe.callbacks import SnapshotCallback

FILLERS = "the a film movie plot story acting was is really quite very and it this".split()
POSITIVE, NEGATIVE = ["great", "good", "superb"], ["awful", "bad", "dull"]
PROBES = ["the film was really great", "a very dull plot and the acting"]
LAYERS = ["bert.encoder.layer.0", "bert.encoder.layer.1"]


def word_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the task's words, with BERT's [CLS] ... [SEP] around each sentence."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {w: i for i, w in enumerate(special + FILLERS + POSITIVE + NEGATIVE)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")


def sentence(rng: random.Random) -> tuple[str, int]:
    """Four to seven fillers with a cue word somewhere among them: 1 positive, 0 negative, 2 no cue."""
    words = [rng.choice(FILLERS) for _ in range(rng.randint(4, 7))]
    label = rng.randint(0, 2)
    if label < 2:
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label else NEGATIVE))
    return " ".join(words), label


class Sentences(torch.utils.data.Dataset):
    """Tokenized sentences and labels, padded to one length, as the Trainer wants them."""

    def __init__(self, data: list[tuple[str, int]], tokenizer) -> None:
        self.encoded = tokenizer([text for text, _ in data], padding="max_length", max_length=12, return_tensors="pt")
        self.labels = torch.tensor([label for _, label in data])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i], "labels": self.labels[i]}


def summary(series: probe.TimeSeries) -> str:
    """sigma / scale of every probe word at the first, a middle and the last recorded step."""
    chosen = sorted({0, len(series.steps) // 3, len(series.steps) - 1})
    lines = []
    for words, relative in zip(series.words, series.relative_sigma):
        for j, layer in enumerate(series.layers):
            lines.append(f"{layer} [CLS], sigma / scale at steps " + ", ".join(str(series.steps[t]) for t in chosen))
            for w, word in enumerate(words):
                lines.append(f"  {word:<8}" + "".join(f"{float(relative[t, j, w]):>7.2f}" for t in chosen))
            last = relative[-1, j]
            kept = [word for word, r in zip(words, last.tolist()) if r < 0.5 and word != "[CLS]"]
            dropped = sum(r > 0.9 for r in last.tolist())
            lines.append(f"  at step {series.steps[-1]}: keeps {kept or 'no word but [CLS]'}, has dropped {dropped} of {len(words)} words")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="out", help="folder for timestamps.safetensors and timestamps.png")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # a model this small trains fastest on one thread
    hf_logging.set_verbosity_error()

    tokenizer = word_tokenizer()
    rng = random.Random(0)
    train = [sentence(rng) for _ in range(2000)]
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, max_position_embeddings=16, num_labels=3)
    model = BertForSequenceClassification(config)

    callback = SnapshotCallback(
        PROBES,
        LAYERS,
        out / "timestamps.safetensors",
        tokenizer=tokenizer,
        every_n_steps=15,
        select=lambda hidden: hidden[:, 0],  # the [CLS] state, which the classifier reads
        corpus=[text for text, _ in train[:256]],
        scale=2.0,  # the embedding output is layer-normalised (std 1); the default 10 x std of the word embeddings is 0.2
    )
    args = TrainingArguments(
        output_dir=tempfile.mkdtemp(), report_to=[], use_cpu=True, save_strategy="no", per_device_train_batch_size=32,
        num_train_epochs=3, learning_rate=1e-3, logging_strategy="no", disable_tqdm=True, seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=Sentences(train, tokenizer), callbacks=[callback])
    trainer.remove_callback(PrinterCallback)  # its end-of-training line would interrupt the summary
    trainer.train()

    model.eval()
    test = [sentence(random.Random(1000 + i)) for i in range(500)]
    with torch.no_grad():
        logits = model(**tokenizer([text for text, _ in test], padding=True, return_tensors="pt")).logits
    accuracy = float((logits.argmax(-1) == torch.tensor([label for _, label in test])).float().mean())

    callback.plot(out / "timestamps.png")
    series = probe.load(out / "timestamps.safetensors")
    print(summary(series))
    print(f"test accuracy {accuracy:.3f}; {len(series.steps)} records at steps {series.steps[0]}..{series.steps[-1]}")
    print(f"wrote {out / 'timestamps.safetensors'} and {out / 'timestamps.png'}")


if __name__ == "__main__":
    main()
