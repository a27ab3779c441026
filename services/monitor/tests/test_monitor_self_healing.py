"""The monitor heals itself, on the real Temporal server, the real Kafka broker and a real
database: SagaWatch killed while sagas wait is started again (a saga whose deadline passes
afterwards is still found STUCK), and the dead-letter reader goes on after an error (it reads a
dead letter written after it).

Each test runs its own SagaWatch (workflow id and task queue of its own) and its own dead-letter
reader (consumer group and topic of its own), so that tests running beside it are not touched."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select
from temporalio.service import RPCError

from concerto_contracts import Envelope
from concerto_contracts.events import OrderConfirmed
from concerto_contracts.http import SagaStatus
from concerto_contracts.values import CustomerSnapshot, LineItem, OrderSnapshot, ShippingAddress, Totals
from concerto_messaging import UnitOfWork, create_producer, ensure_topics
from concerto_messaging import metadata as messaging_metadata
from concerto_messaging.tables import outbox
from concerto_monitor.adapters import db, repository
from concerto_monitor.adapters.dead_letters import read_dead_letters
from concerto_monitor.domain.definition import ORDER_SAGA
from concerto_monitor.messaging.handlers import set_watch
from concerto_monitor.workflows.activities import WatchActivities
from concerto_monitor.workflows.saga_watch import SagaWatch
from concerto_monitor.workflows.watch_keeper import keep_watch_armed
from concerto_runtime import connect_temporal, create_worker
from concerto_runtime.database import create_sessions
from concerto_runtime.settings import Settings
from concerto_runtime.supervision import SupervisedLoop
from concerto_runtime.testing import eventually, fresh_database

pytestmark = pytest.mark.integration

# Short enough to wait for, long enough to kill the watch and record a second saga before it.
PAYMENT_DEADLINE = 4


class MonitorParts:
    """What SagaWatch's activity, the consumer's `set_watch` and the watch keeper need of the
    monitor's Runtime: the database, the Temporal client; no consumer (no watermark)."""

    consumer = None

    def __init__(self, sessions, temporal) -> None:
        self.sessions = sessions
        self.temporal = temporal

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions, source="/concerto/monitor")


@pytest.fixture
async def sessions(tmp_path) -> AsyncIterator:
    async with fresh_database("sqlite", tmp_path, messaging_metadata, db.tables) as engine:
        yield create_sessions(engine)


def order_confirmed(order_id: str) -> Envelope:
    order = OrderSnapshot(
        order_id=order_id,
        customer=CustomerSnapshot(id="cust-heal", email_masked="a***@example.com"),
        items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=1, unit_price=Decimal("24.00"), weight_grams=50)],
        shipping_address=ShippingAddress(name="Ada", line1="1 Way", city="London", postal_code="N1 9GU", country="GB"),
        totals=Totals(subtotal=Decimal("24"), discount=Decimal("0"), tax=Decimal("4.8"), shipping=Decimal("4.99"), total=Decimal("33.79"), currency="EUR"),
        channel="web",
    )
    event = OrderConfirmed(order_id=order_id, order=order, payment_method_id="pm-heal")
    return Envelope(
        id=str(uuid.uuid4()), type=event.event_type(), source="/concerto/order", time=datetime.now(timezone.utc),
        correlation_id=f"corr-{order_id}", causation_id=None, traceparent=None, event=event,
    )


async def test_monitor_starts_a_killed_saga_watch_again_and_still_finds_a_later_saga_stuck(sessions):
    definition = ORDER_SAGA.with_deadlines({"payment": PAYMENT_DEADLINE})
    parts = MonitorParts(sessions, await connect_temporal(Settings()))
    watch = {"workflow_id": f"saga-watch-heal-{uuid.uuid4().hex[:8]}", "task_queue": f"monitor-heal-{uuid.uuid4().hex[:8]}"}

    async def record(order_id: str):
        """As the monitor's consumer records an event: the saga, then SagaWatch set earlier if need be."""
        async with sessions() as session, session.begin():
            update = await repository.record_event(session, definition, order_confirmed(order_id))
        if update is not None:
            await set_watch(parts, update, **watch)
        return update

    first, later = f"ord-heal-{uuid.uuid4().hex[:8]}", f"ord-heal-{uuid.uuid4().hex[:8]}"
    activities = [WatchActivities(parts, definition).handle_due_sagas]
    async with create_worker(parts.temporal, watch["task_queue"], [SagaWatch], activities):
        keeper = asyncio.create_task(keep_watch_armed(parts, every=0.5, **watch))
        try:
            assert await record(first) is not None  # the first deadline starts the watch
            await parts.temporal.get_workflow_handle(watch["workflow_id"]).terminate("killed by the test")
            # Due after the timer the killed watch was set for: the consumer does not signal it.
            assert await record(later) is None

            async def stuck() -> bool:
                async with sessions() as session:
                    row = await db.get_saga(session, later)
                    alerts = (await session.execute(select(outbox.c.event_type).where(outbox.c.key == later.encode()))).scalars().all()
                return row.status == SagaStatus.STUCK and any("SagaTimedOut" in alert.split(".") for alert in alerts)

            await eventually(stuck, timeout=PAYMENT_DEADLINE + 60, what="the later saga to be found STUCK")
            async with sessions() as session:
                assert (await db.get_saga(session, first)).status == SagaStatus.STUCK
        finally:
            keeper.cancel()
            try:
                await parts.temporal.get_workflow_handle(watch["workflow_id"]).terminate("test over")
            except RPCError:
                pass  # ended: no saga waits any more


class DatabaseFailsOnce:
    """The monitor's sessions, except that the first transaction fails (the database away)."""

    def __init__(self, sessions) -> None:
        self._sessions = sessions
        self.failed = False

    def __call__(self):
        if not self.failed:
            self.failed = True
            raise ConnectionError("injected: the database went away")
        return self._sessions()


async def test_monitor_dead_letter_reader_goes_on_after_an_error(sessions):
    settings = Settings()
    topic = f"heal-{uuid.uuid4().hex[:8]}.dlq"
    await ensure_topics(settings.kafka_bootstrap_servers, [topic])
    producer = create_producer(settings.kafka_bootstrap_servers)
    await producer.start()

    async def dead_letter(order_id: str) -> None:
        headers = [("dlq_reason", b"rejected"), ("dlq_error", b"InvalidEvent: test"), ("dlq_original_topic", b"concerto.order")]
        await producer.send_and_wait(topic, key=order_id.encode(), value=b"{}", headers=headers)

    database, group = DatabaseFailsOnce(sessions), f"heal-{uuid.uuid4().hex[:8]}"
    # Supervised as the service defaults supervise every background loop.
    reader = SupervisedLoop(
        "dead letters",
        lambda: read_dead_letters(settings.kafka_bootstrap_servers, database, group=group, pattern=f"^{re.escape(topic)}$"),
    )
    running = asyncio.create_task(reader.run())
    try:
        await dead_letter("ord-before")

        async def failed() -> bool:
            return reader.restarts == 1

        await eventually(failed, timeout=60, what="the reader to fail on the first dead letter")
        await dead_letter("ord-after")

        async def both_stored() -> list:
            async with sessions() as session:
                stored = set((await session.execute(select(db.dead_letters.c.order_id))).scalars())
            return stored >= {"ord-before", "ord-after"}

        await eventually(both_stored, timeout=60, what="both dead letters in the monitor's table")
        assert reader.restarts == 1
        assert not running.done()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await producer.stop()
