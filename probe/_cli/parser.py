"""The command line's arguments, and every check that can run before a model loads."""

from __future__ import annotations

import argparse
import json

from .._method.settings import SolverSettings
from .._running.distributed import device, world
from .outputs import check_outputs
from .._utils.checks import check_positive, settings_from
from ..errors import InputError
from .commands import budget, cmd_compare, cmd_corpus, cmd_demo, cmd_explain, cmd_layers, cmd_show

OWN_FLAGS = {"trust_remote_code": "--trust-remote-code", "trust_pickle": "--trust-pickle", "model_class": "--model-class"}
"""load_model arguments that have their own option: in --model-kwargs they would be given twice."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


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
    budget.add_argument("--tol", type=float, help="stop when the root-mean-square of the sigmas' relative standard errors is below this")

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
    p.set_defaults(run=cmd_layers)

    p = commands.add_parser("explain", parents=[common, model, solve, words], help="per-word tables of sigma for some layers")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="the sentence to explain")
    source.add_argument("--file", help="a file of sentences, one per line, each explained")
    p.add_argument("--out", metavar="FILE.safetensors", help="save the result (FILE-i.safetensors for sentence i of several)")
    p.add_argument("--plot", metavar="FILE.png", help="draw the result (FILE-i.png for sentence i of several)")
    p.add_argument("--html", metavar="FILE.html", help="write the result as one self-contained HTML page (FILE-i.html for sentence i of several)")
    p.set_defaults(run=cmd_explain)

    p = commands.add_parser("show", parents=[common, words], help="print a saved result")
    p.add_argument("file", metavar="FILE", help="a .safetensors file probe wrote")
    p.add_argument("--plot", metavar="FILE.png", help="also draw it")
    p.add_argument("--html", metavar="FILE.html", help="also write it as one self-contained HTML page")
    p.set_defaults(run=cmd_show)

    p = commands.add_parser("compare", parents=[common, words], help="the change in information per word between two saved results")
    p.add_argument("first", metavar="A", help="a .safetensors file probe wrote")
    p.add_argument("second", metavar="B", help="the same sentences explained by another checkpoint or layer")
    p.add_argument("--html", metavar="FILE.html", help="also write the comparison as one self-contained HTML page")
    p.set_defaults(run=cmd_compare)

    p = commands.add_parser("demo", parents=[common, budget], help="explain all six layers of a pretrained MiniLM")
    p.add_argument("--out", default="out", metavar="DIR", help="folder for demo.png and demo.safetensors (default: out)")
    p.set_defaults(run=cmd_demo)

    p = commands.add_parser("corpus", parents=[common, model, solve], help="corpus-level information per layer and word type")
    p.add_argument("--file", required=True, help="the corpus: sentences, one per line")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for corpus.safetensors, corpus.png (and shard-RANK.safetensors under torchrun)")
    p.add_argument("--batch-size", type=int, default=8, help="sentences solved together (default 8)")
    p.add_argument("--top", type=int, default=5, help="word types listed per layer (default 5)")
    p.add_argument("--min-count", type=int, default=2, help="list only word types seen this often (default 2)")
    p.set_defaults(run=cmd_corpus)
    return parser


def _check_early(args) -> None:
    """Everything checkable before the model loads: settings, device, ranks, output paths, image types."""
    if hasattr(args, "samples"):
        settings_from(budget(args), SolverSettings)
    for option in ("scale", "rate"):
        if getattr(args, option, None) is not None:
            check_positive(f"--{option}", getattr(args, option))
    for option in ("batch_size", "top", "min_count"):
        if getattr(args, option, 1) < 1:
            raise InputError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    for key in set(getattr(args, "model_kwargs", {})) & set(OWN_FLAGS):
        raise InputError(f"--model-kwargs may not set {key!r}; use the option {OWN_FLAGS[key]} instead")
    if getattr(args, "device", None):
        device(args.device)
    if args.command == "corpus":
        world()
    check_outputs(args)


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not JSON: {text!r}; write e.g. '{{\"vocab\": 1000}}'") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object; write e.g. '{{\"vocab\": 1000}}'")
    return value
