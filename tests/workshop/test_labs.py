"""Every workshop lab holds: its check fails on the starting point (it checks something) and
passes with the reference solution (the exercise can be done), on this version of the code. A
lab whose patch no longer applies fails here too, saying so."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from concerto_runtime.testing import load_module

REPO = Path(__file__).resolve().parents[2]
lab = load_module("concerto_workshop_lab", REPO / "infra" / "workshop" / "lab.py")

LAB_NUMBERS = sorted(int(path.name[:2]) for path in lab.LABS.glob("[0-9][0-9]-*"))


def test_there_are_at_least_seven_labs_each_with_its_parts():
    assert len(LAB_NUMBERS) >= 7, LAB_NUMBERS
    assert LAB_NUMBERS == list(range(1, len(LAB_NUMBERS) + 1)), "numbered 1, 2, 3, ... without gaps"
    for number in LAB_NUMBERS:
        parts = {path.name for path in lab.lab_dir(number).iterdir()}
        assert {"README.md", "start.patch", "solution.patch", "check"} <= parts, (number, parts)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("number", LAB_NUMBERS)
def test_the_check_fails_on_the_starting_point_and_passes_with_the_solution(number):
    try:
        lab.verify(number)
    except lab.LabError as exc:
        pytest.fail(str(exc))


def test_make_lab_prepares_its_copy_inside_the_repository_without_touching_the_repository():
    # Where `make lab` puts it (.labs/, inside this repository): the copy must be a repository
    # of its own, or git would apply the starting point to ours.
    target = lab.SCRATCH / f"test-{uuid.uuid4().hex[:8]}"
    try:
        lab.prepare(7, target)
        assert (target / "docs" / "workshop" / "exercises" / "decide.py").exists()
        assert not (REPO / "docs" / "workshop" / "exercises").exists(), "the starting point went into the repository"
        assert lab.check(7, target, quiet=True) is False, "the starting point does not pass"
    finally:
        shutil.rmtree(target, ignore_errors=True)
