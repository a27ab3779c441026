"""The producing side: UnitOfWork writes the outbox with the state change; OutboxRelay
publishes it to the real Kafka broker as binary-mode CloudEvents, sets aside a row that keeps
failing, and shares the outbox with another relay; housekeeping prunes what is done with."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import insert, select, update

from concerto_contracts import decode
from concerto_contracts.events import OrderCancelled
from concerto_messaging import OutboxRelay, UnitOfWork
from concerto_messaging.housekeeping import prune
from concerto_messaging.tables import inbox, outbox
from concerto_runtime.testing import eventually


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def _place(sessions, helpers, order_id: str, *, commit: bool, published: asyncio.Event | None = None):
    """One unit of work: the order's state change plus the event announcing it."""
    async with UnitOfWork(sessions, helpers.SOURCE, published) as uow:
        await uow.session.execute(insert(helpers.orders).values(order_id=order_id, status="CANCELLED"))
        event_id = uow.publish(helpers.cancelled(order_id), correlation_id="corr-1", causation_id="cause-1")
        if commit:
            await uow.commit()
    return event_id


async def test_commit_writes_the_outbox_row_with_the_state_change(sessions, db, helpers):
    order_id = helpers.unique("ord")
    published = asyncio.Event()

    event_id = await _place(sessions, helpers, order_id, commit=True, published=published)

    assert published.is_set(), "commit() should wake the relay"
    assert await db.rows(select(helpers.orders.c.order_id, helpers.orders.c.status)) == [(order_id, "CANCELLED")]
    [row] = await db.rows(select(outbox))
    assert row.event_id == event_id
    assert row.event_type == "concerto.order.OrderCancelled.v1"
    assert row.topic == OrderCancelled.topic
    assert row.key == order_id.encode()
    assert row.published_at is None
    assert row.created_at is not None
    assert row.headers["ce_id"] == event_id
    assert row.headers["ce_correlationid"] == "corr-1"
    assert row.headers["ce_causationid"] == "cause-1"
    assert row.headers["ce_source"] == helpers.SOURCE
    # The row holds exactly what goes on the wire: it decodes back to the event.
    envelope = decode([(k, v.encode()) for k, v in row.headers.items()], row.key, row.value)
    assert envelope.id == event_id
    assert envelope.event == helpers.cancelled(order_id)


@pytest.mark.parametrize("how", ["no-commit", "exception"])
async def test_rollback_writes_neither_state_nor_outbox(sessions, db, helpers, how):
    order_id = helpers.unique("ord")
    published = asyncio.Event()

    if how == "no-commit":
        await _place(sessions, helpers, order_id, commit=False, published=published)
    else:
        with pytest.raises(RuntimeError, match="after publishing"):
            async with UnitOfWork(sessions, helpers.SOURCE, published) as uow:
                await uow.session.execute(insert(helpers.orders).values(order_id=order_id, status="CANCELLED"))
                uow.publish(helpers.cancelled(order_id), correlation_id="corr-1")
                await uow.session.flush()
                raise RuntimeError("boom after publishing")

    assert await db.count(helpers.orders) == 0
    assert await db.count(outbox) == 0
    assert not published.is_set()


async def test_a_failed_state_change_publishes_nothing(sessions, db, helpers):
    order_id = helpers.unique("ord")
    await _place(sessions, helpers, order_id, commit=True)

    # The same order again violates the state table's primary key: its event must not be kept.
    with pytest.raises(Exception):
        async with UnitOfWork(sessions, helpers.SOURCE) as uow:
            uow.publish(helpers.cancelled(order_id), correlation_id="corr-2")
            await uow.session.execute(insert(helpers.orders).values(order_id=order_id, status="CANCELLED"))
            await uow.commit()

    assert await db.count(helpers.orders) == 1
    assert [row.headers["ce_correlationid"] for row in await db.rows(select(outbox))] == ["corr-1"]


@pytest.mark.integration
async def test_relay_publishes_binary_mode_cloudevents_and_marks_rows_published(sessions, db, kafka, producer, order_topic, helpers):
    order_ids = [helpers.unique("ord") for _ in range(3)]
    event_ids = [await _place(sessions, helpers, order_id, commit=True) for order_id in order_ids]
    relay = OutboxRelay(sessions, producer)

    assert await relay.publish_pending() == 3
    assert await relay.publish_pending() == 0  # nothing is published twice

    rows = await db.rows(select(outbox).order_by(outbox.c.id))
    assert [row.event_id for row in rows] == event_ids
    assert all(row.published_at is not None for row in rows)

    records = await kafka.read_all(order_topic, at_least=3)
    assert len(records) == 3
    by_id = {dict(r.headers)["ce_id"].decode(): r for r in records}
    assert set(by_id) == set(event_ids)
    for row in rows:
        record = by_id[row.event_id]
        headers = dict(record.headers)
        # Binary content mode: attributes as ce_ headers, content-type, JSON data as the value.
        assert all(name.startswith("ce_") or name == "content-type" for name in headers), list(headers)
        assert headers["content-type"] == b"application/json"
        assert headers["ce_specversion"] == b"1.0"
        assert headers["ce_type"] == b"concerto.order.OrderCancelled.v1"
        assert record.key == row.key
        assert record.value == row.value
        assert json.loads(record.value)["order_id"] == record.key.decode()
        envelope = decode(record.headers, record.key, record.value)
        assert envelope.key == record.key.decode()
        assert envelope.event == helpers.cancelled(record.key.decode())
        assert envelope.correlation_id == "corr-1"
        assert envelope.causation_id == "cause-1"


