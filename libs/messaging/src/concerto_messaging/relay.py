"""Publishes what the outbox holds, oldest first, and marks it published once Kafka has it.

At-least-once: a crash between the send and the mark publishes a row again; consumers
de-duplicate by event id (the inbox), so that is harmless.

Several relays may share one database (replicas of a service): each first claims a batch of
rows with a lease (one UPDATE, so two relays never claim the same row while its lease runs) and
then sends it, holding no lock while Kafka acknowledges. A row whose send fails is tried again
in a later batch; after `max_attempts` it is set aside (attempts and error kept on the row,
logged, counted by `set_aside()`), so one bad row never holds up the rest.

One key's events (one order's) leave in the order they were written, whichever relay sends
them: a row is not claimed while an earlier row of its key is claimed by another relay. A relay
that dies holding OrderConfirmed holds that order's OrderCancelled back with it until its lease
runs out; then one relay claims both and sends them in order (ADR 16). Claims take turns (SQLite
has one writer; PostgreSQL takes an advisory lock), so two relays never both see the earlier
row unclaimed and each take one of the two.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import bindparam, exists, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_messaging.tables import outbox
from concerto_observability.metrics import gauge

log = logging.getLogger(__name__)

# The PostgreSQL advisory lock the relays of one database take turns on while they claim rows.
OUTBOX_CLAIM_LOCK = 0x0C0C_E870
_TAKE_TURNS = text("SELECT pg_advisory_xact_lock(:lock)")

# Rows Kafka has acknowledged (the statement is built once: a relay runs it for every batch).
_SENT = (
    update(outbox)
    .where(outbox.c.id.in_(bindparam("sent", expanding=True)))
    .values(published_at=bindparam("sent_at", type_=outbox.c.published_at.type), claimed_until=None)
)


def _claim(batch_size: int):
    """The next `batch_size` rows no relay holds, leased to this one until :lease_until (rows
    whose lease ran out by :now count as free), each held back while an earlier row of its key
    is leased to another relay; one statement, built once per relay."""
    now = bindparam("now", type_=outbox.c.claimed_until.type)
    claimable = or_(outbox.c.claimed_until.is_(None), outbox.c.claimed_until < now)
    earlier = outbox.alias("earlier")
    # An earlier row of the same key that another relay is sending (its lease still runs):
    # this row waits for it, so the key's events cannot cross on the way to Kafka.
    held_back = exists().where(
        earlier.c.key == outbox.c.key,
        earlier.c.id < outbox.c.id,
        earlier.c.published_at.is_(None),
        earlier.c.set_aside_at.is_(None),
        earlier.c.claimed_until >= now,
    )
    waiting = (
        select(outbox.c.id)
        .where(outbox.c.published_at.is_(None), outbox.c.set_aside_at.is_(None), claimable, ~held_back)
        .order_by(outbox.c.id)
        .limit(batch_size)
    )
    # The lease is checked again in the UPDATE itself: a relay that read the same ids a moment
    # ago finds them claimed and takes none of them.
    return (
        update(outbox)
        .where(outbox.c.id.in_(waiting.scalar_subquery()), claimable)
        .values(claimed_until=bindparam("lease_until", type_=outbox.c.claimed_until.type))
        .returning(*outbox.c)
    )


class OutboxRelay:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        lease: timedelta = timedelta(seconds=30),
        max_attempts: int = 5,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self._sessions = sessions
        self._read_sessions = read_sessions or sessions
        self._producer = producer
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._lease = lease
        self._max_attempts = max_attempts
        self._claim = _claim(batch_size)
        # Set by UnitOfWork.commit() so a new event goes out at once, not at the next poll.
        self.wake = asyncio.Event()
        # Declared here, not on import: a process with no outbox (the gateway) shows none.
        self._backlog = gauge("concerto_outbox_backlog_events", "Outbox rows not yet published to Kafka (set-aside rows apart)")
        self._oldest = gauge("concerto_outbox_oldest_unsent_age_seconds", "Age of the oldest outbox row not yet published (0 when none)")
        self._set_aside = gauge("concerto_outbox_set_aside_events", "Outbox rows set aside after failed sends: someone has to look at them")

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows it published."""
        rows = await self.claim()
        if not rows:
            return 0
        # Handed to the producer in order (one key's events stay in order on its partition),
        # then every acknowledgement awaited (acks=all).
        pending = [await self._send(row) for row in rows]
        outcomes = await asyncio.gather(*pending, return_exceptions=True)
        now = _now()
        sent = [row.id for row, outcome in zip(rows, outcomes) if not isinstance(outcome, BaseException)]
        async with self._sessions() as session, session.begin():
            if sent:
                await session.execute(_SENT, {"sent": sent, "sent_at": now})
            for row, outcome in zip(rows, outcomes):
                if isinstance(outcome, BaseException):
                    await self._failed(session, row, outcome, now)
        return len(sent)

    async def claim(self) -> list[Any]:
        """Leases the next batch of rows to this relay (what publish_pending does first)."""
        now = _now()
        async with self._sessions() as session, session.begin():
            if session.bind.dialect.name == "postgresql":
                # Claims take turns, as SQLite's single writer makes them: under READ COMMITTED two
                # claims at once could each see the other's earlier row unclaimed.
                await session.execute(_TAKE_TURNS, {"lock": OUTBOX_CLAIM_LOCK})
            claimed = await session.execute(self._claim, {"now": now, "lease_until": now + self._lease})
            return sorted(claimed.all(), key=lambda row: row.id)

    async def _send(self, row: Any) -> asyncio.Future:
        headers = [(name, value.encode()) for name, value in row.headers.items()]
        try:
            return await self._producer.send(row.topic, key=row.key, value=row.value, headers=headers)
        except Exception as exc:  # refused before it left (too large, say): fails like a lost ack
            failed: asyncio.Future = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def _failed(self, session: AsyncSession, row: Any, error: BaseException, now: datetime) -> None:
        attempts, description = row.attempts + 1, f"{type(error).__name__}: {error}"[:2000]
        values: dict[str, Any] = {"attempts": attempts, "last_error": description, "claimed_until": None}
        if attempts >= self._max_attempts:
            values["set_aside_at"] = now
            log.error("outbox row %s (%s) set aside after %s attempts: %s", row.id, row.event_type, attempts, description)
        else:
            log.warning("outbox row %s (%s) not published (attempt %s): %s", row.id, row.event_type, attempts, description)
        await session.execute(update(outbox).where(outbox.c.id == row.id).values(**values))

    async def set_aside(self) -> int:
        """How many rows have been set aside: they need someone to look at them."""
        async with self._read_sessions() as session:
            return await session.scalar(select(func.count()).select_from(outbox).where(outbox.c.set_aside_at.is_not(None)))

    async def measure(self) -> None:
        """The outbox's figures for /metrics: what waits to be published, and since when."""
        async with self._read_sessions() as session:
            waiting, oldest = (
                await session.execute(
                    select(func.count(), func.min(outbox.c.created_at)).where(
                        outbox.c.published_at.is_(None), outbox.c.set_aside_at.is_(None)
                    )
                )
            ).one()
        self._backlog.set(waiting)
        self._oldest.set(max((_now() - _utc(oldest)).total_seconds(), 0) if oldest else 0)
        self._set_aside.set(await self.set_aside())

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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _utc(moment: datetime) -> datetime:
    # SQLite hands back its CURRENT_TIMESTAMP (UTC) without a zone.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
