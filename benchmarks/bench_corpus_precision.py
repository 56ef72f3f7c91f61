"""Every corpus figure ``CorpusResult`` reports, at a per-sentence precision, against the same figure
from a precise reference run: bias and noise apart.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_corpus_precision.py --reference FILE [--seeds 5] [--tol default 0.03]

``FILE`` is the reference written by ``bench_corpus_default.py --reference FILE`` (``tol=0.01`` with
raised ``max_steps``/``max_samples``) on the same sentences (``--sentences``, 9 by default). Each
``--tol`` setting runs ``probe.corpus`` (6 MiniLM layers, batches of 8, the regularization of
benchmarks/corpus.txt) once per seed 0 .. seeds-1. For each figure and yardstick, the difference
from the reference is split into its **bias** (the mean over seeds of the signed difference) and its
**noise** (the standard deviation over seeds, for a corpus of these N sentences; independent
sentences' errors shrink as 1/sqrt(N) in a mean, bias does not). Figures (what the table, the plot
and the properties show):

- ``mean_information_loss`` per layer (the table's "per sentence" column and the plot's bars; the
  table's "per word" column is the same sum over another count, so the same relative difference);
- ``word_information_loss`` per word type and layer (the plot's heatmap, ``word_ranking``'s values),
  for types seen at least twice and for all types;
- the table's most-kept and most-lost 5 word types per layer (seen at least twice): whether the lists
  are the reference's.

Yardsticks: relative to the information loss in nats (which crosses zero near sigma 0.24, so its
relative difference can be arbitrarily large), relative to the information kept ``K log(scale/sigma)``
(never negative; the same absolute difference, since kept = ceiling - loss per word), and as the
relative difference of the geometric-mean sigma (``exp(|difference| / (K words)) - 1``).
Reported per figure: the largest over layers (or types) of |bias| and of noise, and of the typical
total |bias| + noise for these N sentences.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

import probe
from _reference import CORPUS_PATH, minilm_case
from bench_corpus_default import LAYERS, mixed_sentences


def kept_per_sentence(result: probe.CorpusResult) -> torch.Tensor:
    """Information kept per sentence, [layers, sentences], nats: sum over words of K log(scale/sigma)."""
    return torch.stack([(result.width * torch.log(result.scale / s.double())).sum(1) for s in result.sigma], 1)


def kept_per_type(result: probe.CorpusResult) -> torch.Tensor:
    """Mean information kept of each word type, [layers, types] in ``result.vocabulary`` order."""
    where = {w: v for v, w in enumerate(result.vocabulary)}
    ids = torch.tensor([where[w] for ws in result.words for w in ws])
    kept = torch.cat([result.width * torch.log(result.scale / s.double()) for s in result.sigma], 1)
    totals = torch.zeros(len(result.layers), len(where), dtype=torch.float64).index_add_(1, ids, kept)
    return totals / result.word_counts.clamp_min(1)


def aligned(result: probe.CorpusResult, index: torch.Tensor) -> probe.CorpusResult:
    """``result`` restricted to the corpus sentences ``index``, in that order."""
    where = {int(i): j for j, i in enumerate(result.index)}
    rows = [where[int(i)] for i in index]
    return replace(result, words=[result.words[j] for j in rows], sigma=[result.sigma[j] for j in rows], stderr=[result.stderr[j] for j in rows],
                   index=index, convergence=result.convergence[:, rows], steps=result.steps[:, rows])


def figures(result: probe.CorpusResult) -> dict[str, torch.Tensor]:
    """The corpus figures, each as (loss, kept) in nats."""
    return {
        "mean per layer": (result.mean_information_loss, kept_per_sentence(result).mean(1)),
        "word types (all)": (result.word_information_loss, kept_per_type(result)),
    }


def ends(result: probe.CorpusResult, top: int = 5, min_count: int = 2) -> list[tuple[list[str], list[str]]]:
    """Per layer, the table's most kept and most lost ``top`` word types."""
    ranked = [[w for w, _, _ in result.word_ranking(name, min_count)] for name in result.layers]
    return [(r[:top], r[-top:]) for r in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, required=True)
    parser.add_argument("--sentences", type=int, default=9)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--tol", nargs="+", default=["default"], help="'default' is the corpus default")
    parser.add_argument("--solver", nargs="*", default=[], metavar="KEY=VALUE", help="more solver settings for every run")
    parser.add_argument("--keep", type=Path, help="folder where each run is saved, and loaded from when there (not timed then)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    case = minilm_case(6)
    sentences = mixed_sentences(args.sentences)
    lines = [line.strip() for line in CORPUS_PATH.read_text().splitlines() if line.strip()]
    with probe.attach(case.model, LAYERS) as p:
        regularization = p.regularization([case.tokenizer(line, return_tensors="pt") for line in lines])
    extra = {key: int(value) for key, value in (item.split("=") for item in args.solver)}
    found = {}
    for tol in args.tol:
        solver = {**extra, **({} if tol == "default" else {"tol": float(tol)})}
        runs, seconds = [], []
        found[tol] = (runs, seconds)
        for seed in range(args.seeds):
            kept = None if args.keep is None else args.keep / f"{len(sentences)}-{tol}-{'-'.join(args.solver)}-seed{seed}.safetensors"
            if kept is not None and kept.is_file():
                runs.append(probe.load(kept))
                continue
            start = time.process_time()
            runs.append(probe.corpus(case.model, LAYERS, sentences, tokenizer=case.tokenizer, regularization=regularization, batch_size=8, seed=seed, **solver))
            seconds.append(time.process_time() - start)
            if kept is not None:
                kept.parent.mkdir(parents=True, exist_ok=True)
                runs[-1].save(kept)
    reference = probe.load(args.reference)
    if len(reference) < len(sentences):  # a reference still being computed: its finished sentences only
        found = {tol: ([aligned(r, reference.index) for r in runs], seconds) for tol, (runs, seconds) in found.items()}
    twice = reference.word_counts >= 2
    words = sum(map(len, reference.words))
    print(f"{len(reference)} of {len(sentences)} sentences ({words} tokens), 6 MiniLM layers; reference: {args.reference}, "
          f"converged {int(reference.convergence.sum())}/{reference.convergence.numel()}, steps {int(reference.steps.min())}-{int(reference.steps.max())}, "
          f"settings tol {reference.settings.get('solver.tol')}, max_steps {reference.settings.get('solver.max_steps')}, max_samples {reference.settings.get('solver.max_samples')}")
    print(f"reference per layer: mean loss {[round(float(v), 1) for v in reference.mean_information_loss]} nats, "
          f"mean kept {[round(float(v), 1) for v in kept_per_sentence(reference).mean(1)]} nats")
    for tol, (runs, seconds) in found.items():
        timing = f"{statistics.median(seconds):.1f} CPU s per run (median of {len(seconds)} seeds)" if seconds else "runs loaded"
        print(f"\n## tol {tol} ({runs[0].settings['solver.tol']}) {extra or ''}: {timing}, "
              f"steps median {statistics.median(float(r.steps.float().median()) for r in runs):.0f}, converged {sum(int(r.convergence.sum()) for r in runs)}/{sum(r.convergence.numel() for r in runs)}")
        print("| figure | yardstick | largest \\|bias\\| | largest noise (N sentences) | largest \\|bias\\| + noise | largest \\|difference\\|, any seed |")
        print("|---|---|---:|---:|---:|---:|")
        for name, (ref_loss, ref_kept) in figures(reference).items():
            found = [figures(r)[name] for r in runs]
            diff = torch.stack([f[0] for f in found]) - ref_loss  # [seeds, ...]; kept differs by the same amount, opposite sign
            bias, noise = diff.mean(0), diff.std(0, correction=1) if len(runs) > 1 else torch.zeros_like(ref_loss)
            per_word = words / len(reference) if name == "mean per layer" else 1.0
            masks = {"": torch.ones_like(ref_loss, dtype=torch.bool)} if name == "mean per layer" else {" (all)": torch.ones_like(ref_loss, dtype=torch.bool), " (seen >= 2)": twice.expand_as(ref_loss)}
            for label, mask in masks.items():
                for yardstick, scale in (("relative to loss", ref_loss.abs()), ("relative to kept", ref_kept.abs()), ("as geometric-mean sigma", None)):
                    def rel(x: torch.Tensor) -> float:
                        x = x.abs()
                        y = torch.expm1(x / (reference.width * per_word)) if scale is None else x / scale
                        return float(y[mask].max())
                    print(f"| {name.replace(' (all)', '')}{label} | {yardstick} | {rel(bias):.2%} | {rel(noise):.2%} | {rel(bias.abs() + noise):.2%} | {rel(diff.abs().amax(0)):.2%} |")
        same = [sum(a == b for a, b in zip(ends(r), ends(reference))) for r in runs]
        print(f"most kept and most lost 5 types (seen >= 2), as sets, equal to the reference's: "
              f"{[sum(set(a[0]) == set(b[0]) and set(a[1]) == set(b[1]) for a, b in zip(ends(r), ends(reference))) for r in runs]} of {len(LAYERS)} layers per seed; "
              f"in the same order: {same}")
        n = math.sqrt(len(reference))
        print(f"noise scales as 1/sqrt(N): for 872 sentences multiply the noise column by {n / math.sqrt(872):.3f}")


if __name__ == "__main__":
    main()
