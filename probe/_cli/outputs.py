"""The files a command writes, checked before any work against the files it reads."""

from __future__ import annotations

from pathlib import Path

from .._running.distributed import RESULT_NAME
from .._utils.checks import check_image_path, check_output_file, check_output_folder
from .._utils.targets import check_distinct, check_target, kind_of

FOLDER_OUTPUTS = {"demo": ("demo.safetensors", "demo.png"), "corpus": (RESULT_NAME, "corpus.png")}
"""The files the commands that write into a folder put there."""


def numbered(path: str, i: int, count: int) -> Path:
    """``path`` for one sentence, or ``stem-i.suffix`` for sentence ``i`` of several."""
    p = Path(path)
    return p if count == 1 else p.with_name(f"{p.stem}-{i}{p.suffix}")


def inputs(args) -> list[str]:
    """Every file or folder the command reads: no output may replace one of them."""
    names = ("model", "tokenizer", "file", "corpus", "first", "second")
    return [getattr(args, n) for n in names if getattr(args, n, None)]


def check_outputs(args, count: int = 1) -> None:
    """Every file the command will write (for ``count`` sentences, numbered) is writable, none of its
    inputs nor inside an input folder, no FIFO or device, no other output of the command, and any
    file already there of the kind written."""
    read = inputs(args)
    if args.command in ("demo", "corpus"):
        out = check_output_folder(args.out, "--out")
        for name in FOLDER_OUTPUTS[args.command]:
            check_target(out / name, kind_of(name), f"--out ({name})", read)
        return
    chosen = {}
    for option, kind in (("out", "result"), ("plot", "image"), ("html", "html")):
        given = getattr(args, option, None)
        for i in range(count if given else 0):
            path = numbered(given, i, count)
            checked = check_image_path(path, f"--{option}", read) if kind == "image" else check_output_file(path, f"--{option}", kind, read)
            chosen[f"--{option}" if count == 1 else f"--{option} ({path})"] = checked
    check_distinct(chosen)


