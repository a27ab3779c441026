"""The order starter (workflows/starts.py, ADR 9) on a real database and the real Temporal
server: it reaches every waiting order however many there are, and an order it cannot start
does not hold up the others; it is marked with the reason, which the order's API answer shows.

The workflows go to a task queue of the test's own, where no worker runs: started is all this
test asks of them (they are terminated at the end)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from concerto_contracts.http import OrderStatus, OrderSubmission
from concerto_messaging import metadata as messaging_metadata
from concerto_order.adapters import db
from concerto_order.api.routes import router
from concerto_order.workflows.inputs import workflow_id
from concerto_order.workflows.starts import RecentlyTried, start_round
from concerto_runtime import connect_temporal
from concerto_runtime.database import create_sessions
from concerto_runtime.settings import Settings
from concerto_runtime.testing import DATABASE_KINDS, fresh_database

pytestmark = pytest.mark.integration

WAITING = 150  # more than one page of the starter's (100)
UNSTARTABLE = 9  # the tenth oldest: every order behind it used to wait for it


def submission(quantity: int = 1) -> dict:
    return {
        "customer": {"id": "cust-starts", "email": "ada@example.com", "name": "Ada Lovelace"},
        "items": [{"sku": "CON-BATON", "quantity": quantity}],
        "shipping_address": {"name": "Ada Lovelace", "line1": "12 Analytical Way", "city": "London", "postal_code": "N1 9GU", "country": "GB"},
        "promotion_codes": [],
        "channel": "web",
        "payment_method_id": "pm-starts",
        "request_fingerprint": "f",
    }


@pytest.fixture(params=DATABASE_KINDS)
async def runtime(request, tmp_path) -> AsyncIterator[SimpleNamespace]:
    async with fresh_database(request.param, tmp_path, messaging_metadata, db.tables) as engine:
        sessions = create_sessions(engine)
        yield SimpleNamespace(sessions=sessions, read_sessions=sessions, temporal=await connect_temporal(Settings()))


async def test_the_order_starter_starts_every_waiting_order_and_marks_the_one_it_cannot_start(runtime):
    placed = db.now() - timedelta(minutes=10)
    orders = [f"ord-starts-{uuid.uuid4().hex[:12]}" for _ in range(WAITING)]
    unstartable = orders[UNSTARTABLE]
    # A limit lowered since the order was taken: its stored submission no longer validates.
    stored = {order_id: submission(quantity=500 if order_id == unstartable else 1) for order_id in orders}
    with pytest.raises(ValueError):
        OrderSubmission.model_validate(stored[unstartable])
    async with runtime.sessions() as session, session.begin():
        await session.execute(
            insert(db.orders),
            [
                {
                    "order_id": order_id, "customer_id": "cust-starts", "status": OrderStatus.PENDING, "correlation_id": f"corr-{order_id}",
                    "request_fingerprint": "f", "submission": stored[order_id], "items": stored[order_id]["items"],
                    "created_at": placed + timedelta(seconds=index), "updated_at": placed + timedelta(seconds=index),
                }
                for index, order_id in enumerate(orders)
            ],
        )
    task_queue = f"order-starts-{uuid.uuid4().hex[:8]}"
    startable = [order_id for order_id in orders if order_id != unstartable]
    try:
        assert await start_round(runtime, timedelta(seconds=5), RecentlyTried(), task_queue=task_queue)

        statuses = await asyncio.gather(*(status_of(runtime, order_id) for order_id in orders))
        started = dict(zip(orders, statuses))
        assert started[unstartable] is None
        assert [order_id for order_id in startable if started[order_id] != WorkflowExecutionStatus.RUNNING] == []

        app = FastAPI()
        app.include_router(router)
        app.state.runtime = runtime
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://order") as client:
            marked = (await client.get(f"/orders/{unstartable}")).json()
            fine = (await client.get(f"/orders/{startable[-1]}")).json()
            not_started = (await client.get("/orders/not-started")).json()
        assert marked["status"] == "PENDING"
        assert "ValidationError" in marked["start_failure"] and "quantity" in marked["start_failure"]
        assert fine["start_failure"] is None
        # The operator's list (the console's "Orders not started" card): that order alone, with why.
        assert (not_started["total"], [(o["order_id"], o["start_failure"]) for o in not_started["items"]]) == (
            1, [(unstartable, marked["start_failure"])]
        )
    finally:
        await asyncio.gather(*(terminate(runtime, order_id) for order_id in startable))


async def status_of(runtime, order_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await runtime.temporal.get_workflow_handle(workflow_id(order_id)).describe()).status
    except RPCError:
        return None


async def terminate(runtime, order_id: str) -> None:
    try:
        await runtime.temporal.get_workflow_handle(workflow_id(order_id)).terminate("test over")
    except RPCError:
        pass
