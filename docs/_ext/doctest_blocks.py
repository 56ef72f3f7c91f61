"""A griffe extension for the API reference: the docstrings' ``>>>`` examples (run by
tests/test_docstrings.py) become fenced ``pycon`` blocks, which Markdown would otherwise read as
nested block quotes; a reStructuredText ``::`` before an example becomes ``:``."""

from __future__ import annotations

import griffe


def fence_examples(text: str) -> str:
    """``text`` with every run of non-blank lines that starts with ``>>>`` inside a pycon fence."""
    lines, out, block = text.splitlines(), [], []

    def close() -> None:
        if block:
            indent = min(len(line) - len(line.lstrip()) for line in block if line.strip())
            if out and out[-1].rstrip().endswith("::"):
                out[-1] = out[-1].rstrip()[:-1]
            if out and out[-1].strip():
                out.append("")
            out.extend(["```pycon", *(line[indent:] for line in block), "```"])
            block.clear()

    for line in lines:
        if block and line.strip():
            block.append(line)
        elif line.lstrip().startswith(">>>"):
            block.append(line)
        else:
            close()
            out.append(line)
    close()
    return "\n".join(out)


class DoctestBlocks(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_examples(obj.docstring.value)
