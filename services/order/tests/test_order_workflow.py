"""OrderWorkflow on Temporal's time-skipping test server, with test activities in place of the
database-backed OrderActivities: each records its call and returns a canned result.

Deadlines cost nothing here: while a test awaits a workflow's result, the test server skips
ahead to the next timer. Everything else is driven by signals and updates, as in production.

The replay tests guard determinism. Every branch's test keeps its order's history in
tests/histories/order_<branch>.json, and every history there is replayed with the current
OrderWorkflow; if a change makes one fail, that change would break orders already running in
production (version the change with workflow.patched instead). Record them again only when the
change is safe, or the history's format changed, or a release retires patches (ADR 17: the
histories recorded before it move to tests/histories/retired/, which is not replayed):

    cd /work/main && RECORD_HISTORIES=1 .venv/bin/pytest services/order/tests/test_order_workflow.py

tests/histories/order_happy_path.json, the first of them, has a generator of its own:

    cd /work/main && .venv/bin/python services/order/tests/test_order_workflow.py
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from collections import Counter
from pathlib import Path

import pytest
from pydantic import BaseModel
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.worker import Worker

from concerto_contracts.events import (
    DomainEvent,
    InventoryReserved,
    InventoryUnavailable,
    PaymentCompleted,
    PaymentFailed,
    ShipmentDispatched,
    ShipmentScheduled,
)
from concerto_contracts.http import Address, Customer, OrderItemRequest, OrderStatus, PaymentView, ShipmentView
from concerto_contracts.values import CustomerSnapshot, LineItem, MaskedCard, OrderSnapshot, ShippingAddress, Totals
from concerto_order.workflows.inputs import (
    CloseOrder,
    ConfirmOrder,
    EventReceived,
    OrderOutcome,
    PlaceOrder,
    Pricing,
    RecordProgress,
)
from concerto_order.workflows.order_workflow import OrderWorkflow
from concerto_runtime.temporal import create_worker
from concerto_runtime.testing import Executions, assert_kept_histories, assert_replays, eventually, keep_history, time_skipping_environment

HISTORIES = Path(__file__).parent / "histories"
HAPPY_PATH_HISTORY = HISTORIES / "order_happy_path.json"
HISTORY_ORDER_ID = "history-fixture"

CARD = MaskedCard(brand="visa", last4="4242")
DISPATCHED_AT = datetime(2025, 3, 14, 9, 30, tzinfo=timezone.utc)


# --- an order, and the events other contexts announce about it -------------------------------


def place_order(order_id: str | None = None, **overrides) -> PlaceOrder:
    return PlaceOrder(
        order_id=order_id or f"ord-{uuid.uuid4().hex[:12]}",
        correlation_id="corr-1",
        customer=Customer(id="cust-42", email="ada@example.com", name="Ada Lovelace"),
        items=[OrderItemRequest(sku="CON-BATON", quantity=2)],
        shipping_address=Address(name="Ada Lovelace", line1="12 St James's Square", city="London", postal_code="SW1Y 4JH", country="GB"),
        payment_method_id="pm-1",
        **overrides,
    )


def snapshot_of(order: PlaceOrder) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order.order_id,
        customer=CustomerSnapshot(id=order.customer.id, first_order=True, email_masked="a***@example.com"),
        items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=2, unit_price=Decimal("24.00"), weight_grams=50)],
        # As a ShippingAddress, which is what comes out of the payload (an Address compares unequal).
        shipping_address=ShippingAddress(**order.shipping_address.model_dump()),
        totals=Totals(
            subtotal=Decimal("48.00"), discount=Decimal("0.00"), tax=Decimal("9.60"), shipping=Decimal("4.99"),
            total=Decimal("62.59"), currency="EUR",
        ),
        channel=order.channel,
    )


def received(event: DomainEvent, event_id: str | None = None) -> EventReceived:
    """The signal the order's Kafka handler sends for an event (see messaging/handlers.py)."""
    name = type(event).__name__
    return EventReceived(event_id=event_id or f"evt-{event.order_id}-{name}", name=name, data=event.model_dump(mode="json"))


def payment_completed(order: PlaceOrder, payment_id: str = "pay-1", event_id: str | None = None) -> EventReceived:
    return received(
        PaymentCompleted(
            order_id=order.order_id, payment_id=payment_id, amount=Decimal("62.59"), currency="EUR", card=CARD,
            gateway="fakepay", order=snapshot_of(order),
        ),
        event_id,
    )


