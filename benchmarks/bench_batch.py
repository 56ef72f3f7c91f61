"""Batching never costs: padded batches of mixed lengths against the same sentences one at a time.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_batch.py [--runs 3] [--layer encoder.layer.2]

MiniLM, one layer, corpus regularization, default settings, one thread. Two sets of 8 sentences:
5-16 tokens (``bench_attach.py``'s batch) and 5-30 tokens (three of them lengthened). For each,
``explain_batch`` of the padded batch (solved in buckets of similar length, each trimmed), the same
batch as it was solved before buckets (every sentence at the padded length of the longest: a private
switch that puts the whole batch in one bucket), and ``explain`` on each sentence alone; then
``probe.snapshot_batch`` and ``probe.corpus`` (batch size 8) against their one-sentence calls on the
5-30 set. Medians over seeds 0 .. runs-1, seconds per sentence; seconds are this process's CPU
time (``time.process_time``, one thread), which other jobs on a shared machine do not inflate.
"""

from __future__ import annotations

import argparse
import statistics
import time
from unittest import mock

import torch

import probe
from _reference import minilm_case
from bench_attach import BATCH

SHORT = BATCH
LONG = [*SHORT[:5], f"{SHORT[5]} {SHORT[2]}", f"{SHORT[6]} {SHORT[4]}", f"{SHORT[7]} {SHORT[0]}"]


def median_seconds(fn, runs: int) -> float:
    times = []
    for seed in range(runs):
        start = time.process_time()
        fn(seed)
        times.append(time.process_time() - start)
    return statistics.median(times)


def one_bucket(lengths):
    """Today's path before buckets: the whole padded batch solved at the longest sentence's length."""
    return [list(range(len(lengths)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--layer", default="encoder.layer.2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    case = minilm_case(6)
    tok = case.tokenizer
    with probe.attach(case.model, args.layer) as p:
        reg = p.regularization([tok(s, return_tensors="pt") for s in SHORT + LONG])
    print(f"MiniLM {args.layer}, default settings, 1 thread, medians over seeds 0-{args.runs - 1}; seconds per sentence")
    print("| entry point | sentences (tokens) | batched | before buckets | one at a time | one at a time / batched |")
    print("|---|---|---:|---:|---:|---:|")
    for texts in (SHORT, LONG):
        lengths = sorted(len(tok(t)["input_ids"]) for t in texts)
        encoded = tok(texts, return_tensors="pt", padding=True)
        with probe.attach(case.model, args.layer) as p:
            p.explain_batch(encoded, regularization=reg, max_steps=1)  # warm-up
            batched = median_seconds(lambda s: p.explain_batch(encoded, regularization=reg, seed=s), args.runs)
            with mock.patch("probe._running.attach.buckets", one_bucket):
                before = median_seconds(lambda s: p.explain_batch(encoded, regularization=reg, seed=s), args.runs)
            alone = median_seconds(lambda s: [p.explain(tok(t, return_tensors="pt"), regularization=reg, seed=s) for t in texts], args.runs)
        n = len(texts)
        print(f"| explain_batch | {n} ({lengths[0]}-{lengths[-1]}) | {batched / n:.3f} | {before / n:.3f} | {alone / n:.3f} | {alone / batched:.2f} |", flush=True)
    n = len(LONG)
    encoded = tok(LONG, return_tensors="pt", padding=True)
    batched = median_seconds(lambda s: probe.snapshot_batch(case.model, encoded, args.layer, regularization=reg, seed=s), args.runs)
    alone = median_seconds(lambda s: [probe.snapshot(case.model, tok(t, return_tensors="pt"), args.layer, regularization=reg, seed=s) for t in LONG], args.runs)
    print(f"| snapshot_batch | {n} (5-30) | {batched / n:.3f} | | {alone / n:.3f} | {alone / batched:.2f} |", flush=True)
    regs = {args.layer: reg}
    batched = median_seconds(lambda s: probe.corpus(case.model, args.layer, LONG, tokenizer=tok, regularization=regs, seed=s, batch_size=8, tol=0.02), args.runs)
    alone = median_seconds(lambda s: probe.corpus(case.model, args.layer, LONG, tokenizer=tok, regularization=regs, seed=s, batch_size=1, tol=0.02), args.runs)
    print(f"| corpus (tol=0.02) | {n} (5-30) | {batched / n:.3f} | | {alone / n:.3f} | {alone / batched:.2f} |", flush=True)


if __name__ == "__main__":
    main()
