"""Starting an order's workflow, now or later.

The order row, written while the order is PENDING, is the durable request to start its workflow
(ADR 9). The API tries to start the workflow at once. If Temporal does not answer, the client
still gets its 202, and `start_waiting_orders` starts the workflow when Temporal is back. The
same loop covers a crash between the commit and the start. A workflow moves its order out of
PENDING in its first steps, so an order still PENDING a few seconds after it was placed has no
workflow acting on it yet. Starting it again is harmless: `start_once` leaves a running or
finished workflow alone.

An order whose workflow cannot be started as it is (its stored submission no longer validates,
say) is marked with the reason (`start_failure`, in the order's API answer) and the starter goes
on with the others; it tries the order again a minute later, and clears the mark once it starts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from temporalio.service import RPCError

from concerto_contracts.http import OrderStatus, OrderSubmission
from concerto_observability import bind
from concerto_order.adapters import db
from concerto_order.workflows.inputs import TASK_QUEUE, PlaceOrder, workflow_id
from concerto_order.workflows.order_workflow import OrderWorkflow
from concerto_runtime import Runtime, start_once

log = logging.getLogger(__name__)

# How long the API waits for Temporal before it answers 202 and leaves the start to the loop.
START_TIMEOUT = timedelta(seconds=2)


async def start_order_workflow(
    runtime: Runtime, order_id: str, correlation_id: str, submission: OrderSubmission, *, task_queue: str = TASK_QUEUE
) -> bool:
    """Starts the order's workflow unless one has run under its id; False if Temporal did not
    answer in time (the order stays PENDING and `start_waiting_orders` tries again)."""
    order = PlaceOrder(order_id=order_id, correlation_id=correlation_id, **submission.model_dump(exclude={"request_fingerprint"}))
    try:
        # The client retries a refused connection for several seconds on its own: bound it all.
        async with asyncio.timeout(START_TIMEOUT.total_seconds()):
            await start_once(runtime.temporal, OrderWorkflow.run, order, id=workflow_id(order_id), task_queue=task_queue)
    except (RPCError, TimeoutError) as exc:
        log.warning("Temporal did not take the start of order %s (%s): it starts when Temporal answers", order_id, str(exc) or "no answer in time")
        return False
    return True


async def start_waiting_orders(
    runtime: Runtime, *, grace: timedelta = timedelta(seconds=5), every: float = 2.0, task_queue: str = TASK_QUEUE
) -> None:
    """Forever: start the workflow of every order still PENDING `grace` after it was placed.
    While Temporal is away, the pauses between rounds double, up to 10 s. Any other failure
    ends the loop, and the service's supervisor starts it again (and says so)."""
    pause, recent = every, RecentlyTried()
    while True:
        answered = await start_round(runtime, grace, recent, task_queue=task_queue)
        pause = every if answered else min(pause * 2, 10.0)
        await asyncio.sleep(pause)


async def start_round(
    runtime: Runtime, grace: timedelta, recent: RecentlyTried, *, task_queue: str = TASK_QUEUE, page: int = 100
) -> bool:
    """One pass over every waiting order, the oldest first, a page at a time; False as soon as
    Temporal does not answer (the others would wait for it too)."""
    placed_before, after = db.now() - grace, None
    recent.forget_old()
    while True:
        async with runtime.read_sessions() as session:
            waiting = await db.pending_orders(session, placed_before=placed_before, after=after, limit=page)
        for order in waiting:
            if order.order_id in recent:
                continue
            with bind(correlation_id=order.correlation_id, order_id=order.order_id):
                if not await _start_waiting_order(runtime, order, task_queue):
                    return False
            recent.add(order.order_id)
        if len(waiting) < page:
            return True
        after = waiting[-1]


async def _start_waiting_order(runtime: Runtime, order, task_queue: str) -> bool:
    """Starts one waiting order's workflow; False only if Temporal did not answer. An order that
    cannot be started as it is gets the reason on its row, and the round goes on."""
    try:
        submission = OrderSubmission.model_validate(order.submission)
        if not await start_order_workflow(runtime, order.order_id, order.correlation_id, submission, task_queue=task_queue):
            return False
    except Exception as exc:  # this order's own trouble: it must not hold up the orders behind it
        reason = f"{type(exc).__name__}: {exc}"[: db.START_FAILURE_LENGTH]
        log.error("the workflow of order %s cannot be started: %s", order.order_id, reason, exc_info=exc)
        if reason != order.start_failure:
            await _set_start_failure(runtime, order.order_id, reason)
        return True
    log.info("workflow ensured %.0f s after the order was placed", (db.now() - order.created_at).total_seconds())
    if order.start_failure is not None:
        await _set_start_failure(runtime, order.order_id, None)  # it started after all
    return True


async def _set_start_failure(runtime: Runtime, order_id: str, reason: str | None) -> None:
    async with runtime.sessions() as session, session.begin():
        await db.update_order(session, order_id, only_from=[OrderStatus.PENDING], start_failure=reason)


class RecentlyTried:
    """Orders whose workflow was just started, or found already running, or could not be
    started. A running workflow can keep its order PENDING for a while (its worker down, say),
    and an order that could not be started will not start on the next round either, so such an
    order is looked at again only after a minute, not on every round."""

    AGAIN_AFTER = 60.0

    def __init__(self) -> None:
        self._at: dict[str, float] = {}

    def __contains__(self, order_id: str) -> bool:
        return order_id in self._at

    def add(self, order_id: str) -> None:
        self._at[order_id] = time.monotonic()

    def forget_old(self) -> None:
        now = time.monotonic()
        self._at = {order_id: at for order_id, at in self._at.items() if now - at < self.AGAIN_AFTER}
