"""Where a sweep's time goes: a 6-layer MiniLM sweep against the sum of its layers explained alone.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sweep.py [--runs 3]

The seed's sentence, MiniLM's six encoder layers at probe's default scale and settings, one thread.
A layer gets the same noise alone as in a sweep, so the sum of the single layers is what a sweep
would cost if its passes were shared with no loss: one pass per step for all layers can save at
most the difference between the sweep and that sum. Seconds are this process's CPU time
(``time.process_time``, one thread).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import probe
from _reference import SEED_SENTENCE, minilm_case

LAYERS = [f"encoder.layer.{i}" for i in range(6)]


def seconds(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    case = minilm_case(6)
    inputs = case.tokenizer(SEED_SENTENCE, return_tensors="pt")
    with probe.attach(case.model, LAYERS) as p:
        p.explain(inputs, max_steps=1)  # warm-up
        sweep_times = [seconds(lambda s=s: p.explain(inputs, seed=s)) for s in range(args.runs)]
        sweep = p.explain(inputs)
    single_times = {name: [] for name in LAYERS}
    for name in LAYERS:
        with probe.attach(case.model, name) as p:
            single_times[name] = [seconds(lambda s=s: p.explain(inputs, seed=s)) for s in range(args.runs)]
    singles = {name: statistics.median(t) for name, t in single_times.items()}
    total = statistics.median(sweep_times)
    print(f"MiniLM, the seed's sentence ({inputs['input_ids'].shape[1]} tokens), default settings, 1 thread, medians over seeds 0-{args.runs - 1}")
    print("| layer | alone (s) | steps in the sweep |")
    print("|---|---:|---:|")
    for name in LAYERS:
        print(f"| {name} | {singles[name]:.2f} | {sweep[name].steps} |")
    print(f"| sum of the six alone | {sum(singles.values()):.2f} | |")
    print(f"| the 6-layer sweep | {total:.2f} | |")
    print(f"sweep / sum of single layers: {total / sum(singles.values()):.2f}")


if __name__ == "__main__":
    main()
