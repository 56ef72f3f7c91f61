"""The notebook tour runs from top to bottom, offline, and shows what its text promises.

Executed with nbclient on a kernel spec written for this test, pointing at this interpreter, so it
runs in the same environment as the tests, in a temporary folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TOUR = Path(__file__).resolve().parent.parent / "examples" / "tour.ipynb"


def test_tour_is_stored_without_outputs():
    notebook = nbformat.read(TOUR, as_version=4)
    nbformat.validate(notebook)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code), "strip the outputs before committing"


@pytest.fixture
def kernel(tmp_path, monkeypatch) -> str:
    """A kernel spec named ``probe-tour`` that starts this interpreter, found through JUPYTER_PATH."""
    folder = tmp_path / "jupyter" / "kernels" / "probe-tour"
    folder.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "probe tour", "language": "python"}
    (folder / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return "probe-tour"


def outputs(cell, kind: str) -> str:
    return "".join(o.get("text", "") if kind == "stream" else o.get("data", {}).get(kind, "") for o in cell.outputs if o.output_type in ("stream", "execute_result", "display_data"))


def test_tour_runs_offline_and_shows_each_view(kernel, tmp_path):
    notebook = nbformat.read(TOUR, as_version=4)
    work = tmp_path / "work"
    work.mkdir()
    nbclient.NotebookClient(notebook, kernel_name=kernel, timeout=300, resources={"metadata": {"path": str(work)}}).execute()

    code = [c for c in notebook.cells if c.cell_type == "code"]
    shown = {c.source.splitlines()[-1]: c for c in code}
    assert "BertModel with 6 layers of 384 features" in outputs(code[0], "stream")
    assert '<div class="probe">' in outputs(shown["exp"], "text/html"), "the rich _repr_html_ view of an Explanation"
    assert "memo" in outputs(shown["exp"], "text/html")
    assert any("image/png" in o.get("data", {}) for o in shown["sweep.plot()"].outputs), "the sweep heatmap is drawn"
    assert "'memorable'" in outputs(shown["words"], "stream") and "'[CLS]'" not in outputs(shown["words"], "stream")
    assert "layer 5" in outputs(shown["comparison"], "text/html")
    assert "Sweep True True" in outputs(code[-1], "stream")
    assert sorted(p.name for p in work.iterdir()) == ["tour.html", "tour.safetensors"], "the tour writes only into its folder"
