"""Pruning the messaging tables on a schedule, so they hold what is in flight rather than
everything ever sent. Published outbox rows are kept a day (enough to look at what went out).
Inbox rows are kept a month: an event delivered again after its inbox row is gone would be
applied again, so that must outlast Kafka's retention and any redrive of a dead letter."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_messaging.tables import inbox, outbox

log = logging.getLogger(__name__)


async def prune(
    sessions: async_sessionmaker[AsyncSession], *, outbox_kept: timedelta, inbox_kept: timedelta, now: datetime | None = None
) -> tuple[int, int]:
    """Deletes outbox rows published more than `outbox_kept` ago and inbox rows older than
    `inbox_kept`; returns how many of each. Unpublished and set-aside rows are never deleted."""
    now = now or datetime.now(timezone.utc)
    async with sessions() as session, session.begin():
        published = await session.execute(delete(outbox).where(outbox.c.published_at < now - outbox_kept))
        consumed = await session.execute(delete(inbox).where(inbox.c.processed_at < now - inbox_kept))
    return published.rowcount, consumed.rowcount


async def prune_forever(
    sessions: async_sessionmaker[AsyncSession], *, outbox_kept: timedelta, inbox_kept: timedelta, every: float = 600.0
) -> None:
    # A failure (a locked or unreachable database) ends the loop: the service's supervisor
    # starts it again after a pause and shows it in the readiness check (concerto_runtime.supervision).
    while True:
        published, consumed = await prune(sessions, outbox_kept=outbox_kept, inbox_kept=inbox_kept)
        if published or consumed:
            log.info("pruned %s published outbox rows and %s inbox rows", published, consumed)
        await asyncio.sleep(every)
