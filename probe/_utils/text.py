"""Text from files shown safely: control characters made visible, never sent to a terminal or page.

A word, layer name or metadata value read from a result file may hold escape sequences that clear a
terminal, set its title, write the clipboard (OSC 52), or a newline that forges a table line.
"""

from __future__ import annotations

import unicodedata

_INVISIBLE = {"Cc", "Cf", "Zl", "Zp", "Cs"}
"""Control and format characters (ESC, CR, bidi overrides), line and paragraph separators, lone surrogates."""
_KEEP = {"\u200c", "\u200d"}
"""Zero-width (non-)joiners: format characters that real words in many scripts need."""


def visible(text: str, keep_newlines: bool = False) -> str:
    """``text`` with every control or format character written as its escape (``\\x1b``, ``\\n``, ``\\u202e``).

    >>> visible("bad\\x1b]0;title\\x07word\\n")
    'bad\\\\x1b]0;title\\\\x07word\\\\n'
    >>> visible("a\\nb", keep_newlines=True)
    'a\\nb'
    """
    if text.isprintable() and not any(c in text for c in "\u2028\u2029"):
        return text
    return "".join(_escaped(c, keep_newlines) for c in text)


def _escaped(char: str, keep_newlines: bool) -> str:
    if (keep_newlines and char == "\n") or char in _KEEP or unicodedata.category(char) not in _INVISIBLE:
        return char
    return repr(char)[1:-1] if char.isascii() else f"\\u{ord(char):04x}"


def one_line(text: str, limit: int = 200) -> str:
    """``text`` visible on one line of at most ``limit`` characters.

    >>> one_line("a\\nb" * 3, limit=8)
    'a\\\\nba...'
    """
    shown = visible(text)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."
