"""A database transaction that can also publish events: the state change and the outbox rows
commit together or not at all (the transactional outbox)."""

from __future__ import annotations

import asyncio

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_contracts import DomainEvent, encode
from concerto_messaging.tables import outbox
from concerto_messaging.tracing import current_traceparent

_ADD = insert(outbox)  # built once: every published event goes through it


class UnitOfWork:
    """`async with uow_factory() as uow: ...; uow.publish(event, ...); await uow.commit()`.

    Leaving the block without commit() rolls everything back, events included.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], source: str, published: asyncio.Event | None = None):
        self._sessions = sessions
        self._source = source
        self._published = published
        self._pending: list[dict] = []
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        await self.session.begin()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.session.rollback()  # a no-op after commit()
        await self.session.close()

    def publish(self, event: DomainEvent, *, correlation_id: str, causation_id: str | None = None) -> str:
        """Queue an event to be written with this transaction; returns its event id."""
        row = outbox_row(event, source=self._source, correlation_id=correlation_id, causation_id=causation_id)
        self._pending.append(row)
        return row["event_id"]

    async def commit(self) -> None:
        published = bool(self._pending)
        if published:
            await self.session.execute(_ADD, self._pending)
            self._pending.clear()
        await self.session.commit()
        if published and self._published is not None:
            self._published.set()  # wake the relay instead of waiting for its next poll


def outbox_row(event: DomainEvent, *, source: str, correlation_id: str, causation_id: str | None) -> dict:
    """The event as the outbox keeps it: the Kafka record the relay will send."""
    record = encode(
        event, source=source, correlation_id=correlation_id, causation_id=causation_id, traceparent=current_traceparent()
    )
    headers = {name: value.decode() for name, value in record.headers}
    return {
        "event_id": headers["ce_id"],
        "event_type": headers["ce_type"],
        "topic": record.topic,
        "key": record.key,
        "value": record.value,
        "headers": headers,
    }


async def add_to_outbox(
    session: AsyncSession, event: DomainEvent, *, source: str, correlation_id: str, causation_id: str | None = None
) -> str:
    """Publish from a transaction someone else commits (an event handler's, with its inbox row)."""
    row = outbox_row(event, source=source, correlation_id=correlation_id, causation_id=causation_id)
    await session.execute(_ADD, [row])
    return row["event_id"]