def payment_failed(order: PlaceOrder, reason: str) -> EventReceived:
    return received(
        PaymentFailed(order_id=order.order_id, payment_id="pay-1", amount=Decimal("62.59"), currency="EUR", reason=reason, card=CARD)
    )


def inventory_reserved(order: PlaceOrder) -> EventReceived:
    return received(InventoryReserved(order_id=order.order_id, warehouse="wh-ams", items=snapshot_of(order).items))


def inventory_unavailable(order: PlaceOrder) -> EventReceived:
    return received(
        InventoryUnavailable(order_id=order.order_id, customer_id=order.customer.id, unavailable_skus=["CON-BATON"], payment_id="pay-1")
    )


def shipment_scheduled(order: PlaceOrder) -> EventReceived:
    return received(
        ShipmentScheduled(order_id=order.order_id, shipment_id="shp-1", warehouse="wh-ams", carrier="postnl", tracking_number="TRK-1")
    )


def shipment_dispatched(order: PlaceOrder) -> EventReceived:
    return received(
        ShipmentDispatched(
            order_id=order.order_id, shipment_id="shp-1", carrier="postnl", tracking_number="TRK-1", dispatched_at=DISPATCHED_AT
        )
    )


def whole_journey(order: PlaceOrder) -> list[EventReceived]:
    return [payment_completed(order), inventory_reserved(order), shipment_scheduled(order), shipment_dispatched(order)]


# --- test activities -------------------------------------------------------------------------


class Recorder:
    """Stands in for OrderActivities: same activity names, calls recorded, results canned."""

    def __init__(self, pricing: Pricing) -> None:
        self.pricing = pricing
        self.calls: list[tuple[str, BaseModel]] = []

    def activities(self) -> list:
        executions = Executions()

        def record(name: str, argument: BaseModel) -> None:
            if executions.first():  # a step re-run with its workflow task counts once
                self.calls.append((name, argument))

        @activity.defn(name="price_order")
        async def price_order(order: PlaceOrder) -> Pricing:
            record("price_order", order)
            return self.pricing

        @activity.defn(name="confirm_order")
        async def confirm_order(confirm: ConfirmOrder) -> None:
            record("confirm_order", confirm)

        @activity.defn(name="record_progress")
        async def record_progress(progress: RecordProgress) -> None:
            record("record_progress", progress)

        @activity.defn(name="cancel_order")
        async def cancel_order(close: CloseOrder) -> None:
            record("cancel_order", close)

        @activity.defn(name="complete_order")
        async def complete_order(close: CloseOrder) -> None:
            record("complete_order", close)

        return [price_order, confirm_order, record_progress, cancel_order, complete_order]

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args(self, name: str) -> list:
        return [arg for called, arg in self.calls if called == name]

    @property
    def statuses(self) -> list[OrderStatus]:
        return [progress.status for progress in self.args("record_progress")]

    def only(self, name: str):
        (arg,) = self.args(name)
        return arg


@asynccontextmanager
async def running(
    client: Client, order: PlaceOrder, pricing: Pricing | None = None
) -> AsyncIterator[tuple[WorkflowHandle[OrderWorkflow, OrderOutcome], Recorder, Worker]]:
    """A worker with test activities on a queue of its own, and the order's workflow started on it."""
    recorder = Recorder(pricing or Pricing(snapshot=snapshot_of(order)))
    task_queue = f"order-test-{uuid.uuid4().hex[:8]}"
    async with create_worker(client, task_queue, [OrderWorkflow], recorder.activities()) as worker:
        handle = await client.start_workflow(OrderWorkflow.run, order, id=f"order-{order.order_id}", task_queue=task_queue)
        try:
            yield handle, recorder, worker
        finally:
            # A failed test must not leave its order's timers behind for the next test's time skipping.
            try:
                await handle.terminate("test over")
            except RPCError:
                pass  # already closed, as it should be


async def signal(handle: WorkflowHandle, *events: EventReceived) -> None:
    for event in events:
        await handle.signal(OrderWorkflow.event_received, event)


async def reaches(handle: WorkflowHandle, status: OrderStatus) -> None:
    async def probe() -> bool:
        return await handle.query(OrderWorkflow.status) == status

    await eventually(probe, interval=0.05, what=f"order status {status}")


