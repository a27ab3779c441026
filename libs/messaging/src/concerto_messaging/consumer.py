"""The consuming side: each event is handled once per consumer group, in a database
transaction that also records it in the inbox (one transaction for a batch of records, when
all of it succeeds); offsets are committed only after those transactions, once per batch.

When handling fails, what happens depends on why:
- an event that cannot be decoded, or that its handler rejects as invalid (`InvalidEvent`),
  goes to the group's dead-letter topic at once, with the reason in its headers, and the
  consumer moves on;
- anything else (Temporal, the database or the broker away, or a bug) holds that partition at
  that event. The event is tried again after a pause that doubles up to 30 s, for as long as it
  takes, and the other partitions go on meanwhile. Nothing is dead-lettered for a failure that
  may pass, so a milestone is never lost to an outage. A partition held for long shows in the
  readiness check (`problem()`).
The loop never ends silently. If it fails (an offset commit refused after a rebalance, the
broker gone), it starts again with a new Kafka consumer after a pause, and says so in `problem()`.

Consumers read tolerantly: an event type the group has no handler for is skipped, and
`decode` ignores fields the event's model does not know.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from concerto_contracts import DomainEvent, Envelope, Topics, UndecodableEvent, decode
from concerto_contracts.http import ConsumerControls
from concerto_observability import bind
from concerto_observability.metrics import counter, gauge
from concerto_messaging.tables import inbox
from concerto_messaging.tracing import consuming

log = logging.getLogger(__name__)

# A handler gets the event and the open transaction; what it writes commits with the inbox row.
Handler = Callable[[Envelope, AsyncSession], Awaitable[None]]


def database_first(handler: Handler) -> Handler:
    """Marks a handler whose first step is a statement in the consumer's transaction, so it
    takes the database's writer at once anyway. For such a handler the consumer writes the
    event's inbox row first, in that same transaction, and the write is the look-up: a row
    already there means a duplicate, and nothing else happens. One transaction per event
    instead of two. A handler that calls out (Temporal) before any statement stays unmarked: it
    is looked up in a read-only transaction of its own, and takes the writer only after the call."""
    handler.database_first = True  # type: ignore[attr-defined]
    return handler


class InvalidEvent(Exception):
    """A handler's verdict that an event can never be applied: it goes to the dead-letter topic
    at once, where an operator can look at it and redrive it."""


class InjectedFault(InvalidEvent):
    """Raised for an event type the consumer controls say to reject (a fault, on purpose)."""


# Built once: every event goes through them (a statement built per call costs about as much
# again as running it, docs/benchmarks.md).
_SEEN = select(inbox.c.event_id).where(inbox.c.consumer_group == bindparam("group"), inbox.c.event_id == bindparam("event_id"))
_SEEN_OF = select(inbox.c.event_id).where(
    inbox.c.consumer_group == bindparam("group"), inbox.c.event_id.in_(bindparam("event_ids", expanding=True))
)
_RECORD = insert(inbox)


def _record_if_new(insert_into):
    return insert_into(inbox).on_conflict_do_nothing(index_elements=[inbox.c.consumer_group, inbox.c.event_id]).returning(inbox.c.event_id)


# The inbox row of an event not seen before (nothing for a duplicate), by dialect.
_RECORD_IF_NEW = {"sqlite": _record_if_new(sqlite.insert), "postgresql": _record_if_new(postgresql.insert)}

# A held partition is tried again after this many seconds, doubled for each further failure.
FIRST_PAUSE, LONGEST_PAUSE = 0.5, 30.0
# A partition held longer than this makes the readiness check fail (with what and why).
HELD_TOO_LONG = 30.0


@dataclass
class Held:
    """A partition held at the event whose handling failed, until it is tried again."""

    offset: int
    event: str  # its type, or "record" if it was not decoded
    error: str = ""
    since: float = field(default_factory=time.monotonic)
    attempts: int = 0
    retry_at: float = 0.0  # monotonic

    def failed(self, error: str) -> None:
        """One more failed attempt: the next one after a pause that doubles each time."""
        self.attempts += 1
        self.error = error
        self.retry_at = time.monotonic() + min(FIRST_PAUSE * 2 ** (self.attempts - 1), LONGEST_PAUSE)


@dataclass
class Stopped:
    """Where handling a partition's records stopped: the index of the record that failed."""

    index: int
    error: Exception


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
        self._bootstrap_servers = bootstrap_servers
        self.batch_size = batch_size
        self.controls = ConsumerControls()
        self.held: dict[TopicPartition, Held] = {}
        self.restarts, self._failures_in_a_row = 0, 0
        self._failure: str | None = None  # why the loop stopped, until it reads again
        self._consumer = self._kafka_consumer()
        # Declared with the first consumer (a process without one shows neither), every
        # reason at 0 from the start so a dashboard has a series before the first dead letter.
        self._lag = gauge("concerto_consumer_lag_messages", "Messages on a partition the group has not consumed yet", ["group", "topic", "partition"])
        self._dead_letters = counter("concerto_dead_letters", "Events parked on the group's dead-letter topic", ["group", "reason"])
        for reason in ("undecodable", "rejected"):
            self._dead_letters.labels(group_id, reason)

    def _kafka_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,  # we commit after our own database commit
            auto_offset_reset="earliest",
        )

    def problem(self) -> str | None:
        """What the readiness check should report: a loop waiting to start again, or a
        partition held for long; None when all is well."""
        if self._failure:
            return f"consumer {self.group_id} failed and starts again shortly: {self._failure}"
        now = time.monotonic()
        for partition, held in self.held.items():
            if now - held.since > HELD_TOO_LONG:
                return (
                    f"consumer {self.group_id} has held {partition.topic}[{partition.partition}] at offset {held.offset} "
                    f"({held.event}) for {now - held.since:.0f} s, {held.attempts} attempts: {held.error}"
                )
        return None

    @property
    def assigned(self) -> bool:
        return bool(self._consumer.assignment())

    async def watermark(self) -> datetime:
        """Every event published before this moment has been handled by the group, whichever
        instance holds its partition (as far as the broker's timestamps tell): now, if the
        group has committed every partition of its topics to the end; else the time of the last
        record it committed on the partition furthest behind. Read from the broker, not from this
        instance, so another replica's held or lagging partition holds the mark back too."""
        now = datetime.now(timezone.utc)
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap_servers)
        reader = AIOKafkaConsumer(bootstrap_servers=self._bootstrap_servers, group_id=None, enable_auto_commit=False)
        await admin.start()
        await reader.start()
        try:
            partitions = [
                TopicPartition(topic["topic"], p["partition"]) for topic in await admin.describe_topics(self.topics) for p in topic["partitions"]
            ]
            if not partitions:
                return NEVER
            committed = await admin.list_consumer_group_offsets(self.group_id, partitions=partitions)
            firsts, ends = await reader.beginning_offsets(partitions), await reader.end_offsets(partitions)
            mark = now
            for partition in partitions:
                done = committed.get(partition)
                position = done.offset if done is not None and done.offset >= 0 else firsts[partition]
                if position >= ends[partition]:
                    continue  # committed to its end
                mark = min(mark, await _published_at(reader, partition, position - 1) if position > firsts[partition] else NEVER)
            return mark
        finally:
            await reader.stop()
            await admin.close()

    async def measure(self) -> None:
        """The lag of each partition this instance holds, for /metrics: the broker's end offset
        (asked afresh: a paused partition is not fetched, so the local high-water mark would
        stand still) less the group's position."""
        assigned = sorted(self._consumer.assignment())
        ends = await self._consumer.end_offsets(assigned) if assigned else {}
        self._lag.clear()  # partitions another instance now holds are its to report
        for partition in assigned:
            behind = ends[partition] - await self._consumer.position(partition)
            self._lag.labels(self.group_id, partition.topic, str(partition.partition)).set(max(behind, 0))

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
            self._consumer.resume(*(partition for partition in assigned if partition not in self.held))

    async def run(self) -> None:
        """Reads until cancelled; a failed loop starts again with a new Kafka consumer after a
        pause (2, 4, ... 30 s). Records read but not committed come again; the inbox makes that
        harmless."""
        while True:
            try:
                await self._consume()
            except Exception as exc:  # whatever stopped the loop, it must not stay stopped
                self._failures_in_a_row += 1
                pause = min(2.0**self._failures_in_a_row, LONGEST_PAUSE)
                self._failure, self.restarts = f"{type(exc).__name__}: {exc}", self.restarts + 1
                log.exception("consumer %s failed; starting it again in %.0f s", self.group_id, pause)
                await asyncio.sleep(pause)
                self._consumer, self.held = self._kafka_consumer(), {}

    async def _consume(self) -> None:
        self._consumer.subscribe(self.topics, listener=_KeepControls(self))
        await self._consumer.start()
        try:
            while True:
                self._resume_due()
                batches = await self._consumer.getmany(timeout_ms=1000, max_records=self.batch_size)
                if self._failure is not None:
                    log.warning("consumer %s is reading again", self.group_id)
                    self._failure, self._failures_in_a_row = None, 0
                handled = {}
                for partition, records in batches.items():
                    if self.controls.paused or partition in self.held and self.held[partition].retry_at > time.monotonic():
                        # Paused (or held) meanwhile: these records wait.
                        self._consumer.seek(partition, records[0].offset)
                        continue
                    stopped = await self.process_batch(records)
                    done = records if stopped is None else records[: stopped.index]
                    if done:
                        handled[partition] = done[-1].offset + 1
                    if stopped is None:
                        self._release(partition)
                    else:
                        self._hold(partition, records[stopped.index], stopped.error)
                if handled:
                    # One commit per batch, not per record. A crash before it hands the batch
                    # out again; the inbox makes a second delivery change nothing.
                    await self._consumer.commit(handled)
        finally:
            await self._consumer.stop()

    def _hold(self, partition: TopicPartition, record: ConsumerRecord, error: Exception) -> None:
        """Stop reading the partition at the record that failed; it is read again later."""
        description = f"{type(error).__name__}: {error}"
        held = self.held.get(partition)
        if held is None or held.offset != record.offset:
            held = self.held[partition] = Held(record.offset, _announced_type(record) or "record")
        held.failed(description)
        if held.attempts == 1:
            log.warning("holding %s[%s] at %s (%s): %s", record.topic, record.partition, record.offset, held.event, description, exc_info=error)
        else:
            log.warning("%s at %s[%s]@%s failed again (attempt %s): %s", held.event, record.topic, record.partition, record.offset, held.attempts, description)
        self._consumer.seek(partition, record.offset)
        self._consumer.pause(partition)

    def _release(self, partition: TopicPartition) -> None:
        held = self.held.pop(partition, None)
        if held is not None:
            log.warning("%s at %s@%s handled after %s attempts", held.event, partition, held.offset, held.attempts + 1)

    def _resume_due(self) -> None:
        """Read held partitions again once their pause is over (unless the consumer is paused)."""
        if self.controls.paused:
            return
        now = time.monotonic()
        due = [partition for partition, held in self.held.items() if held.retry_at <= now]
        if due:
            self._consumer.resume(*due)

    async def process_batch(self, records: list[ConsumerRecord]) -> Stopped | None:
        """A partition's records, handled in one transaction: one inbox look-up and one commit
        for all of them; under load batches grow and the cost per event falls. If one of them
        fails, the transaction rolls back and the records are handled one at a time. Returns
        None when every record is handled (or dead-lettered), else where it stopped."""
        prepared = [(record, self._prepare(record)) for record in records]
        work = [(record, *item) for record, item in prepared if isinstance(item, tuple)]
        if len(work) < 2 or any(isinstance(item, UndecodableEvent) for _, item in prepared):
            # Nothing to share, or a dead letter to write: the careful way, one at a time.
            return await self._one_at_a_time(prepared)
        current = 0
        try:
            async with self._sessions() as session, session.begin():
                seen = set(
                    await session.scalars(_SEEN_OF, {"group": self.group_id, "event_ids": [envelope.id for _, envelope, _ in work]})
                )
                for current, (_, envelope, handler) in enumerate(work):
                    if envelope.id not in seen:
                        seen.add(envelope.id)
                        await self._apply(envelope, handler, session)
            return None
        except Exception:
            log.warning("%s %s failed in a batch: handling the batch one at a time", work[current][1].type, work[current][1].id)
        return await self._one_at_a_time(prepared)

    async def _one_at_a_time(self, prepared: list[tuple[ConsumerRecord, tuple[Envelope, Handler] | UndecodableEvent | None]]) -> Stopped | None:
        for index, (record, item) in enumerate(prepared):
            try:
                await self._handle(record, item)
            except Exception as exc:
                return Stopped(index, exc)
        return None

    async def _handle(self, record: ConsumerRecord, prepared: tuple[Envelope, Handler] | UndecodableEvent | None) -> None:
        """One record on its own (what _prepare made of it). Raises what may pass on a later try."""
        if isinstance(prepared, UndecodableEvent):
            await self._dead_letter(record, reason="undecodable", error=str(prepared))
        elif prepared is not None:
            envelope, handler = prepared
            try:
                await self._handle_once(envelope, handler)
            except InvalidEvent as exc:
                await self._dead_letter(record, reason="rejected", error=f"{type(exc).__name__}: {exc}")

    def _prepare(self, record: ConsumerRecord) -> tuple[Envelope, Handler] | UndecodableEvent | None:
        """The event and its handler; None for an event this context does not react to (not
        even decoded when its type header says so); the error for one that cannot be decoded."""
        announced = _announced_type(record)
        if announced is not None and announced not in self.handlers:
            return None
        try:
            envelope = decode(record.headers, record.key, record.value)
        except UndecodableEvent as exc:
            return exc
        handler = self.handlers.get(envelope.type)
        return (envelope, handler) if handler is not None else None

    async def _handle_once(self, envelope: Envelope, handler: Handler) -> None:
        if getattr(handler, "database_first", False) and await self._recorded_first(envelope, handler):
            return
        # The look-up only reads: no write lock is taken for an event seen before, and a handler
        # that only signals a workflow holds the lock just for its inbox row, not for the call.
        async with self._read_sessions() as session:
            seen = await session.scalar(_SEEN, {"group": self.group_id, "event_id": envelope.id})
        if seen:
            log.info("duplicate %s %s ignored", envelope.type, envelope.id)
            return
        async with self._sessions() as session, session.begin():
            await self._apply(envelope, handler, session)

    async def _recorded_first(self, envelope: Envelope, handler: Handler) -> bool:
        """A database-first handler's event in one transaction: its inbox row written first (the
        look-up), then the handler. False, having done nothing, on a database with no such insert."""
        async with self._sessions() as session, session.begin():
            record_if_new = _RECORD_IF_NEW.get(session.bind.dialect.name)
            if record_if_new is None:
                return False
            row = {"consumer_group": self.group_id, "event_id": envelope.id, "event_type": envelope.type}
            if await session.scalar(record_if_new, row) is None:
                log.info("duplicate %s %s ignored", envelope.type, envelope.id)
            else:
                await self._apply(envelope, handler, session, recorded=True)
        return True

    async def _apply(self, envelope: Envelope, handler: Handler, session: AsyncSession, *, recorded: bool = False) -> None:
        """Runs the handler in the caller's transaction, in the event's trace and log context,
        and records the event in the inbox with it (unless its row is `recorded` already)."""
        if {envelope.type, type(envelope.event).__name__} & set(self.controls.fail_event_types):
            raise InjectedFault(f"{type(envelope.event).__name__} is set to fail in the consumer controls")
        with consuming(envelope, self.group_id), bind(correlation_id=envelope.correlation_id, order_id=envelope.key):
            await handler(envelope, session)
        if recorded:
            return
        # A concurrent delivery of the same event fails this primary key and rolls back;
        # the retry then finds the event in the inbox.
        await session.execute(_RECORD, {"consumer_group": self.group_id, "event_id": envelope.id, "event_type": envelope.type})

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
        self._dead_letters.labels(self.group_id, reason).inc()


