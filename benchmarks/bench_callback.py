"""Overhead of ``SnapshotCallback`` as a fraction of training time.

The same training (a BERT of MiniLM's size: 6 layers, 384 features, 12 heads; or ``--size tiny``:
2 layers, 64 features; batch 32, generated sentences, HF Trainer on the CPU) runs without the
callback and with it at several recording intervals, alternating, in one process; each time is the
median of ``--repeats`` runs. The callback explains two probe sentences at the first and last
encoder layers, one record before the first step and one every N steps. It also checks that every
run ends with the same weights. Then one record alone is timed (median of ``--repeats``) at the
callback's default precision and at ``tol=0.02``, against one training step (the difference between
training ``--steps`` and 4 steps, over the steps between: the Trainer's setup left out), which
gives the overhead of recording every 100 steps. Seconds are this process's CPU time
(``time.process_time``; one thread), which other jobs on a shared machine do not inflate.

    OMP_NUM_THREADS=1 python benchmarks/bench_callback.py [--size minilm] [--steps 30] [--repeats 3] [--every 10]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, PrinterCallback, Trainer, TrainingArguments
from transformers.utils import logging as hf_logging

from probe.callbacks import SnapshotCallback
from probe.callbacks._recorder import RECORD_TOL

WORDS = "the a film movie plot story acting was is really quite very and it this great good superb awful bad dull".split()
PROBES = ["the film was really great", "a very dull plot and the acting"]
SHORT_RUN = 4
"""Steps of the shorter training run whose time, taken off the full run's, leaves the steps alone."""
SIZES = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
}


def layers(size: str) -> list[str]:
    return ["bert.encoder.layer.0", f"bert.encoder.layer.{SIZES[size]['num_hidden_layers'] - 1}"]


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")


class Sentences(torch.utils.data.Dataset):
    """Random sentences of 5 to 10 words, labelled by whether a positive word is in them."""

    def __init__(self, tokenizer, count: int) -> None:
        g = torch.Generator().manual_seed(0)
        texts = [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (int(torch.randint(5, 11, (1,), generator=g)),), generator=g)) for _ in range(count)]
        self.encoded = tokenizer(texts, padding="max_length", max_length=12, return_tensors="pt")
        self.labels = torch.tensor([int(any(w in t.split() for w in ("great", "good", "superb"))) for t in texts])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.encoded["input_ids"][i], "attention_mask": self.encoded["attention_mask"][i], "labels": self.labels[i]}


def build(tokenizer, size: str) -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=16, num_labels=2, **SIZES[size])
    return BertForSequenceClassification(config)


def run(tokenizer, data, steps: int, every: int | None, folder: Path, size: str) -> tuple[float, dict[str, torch.Tensor]]:
    """Seconds of ``trainer.train()`` and the final weights."""
    model = build(tokenizer, size)
    callbacks = [] if every is None else [SnapshotCallback(PROBES, layers(size), folder / f"every{every}.safetensors", tokenizer=tokenizer, every_n_steps=every, scale=2.0)]
    args = TrainingArguments(
        output_dir=str(folder / "trainer"), report_to=[], use_cpu=True, save_strategy="no", per_device_train_batch_size=32,
        max_steps=steps, learning_rate=1e-3, logging_strategy="no", disable_tqdm=True, seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)
    start = time.process_time()
    trainer.train()
    return time.process_time() - start, {k: v.clone() for k, v in model.state_dict().items()}


def record_seconds(tokenizer, folder: Path, size: str, repeats: int, **solver) -> float:
    """Median seconds of one record of the fresh model."""
    model = build(tokenizer, size)
    callback = SnapshotCallback(PROBES, layers(size), folder / "alone.safetensors", tokenizer=tokenizer, every_n_steps=1, scale=2.0, **solver)
    seconds = []
    for step in range(repeats + 1):  # the first is a warm-up
        start = time.process_time()
        callback._record(model, step, 0.0)
        seconds.append(time.process_time() - start)
    return statistics.median(seconds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="minilm")
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per training run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per setting; the median counts")
    parser.add_argument("--every", type=int, nargs="*", default=[10], help="recording intervals to measure end to end (none: only the record alone)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a model this small is fastest on one)")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    hf_logging.set_verbosity_error()
    tokenizer = word_tokenizer()
    data = Sentences(tokenizer, 32 * options.steps)
    settings: list[int | None] = [None, *options.every]
    times: dict[int | None, list[float]] = {s: [] for s in settings}
    reference = None
    with tempfile.TemporaryDirectory() as folder:
        run(tokenizer, data, 5, options.every[0] if options.every else None, Path(folder), options.size)  # warm-up: imports, allocator, first-call costs
        for _ in range(options.repeats):
            for every in settings:
                seconds, weights = run(tokenizer, data, options.steps, every, Path(folder), options.size)
                times[every].append(seconds)
                reference = reference or weights
                assert all(torch.equal(reference[k], weights[k]) for k in reference), f"every={every} changed the training"
        short = statistics.median(run(tokenizer, data, SHORT_RUN, None, Path(folder), options.size)[0] for _ in range(options.repeats))
        default = record_seconds(tokenizer, Path(folder), options.size, options.repeats)
        precise = record_seconds(tokenizer, Path(folder), options.size, options.repeats, tol=0.02)
    base = statistics.median(times[None])
    sizes = SIZES[options.size]
    print(f"SnapshotCallback overhead: {options.steps} steps of a {sizes['num_hidden_layers']}-layer BERT ({sizes['hidden_size']} features, batch 32), {torch.get_num_threads()} thread(s),")
    print(f"2 probe sentences x layers {layers(options.size)} per record, the callback's defaults; median of {options.repeats} runs")
    print(f"{'setting':<18}{'train s':>9}{'records':>9}{'s/record':>10}{'record/step':>13}{'overhead':>10}")
    print(f"{'no callback':<18}{base:>9.2f}")
    for every in options.every:
        seconds = statistics.median(times[every])
        records = 1 + options.steps // every
        per_record = (seconds - base) / records
        print(f"{f'every {every} steps':<18}{seconds:>9.2f}{records:>9d}{per_record:>10.3f}{per_record / (base / options.steps):>13.1f}{(seconds - base) / base:>10.1%}")
    print("record/step: one record costs that many training steps; the overhead of recording every N steps is about that / N")
    print("weights after every run: bit-identical to the run without the callback")
    step = (base - short) / (options.steps - SHORT_RUN)
    print(f"one training step ({options.steps} steps less {SHORT_RUN}, without the Trainer's setup): {step:.3f} s; one record alone (median of {options.repeats}):")
    for label, seconds in ((f"default (tol={RECORD_TOL})", default), ("tol=0.02", precise)):
        print(f"  {label}: {seconds:.2f} s = {seconds / step:.1f} steps; recording every 100 steps costs {seconds / (100 * step):.1%} of training")


if __name__ == "__main__":
    main()
