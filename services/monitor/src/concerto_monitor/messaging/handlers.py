"""The monitor reads every event of every order, from every context (its own consumer group,
through the same inbox as everyone), into the saga projection, and keeps each saga's
SagaWatch timer set to the saga's next deadline."""

from __future__ import annotations

import logging

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts import EVENT_TYPES, Envelope
from concerto_contracts.events import OrderConfirmed, PaymentCompleted
from concerto_messaging import Handler
from concerto_monitor.adapters import db, repository
from concerto_monitor.domain.definition import SagaDefinition
from concerto_monitor.workflows.inputs import TASK_QUEUE, WatchUpdate, watch_workflow_id
from concerto_monitor.workflows.saga_watch import SagaWatch
from concerto_runtime import Runtime, signal_if_running, signal_with_start

log = logging.getLogger(__name__)

# Every event about an order (a stock level is about a sku: not part of any saga).
ORDER_EVENTS = [cls for cls in EVENT_TYPES.values() if "order_id" in cls.model_fields]


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C traceparent: version-traceid-spanid-flags."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def handlers(runtime: Runtime, definition: SagaDefinition) -> dict[type, Handler]:
    async def record(envelope: Envelope, session: AsyncSession) -> None:
        event, name, order_id = envelope.event, type(envelope.event).__name__, envelope.key
        stored = await repository.load(session, definition, order_id)
        before, received_at = stored.saga.watch(), db.now()
        late = stored.saga.record(name, received_at)
        stored.version += 1
        await session.execute(
            insert(db.saga_events).values(
                event_id=envelope.id,
                order_id=order_id,
                type=name,
                source=envelope.source,
                time=envelope.time,
                received_at=received_at,
                causation_id=envelope.causation_id,
                trace_id=trace_id(envelope.traceparent),
                late=late,
            )
        )
        await repository.save(
            session,
            stored,
            correlation_id=envelope.correlation_id,
            current_step=None if late or name in ("SagaTimedOut", "TierChanged") else name,
            customer_id=_customer_of(event),
            payment_id=getattr(event, "payment_id", None),
        )
        after = stored.saga.watch()
        if after != before:
            await set_watch(runtime, order_id, WatchUpdate(version=stored.version, step=after and after.step, deadline=after and after.deadline))
        if late:
            log.warning("late %s for a saga that is %s: recorded, nothing changes", name, stored.saga.status)

    return {cls: record for cls in ORDER_EVENTS}


async def set_watch(runtime: Runtime, order_id: str, update: WatchUpdate) -> None:
    """Tell the saga's SagaWatch its next deadline; the first one starts it."""
    if update.deadline is None:
        # Nothing to wait for: end the watch if it runs; never start one for that.
        await signal_if_running(runtime.temporal, watch_workflow_id(order_id), SagaWatch.watch, update)
        return
    await signal_with_start(
        runtime.temporal, SagaWatch.run, [order_id], id=watch_workflow_id(order_id), task_queue=TASK_QUEUE, signal="watch", signal_args=[update]
    )


def _customer_of(event) -> str | None:
    if isinstance(event, (OrderConfirmed, PaymentCompleted)):
        return event.order.customer.id
    return getattr(event, "customer_id", None)

