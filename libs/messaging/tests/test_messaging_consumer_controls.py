"""The consumer controls against the real broker: a paused consumer reads nothing (and its
watermark stays behind what it has not read), a resumed one catches up; an event type set to
fail goes to the dead-letter topic like any handler that keeps failing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY

from concerto_contracts import Topics
from concerto_contracts.events import OrderCancelled
from concerto_contracts.http import ConsumerControls
from concerto_runtime.testing import eventually

pytestmark = pytest.mark.integration

DEADLINE = 20  # seconds, for anything that crosses the broker


async def test_a_paused_consumer_reads_nothing_and_its_watermark_waits_until_it_is_resumed(
    db, kafka, order_topic, consumers, helpers
):
    calls = []
    consumer = consumers.start(
        group_id=helpers.unique("group"), topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)}
    )
    await eventually(lambda: _true(consumer.assigned), timeout=DEADLINE, what="partitions to be assigned")
    await kafka.send(helpers.encode(helpers.cancelled()), order_topic)
    await eventually(lambda: _true(len(calls) == 1), timeout=DEADLINE, what="the first event to be handled")

    async def read_to_the_end() -> bool:  # handled and committed: "now"
        return await consumer.watermark() > datetime.now(timezone.utc) - timedelta(seconds=5)

    await eventually(read_to_the_end, timeout=DEADLINE, what="the watermark to reach now once the group has committed")

    consumer.set_controls(ConsumerControls(paused=True))
    before_send = datetime.now(timezone.utc)
    await kafka.send(helpers.encode(helpers.cancelled()), order_topic)

    async def behind() -> bool:  # the broker has the record, the consumer has not read it
        return await consumer.watermark() < before_send

    await eventually(behind, timeout=DEADLINE, what="the watermark to stay behind the unread record")
    assert len(calls) == 1 and consumer.controls.paused

    consumer.set_controls(ConsumerControls())
    await eventually(lambda: _true(len(calls) == 2), timeout=DEADLINE, what="the resumed consumer to catch up")

    async def caught_up_again() -> bool:
        return await consumer.watermark() >= before_send

    await eventually(caught_up_again, timeout=DEADLINE, what="the watermark to pass the record once it is read")
    consumers.check_running()


async def test_an_event_type_set_to_fail_is_rejected_to_the_dead_letter_topic_and_the_consumer_goes_on(
    db, kafka, order_topic, consumers, helpers
):
    calls = []
    group = helpers.unique("group")
    consumer = consumers.start(
        group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)}
    )
    consumer.set_controls(ConsumerControls(fail_event_types=["OrderCancelled"]))
    await kafka.send(helpers.encode(helpers.cancelled()), order_topic)

    [dead] = await kafka.read_all(Topics.dead_letter(group), at_least=1, timeout=DEADLINE)
    headers = dict(dead.headers)
    assert headers["dlq_reason"] == b"rejected"
    assert b"InjectedFault" in headers["dlq_error"]
    assert await db.count(helpers.applied) == 0  # the rejected attempt rolled back

    consumer.set_controls(ConsumerControls())
    await kafka.send(helpers.encode(helpers.cancelled()), order_topic)
    await eventually(lambda: _true(len(calls) == 1), timeout=DEADLINE, what="the next event to be handled")  # the failing type never reached the handler
    assert await db.count(helpers.applied) == 1
    consumers.check_running()


async def test_lag_counts_what_a_paused_consumer_has_not_read_and_dead_letters_are_counted(
    db, kafka, order_topic, consumers, helpers
):
    calls = []
    group = helpers.unique("group")
    consumer = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)})
    await eventually(lambda: _true(consumer.assigned), timeout=DEADLINE, what="partitions to be assigned")
    assert _dead_letters(group) == {"undecodable": 0, "rejected": 0}  # a series from the start

    async def lag() -> float:
        await consumer.measure()
        return sum(
            sample.value
            for metric in REGISTRY.collect()
            for sample in metric.samples
            if sample.name == "concerto_consumer_lag_messages" and sample.labels["group"] == group
        )

    consumer.set_controls(ConsumerControls(paused=True))
    for _ in range(3):
        await kafka.send(helpers.encode(helpers.cancelled()), order_topic)
    # The broker's end offsets, asked afresh: a paused partition's own high-water mark stands still.
    await eventually(lambda: _equals(lag(), 3), timeout=DEADLINE, what="a lag of the three unread events")

    consumer.set_controls(ConsumerControls(fail_event_types=["OrderCancelled"]))
    await eventually(lambda: _equals(lag(), 0), timeout=DEADLINE, what="the lag to fall to 0 once read")
    assert _dead_letters(group) == {"undecodable": 0, "rejected": 3} and calls == []
    consumers.check_running()


def _dead_letters(group: str) -> dict[str, float]:
    return {
        reason: REGISTRY.get_sample_value("concerto_dead_letters_total", {"group": group, "reason": reason})
        for reason in ("undecodable", "rejected")
    }


async def _equals(value, expected) -> bool:
    return (await value) == expected


async def _true(value: bool) -> bool:
    return value


async def test_the_watermark_is_the_groups_another_instances_held_partition_holds_it_back(db, kafka, order_topic, consumers, helpers):
    """Issue 18: two instances of one group (two monitor replicas). One holds a partition at an
    event its handler keeps failing on; the other has read its own partitions to the end. Asked
    on the healthy instance, the watermark must stay behind the held event (a deadline after it
    has not passed: that event may be the one the saga waits for), and pass it once it is handled."""
    group, holding, calls = helpers.unique("group"), {"on": True}, []

    async def fail_while_holding(envelope) -> None:
        if holding["on"]:
            raise RuntimeError("the database of this instance is away")

    held_instance = consumers.start(
        group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler([], before=fail_while_holding)}
    )
    healthy = consumers.start(group_id=group, topics=[order_topic], handlers={OrderCancelled: helpers.recording_handler(calls)})

    async def shared_out() -> bool:
        mine, theirs = held_instance._consumer.assignment(), healthy._consumer.assignment()
        return bool(mine) and bool(theirs) and len(mine | theirs) == 3

    await eventually(shared_out, timeout=DEADLINE, what="the two instances to share the three partitions")
    [held_partition, *_] = sorted(held_instance._consumer.assignment())
    healthy_partitions = sorted(healthy._consumer.assignment())
    for partition in healthy_partitions:
        await kafka.send(helpers.encode(helpers.cancelled()), order_topic, partition=partition.partition)
    held_at = await kafka.send(helpers.encode(helpers.cancelled()), order_topic, partition=held_partition.partition)
    published = datetime.fromtimestamp(held_at.timestamp / 1000, timezone.utc)

    await eventually(lambda: _true(len(calls) == len(healthy_partitions)), timeout=DEADLINE, what="the healthy instance to handle its events")
    await eventually(lambda: _true(held_partition in held_instance.held), timeout=DEADLINE, what="the other instance to hold its partition")
    assert await healthy.watermark() < published, "a partition held by another instance must hold the group's watermark back"

    holding["on"] = False

    async def passed() -> bool:
        return await healthy.watermark() > published

    await eventually(passed, timeout=DEADLINE, what="the watermark to pass the event once the other instance handled it")
    consumers.check_running()
