"""``probe.load_model``: a saved model from a path, loaded without running code from the file.

A HuggingFace folder goes through ``from_pretrained`` (``trust_remote_code`` only when asked); a state dict
(``.safetensors``, ``.pt``, ``.pth``, ``.bin``) goes into a fresh ``model_class``; a TorchScript
archive through ``torch.jit.load``. Pickles are read with ``torch.load(weights_only=True)``, which
refuses any object but tensors and plain containers; a whole pickled module needs ``trust_pickle``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from ..errors import InputError, ModelError, ProbeError, ProbeFileNotFoundError, UnsafeFileError
from .model_files import UNSAFE, folder_config, is_torchscript, load_torchscript, pickled_weights, read_weights, refuse_remote_code, short

STATE_DICT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


class LoadedModel(NamedTuple):
    """What ``probe.load_model`` returns: the model (in eval mode) and its tokenizer, or None.

    A named tuple, so it unpacks::

        >>> model, tokenizer = probe.load_model(minilm_path)
        >>> torch.save(torch.nn.Linear(4, 2).state_dict(), tmp / "linear.pt")
        >>> probe.load_model(tmp / "linear.pt", model_class="torch.nn:Linear", in_features=4, out_features=2).tokenizer is None
        True
    """

    model: nn.Module
    tokenizer: object | None = None


def load_model(
    path: str | Path, model_class: str | type | None = None, trust_pickle: bool = False, trust_remote_code: bool = False, **kwargs
) -> LoadedModel:
    """Loads a saved model: a HuggingFace folder, a state dict into ``model_class``, or TorchScript.

    ``model_class`` is a class or ``"module:Class"``; for a state dict it is built as
    ``model_class(**kwargs)``, for a HuggingFace folder it replaces the class named in config.json
    (``kwargs`` go to ``from_pretrained``). Nothing from the file or folder runs unless you opt in:
    a pickled whole module (or a folder's ``pytorch_model.bin`` holding more than tensors) needs
    ``trust_pickle=True``, a folder with its own Python code (``auto_map``) ``trust_remote_code=True``;
    anything else whose loading would run code raises ``UnsafeFileError``.

    >>> model, tokenizer = probe.load_model(minilm_path)
    >>> type(model).__name__, tokenizer("a fine film")["input_ids"][:2]
    ('BertModel', [101, 1037])
    >>> torch.save(torch.nn.Linear(4, 2).state_dict(), tmp / "linear.pt")
    >>> probe.load_model(tmp / "linear.pt", model_class="torch.nn:Linear", in_features=4, out_features=2).model
    Linear(in_features=4, out_features=2, bias=True)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"path must be a file or folder name, got {type(path).__name__}")
    for name, flag in (("trust_pickle", trust_pickle), ("trust_remote_code", trust_remote_code)):
        if not isinstance(flag, bool):
            raise InputError(f"{name} must be True or False, got {flag!r}")
    path = Path(path)
    if not path.exists():
        raise ProbeFileNotFoundError(f"no file or folder {str(path)!r}; give a HuggingFace model folder, a state dict (.safetensors/.pt) or a TorchScript file")
    cls = _resolve_class(model_class)
    if path.is_dir():
        return _load_folder(path, cls, trust_pickle, trust_remote_code, kwargs)
    if is_torchscript(path):
        return LoadedModel(load_torchscript(path).eval())
    if path.suffix not in STATE_DICT_SUFFIXES:
        raise InputError(f"{str(path)!r} is not a model file probe reads; give a HuggingFace folder, a {'/'.join(STATE_DICT_SUFFIXES)} state dict or a TorchScript file")
    loaded = read_weights(path, trust_pickle)
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
    except Exception as err:  # a module that fails on import is the user's module: say so, in one line
        raise InputError(f"cannot import {module_name!r} for model_class {model_class!r} ({type(err).__name__}: {err}); install it or add its folder to PYTHONPATH") from None
    for part in qualname.split("."):
        if not hasattr(obj, part):
            raise InputError(f"module {module_name!r} has no {qualname!r}; check the model_class {model_class!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise InputError(f"model_class {model_class!r} is a {type(obj).__name__}, not a class")
    return obj


def _load_folder(path: Path, cls: type | None, trust_pickle: bool, trust_remote_code: bool, kwargs: dict) -> LoadedModel:
    """A HuggingFace folder through ``from_pretrained``, with ``trust_remote_code`` always explicit."""
    config = folder_config(path)
    if not trust_remote_code:
        refuse_remote_code(path, config, kwargs)
    import transformers

    if cls is None:
        names = config.get("architectures") or []
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise InputError(f"'architectures' in {str(path / 'config.json')!r} is {names!r}, not a list of class names; fix config.json or pass model_class")
        found = getattr(transformers, names[0], None) if names else None
        cls = found if isinstance(found, type) and hasattr(found, "from_pretrained") else transformers.AutoModel
    if not hasattr(cls, "from_pretrained"):
        raise InputError(f"{cls.__name__} has no from_pretrained, so it cannot load the HuggingFace folder {str(path)!r}; pass a transformers class")
    pickled = pickled_weights(path)
    try:
        if pickled and trust_pickle:
            model = _from_trusted_pickle(path, cls, pickled, trust_remote_code, kwargs)
        else:
            model, info = cls.from_pretrained(str(path), trust_remote_code=trust_remote_code, **{**kwargs, "output_loading_info": True})
            _warn_missing(path, cls, info)
    except ProbeError:
        raise
    except pickle.UnpicklingError:
        raise UnsafeFileError(UNSAFE.format(path=str(path))) from None
    except Exception as err:  # a damaged folder fails inside transformers in many ways: all are the folder's
        raise ModelError(f"transformers could not load the model in {str(path)!r} ({type(err).__name__}: {short(err)}); re-save it with save_pretrained") from None
    if not isinstance(model, nn.Module):
        raise InputError(f"{cls.__name__}.from_pretrained gave a {type(model).__name__}, not a torch.nn.Module; pass a model class")
    return LoadedModel(model.eval(), _tokenizer(path, trust_remote_code))


def _warn_missing(path: Path, cls: type, info) -> None:
    """A warning when weights the model needs are not in the folder: transformers starts them random."""
    missing = sorted(info.get("missing_keys") or ()) if isinstance(info, Mapping) else []
    if missing:
        warnings.warn(
            f"{len(missing)} weight(s) of {cls.__name__} are not in {str(path)!r} and start random ({', '.join(missing[:3])}); "
            "layers that use them explain an untrained model: check the folder or model_class",
            stacklevel=4,
        )


def _from_trusted_pickle(path: Path, cls: type, files: list[Path], trust_remote_code: bool, kwargs: dict) -> nn.Module:
    """The model from pickled weights the user vouched for (transformers' own loader refuses them)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    state: dict = {}
    for file in files:
        loaded = read_weights(file, trust_pickle=True)
        if not isinstance(loaded, Mapping):
            raise InputError(f"{str(file)!r} holds a {type(loaded).__name__}, not a state dict; re-save the model with save_pretrained")
        state.update({k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)})
    mapping = getattr(cls, "_model_mapping", None)
    concrete = mapping[type(config)] if mapping is not None else cls
    return concrete.from_pretrained(None, config=config, state_dict=state, trust_remote_code=trust_remote_code, **kwargs)


def _tokenizer(path: Path, trust_remote_code: bool):
    """The tokenizer saved in ``path``, or None when the folder has no tokenizer files."""
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as err:  # garbage tokenizer files fail inside tokenizers in many ways
        raise InputError(f"the tokenizer files in {str(path)!r} are damaged ({type(err).__name__}: {short(err)}); re-save the tokenizer with save_pretrained") from None


def load_tokenizer(path: str | Path, trust_remote_code: bool = False):
    """The tokenizer a folder holds (``save_pretrained``'s files), running no code from it unless
    ``trust_remote_code``; a ProbeError when there is none or it is damaged."""
    path = Path(path)
    if not path.is_dir():
        raise ProbeFileNotFoundError(f"no tokenizer folder {str(path)!r}; give the folder a tokenizer's save_pretrained wrote")
    if not trust_remote_code:
        refuse_remote_code(path, {})
    found = _tokenizer(path, trust_remote_code)
    if found is None:
        raise InputError(f"the folder {str(path)!r} holds no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); give the folder a tokenizer's save_pretrained wrote")
    return found


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
    except Exception as err:  # the user's constructor: whatever it raises is about its arguments
        raise InputError(f"cannot build {cls.__name__}(**{kwargs}): {type(err).__name__}: {short(err)}; pass its constructor arguments as keywords (--model-kwargs)") from None
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
    except Exception as err:  # shapes that do not fit, or a model's own load_state_dict refusing
        raise InputError(f"the weights in {str(path)!r} do not fit {cls.__name__}: {short(err)}; check its constructor arguments") from None
    return model


__all__ = ["LoadedModel", "load_model"]
