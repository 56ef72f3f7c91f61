"""Where probe may write: never over a file it reads, a file of another kind, or a non-file.

Every output (a result, an HTML page, a plot) goes through ``check_target`` before any work and again
at the moment of writing, so a mistyped path cannot replace a model's weights, the results being
compared, the sentence file, a FIFO or a device node. An existing file is replaced only when it is
empty or of the kind being written (a probe result by a result, a page by a page, an image by an
image): what probe wrote before may be overwritten, nothing else.
"""

from __future__ import annotations

import json
import os
import stat
import struct
from collections.abc import Iterable
from pathlib import Path

from ..errors import FileAccessError, InputError

KINDS = {"result": "probe result (.safetensors)", "html": "HTML page", "image": "image"}
"""What probe writes, and how a message names each."""
_IMAGE_MAGIC = (b"\x89PNG", b"%PDF", b"%!PS", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*", b"RIFF")
_HEADER_LIMIT = 100 * 2**20
"""The largest safetensors header probe reads: real ones are kilobytes."""


def kind_of(example: str) -> str:
    """The kind of output a file name such as ``result.html`` stands for.

    >>> kind_of("result.safetensors"), kind_of("page.html"), kind_of("plot.svg")
    ('result', 'html', 'image')
    """
    suffix = Path(example).suffix.lower()
    return "result" if suffix == ".safetensors" else "html" if suffix in (".html", ".htm") else "image"


def check_target(path, kind: str, option: str = "path", inputs: Iterable = ()) -> Path:
    """``path`` as a file that probe may (re)write with a ``kind`` output, or a ProbeError that says why not.

    ``inputs`` are the files and folders this call reads: an output may be none of them, nor a file
    inside an input folder (a model's own files).

    >>> check_target("new.html", "html")
    PosixPath('new.html')
    """
    path = file_name(path, option)
    try:
        found = os.stat(path) if os.path.lexists(path) else None
    except OSError as err:  # a dangling symlink is a new file; anything else the user must fix
        if not os.path.islink(path):
            raise FileAccessError(err.errno, f"{option} {str(path)!r} cannot be examined: {err.strerror}; check the path", str(path)) from None
        found = None
    if found is not None and stat.S_ISDIR(found.st_mode):
        raise InputError(f"{option} {str(path)!r} is a folder; give the name of a file in it")
    if found is not None and not stat.S_ISREG(found.st_mode):
        raise InputError(f"{option} {str(path)!r} is {_special(found.st_mode)}, not a regular file; probe writes only regular files, give a file name")
    for source in inputs:
        if source is not None and str(source) and _is_within(path, Path(source)):
            raise InputError(f"{option} {str(path)!r} is {_what_input(Path(source))}, which this command reads; writing there could destroy it: give another file name")
    if found is not None and found.st_size > 0:
        existing = sniff(path)
        if existing != kind:
            raise InputError(
                f"{option} {str(path)!r} already holds {_described(existing)}, not a {KINDS[kind]}; probe replaces a file only with one "
                "of the same kind, so nothing else is lost: delete the file first or give another name"
            )
    return path


def file_name(path, option: str = "path") -> Path:
    """``path`` as a Path, refused when it is no name or ends in a separator (``x.png/`` names a
    folder; pathlib would silently drop the slash and write ``x.png``)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InputError(f"{option} must be a file name (str or pathlib.Path), got {path!r}")
    text = os.fspath(path)
    if isinstance(text, str) and text.endswith(tuple(s for s in (os.sep, os.altsep) if s)):
        raise InputError(f"{option} {text!r} ends in a separator, so it names a folder; give a file name such as {text.rstrip('/' + os.sep) or 'result'!r}")
    return Path(path)


def sniff(path: Path) -> str:
    """What an existing file holds, from its first bytes: ``result``, ``html``, ``image``,
    ``safetensors`` (not probe's), or ``other``."""
    try:
        with open(path, "rb") as f:
            head = f.read(1024)
            if len(head) >= 8:
                meta = _safetensors_metadata(f, head)
                if meta is not None:
                    return "result" if meta.get("format") == "probe" else "safetensors"
    except OSError:
        return "other"
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "html"
    if head.startswith(_IMAGE_MAGIC) or (start.startswith((b"<?xml", b"<svg")) and b"<svg" in head):
        return "image"
    return "other"


def read_header(f, head: bytes | None = None) -> dict | None:
    """The JSON header of an open safetensors file (positioned after it), or None if it is none."""
    head = f.read(8) if head is None else head
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head[:8])
    if not 2 <= size <= _HEADER_LIMIT:
        return None
    f.seek(8)
    blob = f.read(size)
    if len(blob) != size or not blob.lstrip().startswith(b"{"):
        return None
    try:
        header = json.loads(blob)
    except (ValueError, RecursionError):
        return None
    return header if isinstance(header, dict) else None


def _safetensors_metadata(f, head: bytes) -> dict | None:
    header = read_header(f, head)
    if header is None:
        return None
    meta = header.get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def _is_within(path: Path, source: Path) -> bool:
    """Whether writing ``path`` would replace the file ``source`` or write into the folder ``source``
    (a model folder: a new file there can change how it loads)."""
    try:
        if not source.exists():
            return False
        if path.exists() and os.path.samefile(path, source):
            return True
        return source.is_dir() and Path(os.path.realpath(path)).is_relative_to(os.path.realpath(source))
    except OSError:
        return False


def _what_input(source: Path) -> str:
    return f"inside the input folder {str(source)!r}" if source.is_dir() else f"the input file {str(source)!r}"


def _special(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _described(kind: str) -> str:
    return {"safetensors": "safetensors tensors that are not a probe result (model weights?)", "other": "data of another kind"}.get(kind, f"a {KINDS.get(kind, kind)}")


def check_distinct(outputs: dict[str, object]) -> None:
    """Two outputs of one command may not be the same file: the second would replace the first.

    >>> check_distinct({"--out": "a.safetensors", "--html": "a.html"})
    """
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        key = os.path.realpath(str(path))
        if key in seen:
            raise InputError(f"{seen[key]} and {option} are the same file {str(path)!r}; give each output its own name")
        seen[key] = option
