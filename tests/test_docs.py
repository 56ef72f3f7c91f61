"""The README and the documentation pages name only what exists, and the README stays a front door.

(``.ci/run`` also builds the site with ``mkdocs build --strict``, which fails on a broken link or an
API reference entry whose object is gone; this test catches the names in the prose and the examples.)
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HISTORY = {"history.md"}  # names that were renamed live on there, as history
PAGES = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name not in HISTORY)]
NAME = re.compile(r"(?<![\w/.-])probe(?:\.[A-Za-z_]\w*)+")


def resolves(dotted: str) -> bool:
    """Whether ``dotted`` is an importable module, or an attribute reached from the longest one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        try:
            for attribute in parts[cut:]:
                found = getattr(found, attribute)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_probe_name_on_the_page_exists(page):
    names = sorted(set(NAME.findall(page.read_text(encoding="utf-8"))))
    missing = [n for n in names if not resolves(n)]
    assert not missing, f"{page.name} names what probe does not have: {missing}"


def test_a_stale_name_is_caught():
    assert resolves("probe.callbacks.SnapshotCallback") and resolves("probe.adapters.register")
    assert not resolves("probe.callbacks.SweepCallback") and not resolves("probe.sweep")


def test_readme_is_a_front_door_with_the_two_setup_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    assert "make demo" in readme and "make test" in readme
    assert re.search(r"(?m)^make test$", (REPO / ".ci" / "run").read_text()), "CI runs the README's test command"
