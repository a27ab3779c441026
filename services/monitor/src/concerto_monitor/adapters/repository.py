"""Loads an order's saga from the monitor's tables and saves it back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_monitor.adapters import db
from concerto_monitor.domain.definition import SagaDefinition
from concerto_monitor.domain.saga import Saga, Watch


@dataclass
class StoredSaga:
    order_id: str
    saga: Saga
    watch: Watch | None  # what the SagaWatch timer was last set for
    version: int
    exists: bool


async def load(session: AsyncSession, definition: SagaDefinition, order_id: str) -> StoredSaga:
    row = await db.get_saga(session, order_id)
    seen: dict[str, datetime] = {}
    for event in sorted(await db.events_of(session, order_id), key=lambda e: e.received_at):
        seen.setdefault(event.type, event.received_at)
    if row is None:
        return StoredSaga(order_id, Saga(definition, seen), None, 0, exists=False)
    watch = Watch(row.watch_step, row.watch_deadline) if row.watch_step else None
    return StoredSaga(order_id, Saga(definition, seen, row.status, set(row.timed_out)), watch, row.version, exists=True)


async def save(session: AsyncSession, stored: StoredSaga, **values) -> None:
    """Writes the saga's status and timer; `values` adds columns (current step, ids)."""
    saga, watch = stored.saga, stored.saga.watch()
    columns = {
        "status": saga.status.value,
        "timed_out": sorted(saga.timed_out),
        "watch_step": watch.step if watch else None,
        "watch_deadline": watch.deadline if watch else None,
        "version": stored.version,
        "updated_at": db.now(),
        **{name: value for name, value in values.items() if value is not None},
    }
    if stored.exists:
        await db.update_saga(session, stored.order_id, **columns)
    else:
        await session.execute(insert(db.sagas).values(order_id=stored.order_id, started_at=db.now(), **columns))
        stored.exists = True
