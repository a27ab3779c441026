"""Lab 1's checks: the journey functions read two timelines recorded from a running stack (GET
/api/v1/orders/{id}/timeline): an order that completed and one whose card was declined."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from concerto_runtime.testing import load_module

EXERCISE = Path(os.environ.get("LAB_TREE", ".")) / "docs" / "workshop" / "exercises" / "journey.py"
HERE = Path(__file__).parent
COMPLETED = json.loads((HERE / "timeline_completed.json").read_text())
DECLINED = json.loads((HERE / "timeline_declined.json").read_text())


def _exercise():
    assert EXERCISE.exists(), f"{EXERCISE} is missing: run `make lab 1` and work in .labs/lab-01"
    return load_module("lab01_journey", EXERCISE)


journey = _exercise()


def call(function, *args):
    try:
        return function(*args)
    except NotImplementedError as exc:
        pytest.fail(f"{function.__name__}() is not written yet: {exc}")


def test_the_story_of_a_completed_order():
    assert call(journey.story, COMPLETED) == [
        "order: OrderConfirmed",
        "payment: PaymentCompleted",
        "fulfillment: InventoryReserved",
        "fulfillment: ShipmentScheduled",
        "loyalty: PointsAwarded",
        "order: OrderReadyToShip",
        "fulfillment: ShipmentDispatched",
        "order: OrderCompleted",
    ], "story(): one 'context: EventName' line per event, in the timeline's order (the context is the end of the event's source)"


def test_the_story_of_a_declined_order():
    assert call(journey.story, DECLINED) == ["order: OrderConfirmed", "payment: PaymentFailed", "order: OrderCancelled"], (
        "story() of the declined order: 'order: OrderConfirmed', 'payment: PaymentFailed', 'order: OrderCancelled'"
    )


def test_the_handoffs_of_a_completed_order():
    got = call(journey.handoffs, COMPLETED)
    assert len(got) == len(set(got)), f"handoffs(): each handoff once, however many events it caused ({got})"
    assert got == [
        "order -> payment: OrderConfirmed",
        "payment -> fulfillment: PaymentCompleted",
        "payment -> loyalty: PaymentCompleted",
        "fulfillment -> order: ShipmentDispatched",
    ], f"handoffs() of the completed order: the four hops over Kafka, as 'order -> payment: OrderConfirmed', ... (got {got})"


def test_the_handoffs_of_a_declined_order():
    got = call(journey.handoffs, DECLINED)
    assert got == ["order -> payment: OrderConfirmed", "payment -> order: PaymentFailed"], (
        f"handoffs() of the declined order: there and back, order -> payment -> order (got {got})"
    )


@pytest.mark.parametrize(
    "event_type, carries",
    [
        ("OrderConfirmed", True),
        ("PaymentCompleted", True),
        ("InventoryReserved", False),
        ("ShipmentDispatched", False),
        ("PointsAwarded", False),
        ("PaymentFailed", False),
        ("OrderCancelled", False),
        ("OrderCompleted", False),
    ],
)
def test_which_events_carry_the_order(event_type, carries):
    got = call(journey.carries_the_order, event_type)
    if carries:
        assert got is True, f"carries_the_order('{event_type}') should be True: its payload has an `order: OrderSnapshot` field"
    else:
        assert got is False, f"carries_the_order('{event_type}') should be False: it has no OrderSnapshot field"