NEVER = datetime.min.replace(tzinfo=timezone.utc)


async def _published_at(reader: AIOKafkaConsumer, partition: TopicPartition, offset: int) -> datetime:
    """When the record at `offset` was published (the broker's timestamp); NEVER if it is gone."""
    reader.assign([partition])
    reader.seek(partition, offset)
    batches = await reader.getmany(partition, timeout_ms=2000, max_records=1)
    records = batches.get(partition, [])
    if not records or records[0].offset != offset:
        return NEVER
    return datetime.fromtimestamp(records[0].timestamp / 1000, timezone.utc)


def _announced_type(record: ConsumerRecord) -> str | None:
    """The event type its `ce_type` header names, read without decoding the record."""
    announced = next((value for name, value in record.headers or () if name == "ce_type"), None)
    return announced.decode(errors="replace") if announced is not None else None


class _KeepControls(ConsumerRebalanceListener):
    """Partitions assigned after a rebalance start paused too, while the consumer is paused;
    a partition handed to another member is no longer held here (it reads from the last commit)."""

    def __init__(self, consumer: EventConsumer) -> None:
        self._owner = consumer

    async def on_partitions_revoked(self, revoked) -> None:
        for partition in revoked:
            self._owner.held.pop(partition, None)

    async def on_partitions_assigned(self, assigned) -> None:
        self._owner._apply_pause()
