"""FulfillmentWorkflow on Temporal's time-skipping test server, with test activities in place
of the database-backed FulfillmentActivities: each records its call and returns a canned result.

The pick-up wait is a durable timer: while a test awaits the workflow's result, the test server
skips ahead to it, so an hour's wait costs nothing. While a test is not awaiting a result, time
runs normally, which is what lets a test signal a cancellation "during" the wait.

Each branch's test keeps its workflow's history in tests/histories/fulfillment_<branch>.json,
and every history there is replayed with the current FulfillmentWorkflow, so a change that would
break fulfillments already running fails here. Record them again only when the change is safe,
or a release retires patches (ADR 17: the histories recorded before it move to
tests/histories/retired/, which is not replayed):

    cd /work/main && RECORD_HISTORIES=1 .venv/bin/pytest services/fulfillment/tests/test_fulfillment_workflow.py
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from concerto_contracts.values import CustomerSnapshot, LineItem, OrderSnapshot, ShippingAddress, Totals
from concerto_fulfillment.workflows.fulfillment_workflow import FulfillmentWorkflow
from concerto_fulfillment.workflows.inputs import FulfillOrder, Reservation
from concerto_runtime.temporal import create_worker
from concerto_runtime.testing import Executions, assert_kept_histories, assert_replays, eventually, keep_history, time_skipping_environment

HOUR = 3600
HISTORIES = Path(__file__).parent / "histories"


def fulfill_order(pickup_wait_seconds: int = 1) -> FulfillOrder:
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    return FulfillOrder(
        payment_id=f"pay-{order_id}",
        correlation_id="corr-1",
        causation_id="evt-1",
        pickup_wait_seconds=pickup_wait_seconds,
        order=OrderSnapshot(
            order_id=order_id,
            customer=CustomerSnapshot(id="cust-42", email_masked="a***@example.com"),
            items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=2, unit_price=Decimal("24.00"), weight_grams=50)],
            shipping_address=ShippingAddress(name="Ada Lovelace", line1="12 St James's Square", city="London", postal_code="SW1Y 4JH", country="GB"),
            totals=Totals(
                subtotal=Decimal("48.00"), discount=Decimal("0.00"), tax=Decimal("9.60"), shipping=Decimal("4.99"),
                total=Decimal("62.59"), currency="EUR",
            ),
            channel="web",
        ),
    )


class Recorder:
    """Stands in for FulfillmentActivities: same activity names, calls recorded."""

    def __init__(self, reservation: Reservation, dispatched: bool = True) -> None:
        self.reservation = reservation
        self.dispatched = dispatched  # False: the activity found the order cancelled meanwhile
        self.calls: list[tuple[str, FulfillOrder]] = []

    def activities(self) -> list:
        executions = Executions()

        def record(name: str, request: FulfillOrder) -> None:
            if not executions.first():
                return  # a step re-run with its workflow task counts once
            self.calls.append((name, request))

        @activity.defn(name="reserve_stock")
        async def reserve_stock(request: FulfillOrder) -> Reservation:
            record("reserve_stock", request)
            return self.reservation

        @activity.defn(name="schedule_shipment")
        async def schedule_shipment(request: FulfillOrder) -> None:
            record("schedule_shipment", request)

        @activity.defn(name="dispatch_shipment")
        async def dispatch_shipment(request: FulfillOrder) -> bool:
            record("dispatch_shipment", request)
            return self.dispatched

        @activity.defn(name="release_stock")
        async def release_stock(request: FulfillOrder) -> None:
            record("release_stock", request)

        return [reserve_stock, schedule_shipment, dispatch_shipment, release_stock]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


async def step_times(handle: WorkflowHandle) -> dict[str, datetime]:
    """When each step (a local activity) was recorded in the workflow's history, in the test
    server's (skipped) time: the workflow's own clock."""
    times = {}
    for event in (await handle.fetch_history()).events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                step = json.loads(marker.details["data"].payloads[0].data)["activity_type"]
                times.setdefault(step, event.event_time.ToDatetime(timezone.utc))
    return times


@asynccontextmanager
async def running(
    client: Client,
    request: FulfillOrder,
    reservation: Reservation | None = None,
    dispatched: bool = True,
    order_agrees: bool = True,
    **start_options,
) -> AsyncIterator[tuple[WorkflowHandle[FulfillmentWorkflow, str], Recorder]]:
    """A worker with test activities on a queue of its own, and the order's workflow started on
    it; `order_agrees`: the order context says at once that the parcel may leave (OrderReadyToShip)."""
    recorder = Recorder(reservation or Reservation(reserved=True, warehouse="LON-1"), dispatched)
    task_queue = f"fulfillment-test-{uuid.uuid4().hex[:8]}"
    async with create_worker(client, task_queue, [FulfillmentWorkflow], recorder.activities()):
        handle = await client.start_workflow(
            FulfillmentWorkflow.run, request, id=f"fulfillment-{request.order.order_id}", task_queue=task_queue, **start_options
        )
        if order_agrees:
            await handle.signal(FulfillmentWorkflow.order_ready_to_ship)
        try:
            yield handle, recorder
        finally:
            # A failed test must not leave its timer behind for the next test's time skipping.
            try:
                await handle.terminate("test over")
            except RPCError:
                pass  # already closed, as it should be


@pytest.fixture(scope="module")
async def env():
    async with time_skipping_environment() as env:
        yield env


async def test_fulfillment_workflow_reserves_schedules_waits_and_dispatches(env):
    request = fulfill_order(pickup_wait_seconds=HOUR)
    async with running(env.client, request) as (handle, recorder):
        outcome = await handle.result()  # the test server skips the hour
        at = await step_times(handle)

    assert outcome == "dispatched"
    assert recorder.names == ["reserve_stock", "schedule_shipment", "dispatch_shipment"]
    assert all(called == request for _, called in recorder.calls)
    # The parcel waited for the pick-up timer between scheduling and dispatch.
    waited = at["dispatch_shipment"] - at["schedule_shipment"]
    assert waited >= timedelta(seconds=HOUR)
    await keep_history(handle, HISTORIES / "fulfillment_dispatched.json")


async def test_fulfillment_workflow_stops_after_reserve_when_stock_is_unavailable(env):
    async with running(env.client, fulfill_order(), Reservation(reserved=False)) as (handle, recorder):
        outcome = await handle.result()

    assert outcome == "unavailable"
    assert recorder.names == ["reserve_stock"]  # nothing reserved, so nothing to release
    await keep_history(handle, HISTORIES / "fulfillment_unavailable.json")


async def test_fulfillment_workflow_cancelled_during_pickup_wait_releases_stock(env):
    request = fulfill_order(pickup_wait_seconds=HOUR)
    async with running(env.client, request) as (handle, recorder):

        async def scheduled() -> bool:
            return "schedule_shipment" in recorder.names

        # Time is not skipped until the result is awaited: the workflow sits in its hour's wait.
        await eventually(scheduled, timeout=10, interval=0.05, what="the shipment to be scheduled")
        await handle.signal(FulfillmentWorkflow.order_cancelled)
        outcome = await handle.result()
        at = await step_times(handle)

    assert outcome == "cancelled"
    assert recorder.names == ["reserve_stock", "schedule_shipment", "release_stock"]
    assert "dispatch_shipment" not in recorder.names
    # Released at once, not after the pick-up wait.
    released_after = at["release_stock"] - at["schedule_shipment"]
    assert released_after < timedelta(seconds=HOUR)
    await keep_history(handle, HISTORIES / "fulfillment_cancelled_during_pickup_wait.json")


async def test_fulfillment_workflow_cancelled_before_reservation_releases_without_scheduling(env):
    # The cancellation is delivered with the start, so it is known before reserve_stock returns.
    request = fulfill_order(pickup_wait_seconds=HOUR)
    async with running(env.client, request, start_signal="order_cancelled") as (handle, recorder):
        outcome = await handle.result()

    assert outcome == "cancelled"
    assert recorder.names == ["reserve_stock", "release_stock"]
    await keep_history(handle, HISTORIES / "fulfillment_cancelled_before_reservation.json")


async def test_fulfillment_workflow_cancellation_after_dispatch_changes_nothing(env):
    async with running(env.client, fulfill_order(pickup_wait_seconds=1)) as (handle, recorder):
        assert await handle.result() == "dispatched"
        # The order context may still announce a cancellation: the workflow is closed by then.
        # The signal is refused as NOT_FOUND, which the OrderCancelled handler treats as "nothing to stop".
        with pytest.raises(RPCError) as refused:
            await handle.signal(FulfillmentWorkflow.order_cancelled)
        assert refused.value.status == RPCStatusCode.NOT_FOUND

    assert recorder.names == ["reserve_stock", "schedule_shipment", "dispatch_shipment"]


async def test_fulfillment_workflow_dispatches_only_once_the_order_agrees(env):
    """The pivot is the order context's to call: scheduled, the parcel waits for OrderReadyToShip
    however long it takes, and a cancellation that comes first releases the stock."""
    async with running(env.client, fulfill_order(pickup_wait_seconds=1), order_agrees=False) as (handle, recorder):

        async def scheduled() -> bool:
            return "schedule_shipment" in recorder.names

        await eventually(scheduled, timeout=10, interval=0.05, what="the shipment to be scheduled")
        await env.sleep(HOUR)  # an hour of the workflow's time, skipped: no word from the order
        assert "dispatch_shipment" not in recorder.names
        await handle.signal(FulfillmentWorkflow.order_cancelled)
        assert await handle.result() == "cancelled"

    assert recorder.names == ["reserve_stock", "schedule_shipment", "release_stock"]
    await keep_history(handle, HISTORIES / "fulfillment_cancelled_before_the_order_agreed.json")


async def test_fulfillment_workflow_releases_when_dispatch_finds_the_order_cancelled(env):
    """The cancellation reached this context after the workflow's last look: the dispatch
    activity refuses, and the workflow releases the stock instead of shipping."""
    async with running(env.client, fulfill_order(pickup_wait_seconds=1), dispatched=False) as (handle, recorder):
        assert await handle.result() == "cancelled"

    assert recorder.names == ["reserve_stock", "schedule_shipment", "dispatch_shipment", "release_stock"]
    await keep_history(handle, HISTORIES / "fulfillment_cancelled_at_dispatch.json")


async def test_fulfillment_workflow_replays_its_own_history(env):
    async with running(env.client, fulfill_order(pickup_wait_seconds=1)) as (handle, _):
        assert await handle.result() == "dispatched"
        history = await handle.fetch_history()
    await assert_replays(history, [FulfillmentWorkflow])


# The branches FulfillmentWorkflow can take, each with its history kept by the test that takes it.
BRANCHES = [
    "dispatched",
    "unavailable",
    "cancelled_during_pickup_wait",
    "cancelled_before_reservation",
    "cancelled_at_dispatch",
    "cancelled_before_the_order_agreed",
]


def test_fulfillment_workflow_keeps_a_history_of_every_branch():
    """Deleting a branch's history must not silently drop its replay test."""
    assert_kept_histories(HISTORIES, "fulfillment", BRANCHES, recorded_by=__file__)


@pytest.mark.parametrize("history", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.name)
async def test_fulfillment_workflow_replays_every_kept_history(history):
    """Fulfillments running in production, whichever branch they took, survive a change to
    FulfillmentWorkflow."""
    await assert_replays(history, [FulfillmentWorkflow])
