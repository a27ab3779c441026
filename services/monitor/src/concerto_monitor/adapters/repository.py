"""Loads an order's saga from the monitor's tables and saves it back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts import Envelope
from concerto_contracts.events import OrderConfirmed, PaymentCompleted
from concerto_monitor.adapters import db
from concerto_monitor.domain.definition import ANNOUNCEMENTS, SagaDefinition
from concerto_monitor.domain.saga import Saga
from concerto_monitor.workflows.inputs import WatchUpdate

log = logging.getLogger(__name__)


@dataclass
class StoredSaga:
    order_id: str
    saga: Saga
    row: Any | None  # the saga's row as read (None for a saga not stored yet)
    events: list[Any]  # its saga_events rows, as read
    exists: bool


async def load(session: AsyncSession, definition: SagaDefinition, order_id: str, *, for_update: bool = False) -> StoredSaga:
    """The saga; `for_update` locks its row (PostgreSQL) so the consumer and SagaWatch's
    activity change one saga one at a time (SQLite's writers take turns anyway)."""
    return await of_row(session, definition, order_id, await db.get_saga(session, order_id, for_update=for_update))


async def of_row(session: AsyncSession, definition: SagaDefinition, order_id: str, row: Any | None) -> StoredSaga:
    """The saga of a row already read, with its events."""
    events = await db.events_of(session, order_id)
    seen: dict[str, datetime] = {}
    for event in sorted(events, key=lambda e: e.received_at):
        seen.setdefault(event.type, event.received_at)
    saga = Saga(definition, seen, row.status, set(row.timed_out)) if row is not None else Saga(definition, seen)
    return StoredSaga(order_id, saga, row, events, exists=row is not None)


async def save(session: AsyncSession, stored: StoredSaga, **values) -> None:
    """Writes the saga's status and its entry in the due-time index; `values` adds columns
    (current step, ids)."""
    saga = stored.saga
    due = saga.watch()
    columns = {
        "status": saga.status.value,
        "timed_out": sorted(saga.timed_out),
        "due_step": due.step if due else None,
        "due_at": due.deadline if due else None,
        "updated_at": db.now(),
        **{name: value for name, value in values.items() if value is not None},
    }
    if stored.exists:
        await db.update_saga(session, stored.order_id, **columns)
    else:
        await session.execute(insert(db.sagas).values(order_id=stored.order_id, started_at=db.now(), **columns))
        stored.exists = True


async def lock_timer(session: AsyncSession):
    """SagaWatch's timer row, locked until the transaction ends (None before the first setting)."""
    return (await session.execute(select(db.watch_timer).where(db.watch_timer.c.id == 1).with_for_update())).first()


async def set_timer(session: AsyncSession, deadline: datetime | None, *, only_if_earlier: bool) -> WatchUpdate | None:
    """Sets SagaWatch's timer to `deadline` and returns the update to send it; with
    `only_if_earlier`, leaves it (None) unless `deadline` comes before what it is set for."""
    timer = await lock_timer(session)
    if only_if_earlier and (deadline is None or (timer is not None and timer.armed_at is not None and timer.armed_at <= deadline)):
        return None
    version = (timer.version if timer else 0) + 1
    if timer is None:
        await session.execute(insert(db.watch_timer).values(id=1, armed_at=deadline, version=version))
    else:
        await session.execute(update(db.watch_timer).where(db.watch_timer.c.id == 1).values(armed_at=deadline, version=version))
    return WatchUpdate(version=version, deadline=deadline)


async def record_event(session: AsyncSession, definition: SagaDefinition, envelope: Envelope) -> WatchUpdate | None:
    """Adds one event to its order's saga and moves the saga's entry in the due-time index.
    Returns the update for SagaWatch when its one timer must be set earlier than it is (or
    started); None, almost always, when it can stay as it is: a saga that moved on or ended is
    simply not due any more when the timer fires."""
    event, name, order_id = envelope.event, type(envelope.event).__name__, envelope.key
    stored = await load(session, definition, order_id, for_update=True)
    received_at = db.now()
    late = stored.saga.record(name, received_at)
    await session.execute(
        insert(db.saga_events).values(
            event_id=envelope.id,
            order_id=order_id,
            type=name,
            source=envelope.source,
            time=envelope.time,
            received_at=received_at,
            causation_id=envelope.causation_id,
            trace_id=trace_id(envelope.traceparent),
            late=late,
        )
    )
    await save(
        session,
        stored,
        correlation_id=envelope.correlation_id,
        current_step=None if late or name in ANNOUNCEMENTS else name,
        customer_id=event.order.customer.id if isinstance(event, (OrderConfirmed, PaymentCompleted)) else getattr(event, "customer_id", None),
        payment_id=getattr(event, "payment_id", None),
    )
    if late:
        log.warning("late %s for a saga that is %s: recorded, nothing changes", name, stored.saga.status)
    due = stored.saga.watch()
    return await set_timer(session, due.deadline if due else None, only_if_earlier=True)


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent: version-traceid-spanid-flags."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
