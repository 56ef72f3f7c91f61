"""What ``probe layers`` shows: a model's named submodules as a tree, with each one's output."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..errors import ModelError


def output_shapes(model: nn.Module, inputs) -> dict[str, str]:
    """Each module's output (its first call) in one real forward pass, described in words."""
    seen: dict[str, str] = {}
    hooks = []

    def record(name: str):
        def hook(module, args, output):
            seen.setdefault(name, describe_output(output))

        return hook

    try:
        for name, module in model.named_modules():
            hooks.append(module.register_forward_hook(record(name)))
        with torch.no_grad():
            model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    except Exception as err:
        raise ModelError(f"the model rejected the tokenizer's inputs: {type(err).__name__}: {err}") from None
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def describe_output(value) -> str:
    if isinstance(value, torch.Tensor):
        return str(list(value.shape))
    if isinstance(value, (tuple, list)):
        items = [describe_output(v) for v in value[:3]]
        return "(" + ", ".join(items + (["..."] if len(value) > 3 else [])) + ")"
    if hasattr(value, "items"):
        items = [f"{k}: {describe_output(v)}" for k, v in list(value.items())[:2]]
        return f"{type(value).__name__}(" + ", ".join(items + (["..."] if len(value) > 2 else [])) + ")"
    return type(value).__name__


def module_tree(model: nn.Module, outputs: dict[str, str] | None) -> str:
    """Every named submodule, indented by depth, with its type (and output when known)."""
    rows = [
        (("  " * (name.count(".") + 1) + name) if name else "(model)", getattr(module, "original_name", type(module).__name__), name)
        for name, module in model.named_modules()
    ]
    name_width = max(len(r[0]) for r in rows)
    type_width = max(len(r[1]) for r in rows)
    lines = []
    for label, kind, name in rows:
        line = f"{label:<{name_width}}  {kind:<{type_width}}"
        if outputs is not None:
            line += "  " + outputs.get(name, "not run")
        lines.append(line.rstrip())
    return "\n".join(lines)
