"""How dark a word is drawn: one rule for the plots and the HTML views.

``sigma / scale`` spans decades (a kept word of MiniLM sits near 0.01 of the ceiling, a lost one at
1), so the shade follows its logarithm on a fixed range: 1 (lost) is lightest, ``FLOOR`` and below
darkest. Fixed, so the same shade means the same thing in every plot and page.
"""

from __future__ import annotations

import math

FLOOR = 1e-3
"""``sigma / scale`` at and below which a word is drawn darkest."""


def kept(relative_sigma: float) -> float:
    """How much a word is kept, for its colour: 0 at ``sigma / scale`` = 1 (lost), 1 at ``FLOOR``.

    >>> kept(1.0), kept(0.001), round(kept(0.0316), 2)
    (0.0, 1.0, 0.5)
    """
    value = float(relative_sigma)
    if not value == value:
        return 0.0
    if value <= FLOOR:
        return 1.0
    return min(1.0, max(0.0, math.log(value) / math.log(FLOOR)))
