"""Fixtures for the messaging integration tests: the real Kafka broker, a real database
(SQLite in tmp_path; PostgreSQL too when TEST_DATABASE_URL is set), a unique topic per test,
and the handler's own little table."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from concerto_contracts import Envelope, KafkaRecord, encode
from concerto_contracts.events import DomainEvent, OrderCancelled
from concerto_messaging import EventConsumer, Handler, create_producer, ensure_topics
from concerto_messaging import metadata as messaging_metadata
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import DATABASE_KINDS, eventually, fresh_database

BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
SOURCE = "urn:concerto:messaging-tests"

# --- the handler's own state, beside the outbox and inbox ------------------------------

test_metadata = MetaData()

# A state change a unit of work makes (the thing the outbox row announces).
orders = Table(
    "test_orders",
    test_metadata,
    Column("order_id", String(64), primary_key=True),
    Column("status", String(32), nullable=False),
)

# One row per application of an event by a handler: never unique, so a duplicate shows.
applied = Table(
    "test_applied",
    test_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(64), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("causation_id", String(64), nullable=True),
)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def cancelled(order_id: str | None = None, reason: str = "changed my mind") -> OrderCancelled:
    return OrderCancelled(
        order_id=order_id or unique("ord"),
        customer_id="cust-42",
        reason=reason,
        total=Decimal("52.66"),
        currency="EUR",
    )


# --- Kafka ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
async def bootstrap() -> str:
    """The broker's address; fails (never skips) when nothing answers there."""
    host, _, port = BOOTSTRAP.split(",")[0].rpartition(":")
    problem = None
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout=5)
        writer.close()
        await writer.wait_closed()
    except (OSError, asyncio.TimeoutError) as exc:
        problem = repr(exc)
    if problem:
        pytest.fail(
            f"Kafka broker unreachable at {BOOTSTRAP} ({problem}). The messaging integration tests need the "
            "real broker: start it with `make infra-up`, or point KAFKA_BOOTSTRAP_SERVERS at a running one.",
            pytrace=False,
        )
    return BOOTSTRAP


@pytest.fixture(scope="session")
async def producer(bootstrap) -> AsyncIterator[AIOKafkaProducer]:
    producer = create_producer(bootstrap)
    try:
        await asyncio.wait_for(producer.start(), timeout=20)
    except Exception as exc:
        await producer.stop()
        pytest.fail(f"cannot start a Kafka producer against {bootstrap}: {exc!r}", pytrace=False)
    yield producer
    await producer.stop()


@dataclass
class Kafka:
    bootstrap: str
    producer: AIOKafkaProducer

    async def topic(self, prefix: str = "test") -> str:
        """A new topic (3 partitions, like the real ones) that no other test uses."""
        name = unique(prefix)
        await ensure_topics(self.bootstrap, [name])
        await self.producer.partitions_for(name)  # waits until the producer knows the partitions
        return name

    async def send(self, record: KafkaRecord, topic: str | None = None, **overrides):
        """Produce an encoded event as is (or with key/value/headers overridden)."""
        message = {"key": record.key, "value": record.value, "headers": record.headers} | overrides
        return await self.producer.send_and_wait(topic or record.topic, **message)

    async def read_all(self, topic: str, *, at_least: int = 0, timeout: float = 20) -> list[ConsumerRecord]:
        """Everything on `topic` up to its current end (waiting until it holds `at_least`
        records), in (partition, offset) order. No consumer group, so nothing is committed."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [TopicPartition(topic, p) for p in sorted(await self.producer.partitions_for(topic))]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)

            async def filled() -> dict[TopicPartition, int] | None:
                ends = await consumer.end_offsets(partitions)
                return ends if sum(ends.values()) >= at_least else None

            ends = await eventually(filled, timeout=timeout, interval=0.05, what=f"{at_least} records on {topic}")
            records: list[ConsumerRecord] = []
            deadline = time.monotonic() + timeout
            while not await _reached(consumer, ends):
                assert time.monotonic() < deadline, f"timed out reading {topic} to {ends}"
                batches = await consumer.getmany(timeout_ms=200)
                records += [record for batch in batches.values() for record in batch]
            return sorted(records, key=lambda r: (r.partition, r.offset))
        finally:
            await consumer.stop()

    async def committed(self, group_id: str, topic: str) -> int:
        """How many records of `topic` the group has committed, summed over partitions."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group_id)
        finally:
            await admin.close()
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