def expect_cancelled(outcome: OrderOutcome, recorder: Recorder, reason: str) -> CloseOrder:
    assert outcome == OrderOutcome(status=OrderStatus.CANCELLED, cancellation_reason=reason)
    assert recorder.names[-1] == "cancel_order"
    assert "complete_order" not in recorder.names
    close = recorder.only("cancel_order")
    assert close.reason == reason
    return close


@pytest.fixture(scope="module")
async def env():
    async with time_skipping_environment() as env:
        yield env


# --- the happy path --------------------------------------------------------------------------


async def test_order_workflow_happy_path_completes(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, *whole_journey(order))
        outcome = await handle.result()
        assert await handle.query(OrderWorkflow.status) == OrderStatus.COMPLETED

    assert outcome == OrderOutcome(status=OrderStatus.COMPLETED)
    assert recorder.names == ["price_order", "confirm_order"] + ["record_progress"] * 4 + ["complete_order"]
    assert recorder.statuses == [OrderStatus.PAID, OrderStatus.FULFILLING, OrderStatus.FULFILLING, OrderStatus.SHIPPED]

    assert recorder.only("price_order") == order
    assert recorder.only("confirm_order") == ConfirmOrder(
        order_id=order.order_id, correlation_id="corr-1", snapshot=snapshot_of(order), payment_method_id="pm-1"
    )
    paid, reserved, scheduled, shipped = recorder.args("record_progress")
    assert paid.payment == PaymentView(payment_id="pay-1", card=CARD, gateway="fakepay")
    assert reserved.payment is None and reserved.shipment is None
    assert scheduled.shipment == ShipmentView(shipment_id="shp-1", carrier="postnl", tracking_number="TRK-1", warehouse="wh-ams")
    assert shipped.shipment == scheduled.shipment.model_copy(update={"dispatched_at": DISPATCHED_AT})
    assert recorder.only("complete_order") == CloseOrder(
        order_id=order.order_id, correlation_id="corr-1", causation_id=shipment_dispatched(order).event_id
    )
    await keep_history(handle, HISTORIES / "order_completed.json")


# --- ShipmentDispatched.estimated_delivery: added after v1 was released (ADR 15) ---------------


async def shipped_view(env, order: PlaceOrder, dispatched: EventReceived) -> ShipmentView:
    """The shipment the order records as SHIPPED, once `dispatched` announced the dispatch."""
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, *whole_journey(order)[:3], dispatched)
        assert await handle.result() == OrderOutcome(status=OrderStatus.COMPLETED)
    shipped = recorder.args("record_progress")[-1]
    assert shipped.status == OrderStatus.SHIPPED
    return shipped.shipment


async def test_order_workflow_shows_the_estimated_delivery_from_the_dispatch(env):
    order = place_order()
    event = ShipmentDispatched.model_validate(shipment_dispatched(order).data).model_copy(update={"estimated_delivery": date(2025, 3, 18)})

    shipment = await shipped_view(env, order, received(event))

    assert shipment.estimated_delivery == date(2025, 3, 18)
    assert shipment.dispatched_at == DISPATCHED_AT


async def test_order_workflow_takes_a_dispatch_from_before_the_estimate_as_none(env):
    # The data exactly as a producer built for the released v1 sent it: no such key at all.
    order = place_order()
    old = shipment_dispatched(order)
    del old.data["estimated_delivery"]

    shipment = await shipped_view(env, order, old)

    assert shipment.estimated_delivery is None
    assert shipment.tracking_number == "TRK-1" and shipment.dispatched_at == DISPATCHED_AT


async def test_order_workflow_ignores_a_field_it_does_not_know_yet(env):
    # In a rolling deploy a newer replica's handler may signal a field this code lacks.
    order = place_order()
    newer = shipment_dispatched(order)
    newer.data["signed_for_by"] = "A. Lovelace"

    shipment = await shipped_view(env, order, newer)

    assert shipment.tracking_number == "TRK-1"


