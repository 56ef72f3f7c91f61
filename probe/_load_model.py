"""``probe.load_model``: a saved model from a path, loaded without running code from the file.

A HuggingFace folder goes through ``from_pretrained`` (never ``trust_remote_code``); a state dict
(``.safetensors``, ``.pt``, ``.pth``, ``.bin``) goes into a fresh ``model_class``; a TorchScript
archive through ``torch.jit.load``. Pickles are read with ``torch.load(weights_only=True)``, which
refuses any object but tensors and plain containers; a whole pickled module needs ``trust_pickle``.
"""

from __future__ import annotations

import importlib
import json
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from .errors import InputError, ModelError, ProbeFileNotFoundError, UnsafeFileError

STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")

_UNSAFE = (
    "{path!r} holds pickled Python objects (such as a whole nn.Module), and loading them would run code "
    "from the file; save the weights (model.state_dict() or save_pretrained with safetensors) instead, or "
    "pass trust_pickle=True (--trust-pickle) only if you trust the file"
)


class LoadedModel(NamedTuple):
    """What ``probe.load_model`` returns: the model (in eval mode) and its tokenizer, or None.

    A named tuple, so it unpacks::

        >>> model, tokenizer = probe.load_model("path/to/hf-folder")
        >>> probe.load_model("tagger.pt", model_class="mypkg.models:Tagger", vocab=1000).tokenizer is None
        True
    """

    model: nn.Module
    tokenizer: object | None = None


def load_model(path: str | Path, model_class: str | type | None = None, trust_pickle: bool = False, **kwargs) -> LoadedModel:
    """Loads a saved model: a HuggingFace folder, a state dict into ``model_class``, or TorchScript.

    ``model_class`` is a class or ``"module:Class"``; for a state dict it is built as
    ``model_class(**kwargs)``, for a HuggingFace folder it replaces the class named in config.json
    (``kwargs`` go to ``from_pretrained``). A pickled whole module loads only with
    ``trust_pickle=True``; any other file whose loading would run code raises ``UnsafeFileError``.

    >>> model, tokenizer = probe.load_model("path/to/hf-folder")
    >>> model, _ = probe.load_model("weights.safetensors", model_class="mypkg.models:Tagger", vocab=1000)
    """
    path = Path(path)
    if not path.exists():
        raise ProbeFileNotFoundError(f"no file or folder {str(path)!r}; give a HuggingFace model folder, a state dict (.safetensors/.pt) or a TorchScript file")
    cls = _resolve_class(model_class)
    if path.is_dir():
        return _load_folder(path, cls, {**kwargs, "weights_only": False} if trust_pickle else kwargs)
    if _is_torchscript(path):
        return LoadedModel(_load_torchscript(path).eval())
    if path.suffix not in STATE_DICT_SUFFIXES:
        raise InputError(f"{str(path)!r} is not a model file probe reads; give a HuggingFace folder, a {'/'.join(STATE_DICT_SUFFIXES)} state dict or a TorchScript file")
    loaded = _read_weights(path, trust_pickle)
    if isinstance(loaded, nn.Module):
        return LoadedModel(loaded.eval())
    return LoadedModel(_into_class(loaded, cls, kwargs, path).eval())


