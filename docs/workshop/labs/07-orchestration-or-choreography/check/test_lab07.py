"""Lab 7's checks: the decision function scores processes the way the framework does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from concerto_runtime.testing import load_module

EXERCISE = Path(os.environ.get("LAB_TREE", ".")) / "docs" / "workshop" / "exercises" / "decide.py"


def _exercise():
    assert EXERCISE.exists(), f"{EXERCISE} is missing: run `make lab 7` and work in .labs/lab-07"
    return load_module("lab07_decide", EXERCISE)


decide = _exercise()
Process = decide.Process

# A plain process that scores nothing on either side: each test changes one trait.
NEUTRAL = dict(
    steps=5, branches=2, teams=2, change_frequency="monthly", human_in_the_loop=False, strong_compliance=False,
    observability="medium", autonomy_priority="medium", duration="minutes",
)  # fmt: skip


def score(**traits) -> tuple[int, int]:
    try:
        result = decide.recommend(Process(**{**NEUTRAL, **traits}))
    except NotImplementedError:
        pytest.fail("recommend() still raises NotImplementedError: add up the points of the rules that apply, per side")
    return result.orchestration, result.choreography


def test_a_neutral_process_scores_nothing():
    assert score() == (0, 0), "a process with none of the traits should score 0 on both sides"


@pytest.mark.parametrize(
    "traits, expected, rule",
    [
        (dict(branches=4), (2, 0), "more than three branches: orchestration +2"),
        (dict(steps=7), (1, 0), "more than six steps: orchestration +1"),
        (dict(steps=4, branches=1), (0, 2), "four steps or fewer and one branch at most: choreography +2"),
        (dict(change_frequency="weekly"), (2, 0), "changes every week: orchestration +2"),
        (dict(change_frequency="rarely"), (0, 1), "rarely changes: choreography +1"),
        (dict(teams=1), (2, 0), "one team owns it all: orchestration +2"),
        (dict(teams=4), (0, 2), "four or more teams: choreography +2"),
        (dict(observability="low"), (2, 0), "low observability: orchestration +2"),
        (dict(observability="high"), (0, 1), "high observability: choreography +1"),
        (dict(strong_compliance=True), (2, 0), "strong compliance: orchestration +2"),
        (dict(autonomy_priority="high"), (0, 2), "teams want autonomy: choreography +2"),
        (dict(human_in_the_loop=True), (2, 0), "a person in the loop: orchestration +2"),
        (dict(duration="hours"), (2, 0), "runs for hours: orchestration +2"),
        (dict(duration="days"), (2, 0), "runs for days: orchestration +2"),
    ],
)
def test_each_rule_gives_its_points_to_its_side(traits, expected, rule):
    got = score(**traits)
    assert got == expected, f"rule missing or wrong: {rule} (for {traits}, got orchestration {got[0]}, choreography {got[1]})"


def test_the_order_saga_inside_the_order_context_is_orchestrated():
    # One team, many branches (declined, out of stock, timeouts, cancellation), a pivot, weekly changes.
    inside = Process(steps=8, branches=5, teams=1, change_frequency="weekly", human_in_the_loop=False, strong_compliance=True,
                     observability="medium", autonomy_priority="low", duration="minutes")  # fmt: skip
    result = decide.recommend(inside)
    assert result.pattern == "orchestration" and result.confident, f"inside one context: {result}"
    assert len(result.reasons) == 5, f"every rule that applied is a reason: {result.reasons}"


def test_the_flow_between_four_contexts_is_choreographed():
    between = Process(steps=4, branches=1, teams=4, change_frequency="rarely", human_in_the_loop=False, strong_compliance=False,
                      observability="high", autonomy_priority="high", duration="minutes")  # fmt: skip
    result = decide.recommend(between)
    assert result.pattern == "choreography" and result.confident, f"between contexts: {result}"


def test_a_tie_is_either_and_a_small_gap_is_not_confident():
    tie = decide.recommend(Process(**{**NEUTRAL, "teams": 1, "autonomy_priority": "high"}))
    assert (tie.pattern, tie.confident) == ("either", False), f"2 against 2 is a tie: {tie}"
    close = decide.recommend(Process(**{**NEUTRAL, "branches": 4, "change_frequency": "rarely"}))
    assert (close.pattern, close.confident) == ("orchestration", False), f"2 against 1 leans, without confidence: {close}"
