"""Every patch in the workflows is listed, with the day it came in, in concerto_runtime.workflows.
PATCHES (ADR 17): a patch nobody knows the age of is a patch nobody retires, and each one costs
every run a marker and a search-attribute upsert (a visibility write) on the Temporal server."""

from __future__ import annotations

import re
from pathlib import Path

from concerto_runtime.workflows import PATCHES

REPO = Path(__file__).resolve().parents[3]
CALL = re.compile(r"\b(?:patched|deprecate_patch)\(\s*(?P<argument>[^)]*?)\s*\)")
LITERAL = re.compile(r"""^(["'])(?P<id>[^"']+)\1$""")


def patch_calls() -> dict[str, list[str]]:
    """Each patch call's argument in the workflows' code, with where it is."""
    found: dict[str, list[str]] = {}
    for path in sorted(REPO.glob("services/*/src/*/workflows/*.py")) + sorted(REPO.glob("libs/*/src/*/workflows.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for call in CALL.finditer(line):
                found.setdefault(call["argument"], []).append(f"{path.relative_to(REPO)}:{number}")
    return found


def test_every_patch_in_the_workflows_is_listed_with_the_day_it_came_in():
    calls = patch_calls()
    not_literal = {argument: where for argument, where in calls.items() if not LITERAL.match(argument)}
    assert not not_literal, f"name each patch id literally, so that it can be found: {not_literal}"
    ids = {LITERAL.match(argument)["id"]: where for argument, where in calls.items()}
    unlisted = {patch: where for patch, where in ids.items() if patch not in PATCHES}
    assert not unlisted, f"list these patches in concerto_runtime.workflows.PATCHES with the day they came in (ADR 17): {unlisted}"
    retired = sorted(set(PATCHES) - set(ids))
    assert not retired, f"these patches are gone from the workflows: take them off concerto_runtime.workflows.PATCHES: {retired}"


def test_the_listed_days_are_dates():
    for patch, day in PATCHES.items():
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", day), (patch, day)


def test_the_scan_finds_a_patch_call():
    assert CALL.search('if workflow.patched("fraud-screening"):')["argument"] == '"fraud-screening"'
    assert CALL.search("workflow.deprecate_patch(SOME_PATCH)")["argument"] == "SOME_PATCH"
