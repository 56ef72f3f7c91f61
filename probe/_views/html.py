"""HTML views of every result kind: a fragment for the notebook (``_repr_html_``) and a whole page
(``to_html``). Light = the layer lost the word (sigma at its ceiling ``scale``), dark = kept.

The functions read the results' attributes only (duck typing), so they import no result class:

>>> import torch, probe
>>> exp = probe.Explanation(sigma=torch.tensor([0.1, 0.9]), words=["rare", "bird"], scale=1.0, rate=0.1, width=8)
>>> "rare" in fragment(exp) and page(exp).startswith("<!DOCTYPE html>")
True
"""

from __future__ import annotations

from pathlib import Path

from . import html_parts as parts
from ..errors import InputError
from .html_many import MAX_STEPS, corpus_fragment, corpus_page, timeseries_fragment, timeseries_page, type_relative_sigma
from .html_one import explanation_fragment, explanation_page, sweep_fragment, sweep_page

__all__ = [
    "MAX_STEPS", "corpus_fragment", "corpus_page", "explanation_fragment", "explanation_page", "fragment", "kind_of", "page",
    "sweep_fragment", "sweep_page", "timeseries_fragment", "timeseries_page", "type_relative_sigma",
]


def kind_of(result) -> str:
    """Which result kind ``result`` is, by its attributes: 'explanation', 'sweep', 'corpus' or
    'timeseries'; an InputError for anything else.

    >>> import torch, probe
    >>> kind_of(probe.Explanation(sigma=torch.tensor([0.1]), words=["a"], scale=1.0, rate=0.1, width=8))
    'explanation'
    """
    if hasattr(result, "epochs"):
        return "timeseries"
    if hasattr(result, "word_ranking"):
        return "corpus"
    if hasattr(result, "layer") and hasattr(result, "relative_sigma"):
        return "explanation"
    if hasattr(result, "layers"):
        return "sweep"
    raise InputError(f"cannot show a {type(result).__name__}; pass an Explanation, Sweep, CorpusResult or TimeSeries")


def fragment(result) -> str:
    """The notebook view of any result kind (what ``_repr_html_`` returns).

    >>> import torch, probe
    >>> exp = probe.Explanation(sigma=torch.tensor([0.1, 0.9]), words=["rare", "bird"], scale=1.0, rate=0.1, width=8)
    >>> fragment(exp).startswith('<div class="probe">')
    True
    """
    show = {"explanation": explanation_fragment, "sweep": sweep_fragment, "corpus": corpus_fragment, "timeseries": timeseries_fragment}
    return show[kind_of(result)](result)


def page(result, path: str | Path | None = None) -> str:
    """The self-contained HTML page of any result kind; written atomically to ``path`` when given.

    >>> import torch, probe
    >>> exp = probe.Explanation(sigma=torch.tensor([0.1, 0.9]), words=["rare", "bird"], scale=1.0, rate=0.1, width=8)
    >>> "<title>" in page(exp)
    True
    """
    text = {"explanation": explanation_page, "sweep": sweep_page, "corpus": corpus_page, "timeseries": timeseries_page}[kind_of(result)](result)
    if path is not None:
        parts.write_text(path, text)
    return text
