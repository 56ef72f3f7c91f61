"""A real headless Chromium renders every kind's page: the PNG is not blank, and a kept word's cell
comes out darker than a lost word's (a comparison: blue where b keeps more, red where it loses more).

To find the cells in the picture, the test pins two of them to known places with a few lines of
CSS (position and size only; their colours are the page's own)."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import probe
from probe._views import html as _html
from probe._views.compare import compare

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed: the browser rendering tests are skipped (apt-get install chromium; .ci/run installs it)"
)
PIL = pytest.importorskip("PIL.Image", reason="PIL reads the screenshots")

LOST, KEPT = 0.5, 0.0005  # sigma at scale 0.5: sigma/scale 1 and 0.001 (the darkest shade)


def explanation(words=("lost", "kept"), sigma=(LOST, KEPT)) -> probe.Explanation:
    return probe.Explanation(sigma=torch.tensor(sigma), words=list(words), scale=0.5, rate=0.1, width=8, layer="l0", converged=True,
                             settings={"model": "tiny"})


def pages() -> dict[str, tuple[str, str, str]]:
    """Per case: the page, the CSS selector of a lost word's cell, and of a kept word's cell."""
    words = [["lost", "kept"], ["lost", "kept"]]
    corpus = probe.CorpusResult(layers=["l0"], words=words, sigma=[torch.tensor([[LOST, KEPT]])] * 2, index=[0, 1], scale=0.5, rate=0.1, width=8,
                                convergence=torch.ones(1, 2, dtype=torch.bool), steps=torch.ones(1, 2))
    series = probe.TimeSeries(layers=["l0"], words=[["lost", "kept"]], scale=0.5, rate=0.1, width=8, steps=[0, 10], epochs=[0.0, 1.0],
                              sigma=[torch.tensor([[[LOST, KEPT]], [[LOST, KEPT]]])])
    sweep = probe.Sweep({"l0": explanation(), "l1": explanation()})
    change = compare(explanation(sigma=(0.1, 0.4)), explanation(sigma=(0.4, 0.1)))  # word 1: b loses more; word 2: b keeps more
    return {
        "explanation": (_html.page(explanation()), ".probe-words > span:nth-of-type(1)", ".probe-words > span:nth-of-type(2)"),
        "sweep": (_html.page(sweep), ".probe-grid tr:nth-child(2) td:nth-of-type(1)", ".probe-grid tr:nth-child(2) td:nth-of-type(2)"),
        "timeseries": (_html.page(series), ".probe-steps tr:nth-child(2) td:nth-of-type(1)", ".probe-steps tr:nth-child(3) td:nth-of-type(1)"),
        "corpus": (_html.page(corpus), ".probe-grid tr:nth-child(2) td:nth-of-type(6) .probe-w:nth-of-type(1)",
                   ".probe-grid tr:nth-child(2) td:nth-of-type(5) .probe-w:nth-of-type(1)"),
        "compare": (change.to_html(), ".probe-grid tr:nth-child(3) td:nth-of-type(1)", ".probe-grid tr:nth-child(3) td:nth-of-type(2)"),
    }


def pinned(page: str, first: str, second: str) -> str:
    """The page with two cells moved to fixed 300 x 200 boxes at x 0 and x 400, their text hidden."""
    box = "position: fixed; top: 0; width: 300px; height: 200px; color: transparent; z-index: 10; padding: 0; margin: 0;"
    css = f"<style>.probe {first} {{ left: 0; {box} }} .probe {second} {{ left: 400px; {box} }}</style></head>"
    return page.replace("</head>", css, 1)


def screenshot(html: str, folder: Path, name: str) -> Path:
    page, png = folder / f"{name}.html", folder / f"{name}.png"
    page.write_text(html, encoding="utf-8")
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={folder / ('profile-' + name)}",
               f"--screenshot={png}", "--window-size=1100,800", page.as_uri()]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"chromium wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return png


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> dict[str, Path]:
    """Every case rendered with its two cells pinned, two browsers at a time."""
    folder = tmp_path_factory.mktemp("browser")
    with ThreadPoolExecutor(2) as pool:
        jobs = {name: pool.submit(screenshot, pinned(page, lost, kept), folder, name) for name, (page, lost, kept) in pages().items()}
        return {name: job.result() for name, job in jobs.items()}


def luminance(rgb) -> float:
    return 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]


@pytest.mark.parametrize("kind", ["explanation", "sweep", "timeseries", "corpus", "compare"])
def test_page_renders_with_content(shots, kind):
    image = np.asarray(PIL.open(shots[kind]).convert("RGB")).astype(int)
    pixels = image[220:].reshape(-1, 3)  # the page below the two pinned cells
    inked = int((pixels.min(1) < 230).sum())
    assert inked > 0.005 * len(pixels), f"{kind}: only {inked} non-white pixels; the page rendered blank"
    colours = len(np.unique(pixels @ np.array([65536, 256, 1])))
    assert colours > 30, f"{kind}: {colours} colours; the page rendered almost blank"
    assert (pixels.max(1) < 80).sum() > 500, f"{kind}: no dark text rendered (the table of what was explained)"


@pytest.mark.parametrize("kind", ["explanation", "sweep", "timeseries", "corpus"])
def test_kept_word_renders_darker_than_lost(shots, kind):
    image = PIL.open(shots[kind]).convert("RGB")
    lost, kept = image.getpixel((150, 100)), image.getpixel((550, 100))
    assert luminance(kept) < luminance(lost) - 100, f"{kind}: kept cell {kept} is not clearly darker than lost cell {lost}"
    assert lost[0] > 200 and kept[0] < 60, f"{kind}: lost {lost} should be near white, kept {kept} dark blue"


def test_comparison_renders_red_for_lost_more_and_blue_for_kept_more(shots):
    image = PIL.open(shots["compare"]).convert("RGB")
    lost_more, kept_more = image.getpixel((150, 100)), image.getpixel((550, 100))
    assert lost_more[0] > lost_more[2] + 80, f"loses more should be red, got {lost_more}"
    assert kept_more[2] > kept_more[0] + 80, f"keeps more should be blue, got {kept_more}"
