"""Packaging: ``adapters/`` installs as ``probe.adapters``, never as a top-level ``adapters``.

The AdapterHub library owns the import name ``adapters``, so both the editable install and the wheel
must expose only ``probe``. Checked from a subprocess whose working directory is outside the
repository, so the repository root on ``sys.path`` cannot hide a wiring mistake. The wheel is built
offline (no index, no build isolation) whenever the environment has the build backend, so this
runs in CI.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

import probe

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: build the wheel with isolation
    tomllib = None

REPO = Path(__file__).resolve().parents[1]

WHERE_IS_EVERYTHING = """
import importlib.util, json
import probe, probe.adapters
spec = importlib.util.find_spec("adapters")
top = None if spec is None else spec.origin
print(json.dumps({"probe": probe.__file__, "adapters": probe.adapters.__file__, "top": top}))
"""


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without PYTHONPATH, so only the installed package can be imported."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **extra}


def where_is_everything(cwd: Path, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", WHERE_IS_EVERYTHING], cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_installed_package_exposes_probe_adapters_only(tmp_path):
    found = where_is_everything(tmp_path)
    assert Path(found["adapters"]) == REPO / "adapters" / "__init__.py"
    assert Path(found["probe"]) == REPO / "probe" / "__init__.py"
    assert found["top"] is None


def test_version_is_the_distributions():
    assert probe.__version__ == importlib.metadata.version("sigma-probe")


def offline_build_flags() -> tuple[list[str], dict[str, str]]:
    """Offline, without build isolation, when this environment meets pyproject's build requirements.

    A venv made by ``python -m venv`` on Python 3.11 carries ensurepip's setuptools 65, too old for
    this pyproject; then pip fetches the build backend exactly as ``pip install -e`` did.
    """
    if tomllib is None:
        return [], {}
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    for requirement in map(Requirement, requires):
        try:
            have = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            return [], {}
        if not requirement.specifier.contains(have, prereleases=True):
            return [], {}
    return ["--no-build-isolation"], {"PIP_NO_INDEX": "1"}


def build_wheel(tmp_path: Path) -> Path:
    """Builds the wheel from a copy of the sources, so no build/ or egg-info lands in the repository."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "probe", source / "probe", ignore=ignore)
    shutil.copytree(REPO / "adapters", source / "adapters", ignore=ignore)
    for top in REPO.iterdir():
        if top.is_file():
            shutil.copy2(top, source / top.name)
    flags, env = offline_build_flags()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *flags, "-w", str(tmp_path / "dist"), str(source)],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp_path / "dist").glob("sigma_probe-*.whl")
    return wheel


def test_wheel_holds_probe_adapters_and_no_top_level_adapters(tmp_path):
    wheel = build_wheel(tmp_path)
    assert wheel.name.startswith(f"sigma_probe-{probe.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (top_level,) = [n for n in names if n.endswith(".dist-info/top_level.txt")] or [None]
        tops = archive.read(top_level).decode().split() if top_level else []
        archive.extractall(tmp_path / "site")
    adapters = {f"probe/adapters/{p.name}" for p in (REPO / "adapters").glob("*.py")}
    assert "probe/adapters/__init__.py" in adapters and adapters <= set(names)
    assert "probe/__init__.py" in names and "probe/data/corpus.txt" in names
    assert not [n for n in names if n.split("/")[0] == "adapters"]
    assert tops in ([], ["probe"])

    found = where_is_everything(tmp_path, PYTHONPATH=str(tmp_path / "site"))
    assert Path(found["adapters"]) == tmp_path / "site" / "probe" / "adapters" / "__init__.py"
    assert found["top"] is None
