"""What TensorBoard logging adds to one ``SnapshotCallback`` record.

The model and probe sentences of ``bench_callback.py`` (a 2-layer BERT with 64 features, two probe
sentences, both encoder layers, default solver settings). Records alternate without and with a
TensorBoard writer in one process; each time is the median over ``--repeats`` records. Logging one
record draws one heatmap per sentence and writes it with one scalar per sentence and layer. "laid
out once" is the callback as it runs (each sentence's figure drawn in full at the first record, then
only its cells redrawn while its range, labels and texts stay the same); "fresh figures" draws every
heatmap in full each time, for comparison.

    python benchmarks/bench_tensorboard.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from transformers import BertConfig, BertForSequenceClassification

from bench_callback import LAYERS, PROBES, word_tokenizer
from probe.callbacks import SnapshotCallback


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="records per setting; the median counts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    options = parser.parse_args()
    torch.set_num_threads(options.threads)
    tokenizer = word_tokenizer()
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, max_position_embeddings=16, num_labels=2)
    model = BertForSequenceClassification(config)
    settings = ("without", "laid out once", "fresh figures")
    times: dict[str, list[float]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory() as folder:
        callback = SnapshotCallback(PROBES, LAYERS, Path(folder) / "series.safetensors", tokenizer=tokenizer, every_n_steps=1, scale=2.0)
        writer = SummaryWriter(log_dir=str(Path(folder) / "runs"))
        callback._log_to(writer)
        log = callback.log  # one log for the whole run, as in training: it lays each heatmap out once
        step = 0
        for repeat in range(options.repeats + 1):  # the first round warms up
            for setting in settings:
                callback._log_to(writer)
                callback.log = {"without": None, "laid out once": log, "fresh figures": callback.log}[setting]
                step += 1
                start = time.perf_counter()
                callback._record(model, step, None)
                if repeat:
                    times[setting].append(time.perf_counter() - start)
        writer.close()
    without = statistics.median(times["without"])
    print(f"one record, 2 probe sentences x {len(LAYERS)} layers, {torch.get_num_threads()} thread(s), median of {options.repeats}")
    print(f"without TensorBoard {without:.3f} s")
    for setting in settings[1:]:
        seconds = statistics.median(times[setting])
        print(f"with TensorBoard, {setting}: {seconds:.3f} s; logging adds {seconds - without:.3f} s ({(seconds - without) / without:.0%} of the record)")


if __name__ == "__main__":
    main()
