"""The consuming side against the real broker: outbox -> Kafka -> EventConsumer, the inbox,
duplicates, the dead-letter topic, held partitions, a loop that starts again, and when offsets
are committed."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError
from sqlalchemy import select, update

from concerto_contracts import Topics
from concerto_contracts.events import OrderCancelled
from concerto_messaging import InvalidEvent, OutboxRelay, UnitOfWork
from concerto_messaging.tables import inbox, outbox
from concerto_runtime.testing import eventually

pytestmark = pytest.mark.integration

DEADLINE = 20  # seconds, for anything that crosses the broker


async def _applied(db, helpers, event_id: str) -> int:
    return await db.count(helpers.applied, helpers.applied.c.event_id == event_id)


async def _wait_applied(db, helpers, event_id: str, what: str = "the event to be applied") -> None:
    await eventually(lambda: _applied(db, helpers, event_id), timeout=DEADLINE, interval=0.05, what=what)


async def _wait_committed(kafka, group: str, topic: str, count: int) -> None:
    async def committed():
        return await kafka.committed(group, topic) == count

    await eventually(committed, timeout=DEADLINE, interval=0.1, what=f"{group} to commit {count} offsets on {topic}")


def _ce_id(record) -> str:
    return dict(record.headers)["ce_id"].decode()


# --- (c) outbox -> Kafka -> consumer ------------------------------------------------------


async def test_outbox_to_kafka_to_consumer_commits_handler_write_with_inbox_row(
    sessions, db, kafka, producer, order_topic, consumers, helpers
):
    group = helpers.unique("group")
    calls = []
    consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)})

    order_id = helpers.unique("ord")
    async with UnitOfWork(sessions, helpers.SOURCE) as uow:
        event_id = uow.publish(helpers.cancelled(order_id), correlation_id="corr-c", causation_id="cause-c")
        await uow.commit()
    assert await OutboxRelay(sessions, producer).publish_pending() == 1

    await _wait_applied(db, helpers, event_id)
    applied = helpers.applied.c
    assert await db.rows(select(applied.event_id, applied.event_type, applied.order_id, applied.correlation_id, applied.causation_id)) == [
        (event_id, "concerto.order.OrderCancelled.v1", order_id, "corr-c", "cause-c")
    ]
    assert await db.rows(select(inbox.c.consumer_group, inbox.c.event_id, inbox.c.event_type)) == [
        (group, event_id, "concerto.order.OrderCancelled.v1")
    ]
    [envelope] = calls
    assert envelope.event == helpers.cancelled(order_id)
    assert envelope.source == helpers.SOURCE
    await _wait_committed(kafka, group, order_topic, 1)
    consumers.check_running()


async def test_a_failed_attempt_rolls_back_the_handlers_write_and_the_retry_applies_it_once(
    db, kafka, order_topic, consumers, helpers
):
    group = helpers.unique("group")
    calls = []

    async def fail_first_attempt(envelope):
        if len(calls) == 1:
            raise ConnectionError("database hiccup")  # after the handler has written its row

    consumers.start(
        group_id=group,
        topics=[order_topic],
        handlers={OrderCancelled: helpers.recording_handler(calls, before=fail_first_attempt)},
    )
    record = helpers.encode(helpers.cancelled())
    await kafka.send(record)
    event_id = dict(record.headers)["ce_id"].decode()

    await _wait_applied(db, helpers, event_id)
    await _wait_committed(kafka, group, order_topic, 1)
    assert len(calls) == 2
    assert await _applied(db, helpers, event_id) == 1, "the first attempt's write must have been rolled back"
    assert await db.count(inbox, inbox.c.event_id == event_id) == 1
    assert await kafka.read_all(Topics.dead_letter(group)) == []


# --- (d) duplicates ------------------------------------------------------------------------


async def test_the_same_event_delivered_twice_is_applied_once(db, kafka, order_topic, consumers, helpers):
    group = helpers.unique("group")
    calls = []
    consumer = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)})

    order_id = helpers.unique("ord")
    twice = helpers.encode(helpers.cancelled(order_id))
    first = await kafka.send(twice)
    second = await kafka.send(twice)
    assert (first.partition, first.offset + 1) == (second.partition, second.offset)  # two real records
    sentinel = helpers.encode(helpers.cancelled(order_id, reason="sentinel"))
    await kafka.send(sentinel)

    await _wait_applied(db, helpers, _ce_id(sentinel), what="the event after the duplicate")
    assert [_ce_id(r) for r in consumer.delivered] == [_ce_id(twice), _ce_id(twice), _ce_id(sentinel)]
    assert await _applied(db, helpers, _ce_id(twice)) == 1
    assert await db.count(helpers.applied) == 2
    assert await db.count(inbox, inbox.c.consumer_group == group) == 2
    assert [c.id for c in calls] == [_ce_id(twice), _ce_id(sentinel)]
    await _wait_committed(kafka, group, order_topic, 3)


async def test_a_row_the_relay_publishes_again_is_applied_once(sessions, db, kafka, producer, order_topic, consumers, helpers):
    group = helpers.unique("group")
    calls = []
    consumer = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)})

    async with UnitOfWork(sessions, helpers.SOURCE) as uow:
        event_id = uow.publish(helpers.cancelled(), correlation_id="corr-d")
        await uow.commit()
    relay = OutboxRelay(sessions, producer)
    assert await relay.publish_pending() == 1
    # The relay crashed after Kafka acknowledged the send but before it marked the row.
    async with sessions.begin() as session:
        await session.execute(update(outbox).values(published_at=None))
    assert await relay.publish_pending() == 1

    await eventually(lambda: _delivered(consumer, 2), timeout=DEADLINE, interval=0.05, what="both copies to arrive")
    await _wait_committed(kafka, group, order_topic, 2)
    assert [_ce_id(r) for r in consumer.delivered] == [event_id, event_id]
    assert await _applied(db, helpers, event_id) == 1
    assert len(calls) == 1


async def _delivered(consumer, n: int) -> bool:
    return len(consumer.delivered) >= n


# --- (e) malformed messages ----------------------------------------------------------------


async def test_malformed_messages_are_dead_lettered_and_the_next_event_is_processed(db, kafka, order_topic, consumers, helpers):
    group = helpers.unique("group")
    calls = []
    consumer = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)})

    order_id = helpers.unique("ord")
    template = helpers.encode(helpers.cancelled(order_id))
    # All keyed by the order, so all in one partition, in this order.
    not_json = await kafka.send(template, value=b"not json")
    no_headers = await kafka.send(template, headers=[])
    no_value = await kafka.send(template, value=None)
    good = helpers.encode(helpers.cancelled(order_id, reason="good"))
    await kafka.send(good)

    await _wait_applied(db, helpers, _ce_id(good), what="the good event after the malformed ones")
    dead = await kafka.read_all(Topics.dead_letter(group), at_least=3)
    assert len(dead) == 3, dead
    originals = {not_json.offset: (b"not json", template.headers), no_headers.offset: (template.value, []), no_value.offset: (None, template.headers)}
    for record in dead:
        headers = dict(record.headers)
        offset = int(headers["dlq_original_offset"])
        value, original_headers = originals.pop(offset)
        assert record.value == value
        assert record.key == order_id.encode()
        assert headers["dlq_reason"] == b"undecodable"
        assert headers["dlq_error"], "the error must say why"
        assert headers["dlq_consumer_group"] == group.encode()
        assert headers["dlq_original_topic"] == order_topic.encode()
        assert int(headers["dlq_original_partition"]) == not_json.partition
        # The original headers travel along, so the message can be inspected and replayed.
        assert [(k, v) for k, v in record.headers if not k.startswith("dlq_")] == list(original_headers)
    assert not originals
    assert b"not a binary-mode CloudEvent" in dict(next(r for r in dead if not any(k.startswith("ce_") for k, _ in r.headers)).headers)["dlq_error"]

    assert [c.id for c in calls] == [_ce_id(good)]
    assert await db.rows(select(inbox.c.event_id)) == [(_ce_id(good),)]
    assert len(consumer.delivered) == 4
    await _wait_committed(kafka, group, order_topic, 4)
    consumers.check_running()


# --- (f) failing handlers: rejected events are dead-lettered, anything else waits -----------


async def test_an_event_its_handler_rejects_is_dead_lettered_at_once_and_the_consumer_goes_on(
    db, kafka, order_topic, consumers, helpers
):
    group = helpers.unique("group")
    calls = []

    async def reject(envelope):
        if envelope.event.reason == "nonsense":
            raise InvalidEvent("no such cancellation reason")

    consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls, before=reject)})
    order_id = helpers.unique("ord")
    bad = helpers.encode(helpers.cancelled(order_id, reason="nonsense"))
    bad_meta = await kafka.send(bad)
    [dead] = await kafka.read_all(Topics.dead_letter(group), at_least=1)
    good = helpers.encode(helpers.cancelled(order_id, reason="fine"))
    await kafka.send(good)

    await _wait_applied(db, helpers, _ce_id(good), what="the event after the rejected one")
    assert [c.id for c in calls] == [_ce_id(bad), _ce_id(good)], "a rejected event is not tried again"
    # The rejected attempt rolled back: no write from the handler, no inbox row.
    assert await _applied(db, helpers, _ce_id(bad)) == 0
    assert await db.count(inbox, inbox.c.event_id == _ce_id(bad)) == 0
    headers = dict(dead.headers)
    assert headers["dlq_reason"] == b"rejected"
    assert headers["dlq_error"] == b"InvalidEvent: no such cancellation reason"
    assert headers["dlq_original_topic"] == order_topic.encode()
    assert (int(headers["dlq_original_partition"]), int(headers["dlq_original_offset"])) == (bad_meta.partition, bad_meta.offset)
    assert headers["ce_id"] == _ce_id(bad).encode()
    assert (dead.key, dead.value) == (bad.key, bad.value)
    await _wait_committed(kafka, group, order_topic, 2)
    consumers.check_running()


async def test_a_failing_handler_holds_its_partition_until_it_succeeds_while_the_others_go_on(
    db, kafka, order_topic, consumers, helpers
):
    """A failure that may pass (a database or Temporal away, a bug about to be fixed) is never
    dead-lettered: the partition waits at that event and tries it again, for as long as it
    takes; the events behind it wait too (one order's events stay in order); other partitions
    are not held up."""
    group = helpers.unique("group")
    calls = []
    away = asyncio.Event()
    away.set()

    async def depends_on_something_away(envelope):
        if envelope.event.reason == "stuck" and away.is_set():
            raise ConnectionError("the database is away")

    consumer = consumers.start(
        group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls, before=depends_on_something_away)}
    )
    order_id = helpers.unique("ord")
    stuck, behind = (helpers.encode(helpers.cancelled(order_id, reason=reason)) for reason in ("stuck", "behind"))
    stuck_meta = await kafka.send(stuck)
    await kafka.send(behind)
    others = [helpers.encode(helpers.cancelled(helpers.unique("ord"), reason="other")) for _ in range(8)]
    elsewhere = [record for record in others if (await kafka.send(record)).partition != stuck_meta.partition]
    assert elsewhere, "with 3 partitions, some of 8 orders land on another one"

    async def tried_again() -> bool:
        held = consumer.held.get(TopicPartition(order_topic, stuck_meta.partition))
        return held is not None and held.attempts >= 3

    await eventually(tried_again, timeout=DEADLINE, what="the failing event to be tried again, its partition held")
    for record in elsewhere:
        await _wait_applied(db, helpers, _ce_id(record), what="an event on another partition, while one is held")
    assert await _applied(db, helpers, _ce_id(behind)) == 0, "the event behind the failing one waits for it"
    held = consumer.held[TopicPartition(order_topic, stuck_meta.partition)]
    assert (held.offset, held.event, held.error) == (stuck_meta.offset, "concerto.order.OrderCancelled.v1", "ConnectionError: the database is away")

    away.clear()  # the database is back
    await _wait_applied(db, helpers, _ce_id(behind), what="the held partition to go on once the failure has passed")
    assert await _applied(db, helpers, _ce_id(stuck)) == 1
    assert [c.id for c in calls if c.id in (_ce_id(stuck), _ce_id(behind))][-2:] == [_ce_id(stuck), _ce_id(behind)]
    assert consumer.held == {} and consumer.problem() is None
    assert await kafka.read_all(Topics.dead_letter(group)) == []
    await _wait_committed(kafka, group, order_topic, 2 + len(others))
    consumers.check_running()


async def test_a_batch_with_a_rejected_event_applies_the_others_once_and_dead_letters_that_one(
    db, kafka, order_topic, consumers, helpers
):
    """Records that arrive together are handled in one transaction. One that fails rolls the
    batch back; then each record is handled alone."""
    group = helpers.unique("group")
    calls = []

    async def reject(envelope):
        if envelope.event.reason == "nonsense":
            raise InvalidEvent("no such cancellation reason")

    order_id = helpers.unique("ord")
    first, bad, last = (helpers.encode(helpers.cancelled(order_id, reason=reason)) for reason in ("first", "nonsense", "last"))
    for record in (first, bad, last):
        await kafka.send(record)  # all on the broker before the consumer starts: one batch
    consumer = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls, before=reject)})

    await _wait_applied(db, helpers, _ce_id(last), what="the event after the rejected one")
    [dead] = await kafka.read_all(Topics.dead_letter(group), at_least=1)
    assert consumer.batches[0] == 3, consumer.batches
    assert dict(dead.headers)["ce_id"] == _ce_id(bad).encode()
    assert [c.id for c in calls].count(_ce_id(bad)) == 2  # in the batch, then alone
    for event in (first, last):
        assert await _applied(db, helpers, _ce_id(event)) == 1
        assert await db.count(inbox, inbox.c.event_id == _ce_id(event)) == 1
    assert await _applied(db, helpers, _ce_id(bad)) == 0
    await _wait_committed(kafka, group, order_topic, 3)
    consumers.check_running()


async def test_a_consumer_whose_loop_fails_starts_again_and_says_so_meanwhile(db, kafka, order_topic, consumers, helpers):
    """An offset commit refused (as after a rebalance) used to end the consumer's task for
    good while the service stayed up. Now the loop starts again with a new Kafka consumer,
    reports the failure until it reads again, and the event is handled once."""
    group = helpers.unique("group")
    calls = []
    consumer = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)})
    refused = []
    real_commit = consumer._consumer.commit

    async def refuse_once(offsets):  # the fault is injected; the broker and the retry are real
        if not refused:
            refused.append(offsets)
            raise CommitFailedError("the group rebalanced")
        await real_commit(offsets)

    consumer._consumer.commit = refuse_once
    record = helpers.encode(helpers.cancelled())
    await kafka.send(record)

    await eventually(lambda: _true(consumer.restarts == 1), timeout=DEADLINE, what="the loop to start again")
    assert "CommitFailedError" in (consumer.problem() or ""), "the health check says why, while it waits"
    await _wait_committed(kafka, group, order_topic, 1)
    assert consumer.problem() is None
    assert await _applied(db, helpers, _ce_id(record)) == 1, "delivered again after the restart, applied once"
    assert await db.count(inbox, inbox.c.event_id == _ce_id(record)) == 1
    consumers.check_running()


async def _true(value: bool) -> bool:
    return value


async def test_an_event_type_the_group_does_not_handle_is_skipped_undecoded(db, kafka, order_topic, consumers, helpers):
    """Its type header is enough: even an unreadable body is not dead-lettered, while an
    unreadable record of a type the group handles is."""
    group = helpers.unique("group")
    calls = []
    consumer = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)})
    order_id = helpers.unique("ord")
    template = helpers.encode(helpers.cancelled(order_id))
    other_type = [(k, b"concerto.order.OrderCompleted.v1" if k == "ce_type" else v) for k, v in template.headers]
    await kafka.send(template, value=b"not json", headers=other_type)
    handled_type = await kafka.send(template, value=b"not json")
    good = helpers.encode(helpers.cancelled(order_id, reason="good"))
    await kafka.send(good)

    await _wait_applied(db, helpers, _ce_id(good))
    [dead] = await kafka.read_all(Topics.dead_letter(group), at_least=1)
    assert int(dict(dead.headers)["dlq_original_offset"]) == handled_type.offset
    assert [c.id for c in calls] == [_ce_id(good)]
    assert len(consumer.delivered) == 3
    await _wait_committed(kafka, group, order_topic, 3)


# --- (g) offsets are committed only after processing ---------------------------------------


async def test_a_restarted_consumer_does_not_rehandle_processed_events(db, kafka, order_topic, consumers, helpers):
    group = helpers.unique("group")
    calls = []
    handlers = {OrderCancelled: helpers.recording_handler(calls)}
    first = consumers.start(group_id=group, topics=[order_topic], handlers=handlers)
    processed = [helpers.encode(helpers.cancelled()) for _ in range(4)]  # spread over partitions
    for record in processed:
        await kafka.send(record)
    for record in processed:
        await _wait_applied(db, helpers, _ce_id(record))
    await _wait_committed(kafka, group, order_topic, 4)
    await consumers.stop(first)
    inbox_before = await db.rows(select(inbox.c.event_id).order_by(inbox.c.event_id))
    assert len(inbox_before) == 4

    second = consumers.start(group_id=group, topics=[order_topic], handlers=handlers)
    later = helpers.encode(helpers.cancelled())
    await kafka.send(later)
    await _wait_applied(db, helpers, _ce_id(later))

    # Kafka redelivered nothing it had already handed over: only the new event reached the
    # restarted consumer, and nothing was handled twice.
    assert [_ce_id(r) for r in second.delivered] == [_ce_id(later)]
    assert sorted(c.id for c in calls) == sorted(_ce_id(r) for r in [*processed, later])
    assert await db.count(helpers.applied) == 5
    assert await db.rows(select(inbox.c.event_id).where(inbox.c.event_id != _ce_id(later)).order_by(inbox.c.event_id)) == inbox_before
    await _wait_committed(kafka, group, order_topic, 5)


async def test_an_event_in_flight_when_the_consumer_stops_is_delivered_again(db, kafka, order_topic, consumers, helpers):
    group = helpers.unique("group")
    calls = []
    entered = asyncio.Event()
    never = asyncio.Event()

    async def hang(envelope):
        entered.set()
        await never.wait()  # the process is stopped in the middle of the handler

    first = consumers.start(
        group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls, before=hang)}
    )
    record = helpers.encode(helpers.cancelled())
    await kafka.send(record)
    await asyncio.wait_for(entered.wait(), timeout=DEADLINE)
    # (No database reads while the handler holds its transaction open.)
    await consumers.stop(first, timeout=10)
    assert len(calls) == 1, "cancellation must stop the consumer, not retry the handler"
    assert await kafka.committed(group, order_topic) == 0, "nothing may be committed before the handler finished"
    assert await _applied(db, helpers, _ce_id(record)) == 0
    assert await db.count(inbox) == 0

    again = []
    second = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(again)})
    await _wait_applied(db, helpers, _ce_id(record), what="the interrupted event to be redelivered")
    await _wait_committed(kafka, group, order_topic, 1)
    assert [_ce_id(r) for r in second.delivered] == [_ce_id(record)]
    assert [c.id for c in again] == [_ce_id(record)]
    assert await _applied(db, helpers, _ce_id(record)) == 1
    assert await db.count(inbox, inbox.c.consumer_group == group) == 1