@pytest.mark.integration
async def test_relay_keeps_one_orders_events_in_order(sessions, kafka, producer, order_topic, helpers):
    order_id = helpers.unique("ord")
    async with UnitOfWork(sessions, helpers.SOURCE) as uow:
        ids = [uow.publish(helpers.cancelled(order_id, reason=f"step {i}"), correlation_id="c") for i in range(5)]
        await uow.commit()
    async with UnitOfWork(sessions, helpers.SOURCE) as uow:
        ids.append(uow.publish(helpers.cancelled(order_id, reason="step 5"), correlation_id="c"))
        await uow.commit()

    assert await OutboxRelay(sessions, producer, batch_size=4).publish_pending() == 4
    assert await OutboxRelay(sessions, producer, batch_size=4).publish_pending() == 2

    records = await kafka.read_all(order_topic, at_least=6)
    assert len({r.partition for r in records}) == 1, "one key, one partition"
    assert [dict(r.headers)["ce_id"].decode() for r in records] == ids
    assert [json.loads(r.value)["reason"] for r in records] == [f"step {i}" for i in range(6)]


@pytest.mark.integration
async def test_relay_run_is_woken_by_a_commit(sessions, db, kafka, producer, order_topic, helpers):
    # A poll interval far longer than the deadline: only the wake-up can publish in time.
    relay = OutboxRelay(sessions, producer, poll_interval=120)
    task = asyncio.create_task(relay.run())
    try:
        # Let run() finish its first (empty) pass and go to sleep on the wake event.
        await eventually(lambda: _idle(relay), timeout=10, interval=0.02, what="the relay to wait for work")
        order_id = helpers.unique("ord")
        event_id = await _place(sessions, helpers, order_id, commit=True, published=relay.wake)

        async def published():
            return await db.count(outbox, outbox.c.event_id == event_id, outbox.c.published_at.is_not(None))

        await eventually(published, timeout=10, interval=0.05, what="the relay to publish the committed event")
        [record] = await kafka.read_all(order_topic, at_least=1)
        assert dict(record.headers)["ce_id"] == event_id.encode()
        assert record.key == order_id.encode()
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()


async def _idle(relay: OutboxRelay) -> bool:
    # run() is idle once it awaits the wake event (it has a waiter then).
    return bool(getattr(relay.wake, "_waiters", None))


@pytest.mark.integration
async def test_a_row_that_keeps_failing_is_set_aside_and_holds_up_nothing(sessions, db, kafka, producer, order_topic, helpers):
    before = await _place(sessions, helpers, helpers.unique("ord"), commit=True)
    # Larger than the producer lets out (1 MB): refused on every attempt, by the real client.
    async with sessions() as session, session.begin():
        [template] = (await session.execute(select(outbox).where(outbox.c.event_id == before))).all()
        await session.execute(
            insert(outbox).values(event_id="too-large", event_type=template.event_type, topic=template.topic, key=template.key,
                                  value=b"x" * 2_000_000, headers=template.headers)
        )
    after = await _place(sessions, helpers, helpers.unique("ord"), commit=True)
    relay = OutboxRelay(sessions, producer, max_attempts=2)
    await relay.measure()
    assert _gauge("concerto_outbox_backlog_events") == 3 and _gauge("concerto_outbox_set_aside_events") == 0
    assert _gauge("concerto_outbox_oldest_unsent_age_seconds") >= 0

    assert await relay.publish_pending() == 2, "the rows before and after the bad one go out"
    assert await relay.publish_pending() == 0
    assert await relay.publish_pending() == 0, "set aside: no longer claimed"

    [bad] = await db.rows(select(outbox).where(outbox.c.event_id == "too-large"))
    assert (bad.attempts, bad.published_at) == (2, None)
    assert bad.set_aside_at is not None and "MessageSizeTooLarge" in bad.last_error
    assert await relay.set_aside() == 1
    # /metrics: nothing waits to go out (the bad row is not a backlog), one row needs a look.
    await relay.measure()
    assert (_gauge("concerto_outbox_backlog_events"), _gauge("concerto_outbox_oldest_unsent_age_seconds")) == (0, 0)
    assert _gauge("concerto_outbox_set_aside_events") == 1
    records = await kafka.read_all(order_topic, at_least=2)
    assert sorted(dict(r.headers)["ce_id"].decode() for r in records) == sorted([before, after])


