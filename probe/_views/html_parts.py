"""Building blocks of probe's HTML views: colours, shaded cells, the page frame, atomic text files.

Everything here is plain text: inline CSS, no script, nothing fetched from the network, so a page
opens from a file, prints with its colours, and can be mailed to a colleague.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._utils.files import write_atomic
from .._utils.text import visible
from .shade import FLOOR, kept

# GnBu, the colours of probe's matplotlib plots: light = lost (sigma at the ceiling), dark = kept.
_KEPT_STOPS = ((0.0, (247, 252, 240)), (0.25, (204, 235, 197)), (0.5, (123, 204, 196)), (0.75, (43, 140, 190)), (1.0, (8, 64, 129)))
# Blue where the second run keeps a word more (less loss), red where it loses more.
_CHANGE_STOPS = ((-1.0, (33, 102, 172)), (-0.5, (146, 197, 222)), (0.0, (247, 247, 247)), (0.5, (244, 165, 130)), (1.0, (178, 24, 43)))

CSS = """
.probe { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1a1a1a; background: #ffffff; padding: 6px 10px; line-height: 1.4; }
.probe * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.probe .probe-head { margin: 0.2em 0 0.5em; }
.probe .probe-warn { color: #9a3412; font-weight: 600; }
.probe .probe-words { display: flex; flex-wrap: wrap; gap: 4px; margin: 0.3em 0 0.6em; }
.probe .probe-w { display: inline-block; padding: 2px 6px; border-radius: 3px; border: 1px solid #d0d7de; }
.probe table { border-collapse: collapse; margin: 0.3em 0 0.8em; font-size: 0.92em; }
.probe th, .probe td { padding: 2px 6px; text-align: left; vertical-align: middle; }
.probe .probe-grid td.probe-c { border: 1px solid #ffffff; text-align: center; white-space: nowrap; }
.probe .probe-grid th { font-weight: 600; white-space: nowrap; }
.probe .probe-num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.probe .probe-steps { table-layout: fixed; }
.probe .probe-steps td.probe-c { width: 10px; min-width: 6px; height: 16px; padding: 0; border: 1px solid #ffffff; }
.probe .probe-steps th { font-weight: 400; font-size: 0.85em; text-align: left; }
.probe .probe-ticks { display: flex; justify-content: space-between; gap: 8px; }
.probe .probe-panels { display: flex; flex-wrap: wrap; gap: 18px; }
.probe .probe-legend { display: flex; align-items: center; gap: 6px; font-size: 0.85em; color: #555555; margin: 0.2em 0 0.6em; }
.probe .probe-bar { display: inline-block; width: 160px; height: 10px; border: 1px solid #d0d7de; }
.probe .probe-about th { color: #555555; font-weight: 400; padding-right: 1.2em; white-space: nowrap; }
.probe h1 { font-size: 1.35em; margin: 0 0 0.4em; }
.probe h2 { font-size: 1.1em; margin: 1em 0 0.3em; }
.probe h3 { font-size: 0.95em; margin: 0.6em 0 0.2em; }
"""

_PAGE_CSS = """
body { margin: 24px; background: #ffffff; }
@page { margin: 12mm; }
@media print {
  body { margin: 0; }
  .probe table, .probe .probe-words, .probe .probe-panels > div { break-inside: avoid; }
}
"""


def text(value) -> str:
    r"""``value`` as HTML text, every special character escaped and every control character visible.

    >>> text("<b> & 'x'\x1b")
    '&lt;b&gt; &amp; &#x27;x&#x27;\\x1b'
    """
    return html.escape(visible(str(value)), quote=True)


def number(value: float) -> str:
    """A number short enough for a cell and a hover text.

    >>> number(0.012345), number(-1234.56)
    ('0.01235', '-1235')
    """
    return f"{float(value):.4g}"


def _mix(stops, t: float) -> tuple[int, int, int]:
    t = min(max(t, stops[0][0]), stops[-1][0]) if t == t else stops[0][0]
    for (t0, c0), (t1, c1) in zip(stops, stops[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0)
            return tuple(round(a + f * (b - a)) for a, b in zip(c0, c1))
    return stops[-1][1]


def _colors(rgb: tuple[int, int, int]) -> tuple[str, str]:
    """Background and a readable text colour for it: white on dark cells."""
    lin = [(c / 255) / 12.92 if c <= 10 else ((c / 255 + 0.055) / 1.055) ** 2.4 for c in rgb]
    luminance = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return "#{:02x}{:02x}{:02x}".format(*rgb), "#ffffff" if luminance < 0.3 else "#111111"


def kept_colors(relative_sigma: float) -> tuple[str, str]:
    """Background and text colour for a word at ``sigma / scale``: light = lost (1), dark = kept
    (``_shade.FLOOR`` and below), on a log scale.

    >>> kept_colors(1.0), kept_colors(0.0)
    (('#f7fcf0', '#111111'), ('#084081', '#ffffff'))
    """
    return _kept_level(round(255 * (1.0 - kept(relative_sigma))))


@functools.lru_cache(maxsize=256)
def _kept_level(level: int) -> tuple[str, str]:
    """The colours of one of 256 shades (a page has thousands of cells, a screen 256 shades)."""
    return _colors(_mix(_KEPT_STOPS, 1.0 - level / 255))


def change_colors(change: float, largest: float) -> tuple[str, str]:
    """Background and text colour for a change in information loss: red = lost more, blue = kept more.

    >>> change_colors(0.0, 1.0)[0], change_colors(-1.0, 1.0)[0]
    ('#f7f7f7', '#2166ac')
    """
    return _colors(_mix(_CHANGE_STOPS, float(change) / largest if largest > 0 else 0.0))


def style(colors: tuple[str, str]) -> str:
    """An inline style for a shaded cell.

    >>> style(kept_colors(0.0))
    'background:#084081;color:#ffffff'
    """
    return f"background:{colors[0]};color:{colors[1]}"


def hover(lines: Sequence[str]) -> str:
    """A title attribute's value: one fact a line, escaped.

    >>> hover(["a<b", "sigma 0.1"]).splitlines()
    ['a&lt;b', 'sigma 0.1']
    """
    return "\n".join(text(line) for line in lines)


def word_hover(word: str, sigma: float, relative: float, loss: float, extra: Sequence[str] = ()) -> str:
    """The numbers behind a shaded word.

    >>> print(html.unescape(word_hover("bird", 0.1, 0.2, -1500.0)))
    bird
    sigma 0.1
    sigma/scale 0.2
    information loss -1500 nats
    """
    return hover([word, *extra, f"sigma {number(sigma)}", f"sigma/scale {number(relative)}", f"information loss {number(loss)} nats"])


def chip(word: str, relative: float, title: str) -> str:
    """One word shaded by how much is kept, its numbers on hover.

    >>> chip("bird", 0.0, "bird")
    '<span class="probe-w" style="background:#084081;color:#ffffff" title="bird">bird</span>'
    """
    return f'<span class="probe-w" style="{style(kept_colors(relative))}" title="{title}">{text(word)}</span>'


def legend() -> str:
    """The colour key: light = lost, dark = kept.

    >>> "kept (sigma/scale" in legend()
    True
    """
    stops = ", ".join("#{:02x}{:02x}{:02x} {:.0f}%".format(*c, 100 * t) for t, c in _KEPT_STOPS)
    return (
        '<div class="probe-legend"><span>lost (sigma/scale 1)</span>'
        f'<span class="probe-bar" style="background:linear-gradient(to right, {stops})"></span>'
        f"<span>kept (sigma/scale {FLOOR:g} or less; log scale)</span></div>"
    )


def change_legend(labels: tuple[str, str]) -> str:
    """The colour key of a comparison.

    >>> "tuned loses more" in change_legend(("base", "tuned"))
    True
    """
    stops = ", ".join("#{:02x}{:02x}{:02x} {:.0f}%".format(*c, 50 * (t + 1)) for t, c in _CHANGE_STOPS)
    a, b = map(text, labels)
    return (
        f'<div class="probe-legend"><span>{b} keeps more than {a}</span>'
        f'<span class="probe-bar" style="background:linear-gradient(to right, {stops})"></span>'
        f"<span>{b} loses more</span></div>"
    )


def wrap(body: str) -> str:
    """A fragment for a notebook cell: the styles and the body in one ``div.probe``.

    >>> wrap("<p>x</p>").endswith("<p>x</p></div>")
    True
    """
    return f'<div class="probe"><style>{CSS}</style>{body}</div>'


def page(title: str, body: str) -> str:
    """A whole self-contained HTML page around ``body``.

    >>> page("t", "<p>x</p>").startswith("<!DOCTYPE html>")
    True
    """
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{text(title)}</title>\n<style>{_PAGE_CSS}{CSS}</style>\n</head>\n"
        f'<body>\n<div class="probe">\n<h1>{text(title)}</h1>\n{body}\n</div>\n</body>\n</html>\n'
    )


_MODEL_KEYS = ("model", "model_name", "checkpoint")


def described(settings) -> tuple[str, str, dict[str, str]]:
    """A run's settings as (model, solver settings in one line, the other settings).

    >>> described({"model": "bert", "solver.samples": "8", "seed": "0"})
    ('bert', 'samples 8', {'seed': '0'})
    """
    settings = {str(k): str(v) for k, v in (settings or {}).items()}
    model = next((settings[k] for k in _MODEL_KEYS if settings.get(k)), "not recorded")
    solver = ", ".join(f"{k[len('solver.'):]} {v}" for k, v in settings.items() if k.startswith("solver.")) or "not recorded"
    others = {k: v for k, v in settings.items() if not k.startswith("solver.") and k not in _MODEL_KEYS}
    return model, solver, others


def about(result, kind: str, layers: Sequence[str], extra: Mapping[str, str] | None = None) -> str:
    """The table that says what was explained: model, layers, scale, rate, solver settings, version.

    >>> import torch, probe
    >>> exp = probe.Explanation(sigma=torch.tensor([0.1]), words=["a"], scale=1.0, rate=0.1, width=8, settings={"model": "bert"})
    >>> "<td>bert</td>" in about(exp, "one sentence", ["l0"])
    True
    """
    from .. import __version__

    model, solver, others = described(getattr(result, "settings", None))
    rows = {
        "explained": kind,
        "model": model,
        "layers" if len(layers) != 1 else "layer": ", ".join(layers) or "not named",
        "scale (sigma ceiling)": number(result.scale),
        "rate": number(result.rate),
        "embedding width": str(getattr(result, "width", "")),
        **(extra or {}),
        "solver settings": solver,
        **others,
        "probe version": __version__,
    }
    cells = "".join(f"<tr><th>{text(k)}</th><td>{text(v)}</td></tr>" for k, v in rows.items())
    return f'<h2>What was explained</h2><table class="probe-about">{cells}</table>'


def write_text(path: str | Path, content: str) -> None:
    """Writes a UTF-8 text file atomically: a temporary file beside it, then a rename.

    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "view.html"
    >>> write_text(out, page("t", "")); out.read_text().startswith("<!DOCTYPE html>")
    True
    """
    write_atomic(path, content.encode("utf-8"), "result.html")
