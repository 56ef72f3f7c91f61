"""Reading a model's files without running code from them: weights through safetensors or
``torch.load(weights_only=True)``, TorchScript through its own unpickler, and a folder's config
checked for code of its own (``auto_map``) before transformers sees it."""

from __future__ import annotations

import json
import pickle
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError, UnsafeFileError


UNSAFE = (
    "{path!r} holds pickled Python objects (such as a whole nn.Module), and loading them would run code "
    "from the file; save the weights (model.state_dict() or save_pretrained with safetensors) instead, or "
    "pass trust_pickle=True (--trust-pickle) only if you trust the file"
)


def short(err: BaseException) -> str:
    """An exception's message on one line, at most 200 characters."""
    text = " ".join(str(err).split())
    return text if len(text) <= 200 else text[:197] + "..."


def folder_config(path: Path) -> dict:
    """The folder's config.json as a dict; an InputError when there is none or it is not a JSON object."""
    config = path / "config.json"
    if not config.is_file():
        raise InputError(f"the folder {str(path)!r} has no config.json, so it is not a HuggingFace model folder; give the folder save_pretrained wrote, or a weights file")
    try:
        value = json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise InputError(f"{str(config)!r} is not valid JSON; re-save the model with save_pretrained") from None
    if not isinstance(value, dict):
        raise InputError(f"{str(config)!r} holds a {type(value).__name__}, not a JSON object; re-save the model with save_pretrained")
    return value


def refuse_remote_code(path: Path, config: dict) -> None:
    """An UnsafeFileError when the folder names its own Python code (``auto_map``) for the model or tokenizer."""
    maps = {"config.json": config.get("auto_map")}
    tokenizer_config = path / "tokenizer_config.json"
    if tokenizer_config.is_file():
        try:
            maps["tokenizer_config.json"] = json.loads(tokenizer_config.read_text(encoding="utf-8")).get("auto_map")
        except (ValueError, UnicodeDecodeError, AttributeError):
            raise InputError(f"{str(tokenizer_config)!r} is not a JSON object; re-save the tokenizer with save_pretrained") from None
    named = [name for name, value in maps.items() if value]
    if named:
        raise UnsafeFileError(
            f"{str(path)!r} names its own Python code (auto_map in {' and '.join(named)}), and loading it would run that code; "
            "pass trust_remote_code=True (--trust-remote-code) only if you trust the folder"
        )


def pickled_weights(path: Path) -> list[Path]:
    """The folder's pickled weight files (pytorch_model*.bin) when it has no safetensors weights."""
    if any(path.glob("*.safetensors")):
        return []
    return sorted(path.glob("pytorch_model*.bin"))


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive: a zip holding compiled code, not just a pickle."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):  # not a zip, or a damaged one: torch.load says which
        return False
    return any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names)


def load_torchscript(path: Path) -> nn.Module:
    """A TorchScript archive. Its own unpickler builds no Python objects, so an archive that names
    Python functions (a disguised malicious pickle) or is damaged fails there: a ProbeError."""
    with warnings.catch_warnings():  # the file is TorchScript already: the deprecation is not the user's to act on
        warnings.filterwarnings("ignore", message="`torch.jit.load` is deprecated", category=DeprecationWarning)
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except Exception as err:  # torch.jit raises RuntimeError and others for damaged archives
            raise InputError(f"{str(path)!r} looks like TorchScript but torch.jit.load refused it ({short(err)}); re-export it with torch.jit.save, or save a state dict") from None


def read_weights(path: Path, trust_pickle: bool):
    """A state dict (or, with ``trust_pickle``, any pickled object) from a weights file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise InputError(f"{str(path)!r} is not a readable safetensors file ({short(err)}); re-save it with safetensors.torch.save_file") from None
    try:
        if trust_pickle:  # the user vouches for the file: its pickle may run code
            return torch.load(str(path), map_location="cpu", weights_only=False)
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if trust_pickle:
            raise InputError(f"{str(path)!r} is a damaged pickle ({short(err)}); re-save it") from None
        raise UnsafeFileError(UNSAFE.format(path=str(path))) from None
    except Exception as err:  # a damaged file (a corrupt zip, a cut-off pickle) fails in many ways
        raise InputError(f"{str(path)!r} is not a file torch.save wrote, or it is damaged ({type(err).__name__}: {short(err)}); check the path") from None
