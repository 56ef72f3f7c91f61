"""Plain safetensors files: atomic writes, and reads that turn every failure into a ProbeError."""

from __future__ import annotations

import io
import json
import os
import secrets
from pathlib import Path

import torch
from safetensors.torch import load as _load_bytes
from safetensors.torch import save as _save_bytes

from ..errors import FileAccessError, FileFormatError, InputError, ProbeFileNotFoundError
from .targets import check_target, file_name, kind_of, read_header

FORMAT = "probe"
FORMAT_VERSION = 1


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Writes a safetensors file under ``path`` atomically (see ``write_atomic``)."""
    from .. import __version__

    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "probe_version": __version__, **metadata}
    _check_text(meta)
    # copies: safetensors refuses tensors that share memory, such as one regularization given to two layers
    blob = _save_bytes({k: v.detach().cpu().clone(memory_format=torch.contiguous_format) for k, v in tensors.items()}, metadata=meta)
    write_atomic(path, blob, "result.safetensors")


def write_atomic(path: str | Path, data: bytes, example: str) -> None:
    """Writes ``data`` under ``path`` atomically: a temporary file beside it, then a rename; through a
    symlink, its target is written.

    A crash, a full disk or an interrupt mid-write leaves no half file under ``path``: the old file,
    if any, stays as it was, and the temporary one is removed. ``example`` is a file name for the
    message when ``path`` is a folder; its suffix says what kind of file this is, and an existing
    file of another kind, a FIFO or a device is refused (``check_target``).
    """
    path = file_name(path, "the path to save to")
    try:
        path = _target(path)
        if path.is_dir():
            raise InputError(f"{str(path)!r} is a folder; give a file name such as {str(path / example)!r}")
        check_target(path, kind_of(example))
    except OSError as err:  # a name too long for the system, a folder that cannot be searched
        raise _access_error(err, "write", path) from err
    folder = path.parent if str(path.parent) else Path(".")
    if not _is_dir(folder):
        raise ProbeFileNotFoundError(f"the folder {str(folder)!r} does not exist; create it first")
    try:
        fd, tmp = _temporary_beside(path)
    except OSError as err:
        raise _access_error(err, "write", path) from err
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _access_error(err, "write", path) from err
        raise


def save_figure(fig, path: str | Path) -> None:
    """Draws a matplotlib figure into ``path`` atomically, in the format its suffix names (PNG by
    default): drawn in memory first, so a drawing error or a full disk leaves the old file as it was."""
    fmt = Path(path).suffix[1:].lower() if isinstance(path, (str, os.PathLike)) and Path(path).suffix else "png"
    buffer = io.BytesIO()
    fig.savefig(buffer, format=fmt, dpi=120)
    write_atomic(path, buffer.getvalue(), f"plot.{fmt}")


def _access_error(err: OSError, action: str, path: Path) -> FileAccessError:
    """``err`` as a ProbeError that names the file and what to do; still an OSError with its errno."""
    fix = "check the free space and the folder's permissions (a file already there is unchanged)" if action == "write" else "check its permissions"
    return FileAccessError(err.errno, f"could not {action} {str(path)!r}: {err.strerror or err}; {fix}", str(path))


def _check_text(meta: dict[str, str]) -> None:
    """Metadata must be valid unicode: a lone surrogate (from a bad decode) has no UTF-8 form."""
    for key, value in meta.items():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InputError(f"the {key} {value!r} holds a lone surrogate, which no file can store as text; give it a name of valid unicode") from None


def _is_dir(folder: Path) -> bool:
    try:
        return folder.is_dir()
    except OSError:
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _target(path: Path) -> Path:
    """The file a write to ``path`` must replace: the target of a symlink (so the link stays a link and
    its target gets the new content), ``path`` itself otherwise."""
    if not path.is_symlink():
        return path
    try:
        return path.resolve(strict=False)
    except (OSError, RuntimeError) as err:  # a loop of links
        raise InputError(f"{str(path)!r} is a symbolic link that leads nowhere ({err}); remove it or point it at a file") from None


def _temporary_beside(path: Path) -> tuple[int, Path]:
    """A new file next to ``path`` with the umask's mode: mkstemp's 0600 would stick after the rename.

    Its name is short (22 characters) whatever ``path``'s length, so any name the system allows can
    be saved; it starts with a dot, so a listing hides a temporary one left by a killed process.
    """
    tmp = path.with_name(f".probe-{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.open(tmp, flags, 0o666), tmp


def setting_metadata(scale: float, rate: float, width: int, settings: dict) -> dict[str, str]:
    """The string metadata every probe result shares: the objective's scale and rate, the embedding
    width and the solver settings."""
    return {"scale": repr(float(scale)), "rate": repr(float(rate)), "width": str(width), "settings": json.dumps(settings)}


def read_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a probe safetensors file; a ProbeError for anything else."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise InputError(f"the path to load must be a file name (str or pathlib.Path), got {path!r}")
    path = Path(path)
    if _is_dir(path):
        raise InputError(f"{str(path)!r} is a folder; give the path of a .safetensors file that probe saved")
    if not _is_file(path):
        raise ProbeFileNotFoundError(f"no file {str(path)!r}; check the path (probe results end in .safetensors)")
    try:
        with open(path, "rb") as f:  # the header first: a file that is no probe result is refused unread
            header = read_header(f)
            meta = _metadata(header, path)
            _check_format(meta, path)
            f.seek(0)
            blob = f.read()
    except OSError as err:
        raise _access_error(err, "read", path) from err
    try:
        tensors = _load_bytes(blob)
    except Exception as err:  # safetensors raises its own and builtin errors for damaged files
        raise FileFormatError(f"{str(path)!r} is truncated or not a safetensors file ({type(err).__name__}); re-save it") from None
    return tensors, meta


def _metadata(header: dict | None, path: Path) -> dict[str, str]:
    """The string metadata of a safetensors header; a FileFormatError when there is no header."""
    if header is None:
        raise FileFormatError(f"{str(path)!r} is truncated or not a safetensors file; re-save it, or give a .safetensors file that probe saved")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise FileFormatError(f"{str(path)!r} has damaged metadata; re-save it")
    return {str(k): str(v) for k, v in meta.items()}


def _check_format(meta: dict[str, str], path: Path) -> None:
    """A FileFormatError unless the metadata says: a probe result of a format this probe reads."""
    if meta.get("format") != FORMAT:
        raise FileFormatError(f"{str(path)!r} is a safetensors file but not a probe result; load it with safetensors.torch.load_file")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise FileFormatError(f"{str(path)!r} has a damaged format_version; re-save it") from None
    if version < 1:
        raise FileFormatError(f"{str(path)!r} has a damaged format_version {version}; re-save it")
    if version > FORMAT_VERSION:
        raise FileFormatError(
            f"{str(path)!r} was written in probe format {version} by a newer probe "
            f"({meta.get('probe_version', '?')}); this probe reads format {FORMAT_VERSION}: upgrade sigma-probe"
        )