@pytest.mark.integration
async def test_two_relays_on_one_database_publish_each_row_once(sessions, db, kafka, producer, order_topic, helpers):
    """Replicas of a service share its outbox: each relay claims rows with a lease before it
    sends them, so two relays at work at once never both publish a row."""
    event_ids = [await _place(sessions, helpers, helpers.unique("ord"), commit=True) for _ in range(30)]
    first, second = OutboxRelay(sessions, producer, batch_size=4), OutboxRelay(sessions, producer, batch_size=4)

    async def drain(relay: OutboxRelay) -> int:
        total = 0
        while published := await relay.publish_pending():
            total += published
        return total

    shares = await asyncio.gather(drain(first), drain(second))

    assert sum(shares) == 30
    records = await kafka.read_all(order_topic, at_least=30)
    assert sorted(dict(r.headers)["ce_id"].decode() for r in records) == sorted(event_ids), "each row published once"
    assert await db.count(outbox, outbox.c.published_at.is_(None)) == 0


@pytest.mark.integration
async def test_a_relay_that_dies_holding_an_orders_event_holds_back_that_orders_later_events(
    sessions, db, kafka, producer, order_topic, helpers
):
    """Issue 18: two replicas' relays share the outbox. One claims an order's first event and dies
    before sending it; the other must not publish that order's next event meanwhile (payment
    would read OrderCancelled before OrderConfirmed), though other orders' events go on. Once
    the dead relay's lease runs out, both go out, in the order they were written."""
    order_id, other_order = helpers.unique("ord"), helpers.unique("ord")
    async with UnitOfWork(sessions, helpers.SOURCE) as uow:
        first = uow.publish(helpers.cancelled(order_id, reason="confirmed"), correlation_id="c")
        await uow.commit()
    async with UnitOfWork(sessions, helpers.SOURCE) as uow:
        second = uow.publish(helpers.cancelled(order_id, reason="cancelled"), correlation_id="c")
        unrelated = uow.publish(helpers.cancelled(other_order), correlation_id="c")
        await uow.commit()

    dying = OutboxRelay(sessions, producer, batch_size=1, lease=timedelta(seconds=2))
    [claimed] = await dying.claim()  # claimed, then the replica is killed: never sent
    assert claimed.event_id == first
    survivor = OutboxRelay(sessions, producer)

    assert await survivor.publish_pending() == 1, "only the other order's event may go out"
    [record] = await kafka.read_all(order_topic, at_least=1)
    assert dict(record.headers)["ce_id"].decode() == unrelated

    async def sent_both() -> bool:
        await survivor.publish_pending()
        return await db.count(outbox, outbox.c.published_at.is_(None)) == 0

    await eventually(sent_both, timeout=20, interval=0.2, what="the order's events once the dead relay's lease ran out")
    records = [r for r in await kafka.read_all(order_topic, at_least=3) if r.key == order_id.encode()]
    assert [dict(r.headers)["ce_id"].decode() for r in records] == [first, second], "in the order they were written"


@pytest.mark.integration
async def test_two_relays_at_once_never_cross_one_orders_events(sessions, db, kafka, producer, order_topic, helpers):
    """Many orders, several events each, two relays draining at once with small batches: every
    order's events reach Kafka in the order they were written."""
    orders = [helpers.unique("ord") for _ in range(8)]
    written: dict[str, list[str]] = {order_id: [] for order_id in orders}
    for step in range(4):
        async with UnitOfWork(sessions, helpers.SOURCE) as uow:
            for order_id in orders:
                written[order_id].append(uow.publish(helpers.cancelled(order_id, reason=f"step {step}"), correlation_id="c"))
            await uow.commit()
    relays = [OutboxRelay(sessions, producer, batch_size=3) for _ in range(2)]

    async def drain(relay: OutboxRelay) -> None:
        async def done() -> bool:
            await relay.publish_pending()
            return await db.count(outbox, outbox.c.published_at.is_(None)) == 0

        await eventually(done, timeout=30, interval=0.01, what="the outbox drained")

    await asyncio.gather(*(drain(relay) for relay in relays))
    records = await kafka.read_all(order_topic, at_least=32)
    for order_id in orders:
        assert [dict(r.headers)["ce_id"].decode() for r in records if r.key == order_id.encode()] == written[order_id]


async def test_pruning_deletes_old_published_rows_and_old_inbox_rows_only(sessions, db, helpers):
    now = datetime.now(timezone.utc)
    old_sent, new_sent, unsent = [await _place(sessions, helpers, helpers.unique("ord"), commit=True) for _ in range(3)]
    async with sessions() as session, session.begin():
        await session.execute(update(outbox).where(outbox.c.event_id == old_sent).values(published_at=now - timedelta(days=2)))
        await session.execute(update(outbox).where(outbox.c.event_id == new_sent).values(published_at=now - timedelta(hours=1)))
        await session.execute(
            insert(inbox),
            [
                {"consumer_group": "g", "event_id": "old", "event_type": "t", "processed_at": now - timedelta(days=40)},
                {"consumer_group": "g", "event_id": "recent", "event_type": "t", "processed_at": now - timedelta(days=1)},
            ],
        )

    assert await prune(sessions, outbox_kept=timedelta(days=1), inbox_kept=timedelta(days=30), now=now) == (1, 1)

    assert sorted(row.event_id for row in await db.rows(select(outbox))) == sorted([new_sent, unsent])
    assert [row.event_id for row in await db.rows(select(inbox))] == ["recent"]
