"""The consuming side: each event is handled once per consumer group, in a database
transaction that also records it in the inbox (one transaction for a batch of records, when
all of it succeeds); offsets are committed only after those transactions, once per batch. A
message that still fails after bounded retries goes to the group's dead-letter topic, with the
reason in its headers, and the consumer moves on."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from opentelemetry import context as otel_context
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from tenacity import AsyncRetrying, retry_if_exception_type, retry_if_not_exception_type, stop_after_attempt, wait_exponential_jitter

from concerto_contracts import DomainEvent, Envelope, Topics, UndecodableEvent, decode
from concerto_contracts.http import ConsumerControls
from concerto_observability import bind
from concerto_messaging.tables import inbox
from concerto_messaging.tracing import context_from

log = logging.getLogger(__name__)

# A handler gets the event and the open transaction; what it writes commits with the inbox row.
Handler = Callable[[Envelope, AsyncSession], Awaitable[None]]


class InjectedFault(RuntimeError):
    """Raised for an event type the consumer controls say to fail (a bug, on purpose)."""


class EventConsumer:
    def __init__(
        self,
        *,
        group_id: str,
        topics: list[str],
        handlers: dict[type[DomainEvent], Handler],
        sessions: async_sessionmaker[AsyncSession],
        producer: AIOKafkaProducer,
        bootstrap_servers: str,
        max_attempts: int = 3,
        batch_size: int = 100,
        read_sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        self.group_id = group_id
        self.topics = topics
        self.handlers = {cls.event_type(): handler for cls, handler in handlers.items()}
        self.dead_letter_topic = Topics.dead_letter(group_id)
        self._sessions = sessions
        self._read_sessions = read_sessions or sessions
        self._producer = producer
        self._max_attempts = max_attempts
        self.batch_size = batch_size
        self.controls = ConsumerControls()
        # Per partition: the offset after the last record handled, and that record's timestamp.
        self._read_until: dict[TopicPartition, tuple[int, int]] = {}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,  # we commit after our own database commit
            auto_offset_reset="earliest",
        )

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def watermark(self) -> datetime:
        """Every event published before this moment has been handled (as far as the broker's
        timestamps tell): now, if every partition is read to its end; else the time of the last
        record handled on the partition furthest behind."""
        now = datetime.now(timezone.utc)
        assigned = self._consumer.assignment()
        if not assigned:
            return datetime.min.replace(tzinfo=timezone.utc)
        mark = now
        for partition in assigned:
            end = self._consumer.highwater(partition)
            offset, timestamp = self._read_until.get(partition, (await self._consumer.position(partition), None))
            if end is not None and offset >= end:
                continue  # read to its end
            behind = datetime.fromtimestamp(timestamp / 1000, timezone.utc) if timestamp else datetime.min.replace(tzinfo=timezone.utc)
            mark = min(mark, behind)
        return mark

    def set_controls(self, controls: ConsumerControls) -> None:
        """Pause or resume reading (Kafka stops fetching for a paused partition; the group
        membership and heartbeats go on), and choose which event types fail on purpose."""
        self.controls = controls
        self._apply_pause()
        log.warning("consumer controls set: %s", controls.model_dump())

    def _apply_pause(self) -> None:
        assigned = self._consumer.assignment()
        if self.controls.paused:
            self._consumer.pause(*assigned)
        else:
            self._consumer.resume(*assigned)

    async def run(self) -> None:
        self._consumer.subscribe(self.topics, listener=_KeepControls(self))
        await self._consumer.start()
        try:
            while True:
                batches = await self._consumer.getmany(timeout_ms=1000, max_records=self.batch_size)
                handled = {}
                for partition, records in batches.items():
                    if self.controls.paused:
                        # Paused meanwhile: these records wait for the resume.
                        self._consumer.seek(partition, records[0].offset)
                        continue
                    await self.process_batch(records)
                    handled[partition] = records[-1].offset + 1
                    self._read_until[partition] = (records[-1].offset + 1, records[-1].timestamp)
                if handled:
                    # One commit per batch, not per record. A crash before it hands the batch
                    # out again; the inbox makes a second delivery change nothing.
                    await self._consumer.commit(handled)
        finally:
            await self._consumer.stop()

    async def process_batch(self, records: list[ConsumerRecord]) -> None:
        """A partition's records, handled in one transaction: one inbox look-up and one commit
        for all of them; under load batches grow and the cost per event falls. If one of them
        fails, the transaction rolls back and the records are handled one at a time, the one
        that failed with the attempts it has left."""
        prepared = [(record, self._prepare(record)) for record in records]
        work = [(record, *item) for record, item in prepared if isinstance(item, tuple)]
        if len(work) < 2 or any(isinstance(item, UndecodableEvent) for _, item in prepared):
            # Nothing to share, or a dead letter to write: the careful way, one at a time.
            for record, item in prepared:
                await self._handle(record, item)
            return
        current = 0
        try:
            async with self._sessions() as session, session.begin():
                seen = set(
                    await session.scalars(
                        select(inbox.c.event_id).where(
                            inbox.c.consumer_group == self.group_id,
                            inbox.c.event_id.in_([envelope.id for _, envelope, _ in work]),
                        )
                    )
                )
                for current, (_, envelope, handler) in enumerate(work):
                    if envelope.id not in seen:
                        seen.add(envelope.id)
                        await self._apply(envelope, handler, session)
        except Exception as exc:
            log.warning("%s %s failed in a batch: handling the batch one at a time", work[current][1].type, work[current][1].id)
            for index, (record, envelope, handler) in enumerate(work):
                await self._handle_with_retries(record, envelope, handler, failed=exc if index == current else None)

    async def _handle(self, record: ConsumerRecord, prepared: tuple[Envelope, Handler] | UndecodableEvent | None) -> None:
        """One record on its own (what _prepare made of it)."""
        if isinstance(prepared, UndecodableEvent):
            await self._dead_letter(record, reason="undecodable", error=str(prepared))
        elif prepared is not None:
            await self._handle_with_retries(record, *prepared)

    def _prepare(self, record: ConsumerRecord) -> tuple[Envelope, Handler] | UndecodableEvent | None:
        """The event and its handler; None for an event this context does not react to (not
        even decoded when its type header says so); the error for one that cannot be decoded."""
        announced = next((value for name, value in record.headers or () if name == "ce_type"), None)
        if announced is not None and announced.decode(errors="replace") not in self.handlers:
            return None
        try:
            envelope = decode(record.headers, record.key, record.value)
        except UndecodableEvent as exc:
            return exc
        handler = self.handlers.get(envelope.type)
        return (envelope, handler) if handler is not None else None

    async def _handle_with_retries(
        self, record: ConsumerRecord, envelope: Envelope, handler: Handler, failed: Exception | None = None
    ) -> None:
        """`failed`: the error of an attempt already made (in a batch), which counts."""
        attempts = self._max_attempts - (failed is not None)
        try:
            if attempts < 1:
                raise failed
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(attempts),
                wait=wait_exponential_jitter(multiplier=0.2, max=2.0),
                # Never retry a BaseException: a cancelled consumer (shutdown) must stop, not handle again.
                retry=retry_if_exception_type(Exception) & retry_if_not_exception_type(UndecodableEvent),
                reraise=True,
            ):
                with attempt:
                    await self._handle_once(envelope, handler)
        except Exception as exc:
            log.exception("giving up on %s %s", envelope.type, envelope.id)
            await self._dead_letter(record, reason="handler_failed", error=f"{type(exc).__name__}: {exc}")

    async def _handle_once(self, envelope: Envelope, handler: Handler) -> None:
        # The look-up only reads: no write lock is taken for an event seen before, and a handler
        # that only signals a workflow holds the lock just for its inbox row, not for the call.
        async with self._read_sessions() as session:
            seen = await session.scalar(
                select(inbox.c.event_id).where(
                    inbox.c.consumer_group == self.group_id, inbox.c.event_id == envelope.id
                )
            )
        if seen:
            log.info("duplicate %s %s ignored", envelope.type, envelope.id)
            return
        async with self._sessions() as session, session.begin():
            await self._apply(envelope, handler, session)

    async def _apply(self, envelope: Envelope, handler: Handler, session: AsyncSession) -> None:
        """Runs the handler in the caller's transaction, in the event's trace and log context,
        and records the event in the inbox with it."""
        if {envelope.type, type(envelope.event).__name__} & set(self.controls.fail_event_types):
            raise InjectedFault(f"{type(envelope.event).__name__} is set to fail in the consumer controls")
        token = otel_context.attach(context_from(envelope.traceparent))
        try:
            with bind(correlation_id=envelope.correlation_id, order_id=envelope.key):
                await handler(envelope, session)
        finally:
            otel_context.detach(token)
        # A concurrent delivery of the same event fails this primary key and rolls back;
        # the retry then finds the event in the inbox.
        await session.execute(
            insert(inbox).values(consumer_group=self.group_id, event_id=envelope.id, event_type=envelope.type)
        )

    async def _dead_letter(self, record: ConsumerRecord, *, reason: str, error: str) -> None:
        log.error("dead-lettering %s[%s]@%s: %s", record.topic, record.partition, record.offset, error)
        headers = list(record.headers or ()) + [
            ("dlq_reason", reason.encode()),
            ("dlq_error", error[:2000].encode()),
            ("dlq_consumer_group", self.group_id.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
        ]
        await self._producer.send_and_wait(self.dead_letter_topic, key=record.key, value=record.value, headers=headers)


class _KeepControls(ConsumerRebalanceListener):
    """Partitions assigned after a rebalance start paused too, while the consumer is paused."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._owner = consumer

    async def on_partitions_revoked(self, revoked) -> None:
        pass

    async def on_partitions_assigned(self, assigned) -> None:
        self._owner._apply_pause()
