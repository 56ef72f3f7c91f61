"""Issue 3 benchmark: probe.attach on the real pretrained MiniLM, and memory on a BERT-base-sized model.

Sections (all by default, or name some):
  single  one layer (the third encoder layer) through attach vs the seed's algorithm on the same layer
  sweep   all six layers in one attach vs the seed's algorithm explaining layer 3 alone
  batch   a padded batch of 8 sentences: sentences per second
  memory  a 12-layer sweep of a randomly initialised BERT-base-sized model (768 features, 64 tokens):
          peak RSS, measured in a child process

    .venv/bin/python benchmarks/bench_attach.py [single sweep batch memory] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import warnings

import torch

import probe
from _reference import SEED_SENTENCE, mean_relative_error, minilm_case, reference_optimum, seed_optimize, spearman

LAYERS = [f"encoder.layer.{i}" for i in range(6)]
BATCH = [
    SEED_SENTENCE,
    "a fine film with a weak ending.",
    "the acting is wonderful but the story drags on far too long.",
    "i laughed.",
    "nothing in this movie works, from the script to the music.",
    "an honest, moving portrait of a family.",
    "the sequel is louder and dumber than the original.",
    "slow, careful and quietly brilliant.",
]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def corpus_inputs(tokenizer):
    from _reference import CORPUS_PATH

    return [tokenizer(line.strip(), return_tensors="pt") for line in CORPUS_PATH.read_text().splitlines() if line.strip()]


_SEED_SECONDS: list[float] = []


def seed_layer3(case, runs: int) -> float:
    """Median seconds of the seed's algorithm (5000 single-sample steps) on layer 3, measured once per run."""
    if not _SEED_SECONDS:
        _SEED_SECONDS.extend(timed(lambda s=s: seed_optimize(case.x, case.phi, case.scale, 0.1, case.regularization, seed=s))[0] for s in range(runs))
    return statistics.median(_SEED_SECONDS)


def single(case, args) -> None:
    encoded = case.tokenizer(SEED_SENTENCE, return_tensors="pt")
    ref = reference_optimum(case.x, case.phi_batched, case.scale, 0.1, case.regularization, samples=32, steps=500)
    with probe.attach(case.model, "encoder.layer.2") as p:
        reg = p.regularization(corpus_inputs(case.tokenizer))
        p.explain(encoded, regularization=reg)
        runs = [timed(lambda s=s: p.explain(encoded, regularization=reg, seed=s).sigma.numpy()) for s in range(args.runs)]
    seed_time = seed_layer3(case, args.seed_runs)
    ours = statistics.median(t for t, _ in runs)
    rho = statistics.median(spearman(s, ref) for _, s in runs)
    err = statistics.median(mean_relative_error(s, ref) for _, s in runs)
    print("\n## single layer (encoder.layer.2 = layer 3), medians")
    print("| solver | time (s) | Spearman | mean rel. error |")
    print("|---|---:|---:|---:|")
    print(f"| seed's algorithm | {seed_time:.2f} | | |")
    print(f"| probe.attach + explain | {ours:.3f} | {rho:.3f} | {100 * err:.2f}% |")
    print(f"speed-up {seed_time / ours:.0f}x (bar 100x, Spearman 0.98, error 3%)")


def sweep(case, args) -> None:
    encoded = case.tokenizer(SEED_SENTENCE, return_tensors="pt")
    with probe.attach(case.model, LAYERS) as p:
        regs = p.regularization(corpus_inputs(case.tokenizer))
        p.explain(encoded, regularization=regs, max_steps=1)
        runs = [timed(lambda s=s: p.explain(encoded, regularization=regs, seed=s)) for s in range(args.runs)]
    seed_time = seed_layer3(case, args.seed_runs)
    ours = statistics.median(t for t, _ in runs)
    print("\n## six-layer sweep in one attach, medians")
    print(f"sweep {ours:.2f} s vs seed's algorithm on layer 3 alone {seed_time:.2f} s: {seed_time / ours:.1f}x (bar 15x)")
    print("| layer | Spearman | mean rel. error | steps | converged |")
    print("|---|---:|---:|---:|---:|")
    for depth, name in enumerate(LAYERS, start=1):
        layer_case = minilm_case(depth)
        ref = reference_optimum(layer_case.x, layer_case.phi_batched, layer_case.scale, 0.1, regs[name].numpy()[0], samples=args.sweep_reference[0], steps=args.sweep_reference[1])
        sigmas = [sw[name].sigma.numpy() for _, sw in runs]
        rho = statistics.median(spearman(s, ref) for s in sigmas)
        err = statistics.median(mean_relative_error(s, ref) for s in sigmas)
        steps = statistics.median(sw[name].steps for _, sw in runs)
        print(f"| {name} | {rho:.3f} | {100 * err:.2f}% | {steps:g} | {sum(sw[name].converged for _, sw in runs)}/{len(runs)} |")
    print("bars: each layer Spearman 0.97, error 4%")


def batch(case, args) -> None:
    encoded = case.tokenizer(BATCH, return_tensors="pt", padding=True)
    with probe.attach(case.model, "encoder.layer.2") as p:
        reg = p.regularization(corpus_inputs(case.tokenizer))
        p.explain_batch(encoded, regularization=reg, max_steps=1)
        times = [timed(lambda s=s: p.explain_batch(encoded, regularization=reg, seed=s))[0] for s in range(args.runs)]
    t = statistics.median(times)
    print(f"\n## padded batch of {len(BATCH)} sentences (layer 3): {t:.2f} s, {len(BATCH) / t:.1f} sentences/s (median of {len(times)})")


MEMORY_CHILD = """
import resource, sys, time, torch, probe
from transformers import BertConfig, BertModel
torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
model = BertModel(BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)).eval()
ids = torch.randint(1000, 20000, (1, 64))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
start = time.perf_counter()
with probe.attach(model, [f"encoder.layer.{i}" for i in range(12)]) as p:
    sweep = p.explain({"input_ids": ids}, max_steps=int(sys.argv[2]), min_steps=1)
print(f"{before:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} {time.perf_counter() - start:.1f} {tuple(sweep.sigma.shape)}")
"""


def memory(case, args) -> None:
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(args.threads), str(args.memory_steps)], capture_output=True, text=True, check=True)
    before, peak, seconds, shape = out.stdout.split(maxsplit=3)
    print(f"\n## memory: 12-layer sweep, BERT-base size (768 features, 64 tokens), {args.memory_steps} refinement step(s)")
    print(f"peak RSS {float(peak):.2f} GiB (model loaded: {float(before):.2f} GiB; bar 4 GiB), {float(seconds):.0f} s, sigma {shape.strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", default=["single", "sweep", "batch", "memory"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed-runs", type=int, default=2)
    parser.add_argument("--memory-steps", type=int, default=2)
    parser.add_argument("--sweep-reference", type=lambda v: tuple(int(n) for n in v.split("x")), default=(16, 300), help="samples x steps of each layer's optimum")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    case = minilm_case(3)
    for name in args.sections:
        {"single": single, "sweep": sweep, "batch": batch, "memory": memory}[name](case, args)


if __name__ == "__main__":
    main()
