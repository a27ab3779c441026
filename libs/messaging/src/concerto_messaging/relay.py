"""Publishes what the outbox holds, oldest first, and marks it published once Kafka has it.

At-least-once: a crash between the send and the mark publishes a row again; consumers
de-duplicate by event id (the inbox), so that is harmless."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone

from aiokafka import AIOKafkaProducer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_messaging.tables import outbox

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions or sessions
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        # Set by UnitOfWork.commit() so a new event goes out at once, not at the next poll.
        self.wake = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows it published."""
        # Read, send, then mark: no lock is held while Kafka acknowledges. One relay per
        # service database (a second one would publish the same rows twice, harmlessly).
        async with self._read_sessions() as session:
            rows = (
                await session.execute(
                    select(outbox).where(outbox.c.published_at.is_(None)).order_by(outbox.c.id).limit(self._batch_size)
                )
            ).all()
        if not rows:
            return 0
        sends = [
            await self._producer.send(
                row.topic,
                key=row.key,
                value=row.value,
                headers=[(name, value.encode()) for name, value in row.headers.items()],
            )
            for row in rows
        ]
        await asyncio.gather(*sends)  # every record acknowledged by the broker (acks=all)
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(outbox)
                .where(outbox.c.id.in_([row.id for row in rows]))
                .values(published_at=datetime.now(timezone.utc))
            )
        return len(rows)

    async def run(self) -> None:
        while True:
            try:
                while await self.publish_pending() == self._batch_size:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(self._poll_interval)
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=self._poll_interval)
            except TimeoutError:
                pass
            self.wake.clear()
