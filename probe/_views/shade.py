"""How dark a word is drawn and when it is marked: one rule for the plots, the HTML views and the tables.

``sigma / scale`` spans decades across models and layers, but within one result it often spans
little (every word of a MiniLM sweep sits between 0.028 and 0.05 of the ceiling), so a fixed range
would paint it one colour. The shade therefore follows ``log(sigma / scale)`` over the range of the
result being drawn (``span``): its lowest ``sigma / scale`` darkest, its highest lightest, and the
range is written on every figure, page and table next to the colour bar.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

FLOOR = 1e-3
"""The default range's lower end: ``sigma / scale`` at and below which a word is drawn darkest."""
NARROWEST = 1.25
"""The fitted range spans at least this factor, so a result whose words are all alike stays pale."""
WIDE = 0.1
"""A word whose standard error exceeds this fraction of its sigma (or is unknown: inf) is marked."""


def span(relative_sigma: Iterable[float]) -> tuple[float, float]:
    """The range a result is drawn on: its lowest and highest finite ``sigma / scale``, widened about
    their geometric middle to at least a factor ``NARROWEST`` and kept within (0, 1].

    >>> span([0.028, 0.05, 0.03])
    (0.028, 0.05)
    >>> [round(v, 4) for v in span([0.5, 0.5])]
    [0.4472, 0.559]
    """
    values = [float(v) for v in relative_sigma if 0 < float(v) < math.inf]
    if not values:
        return FLOOR, 1.0
    low, high = min(values), min(max(values), 1.0)
    if high / low < NARROWEST:
        middle = math.sqrt(low * high)
        high = min(1.0, middle * math.sqrt(NARROWEST))
        low = high / NARROWEST
    return low, high


def kept(relative_sigma: float, fitted: tuple[float, float] = (FLOOR, 1.0)) -> float:
    """How much a word is kept, for its colour: 0 at the range's top (lightest), 1 at its bottom.

    >>> kept(1.0), kept(0.001), round(kept(0.0316), 2)
    (0.0, 1.0, 0.5)
    >>> kept(0.05, (0.028, 0.05)), kept(0.028, (0.028, 0.05))
    (0.0, 1.0)
    """
    value = float(relative_sigma)
    low, high = fitted
    if not value == value:
        return 0.0
    if value <= low:
        return 1.0
    return min(1.0, max(0.0, math.log(high / value) / math.log(high / low)))


def wide(sigma: float, stderr: float) -> bool:
    """Whether a word's error bar is wide enough to mark: over ``WIDE`` of sigma, or inf (too few
    draws). NaN (a file written before probe kept error bars) is unknown, not marked.

    >>> wide(1.0, 0.02), wide(1.0, 0.2), wide(1.0, float("inf")), wide(1.0, float("nan"))
    (False, True, True, False)
    """
    return float(stderr) > WIDE * float(sigma)


def range_note(fitted: tuple[float, float]) -> str:
    """The sentence that states the colour range on a figure, page or table.

    >>> range_note((0.028, 0.05))
    'shade fitted to this result: sigma/scale 0.028 (darkest, kept most) to 0.05 (lightest)'
    """
    return f"shade fitted to this result: sigma/scale {fitted[0]:.3g} (darkest, kept most) to {fitted[1]:.3g} (lightest)"