@pytest.fixture
async def kafka(bootstrap, producer) -> Kafka:
    return Kafka(bootstrap, producer)


@pytest.fixture
async def order_topic(kafka, monkeypatch) -> str:
    """OrderCancelled events go to a topic of this test's own (they go to order.events.v1 in
    production) so the test never reads anything another test or a running stack wrote."""
    topic = await kafka.topic("order-events")
    monkeypatch.setattr(OrderCancelled, "topic", topic)
    return topic


# --- the database ------------------------------------------------------------------------


@pytest.fixture(params=DATABASE_KINDS)
async def engine(request, tmp_path) -> AsyncIterator[AsyncEngine]:
    async with fresh_database(request.param, tmp_path, messaging_metadata, test_metadata) as engine:
        yield engine


@pytest.fixture
def sessions(engine) -> async_sessionmaker[AsyncSession]:
    return create_sessions(engine)


@dataclass
class Db:
    sessions: async_sessionmaker[AsyncSession]

    async def rows(self, statement) -> list:
        async with self.sessions() as session:
            return list((await session.execute(statement)).all())

    async def count(self, table: Table, *where) -> int:
        async with self.sessions() as session:
            return await session.scalar(select(func.count()).select_from(table).where(*where))


@pytest.fixture
def db(sessions) -> Db:
    return Db(sessions)


# --- consumers ---------------------------------------------------------------------------


class RecordingConsumer(EventConsumer):
    """The real consumer, noting every record Kafka delivers to it (before de-duplication)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.delivered: list[ConsumerRecord] = []
        self.batches: list[int] = []  # how many records each batch held

    async def process_batch(self, records: list[ConsumerRecord]):
        self.delivered.extend(records)
        self.batches.append(len(records))
        return await super().process_batch(records)


@dataclass
class Consumers:
    kafka: Kafka
    sessions: async_sessionmaker[AsyncSession]
    tasks: dict[RecordingConsumer, asyncio.Task] = field(default_factory=dict)

    def start(
        self,
        *,
        group_id: str,
        topics: list[str],
        handlers: dict[type[DomainEvent], Handler],
    ) -> RecordingConsumer:
        consumer = RecordingConsumer(
            group_id=group_id,
            topics=topics,
            handlers=handlers,
            sessions=self.sessions,
            producer=self.kafka.producer,
            bootstrap_servers=self.kafka.bootstrap,
        )
        self.tasks[consumer] = asyncio.create_task(consumer.run(), name=f"consumer {group_id}")
        return consumer

    async def stop(self, consumer: RecordingConsumer, timeout: float = 15) -> None:
        """Cancel run() and wait for it to end; a consumer that ignores cancellation fails the test."""
        task = self.tasks.pop(consumer)
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=timeout)
        assert done, f"{task.get_name()} did not stop within {timeout}s of being cancelled"
        if not task.cancelled() and task.exception() is not None:
            raise AssertionError(f"{task.get_name()} had crashed") from task.exception()

    def check_running(self) -> None:
        for consumer, task in self.tasks.items():
            if task.done():
                raise AssertionError(f"{task.get_name()} stopped: {task.exception() if not task.cancelled() else 'cancelled'}")


@pytest.fixture
async def consumers(kafka, sessions) -> AsyncIterator[Consumers]:
    running = Consumers(kafka, sessions)
    yield running
    for consumer in list(running.tasks):
        await running.stop(consumer)


def recording_handler(calls: list[Envelope], *, before: Callable[[Envelope], Awaitable[None]] | None = None) -> Handler:
    """A handler that notes each call, and writes a row to the handler's own table in the
    consumer's transaction (then runs `before`, which may raise or block)."""

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        calls.append(envelope)
        await session.execute(
            insert(applied).values(
                event_id=envelope.id,
                event_type=envelope.type,
                order_id=envelope.key,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.causation_id,
            )
        )
        if before is not None:
            await before(envelope)

    return handle


@pytest.fixture
def helpers():
    """Plain functions and tables for the test modules (which cannot import conftest)."""

    def encode_event(event: DomainEvent, **attributes) -> KafkaRecord:
        attributes.setdefault("correlation_id", unique("corr"))
        return encode(event, source=SOURCE, **attributes)

    return SimpleNamespace(
        orders=orders,
        applied=applied,
        cancelled=cancelled,
        unique=unique,
        encode=encode_event,
        recording_handler=recording_handler,
        SOURCE=SOURCE,
    )
