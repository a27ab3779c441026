"""Loads an order's saga from the monitor's tables and saves it back."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
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
    return StoredSaga(order_id, _saga(definition, row, events), row, events, exists=row is not None)


# A saga's row, locked (PostgreSQL), beside the type and arrival of each of its events: what
# recording one more event needs, in one statement. Events are written with their saga's row,
# so a saga with no row has no events either.
_SAGA_AND_ARRIVALS = (
    select(db.sagas, db.saga_events.c.type.label("event_type"), db.saga_events.c.received_at.label("event_received_at"))
    .select_from(db.sagas.outerjoin(db.saga_events, db.saga_events.c.order_id == db.sagas.c.order_id))
    .where(db.sagas.c.order_id == bindparam("order_id"))
    .with_for_update(of=db.sagas)
)


async def load_for_change(session: AsyncSession, definition: SagaDefinition, order_id: str) -> StoredSaga:
    """The saga, its row locked, read in one statement; `events` holds each event's type and
    arrival only (what the saga's rules read), not the whole rows `load` gives."""
    rows = (await session.execute(_SAGA_AND_ARRIVALS, {"order_id": order_id})).all()
    row = rows[0] if rows else None
    events = [_Arrival(r.event_type, r.event_received_at) for r in rows if r.event_type is not None]
    return StoredSaga(order_id, _saga(definition, row, events), row, events, exists=row is not None)


@dataclass(frozen=True)
class _Arrival:
    type: str
    received_at: datetime


def _saga(definition: SagaDefinition, row: Any | None, events: list[Any]) -> Saga:
    seen: dict[str, datetime] = {}
    for event in sorted(events, key=lambda e: e.received_at):
        seen.setdefault(event.type, event.received_at)
    return Saga(definition, seen, row.status, set(row.timed_out)) if row is not None else Saga(definition, seen)


_NEW_SAGA, _NEW_EVENT = insert(db.sagas), insert(db.saga_events)  # built once


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
        await session.execute(_NEW_SAGA, {"order_id": stored.order_id, "started_at": db.now(), **columns})
        stored.exists = True


async def lock_timer(session: AsyncSession):
    """SagaWatch's timer row, locked until the transaction ends (None before the first setting)."""
    return (await session.execute(select(db.watch_timer).where(db.watch_timer.c.id == 1).with_for_update())).first()


def _timer_set_earlier(insert_into) -> Any:
    """One statement that sets the timer to :deadline if it is set for later or for nothing
    (creating its row the first time), locks the row either way, and returns the new version
    when it changed it."""
    timer = db.watch_timer
    proposed = insert_into(timer).values(id=1, armed_at=bindparam("deadline", type_=timer.c.armed_at.type), version=1)
    return proposed.on_conflict_do_update(
        index_elements=[timer.c.id],
        set_={"armed_at": proposed.excluded.armed_at, "version": timer.c.version + 1},
        where=or_(timer.c.armed_at.is_(None), timer.c.armed_at > proposed.excluded.armed_at),
    ).returning(timer.c.version)


# Built once per dialect: the two the services run on.
_SET_EARLIER = {"sqlite": _timer_set_earlier(sqlite.insert), "postgresql": _timer_set_earlier(postgresql.insert)}


async def set_timer(session: AsyncSession, deadline: datetime | None, *, only_if_earlier: bool) -> WatchUpdate | None:
    """Sets SagaWatch's timer to `deadline` and returns the update to send it; with
    `only_if_earlier`, leaves it (None) unless `deadline` comes before what it is set for."""
    if only_if_earlier:
        if deadline is None:
            return None  # nothing comes before what the timer is set for
        version = await session.scalar(_SET_EARLIER[session.bind.dialect.name], {"deadline": deadline})
        return WatchUpdate(version=version, deadline=deadline) if version is not None else None
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
    stored = await load_for_change(session, definition, order_id)
    received_at = db.now()
    late = stored.saga.record(name, received_at)
    await session.execute(
        _NEW_EVENT,
        {
            "event_id": envelope.id,
            "order_id": order_id,
            "type": name,
            "source": envelope.source,
            "time": envelope.time,
            "received_at": received_at,
            "causation_id": envelope.causation_id,
            "trace_id": trace_id(envelope.traceparent),
            "late": late,
        },
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
