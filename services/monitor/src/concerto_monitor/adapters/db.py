"""The monitor's own tables: one row per order saga, every event it has seen, and the dead
letters of every consumer group."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_runtime.database import UtcDateTime

tables = MetaData()

sagas = Table(
    "sagas",
    tables,
    Column("order_id", String(64), primary_key=True),
    Column("correlation_id", String(100), nullable=False),
    Column("customer_id", String(64), nullable=True),
    Column("payment_id", String(80), nullable=True),
    Column("status", String(20), nullable=False, index=True),
    Column("current_step", String(60), nullable=True),  # the last event that moved it on
    Column("timed_out", JSON, nullable=False),  # names of the steps whose deadline fired
    # The due-time index SagaWatch reads: the saga's earliest deadline still to come, if any.
    Column("due_step", String(40), nullable=True),
    Column("due_at", UtcDateTime, nullable=True, index=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False, index=True),
)

# One row: what SagaWatch's single timer is set for (none: no watch runs), and a version that
# grows with every change, so the workflow can tell a newer setting from an older one.
watch_timer = Table(
    "watch_timer",
    tables,
    Column("id", Integer, primary_key=True),
    Column("armed_at", UtcDateTime, nullable=True),
    Column("version", Integer, nullable=False),
)

saga_events = Table(
    "saga_events",
    tables,
    Column("event_id", String(64), primary_key=True),
    Column("order_id", String(64), nullable=False, index=True),
    Column("type", String(60), nullable=False),  # PaymentCompleted
    Column("source", String(200), nullable=False),
    Column("time", UtcDateTime, nullable=False),  # when it was published
    Column("received_at", UtcDateTime, nullable=False),  # when the monitor saw it
    Column("causation_id", String(64), nullable=True),
    Column("trace_id", String(32), nullable=True),
    Column("late", Boolean, nullable=False),
)

dead_letters = Table(
    "dead_letters",
    tables,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("dead_letter_topic", String(200), nullable=False),
    Column("dead_letter_partition", Integer, nullable=False),
    Column("dead_letter_offset", BigInteger, nullable=False),  # Kafka offsets are 64-bit
    Column("topic", String(200), nullable=False),  # where it came from, and where redrive puts it back
    Column("consumer", String(100), nullable=False),
    Column("reason", String(40), nullable=False),
    Column("error", Text, nullable=False),
    Column("event_type", String(200), nullable=True),
    Column("event_id", String(64), nullable=True),
    Column("order_id", String(64), nullable=True, index=True),
    Column("key", LargeBinary, nullable=True),
    Column("value", LargeBinary, nullable=True),
    Column("headers", JSON, nullable=False),  # the original headers, without the dead-letter ones
    Column("dead_lettered_at", UtcDateTime, nullable=False),
    Column("redriven_at", UtcDateTime, nullable=True),
    # Read twice (a restart before the offset commit) is stored once.
    UniqueConstraint("dead_letter_topic", "dead_letter_partition", "dead_letter_offset"),
)


def now() -> datetime:
    return datetime.now(timezone.utc)


async def get_saga(session: AsyncSession, order_id: str, *, for_update: bool = False) -> Any | None:
    query = select(sagas).where(sagas.c.order_id == order_id)
    return (await session.execute(query.with_for_update() if for_update else query)).first()


async def due_sagas(session: AsyncSession, now: datetime, limit: int) -> list[str]:
    query = select(sagas.c.order_id).where(sagas.c.due_at <= now).order_by(sagas.c.due_at).limit(limit)
    return list((await session.execute(query)).scalars())


async def earliest_due(session: AsyncSession) -> datetime | None:
    return await session.scalar(select(func.min(sagas.c.due_at)))


async def events_of(session: AsyncSession, order_id: str) -> list[Any]:
    return list((await session.execute(select(saga_events).where(saga_events.c.order_id == order_id))).all())


# Built once (every event saves its saga): the columns set are the keys of the values given.
_SAGA_ROW = update(sagas).where(sagas.c.order_id == bindparam("saga_order_id"))


async def update_saga(session: AsyncSession, order_id: str, **values: Any) -> None:
    await session.execute(_SAGA_ROW, {"saga_order_id": order_id, **values})


async def page(session: AsyncSession, table: Table, order_by, limit: int, offset: int, *where) -> tuple[list[Any], int]:
    rows = (await session.execute(select(table).where(*where).order_by(*order_by).limit(limit).offset(offset))).all()
    total = await session.scalar(select(func.count()).select_from(table).where(*where))
    return list(rows), total
