"""An order's events in causal order: an event always comes after the event that caused it
(its causation id), and otherwise in the order they were published."""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar


class Traced(Protocol):
    event_id: str
    causation_id: str | None
    time: datetime


E = TypeVar("E", bound=Traced)


def causal_order(events: Sequence[E]) -> list[E]:
    """Kahn's topological sort, taking the earliest published event among those whose cause
    is already listed (clocks of different services may disagree; causation never does)."""
    ids = {event.event_id for event in events}
    effects: dict[str, list[int]] = {}
    ready: list[tuple[datetime, int]] = []
    for index, event in enumerate(events):
        if event.causation_id in ids and event.causation_id != event.event_id:
            effects.setdefault(event.causation_id, []).append(index)
        else:
            heapq.heappush(ready, (event.time, index))
    ordered: list[E] = []
    while ready:
        _, index = heapq.heappop(ready)
        ordered.append(events[index])
        for effect in effects.pop(events[index].event_id, []):
            heapq.heappush(ready, (events[effect].time, effect))
    # A cycle of causation ids (a forged event) would leave some out: keep them, last.
    listed = {id(event) for event in ordered}
    return ordered + [event for event in events if id(event) not in listed]
