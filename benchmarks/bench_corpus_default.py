"""Corpus throughput at the corpus default against the paper's algorithm, and what the default costs
in precision: every corpus figure against the same figure from per-sentence results at ``tol=0.01``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_corpus_default.py [--sentences 18] [--paper-iterations 100] [--tol 0.01 default] [--reference FILE]

One process, one thread. The paper's algorithm (``_reference.seed_optimize``, 5000 Adam steps of 1
sample) runs on one sentence-layer (the seed's sentence, MiniLM layer 3) for ``--paper-iterations``
steps right before and right after each corpus run; its time per step x 5000, averaged over the two,
is its time per sentence-layer for that run (so a machine whose load changes during the run still
gives a fair ratio). Seconds are this process's CPU time (``time.process_time``, one thread), which
other jobs on a shared machine do not inflate. ``probe.corpus`` then explains 6
MiniLM layers of sentences of mixed lengths (3 words, one line, two lines, in turn, from
benchmarks/corpus.txt), batches of 8, with the regularization of the whole file, at each ``--tol``
(the first is the precise reference, the others are compared with it; ``default`` is the corpus
default). ``--reference FILE`` keeps the first setting's result: computed and saved when the file
is missing, loaded (and not timed) when it is there. Reported per setting: seconds, sentence-layers per second, x the paper's algorithm, and the
largest relative difference from the reference of the mean information loss per layer and of the
mean information loss of every word type (all types, and types seen at least twice).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import probe
from _reference import CORPUS_PATH, minilm_case, seed_optimize

LAYERS = [f"encoder.layer.{i}" for i in range(6)]


def mixed_sentences(count: int) -> list[str]:
    """``count`` sentences cycling through 3 words, one line and two lines of the benchmark corpus."""
    lines = [line.strip() for line in CORPUS_PATH.read_text().splitlines() if line.strip()]
    shapes = [lambda i: " ".join(lines[i].split()[:3]), lambda i: lines[i + 30], lambda i: f"{lines[i + 50]} {lines[i + 60]}"]
    return [shapes[j % 3](j // 3) for j in range(count)]


def paper_seconds(case, iterations: int) -> float:
    """The paper's algorithm's seconds for one sentence-layer (5000 steps), from ``iterations`` steps."""
    start = time.process_time()
    seed_optimize(case.x, case.phi, case.scale, 0.1, case.regularization, iterations=iterations)
    return (time.process_time() - start) * 5000 / iterations


def largest_differences(found: probe.CorpusResult, reference: probe.CorpusResult) -> tuple[float, float, float]:
    """Largest relative difference of the mean information loss per layer, and of the word types'
    mean information loss (all types; types seen at least twice); and the same per-layer difference
    as a relative difference of the geometric-mean sigma (the loss is ``K log sigma`` summed over the
    words plus a constant, so it crosses 0 and its own relative difference can be arbitrarily large)."""
    def relative(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return ((a - b).abs() / b.abs()).to(torch.float64)

    means = relative(found.mean_information_loss, reference.mean_information_loss).max()
    words = relative(found.word_information_loss, reference.word_information_loss)
    twice = words[:, reference.word_counts >= 2]
    per_word = sum(map(len, reference.words)) / len(reference)
    geometric = torch.expm1((found.mean_information_loss - reference.mean_information_loss).abs() / (reference.width * per_word)).max()
    return float(means), float(words.max()), float(twice.max()), float(geometric)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=18)
    parser.add_argument("--paper-iterations", type=int, default=100)
    parser.add_argument("--reference", type=Path, help="where the first setting's result is kept")
    parser.add_argument("--tol", nargs="+", default=["0.01", "default"], help="'default' is the corpus default")
    parser.add_argument("--reference-solver", nargs="*", default=["max_steps=200", "max_samples=256"], metavar="KEY=VALUE",
                        help="solver settings of the first (reference) setting only, so that it converges everywhere")
    parser.add_argument("--checkpoint", type=Path, help="folder where the reference run keeps finished batches (resumable)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    paper_case = minilm_case(3)
    paper_seconds(paper_case, 10)  # warm-up
    case = minilm_case(6)
    sentences = mixed_sentences(args.sentences)
    lines = [line.strip() for line in CORPUS_PATH.read_text().splitlines() if line.strip()]
    with probe.attach(case.model, LAYERS) as p:
        regularization = p.regularization([case.tokenizer(line, return_tensors="pt") for line in lines])
    print(f"probe.corpus: {len(sentences)} sentences of {sorted(len(case.tokenizer(s)['input_ids']) for s in sentences)} tokens, 6 layers, batches of 8, 1 thread")
    print(f"the paper's algorithm per sentence-layer: MiniLM layer 3, 5000 steps, timed over {args.paper_iterations} right before and after each run")
    print("| tol | s | sentence-layers/s | paper's algorithm (s) | x paper | max diff, mean loss per layer | max diff, word types (all) | (seen >= 2) | as geometric-mean sigma, per layer | converged |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    reference = None
    for k, tol in enumerate(args.tol):
        solver = {} if tol == "default" else {"tol": float(tol)}
        if k == 0:
            solver.update({key: int(value) for key, value in (item.split("=") for item in args.reference_solver)})
            if args.checkpoint is not None:
                solver["checkpoint"] = args.checkpoint
        label = tol
        if k == 0 and args.reference is not None and args.reference.is_file():
            reference = probe.load(args.reference)
            print(f"| {label} | (loaded from {args.reference}) | | | | | | | | {float(reference.convergence.float().mean()):.0%} |", flush=True)
            continue
        before = paper_seconds(paper_case, args.paper_iterations)
        start = time.process_time()
        result = probe.corpus(case.model, LAYERS, sentences, tokenizer=case.tokenizer, regularization=regularization, batch_size=8, **solver)
        seconds = time.process_time() - start
        paper = (before + paper_seconds(paper_case, args.paper_iterations)) / 2
        rate = len(sentences) * len(LAYERS) / seconds
        if reference is None:
            reference = result
            if args.reference is not None:
                result.save(args.reference)
        diffs = largest_differences(result, reference)
        label = f"{tol} ({result.settings['solver.tol']})" if tol == "default" else tol
        print(f"| {label} | {seconds:.1f} | {rate:.3f} | {paper:.0f} | {paper * rate:.0f} | {diffs[0]:.2%} | {diffs[1]:.2%} | {diffs[2]:.2%} | {diffs[3]:.2%} | {float(result.convergence.float().mean()):.0%} |", flush=True)


if __name__ == "__main__":
    main()
