"""The timeline's order (domain/timeline.causal_order): an event always comes after the event that
caused it, whatever the publishers' clocks say; otherwise the earlier published comes first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from concerto_monitor.domain.timeline import causal_order

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Event:
    event_id: str
    causation_id: str | None
    time: datetime


def event(event_id: str, second: float, caused_by: str | None = None) -> Event:
    return Event(event_id, caused_by, T0 + timedelta(seconds=second))


def ids(events: list[Event]) -> list[str]:
    return [e.event_id for e in events]


def test_monitor_timeline_puts_a_cause_before_its_effect_even_when_the_effect_clock_is_earlier():
    """A service whose clock runs behind still shows its event after the event that caused it."""
    confirmed = event("confirmed", 0)
    paid = event("paid", 10, caused_by="confirmed")
    reserved = event("reserved", 5, caused_by="paid")  # fulfillment's clock is 5 s behind payment's
    scheduled = event("scheduled", 6, caused_by="reserved")
    assert ids(causal_order([scheduled, reserved, paid, confirmed])) == ["confirmed", "paid", "reserved", "scheduled"]


def test_monitor_timeline_orders_events_without_a_causal_link_by_time():
    """Among events whose causes are listed, the earliest published comes first."""
    confirmed = event("confirmed", 0)
    points = event("points", 12, caused_by="confirmed")
    paid = event("paid", 3, caused_by="confirmed")
    reserved = event("reserved", 7, caused_by="paid")
    other_root = event("tier", 5)
    assert ids(causal_order([points, reserved, other_root, paid, confirmed])) == ["confirmed", "paid", "tier", "reserved", "points"]


def test_monitor_timeline_keeps_the_given_order_for_equal_times():
    """Events published at the same instant keep the order they were given in."""
    a, b, c = event("a", 1), event("b", 1), event("c", 1)
    assert ids(causal_order([b, c, a])) == ["b", "c", "a"]


def test_monitor_timeline_treats_an_unknown_cause_as_a_root():
    """An event caused by something not on the timeline (a command, another order) is placed by its time."""
    first = event("first", 0, caused_by="http-request-42")
    second = event("second", 2, caused_by="evt-of-another-order")
    third = event("third", 1, caused_by=None)
    assert ids(causal_order([second, first, third])) == ["first", "third", "second"]


def test_monitor_timeline_treats_an_event_that_causes_itself_as_a_root():
    """A self-referencing causation id does not make an event wait for itself."""
    selfish = event("selfish", 3, caused_by="selfish")
    other = event("other", 1)
    assert ids(causal_order([selfish, other])) == ["other", "selfish"]


def test_monitor_timeline_keeps_every_event_of_a_causation_cycle():
    """A cycle of causation ids (a forged event) loses nothing: the rest first, the cycle and what follows it after, each once."""
    root = event("root", 0)
    effect = event("effect", 1, caused_by="root")
    a = event("a", 2, caused_by="b")
    b = event("b", 3, caused_by="a")
    after_cycle = event("after-cycle", 4, caused_by="a")
    ordered = causal_order([a, after_cycle, effect, b, root])
    assert sorted(ids(ordered)) == sorted(["root", "effect", "a", "b", "after-cycle"])
    assert len(ordered) == 5
    assert ids(ordered)[:2] == ["root", "effect"]
    assert set(ids(ordered)[2:]) == {"a", "b", "after-cycle"}


def test_monitor_timeline_of_nothing_is_empty():
    """An order without events has an empty timeline."""
    assert causal_order([]) == []
