"""What every result kind shows alike: a self-contained HTML page, and its view in a notebook."""

from __future__ import annotations

from pathlib import Path

from . import html as _html


class Viewable:
    """``to_html`` and the notebook's ``_repr_html_`` for a result kind.

    >>> exp.to_html(tmp / "exp.html").startswith("<!DOCTYPE html>")
    True
    """

    def to_html(self, path: str | Path | None = None) -> str:
        """The result as one self-contained HTML page (inline CSS, nothing fetched); written when
        given a ``path``.

        >>> "<title>" in exp.to_html()
        True
        """
        return _html.page(self, path)

    def _repr_html_(self) -> str:
        return _html.fragment(self)