async def test_order_workflow_events_out_of_order_still_complete(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await reaches(handle, OrderStatus.CONFIRMED)  # waiting for the payment...
        await signal(handle, *reversed(whole_journey(order)))  # ...when the shipment is announced first
        outcome = await handle.result()

    assert outcome == OrderOutcome(status=OrderStatus.COMPLETED)
    assert recorder.statuses == [OrderStatus.PAID, OrderStatus.FULFILLING, OrderStatus.FULFILLING, OrderStatus.SHIPPED]
    assert recorder.only("complete_order").causation_id == shipment_dispatched(order).event_id


async def test_order_workflow_redelivered_events_are_harmless(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        for event in whole_journey(order):
            await signal(handle, event, event)  # Kafka delivers at least once
        # Another PaymentCompleted for the same order: the first one counts.
        await signal(handle, payment_completed(order, payment_id="pay-2", event_id="evt-other"))
        outcome = await handle.result()

    assert outcome == OrderOutcome(status=OrderStatus.COMPLETED)
    assert recorder.names == ["price_order", "confirm_order"] + ["record_progress"] * 4 + ["complete_order"]
    assert recorder.statuses == [OrderStatus.PAID, OrderStatus.FULFILLING, OrderStatus.FULFILLING, OrderStatus.SHIPPED]
    assert recorder.args("record_progress")[0].payment.payment_id == "pay-1"


# --- cancellations ---------------------------------------------------------------------------


async def test_order_workflow_declined_payment_cancels(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        declined = payment_failed(order, reason="declined")
        await signal(handle, declined)
        outcome = await handle.result()

    close = expect_cancelled(outcome, recorder, "payment_declined")
    assert recorder.names == ["price_order", "confirm_order", "cancel_order"]
    assert close.causation_id == declined.event_id
    await keep_history(handle, HISTORIES / "order_payment_declined.json")


async def test_order_workflow_cancels_when_payment_misses_its_deadline(env):
    order = place_order(payment_deadline_seconds=15 * 60)
    async with running(env.client, order) as (handle, recorder, _):
        outcome = await handle.result()  # the test server skips the 15 minutes

    close = expect_cancelled(outcome, recorder, "payment_timeout")
    assert recorder.names == ["price_order", "confirm_order", "cancel_order"]
    assert close.causation_id is None
    await keep_history(handle, HISTORIES / "order_payment_timeout.json")


async def test_order_workflow_cancels_when_fulfillment_misses_its_deadline(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, payment_completed(order))
        outcome = await handle.result()  # a day skipped

    expect_cancelled(outcome, recorder, "fulfillment_timeout")
    assert recorder.statuses == [OrderStatus.PAID]
    await keep_history(handle, HISTORIES / "order_fulfillment_timeout.json")


async def test_order_workflow_out_of_stock_after_payment_cancels(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        unavailable = inventory_unavailable(order)
        await signal(handle, payment_completed(order), unavailable)
        outcome = await handle.result()

    close = expect_cancelled(outcome, recorder, "out_of_stock")
    assert recorder.names == ["price_order", "confirm_order", "record_progress", "cancel_order"]
    assert recorder.statuses == [OrderStatus.PAID]
    assert close.causation_id == unavailable.event_id
    await keep_history(handle, HISTORIES / "order_out_of_stock.json")


async def test_order_workflow_rejected_pricing_cancels_without_confirming(env):
    order = place_order()
    async with running(env.client, order, Pricing(rejection="out_of_stock")) as (handle, recorder, _):
        outcome = await handle.result()

    close = expect_cancelled(outcome, recorder, "out_of_stock")
    assert recorder.names == ["price_order", "cancel_order"]
    assert close.causation_id is None
    await keep_history(handle, HISTORIES / "order_out_of_stock_at_pricing.json")


async def test_order_workflow_customer_cancels_while_payment_is_awaited(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await reaches(handle, OrderStatus.CONFIRMED)
        assert await handle.execute_update(OrderWorkflow.request_cancellation) == OrderStatus.CONFIRMED
        outcome = await handle.result()

    close = expect_cancelled(outcome, recorder, "customer_cancelled")
    assert recorder.names == ["price_order", "confirm_order", "cancel_order"]
    assert close.causation_id is None
    await keep_history(handle, HISTORIES / "order_customer_cancelled.json")


async def test_order_workflow_customer_cancels_after_payment_before_shipment(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, payment_completed(order), inventory_reserved(order))
        await reaches(handle, OrderStatus.FULFILLING)
        assert await handle.execute_update(OrderWorkflow.request_cancellation) == OrderStatus.FULFILLING
        outcome = await handle.result()

    expect_cancelled(outcome, recorder, "customer_cancelled")
    assert recorder.statuses == [OrderStatus.PAID, OrderStatus.FULFILLING]
    await keep_history(handle, HISTORIES / "order_customer_cancelled_after_payment.json")


async def test_order_workflow_refuses_cancellation_once_shipment_is_scheduled(env):
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, payment_completed(order), inventory_reserved(order), shipment_scheduled(order))

        async def shipment_recorded() -> bool:
            return any(progress.shipment for progress in recorder.args("record_progress"))

        await eventually(shipment_recorded, interval=0.05, what="the scheduled shipment to be recorded")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update(OrderWorkflow.request_cancellation)
        assert "can no longer be cancelled" in str(refused.value.cause)

        await signal(handle, shipment_dispatched(order))
        outcome = await handle.result()

    assert outcome == OrderOutcome(status=OrderStatus.COMPLETED)
    assert "cancel_order" not in recorder.names
    assert recorder.statuses == [OrderStatus.PAID, OrderStatus.FULFILLING, OrderStatus.FULFILLING, OrderStatus.SHIPPED]


async def test_order_workflow_refuses_cancellation_when_shipment_announced_early(env):
    # ShipmentScheduled overtook the payment: the pivot is passed even though the workflow
    # has not got that far yet.
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await reaches(handle, OrderStatus.CONFIRMED)
        await signal(handle, shipment_scheduled(order))
        # The update is delivered after the signal, in the same or a later workflow task.
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(OrderWorkflow.request_cancellation)
        await signal(handle, payment_completed(order), inventory_reserved(order), shipment_dispatched(order))
        outcome = await handle.result()

    assert outcome == OrderOutcome(status=OrderStatus.COMPLETED)
    assert "cancel_order" not in recorder.names


# --- the saga monitor's compensation request, and the pivot -----------------------------------


async def shipment_recorded(recorder: Recorder) -> None:
    async def probe() -> bool:
        return any(progress.shipment for progress in recorder.args("record_progress"))

    await eventually(probe, interval=0.05, what="the scheduled shipment to be recorded")


async def test_order_workflow_compensation_request_cancels_before_the_pivot(env):
    """A silent context before the pivot: the monitor asks, the order cancels `saga_timeout`."""
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, payment_completed(order))
        await reaches(handle, OrderStatus.PAID)
        await handle.signal(OrderWorkflow.compensation_requested, "saga_timeout")
        outcome = await handle.result()

    expect_cancelled(outcome, recorder, "saga_timeout")
    assert recorder.statuses == [OrderStatus.PAID]
    await keep_history(handle, HISTORIES / "order_saga_timeout.json")


async def test_order_workflow_ignores_a_compensation_request_past_the_pivot(env):
    """Once the shipment is scheduled the order no longer turns back, whoever asks."""
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, payment_completed(order), inventory_reserved(order), shipment_scheduled(order))
        await shipment_recorded(recorder)
        await handle.signal(OrderWorkflow.compensation_requested, "saga_timeout")
        await signal(handle, shipment_dispatched(order))
        outcome = await handle.result()

    assert outcome == OrderOutcome(status=OrderStatus.COMPLETED)
    assert "cancel_order" not in recorder.names


async def test_order_workflow_past_the_pivot_outwaits_its_dispatch_deadline(env):
    """The parcel may still leave: past the pivot no deadline cancels (and refunds) the order."""
    order = place_order(fulfillment_deadline_seconds=3600)
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, payment_completed(order), inventory_reserved(order), shipment_scheduled(order))
        await shipment_recorded(recorder)
        await env.sleep(2 * 3600)  # the deadline passes
        assert await handle.query(OrderWorkflow.status) == OrderStatus.FULFILLING
        assert "cancel_order" not in recorder.names
        await signal(handle, shipment_dispatched(order))
        outcome = await handle.result()

    assert outcome == OrderOutcome(status=OrderStatus.COMPLETED)
    await keep_history(handle, HISTORIES / "order_dispatch_deadline_outwaited.json")


# --- one deadline timer (the alarm) for every milestone ----------------------------------------


def timer_events(history: WorkflowHistory) -> Counter:
    kinds = {EventType.EVENT_TYPE_TIMER_STARTED: "started", EventType.EVENT_TYPE_TIMER_CANCELED: "cancelled", EventType.EVENT_TYPE_TIMER_FIRED: "fired"}
    return Counter(kinds[event.event_type] for event in history.events if event.event_type in kinds)


async def test_order_workflow_starts_one_deadline_timer_for_all_its_milestones(env):
    """Each milestone in a workflow task of its own, as on the running stack: one timer, started
    for the payment deadline, cancelled at the pivot; not a timer started and cancelled per step."""
    order = place_order()
    async with running(env.client, order) as (handle, recorder, _):
        for event, status in zip(whole_journey(order), [OrderStatus.PAID, OrderStatus.FULFILLING, None, None]):
            await signal(handle, event)
            if status:
                await reaches(handle, status)
        await shipment_recorded(recorder)
        assert (await handle.result()).status == OrderStatus.COMPLETED
        history = await handle.fetch_history()

    assert timer_events(history) == Counter(started=1, cancelled=1)


async def test_order_workflow_a_milestone_keeps_its_own_deadline_when_the_alarm_rings_for_an_earlier_one(env):
    """The alarm was set for the payment deadline (15 minutes); the payment came at once, so the
    stock has a day from then: the alarm ringing at 15 minutes is set again for what is left, and
    the order is cancelled only when the day has passed."""
    order = place_order(payment_deadline_seconds=15 * 60, fulfillment_deadline_seconds=24 * 3600)
    async with running(env.client, order) as (handle, recorder, _):
        await reaches(handle, OrderStatus.CONFIRMED)  # the alarm is set for the payment
        await signal(handle, payment_completed(order))
        outcome = await handle.result()  # the test server skips to each timer
        history = await handle.fetch_history()

    expect_cancelled(outcome, recorder, "fulfillment_timeout")
    assert timer_events(history) == Counter(started=2, fired=2)
    started, ended = history.events[0].event_time.ToDatetime(), history.events[-1].event_time.ToDatetime()
    assert ended - started >= timedelta(hours=24)


async def test_order_workflow_a_nearer_deadline_replaces_the_alarm(env):
    """A step whose deadline comes before the running alarm's gets an alarm of its own."""
    order = place_order(payment_deadline_seconds=24 * 3600, fulfillment_deadline_seconds=600)
    async with running(env.client, order) as (handle, recorder, _):
        await signal(handle, payment_completed(order))
        await reaches(handle, OrderStatus.PAID)
        await env.sleep(700)
        await reaches(handle, OrderStatus.CANCELLED)

    assert recorder.only("cancel_order").reason == "fulfillment_timeout"


# --- determinism -----------------------------------------------------------------------------


async def happy_path_history(client: Client, order: PlaceOrder) -> WorkflowHistory:
    """Runs an order from start to COMPLETED and returns its history. Also the generator of the
    committed history fixture."""
    async with running(client, order) as (handle, _, _):
        await signal(handle, *whole_journey(order))
        assert (await handle.result()).status == OrderStatus.COMPLETED
        return await handle.fetch_history()


async def test_order_workflow_replays_its_own_history(env):
    await assert_replays(await happy_path_history(env.client, place_order()), [OrderWorkflow])


async def test_order_workflow_replays_the_committed_happy_path_history(env):
    assert HAPPY_PATH_HISTORY.exists(), f"{HAPPY_PATH_HISTORY} is missing: see this module's docstring to regenerate it"
    history = WorkflowHistory.from_json(f"order-{HISTORY_ORDER_ID}", HAPPY_PATH_HISTORY.read_text())
    await assert_replays(history, [OrderWorkflow])


# The branches OrderWorkflow can take, each with its history kept by the test that takes it.
BRANCHES = [
    "completed",
    "payment_declined",
    "payment_timeout",
    "out_of_stock_at_pricing",
    "out_of_stock",
    "customer_cancelled",
    "customer_cancelled_after_payment",
    "fulfillment_timeout",
    "saga_timeout",
    "dispatch_deadline_outwaited",
]


def test_order_workflow_keeps_a_history_of_every_branch():
    """Deleting a branch's history must not silently drop its replay test."""
    assert_kept_histories(HISTORIES, "order", BRANCHES, recorded_by=__file__)


@pytest.mark.parametrize("history", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.name)
async def test_order_workflow_replays_every_kept_history(history):
    """Orders running in production, whichever branch they took, survive a change to OrderWorkflow."""
    await assert_replays(history, [OrderWorkflow])


async def write_happy_path_history() -> None:
    async with time_skipping_environment() as env:
        history = await happy_path_history(env.client, place_order(HISTORY_ORDER_ID))
    HISTORIES.mkdir(exist_ok=True)
    HAPPY_PATH_HISTORY.write_text(json.dumps(history.to_json_dict(), indent=2) + "\n")
    print(f"wrote {HAPPY_PATH_HISTORY}")


if __name__ == "__main__":
    import asyncio
    import os
    import sys

    asyncio.run(write_happy_path_history())
    sys.stdout.flush()
    os._exit(0)  # skip the interpreter teardown Temporal's core threads can crash (see conftest.py)
