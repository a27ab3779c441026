"""The monitor reads every event of every order, from every context (its own consumer group,
through the same inbox as everyone), into the saga projection and its due-time index, and sets
SagaWatch's timer earlier when a saga's deadline comes before it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from concerto_contracts import EVENT_TYPES, Envelope
from concerto_messaging import Handler, database_first
from concerto_monitor.adapters import repository
from concerto_monitor.domain.definition import SagaDefinition
from concerto_monitor.workflows.inputs import TASK_QUEUE, WATCH_WORKFLOW_ID, WatchUpdate
from concerto_monitor.workflows.saga_watch import SagaWatch
from concerto_runtime import Runtime, signal_with_start

# Every event about an order (a stock level is about a sku: not part of any saga).
ORDER_EVENTS = [cls for cls in EVENT_TYPES.values() if "order_id" in cls.model_fields]


def handlers(runtime: Runtime, definition: SagaDefinition) -> dict[type, Handler]:
    @database_first  # it reads the saga (and locks it) before anything else
    async def record(envelope: Envelope, session: AsyncSession) -> None:
        update = await repository.record_event(session, definition, envelope)
        if update is not None:
            await set_watch(runtime, update)

    return {cls: record for cls in ORDER_EVENTS}


async def set_watch(runtime: Runtime, update: WatchUpdate, *, workflow_id: str = WATCH_WORKFLOW_ID, task_queue: str = TASK_QUEUE) -> None:
    """Set SagaWatch's timer earlier; starts the watch if none runs."""
    await signal_with_start(
        runtime.temporal, SagaWatch.run, [None], id=workflow_id, task_queue=task_queue, signal="watch", signal_args=[update]
    )