def _resolve_class(model_class: str | type | None) -> type | None:
    """A class from ``"module:Class"`` (or a dotted ``"module.Class"``), or the class given."""
    if model_class is None or isinstance(model_class, type):
        return model_class
    if not isinstance(model_class, str):
        raise InputError(f"model_class must be a class or a 'module:Class' string, got {type(model_class).__name__}")
    module_name, sep, qualname = model_class.partition(":")
    if not sep:
        module_name, _, qualname = model_class.rpartition(".")
    if not module_name or not qualname:
        raise InputError(f"model_class {model_class!r} is not 'module:Class'; write e.g. 'mypkg.models:Tagger'")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as err:
        raise InputError(f"cannot import {module_name!r} for model_class {model_class!r} ({err}); install it or add its folder to PYTHONPATH") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise InputError(f"module {module_name!r} has no {qualname!r}; check the model_class {model_class!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise InputError(f"model_class {model_class!r} is a {type(obj).__name__}, not a class")
    return obj


def _load_folder(path: Path, cls: type | None, kwargs: dict) -> LoadedModel:
    config = path / "config.json"
    if not config.is_file():
        raise InputError(f"the folder {str(path)!r} has no config.json, so it is not a HuggingFace model folder; give the folder save_pretrained wrote, or a weights file")
    import transformers

    if cls is None:
        try:
            names = json.loads(config.read_text()).get("architectures") or []
        except (ValueError, AttributeError):
            raise InputError(f"{str(config)!r} is not valid JSON; re-save the model with save_pretrained") from None
        cls = getattr(transformers, names[0], None) if names else None
        cls = cls or transformers.AutoModel
    if not hasattr(cls, "from_pretrained"):
        raise InputError(f"{cls.__name__} has no from_pretrained, so it cannot load the HuggingFace folder {str(path)!r}; pass a transformers class")
    try:
        model = cls.from_pretrained(str(path), **kwargs)
    except pickle.UnpicklingError:
        raise UnsafeFileError(_UNSAFE.format(path=str(path))) from None
    except (OSError, ValueError) as err:
        raise ModelError(f"transformers could not load {str(path)!r}: {err}") from None
    return LoadedModel(model.eval(), _tokenizer(path))


def _tokenizer(path: Path):
    """The tokenizer saved in ``path``, or None when the folder has no tokenizer files."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive: a zip holding compiled code, not just a pickle."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names)


def _load_torchscript(path: Path) -> nn.Module:
    """A TorchScript archive. Its own unpickler builds no Python objects, so an archive that names
    Python functions (a disguised malicious pickle) or is damaged fails there: a ProbeError."""
    with warnings.catch_warnings():  # the file is TorchScript already: the deprecation is not the user's to act on
        warnings.filterwarnings("ignore", message="`torch.jit.load` is deprecated", category=DeprecationWarning)
        try:
            return torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as err:
            reason = " ".join(str(err).split())[:200]
            raise InputError(f"{str(path)!r} looks like TorchScript but torch.jit.load refused it ({reason}); re-export it with torch.jit.save, or save a state dict") from None


def _read_weights(path: Path, trust_pickle: bool):
    """A state dict (or, with ``trust_pickle``, any pickled object) from a weights file."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as err:  # safetensors raises its own error types for damaged files
            raise InputError(f"{str(path)!r} is not a readable safetensors file ({err}); re-save it with safetensors.torch.save_file") from None
    try:
        if trust_pickle:  # the user vouches for the file: its pickle may run code
            return torch.load(str(path), map_location="cpu", weights_only=False)
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if trust_pickle:
            raise InputError(f"{str(path)!r} is a damaged pickle ({err}); re-save it") from None
        raise UnsafeFileError(_UNSAFE.format(path=str(path))) from None
    except (RuntimeError, EOFError) as err:
        raise InputError(f"{str(path)!r} is not a file torch.save wrote ({err}); check the path") from None


def _into_class(state, cls: type | None, kwargs: dict, path: Path) -> nn.Module:
    """A fresh ``cls(**kwargs)`` holding the tensors of ``state``."""
    if not (isinstance(state, Mapping) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        got = f"a dict with keys {sorted(map(str, state))[:5]}" if isinstance(state, Mapping) else f"a {type(state).__name__}"
        raise InputError(f"{str(path)!r} holds {got}, not a state dict of tensors; save it with torch.save(model.state_dict(), path)")
    if cls is None:
        raise InputError(f"{str(path)!r} holds only weights; say which model they belong to with model_class='module:Class' (--model-class)")
    try:
        with torch.random.fork_rng(devices=[]):  # the random init is overwritten: the caller's RNG stream must not move
            model = cls(**kwargs)
    except TypeError as err:
        raise InputError(f"cannot build {cls.__name__}(**{kwargs}): {err}; pass its constructor arguments as keywords (--model-kwargs)") from None
    if not isinstance(model, nn.Module):
        raise InputError(f"model_class {cls.__name__} builds a {type(model).__name__}, not a torch.nn.Module")
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise InputError(
            f"the weights in {str(path)!r} do not fit {cls.__name__}: missing {missing[:5]}, unexpected {unexpected[:5]}; "
            "check model_class and its constructor arguments"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise InputError(f"the weights in {str(path)!r} do not fit {cls.__name__}: {err}; check its constructor arguments") from None
    return model


__all__ = ["LoadedModel", "load_model"]
