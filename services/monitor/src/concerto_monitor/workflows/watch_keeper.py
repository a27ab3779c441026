"""Keeps SagaWatch running while a saga waits for something.

The consumer signals SagaWatch only when a saga's deadline comes before the one the timer is
set for (`watch_timer.armed_at`). If the watch's run is gone (terminated by hand, failed after
a deploy), every later deadline comes after `armed_at`, nobody would signal it again, and stuck
sagas would go unnoticed. So the monitor looks at start-up and then every half minute: when no
run of SagaWatch is open while a saga waits, it sets the timer to the earliest deadline in the
due-time index and starts the watch the one way it is always started (`set_watch`,
signal-with-start)."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from concerto_monitor.adapters import db, repository
from concerto_monitor.messaging.handlers import set_watch
from concerto_monitor.workflows.inputs import TASK_QUEUE, WATCH_WORKFLOW_ID
from concerto_runtime import Runtime

log = logging.getLogger(__name__)

# How often the monitor checks that SagaWatch runs: one describe call to Temporal each time.
CHECK_EVERY = 30.0


async def rearm_if_gone(runtime: Runtime, *, workflow_id: str = WATCH_WORKFLOW_ID, task_queue: str = TASK_QUEUE) -> bool:
    """Starts SagaWatch again, set to the earliest deadline of any saga, if no run of it is
    open; True if it did. With no saga waiting, the timer is cleared instead, so the next
    deadline starts the watch through the consumer as usual."""
    status = await _status(runtime, workflow_id)
    if status == WorkflowExecutionStatus.RUNNING:
        return False
    async with runtime.sessions() as session, session.begin():
        timer = await repository.lock_timer(session)  # the consumer's settings wait for this one
        earliest = await db.earliest_due(session)
        if earliest is None:
            if timer is not None and timer.armed_at is not None:
                await repository.set_timer(session, None, only_if_earlier=False)
            return False
        update = await repository.set_timer(session, earliest, only_if_earlier=False)
    log.warning("SagaWatch is not running (%s): starting it again, set to %s", status.name if status else "never started", earliest)
    await set_watch(runtime, update, workflow_id=workflow_id, task_queue=task_queue)
    return True


async def keep_watch_armed(
    runtime: Runtime, *, every: float = CHECK_EVERY, workflow_id: str = WATCH_WORKFLOW_ID, task_queue: str = TASK_QUEUE
) -> None:
    """Forever: every `every` seconds, start SagaWatch again if its run is gone. An error ends
    the loop; the service's supervisor starts it again and shows it in the readiness check."""
    while True:
        await asyncio.sleep(every)
        await rearm_if_gone(runtime, workflow_id=workflow_id, task_queue=task_queue)


async def _status(runtime: Runtime, workflow_id: str) -> WorkflowExecutionStatus | None:
    """The status of the watch's latest run; None if it never ran."""
    try:
        return (await runtime.temporal.get_workflow_handle(workflow_id).describe()).status
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return None
