"""Reads every consumer group's dead-letter topic into the monitor's table of dead letters, and
puts one back on its topic (redrive) through the outbox."""

from __future__ import annotations

import logging

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_contracts import Topics
from concerto_messaging.tables import outbox
from concerto_monitor.adapters import db

log = logging.getLogger(__name__)

GROUP = "monitor-dead-letters"


def _text(value: bytes | None) -> str | None:
    return value.decode(errors="replace") if value is not None else None


def dead_letter_row(record: ConsumerRecord) -> dict:
    headers = {name: value for name, value in record.headers or ()}
    original = {name: _text(value) for name, value in record.headers or () if not name.startswith("dlq_")}
    key = _text(record.key)
    return {
        "dead_letter_topic": record.topic,
        "dead_letter_partition": record.partition,
        "dead_letter_offset": record.offset,
        "topic": _text(headers.get("dlq_original_topic")) or "unknown",
        "consumer": _text(headers.get("dlq_consumer_group")) or record.topic.removesuffix(".dlq"),
        "reason": _text(headers.get("dlq_reason")) or "unknown",
        "error": _text(headers.get("dlq_error")) or "",
        "event_type": _text(headers.get("ce_type")),
        "event_id": _text(headers.get("ce_id")),
        "order_id": key[:64] if key else None,
        "key": record.key,
        "value": record.value,
        "headers": original,
        "dead_lettered_at": db.now(),
    }


async def store(session: AsyncSession, record: ConsumerRecord) -> None:
    row = dead_letter_row(record)
    exists = await session.scalar(
        select(db.dead_letters.c.id).where(
            db.dead_letters.c.dead_letter_topic == row["dead_letter_topic"],
            db.dead_letters.c.dead_letter_partition == row["dead_letter_partition"],
            db.dead_letters.c.dead_letter_offset == row["dead_letter_offset"],
        )
    )
    if exists is None:
        await session.execute(insert(db.dead_letters).values(**row))
        log.warning("dead letter from %s on %s: %s", row["consumer"], row["topic"], row["error"][:200])


async def read_dead_letters(
    bootstrap_servers: str,
    sessions: async_sessionmaker[AsyncSession],
    *,
    group: str = GROUP,
    pattern: str = Topics.DEAD_LETTER_PATTERN,
) -> None:
    """Every `*.dlq` topic, also the ones created later (the pattern is re-checked every few
    seconds). The offset is committed after the row, so nothing is lost and nothing doubled.
    An error (a commit refused during a rebalance, the database away) ends this run; the
    service's supervisor starts a new one, which reads on from the last commit."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=5000,
    )
    consumer.subscribe(pattern=pattern)
    await consumer.start()
    try:
        async for record in consumer:
            async with sessions() as session, session.begin():
                await store(session, record)
            await consumer.commit({TopicPartition(record.topic, record.partition): record.offset + 1})
    finally:
        await consumer.stop()


async def redrive(session: AsyncSession, dead_letter) -> None:
    """Queue the original message for its original topic, as it was (same event id: consumers
    that applied it already ignore it). The caller commits, and marks the dead letter."""
    await session.execute(
        insert(outbox).values(
            event_id=f"redrive-{dead_letter.id}",
            event_type=dead_letter.event_type or "unknown",
            topic=dead_letter.topic,
            key=dead_letter.key or b"",
            value=dead_letter.value or b"",
            headers=dead_letter.headers,
        )
    )
