"""Saving works for every file name the system allows and writes through symlinks to their targets."""

from __future__ import annotations

import os

import pytest
import torch

import probe
from probe import Explanation
from probe.errors import InputError


def result() -> Explanation:
    return Explanation(sigma=torch.tensor([0.1, 0.4, 0.2]), words=["a", "fine", "film"], scale=0.5, rate=0.1, width=8, loss=1.0, converged=True, steps=3)


def _name_max(folder) -> int:
    return os.pathconf(folder, "PC_NAME_MAX")


@pytest.mark.parametrize("length", [252, 255])
def test_the_longest_legal_names_save_and_load(tmp_path, length):
    assert _name_max(tmp_path) >= length
    path = tmp_path / ("w" * (length - len(".safetensors")) + ".safetensors")
    assert len(path.name) == length
    result().save(path)
    assert torch.equal(probe.load(path).sigma, torch.tensor([0.1, 0.4, 0.2]))
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name], "a temporary file was left behind"


def test_a_name_the_system_refuses_is_a_probe_error(tmp_path):
    path = tmp_path / ("w" * (_name_max(tmp_path) + 1))
    with pytest.raises(probe.ProbeError, match="could not write"):
        result().save(path)
    assert list(tmp_path.iterdir()) == []


def test_saving_through_a_symlink_updates_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "results").mkdir()
    target = tmp_path / "results" / "real.safetensors"
    probe.Explanation(sigma=torch.tensor([0.1]), words=["old"], scale=0.5, rate=0.1, width=4).save(target)  # probe replaces only its own kind of file
    link = tmp_path / "latest.safetensors"
    link.symlink_to(os.path.join("results", "real.safetensors"))
    result().save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("results", "real.safetensors")
    assert probe.load(target).words == ["a", "fine", "film"]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["real.safetensors"]


def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "latest.safetensors"
    link.symlink_to(tmp_path / "new.safetensors")
    result().save(link)
    assert link.is_symlink() and probe.load(tmp_path / "new.safetensors").steps == 3


def test_a_loop_of_symlinks_is_refused(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(InputError, match="symbolic link"):
        result().save(tmp_path / "a")


@pytest.mark.parametrize("path", [5, None, b"x.safetensors", ["x"], ""])
def test_a_path_that_is_not_a_file_name_is_refused(path):
    with pytest.raises(InputError, match="file name"):
        result().save(path)
