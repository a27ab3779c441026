"""Starting an order's workflow, now or later.

The order row, written while the order is PENDING, is the durable request to start its workflow
(ADR 9). The API tries to start the workflow at once. If Temporal does not answer, the client
still gets its 202, and `start_waiting_orders` starts the workflow when Temporal is back. The
same loop covers a crash between the commit and the start. A workflow moves its order out of
PENDING in its first steps, so an order still PENDING a few seconds after it was placed has no
workflow acting on it yet. Starting it again is harmless: `start_once` leaves a running or
finished workflow alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from temporalio.service import RPCError

from concerto_contracts.http import OrderSubmission
from concerto_observability import bind
from concerto_order.adapters import db
from concerto_order.workflows.inputs import TASK_QUEUE, PlaceOrder, workflow_id
from concerto_order.workflows.order_workflow import OrderWorkflow
from concerto_runtime import Runtime, start_once

log = logging.getLogger(__name__)

# How long the API waits for Temporal before it answers 202 and leaves the start to the loop.
START_TIMEOUT = timedelta(seconds=2)


async def start_order_workflow(runtime: Runtime, order_id: str, correlation_id: str, submission: OrderSubmission) -> bool:
    """Starts the order's workflow unless one has run under its id; False if Temporal did not
    answer in time (the order stays PENDING and `start_waiting_orders` tries again)."""
    order = PlaceOrder(order_id=order_id, correlation_id=correlation_id, **submission.model_dump(exclude={"request_fingerprint"}))
    try:
        # The client retries a refused connection for several seconds on its own: bound it all.
        async with asyncio.timeout(START_TIMEOUT.total_seconds()):
            await start_once(runtime.temporal, OrderWorkflow.run, order, id=workflow_id(order_id), task_queue=TASK_QUEUE)
    except (RPCError, TimeoutError) as exc:
        log.warning("Temporal did not take the start of order %s (%s): it starts when Temporal answers", order_id, str(exc) or "no answer in time")
        return False
    return True


async def start_waiting_orders(runtime: Runtime, *, grace: timedelta = timedelta(seconds=5), every: float = 2.0) -> None:
    """Forever: start the workflow of every order still PENDING `grace` after it was placed.
    While Temporal is away, the pauses between rounds double, up to 10 s."""
    pause, ensured = every, Ensured()
    while True:
        try:
            answered = await _start_round(runtime, grace, ensured)
        except Exception:
            log.exception("starting the workflows of waiting orders failed; trying again")
            answered = False
        pause = every if answered else min(pause * 2, 10.0)
        await asyncio.sleep(pause)


async def _start_round(runtime: Runtime, grace: timedelta, ensured: Ensured) -> bool:
    """One pass over the waiting orders; False as soon as Temporal does not answer."""
    async with runtime.read_sessions() as session:
        waiting = await db.pending_orders(session, placed_before=db.now() - grace, limit=100)
    ensured.forget_old()
    for order in waiting:
        if order.order_id in ensured:
            continue
        with bind(correlation_id=order.correlation_id, order_id=order.order_id):
            if not await start_order_workflow(runtime, order.order_id, order.correlation_id, OrderSubmission.model_validate(order.submission)):
                return False  # Temporal is away: the others would fail too
            log.info("workflow ensured %.0f s after the order was placed", (db.now() - order.created_at).total_seconds())
        ensured.add(order.order_id)
    return True


class Ensured:
    """Orders whose workflow was just started, or found already running. A running workflow can
    keep its order PENDING for a while (its worker down, say), so such an order is looked at
    again only after a minute, not on every round."""

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
