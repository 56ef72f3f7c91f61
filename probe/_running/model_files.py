"""Reading a model's files without running code from them: weights through safetensors or
``torch.load(weights_only=True)``, TorchScript through its own unpickler, and a folder's config
checked, before transformers sees it, for code of its own (``auto_map``) and for any key that makes
transformers fetch native code (a Hub kernel) to run."""

from __future__ import annotations

import importlib.util
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


KERNEL_QUANTIZATIONS = {"fp8", "mxfp8", "mxfp4", "eetq", "fbgemm_fp8", "nvfp4", "metal", "gguf"}
"""``quantization_config.quant_method`` values whose transformers integration downloads a Hub kernel."""
KERNEL_KWARGS = ("use_kernels", "kernel_config")
"""``from_pretrained`` keywords that swap layers for Hub kernels."""


def kernel_requests(config, where: str = "config.json", depth: int = 0) -> list[str]:
    """Each place in a config (sub-configs included) that makes transformers fetch and run native
    code: an ``*_implementation`` naming a Hub repo (``"org/kernel"``, ``"paged|org/kernel"``), a
    ``flash_attention_N`` that falls back to a Hub kernel, a quantization that loads one, ``use_kernels``.

    >>> kernel_requests({"attn_implementation": "someorg/kernel", "text_config": {"_attn_implementation": "sdpa"}})
    ["attn_implementation='someorg/kernel' in config.json"]
    """
    found: list[str] = []
    if not isinstance(config, dict) or depth > 8:
        return found
    for key, value in config.items():
        named = f"{key}={value!r} in {where}"
        if isinstance(key, str) and key.endswith("_implementation") and isinstance(value, str) and _fetches_kernel(value):
            found.append(named)
        elif key == "quantization_config" and isinstance(value, dict) and value.get("quant_method") in KERNEL_QUANTIZATIONS:
            found.append(f"quantization_config.quant_method={value['quant_method']!r} in {where}")
        elif key in KERNEL_KWARGS and value:
            found.append(named)
        elif isinstance(value, dict):
            found += kernel_requests(value, where, depth + 1)
    return found


def _fetches_kernel(implementation: str) -> bool:
    """A Hub repo id, or flash attention that transformers replaces by a Hub kernel when ``flash_attn`` is missing."""
    if "/" in implementation:
        return True
    return implementation.startswith("flash_attention") and importlib.util.find_spec("kernels") is not None and importlib.util.find_spec("flash_attn") is None


def refuse_remote_code(path: Path, config: dict, kwargs: dict | None = None) -> None:
    """An UnsafeFileError when the folder names its own Python code (``auto_map``) for the model or
    tokenizer, or its config (or ``kwargs``) asks for a Hub kernel (``kernel_requests``)."""
    kernels = kernel_requests(config) + kernel_requests(kwargs or {}, "the model keywords")
    if kernels:
        raise UnsafeFileError(
            f"{str(path)!r} asks transformers to download and run native code from the Hub ({kernels[0]}); "
            "pass trust_remote_code=True (--trust-remote-code) only if you trust that code, or remove the key"
        )
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
            return torch.load(str(path), map_location="cpu", weights_only=False)  # trusted: the user passed trust_pickle
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if trust_pickle:
            raise InputError(f"{str(path)!r} is a damaged pickle ({short(err)}); re-save it") from None
        raise UnsafeFileError(UNSAFE.format(path=str(path))) from None
    except Exception as err:  # a damaged file (a corrupt zip, a cut-off pickle) fails in many ways
        raise InputError(f"{str(path)!r} is not a file torch.save wrote, or it is damaged ({type(err).__name__}: {short(err)}); check the path") from None
