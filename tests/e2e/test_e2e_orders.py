"""Orders through the whole platform: placed at the gateway, carried out by the order,
payment, fulfillment and loyalty contexts, followed through the public API only."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from concerto_runtime.testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

APPROVED, DECLINED = "tok_visa", "tok_chargeDeclined"


def awarded_for(account: dict, order_id: str) -> list[dict]:
    return [e for e in account["history"] if e["order_id"] == order_id and e["reason"] == "awarded"]


async def test_happy_path_order_completes_with_payment_shipment_and_points(api):
    product = await api.product(prefer="CON-BATON")
    placed = await api.place(api.body(product["sku"], token=APPROVED, quantity=2))
    assert placed.response.headers.get("X-Correlation-ID") == placed.correlation_id

    order = await api.terminal(placed.order_id)

    assert order["status"] == "COMPLETED", order
    assert order["order_id"] == placed.order_id
    assert order["customer_id"] == placed.customer_id
    assert order["correlation_id"] == placed.correlation_id
    assert order["cancellation_reason"] is None, order
    # Priced from the catalogue.
    assert [(i["sku"], i["quantity"], i["name"], Decimal(i["unit_price"])) for i in order["items"]] == [
        (product["sku"], 2, product["name"], Decimal(product["unit_price"]))
    ], order["items"]
    totals = {k: (Decimal(v) if k != "currency" else v) for k, v in (order["totals"] or {}).items()}
    assert totals, f"a completed order has totals: {order}"
    assert totals["currency"] == product["currency"]
    assert totals["subtotal"] == Decimal(product["unit_price"]) * 2, totals
    assert totals["total"] == totals["subtotal"] - totals["discount"] + totals["tax"] + totals["shipping"], totals
    assert totals["total"] > 0, totals
    # What the customer sees of the payment: the masked card, never the token.
    payment = order["payment"]
    assert payment and payment["payment_id"], order
    assert payment["card"] == {"brand": "visa", "last4": "4242"}, payment
    shipment = order["shipment"]
    assert shipment and shipment["tracking_number"] and shipment["carrier"], order
    assert shipment["dispatched_at"], f"a completed order was dispatched: {shipment}"
    # ShipmentDispatched's optional field (ADR 15), carried from fulfillment to the order: the
    # demo carriers all have a transit time, so it is set, and never before the dispatch.
    assert shipment["estimated_delivery"] and shipment["estimated_delivery"] >= shipment["dispatched_at"][:10], shipment

    async def points_awarded() -> dict | None:
        account = await api.loyalty(placed.customer_id)
        return account if awarded_for(account, placed.order_id) else None

    account = await eventually(points_awarded, timeout=30, what=f"points awarded to {placed.customer_id}")
    [entry] = awarded_for(account, placed.order_id)
    assert entry["points"] > 0, account
    assert account["points"] > 0, account
    assert account["points"] == sum(e["points"] for e in account["history"]), account
    assert account["customer_id"] == placed.customer_id


async def test_declined_card_cancels_the_order_and_earns_no_points(api):
    product = await api.product(prefer="CON-SCORE-B5")
    placed = await api.place(api.body(product["sku"], token=DECLINED))

    order = await api.terminal(placed.order_id)

    assert order["status"] == "CANCELLED", order
    assert order["cancellation_reason"] == "payment_declined", order
    assert order["shipment"] is None, order
    account = await api.loyalty(placed.customer_id)
    assert account["points"] == 0, account
    assert [e for e in account["history"] if e["order_id"] == placed.order_id] == [], account


async def test_concurrent_orders_each_end_as_their_card_decides(api):
    catalogue = await api.products()
    skus = [
        sku for sku, p in catalogue.items() if sku != api.OUT_OF_STOCK_SKU and (p["available"] is None or p["available"] >= 20)
    ]
    assert skus, f"no products with stock: {catalogue}"
    bodies = [api.body(skus[i % len(skus)], token=APPROVED if i % 2 == 0 else DECLINED) for i in range(20)]

    placed = await asyncio.gather(*(api.place(body) for body in bodies))

    assert len({p.order_id for p in placed}) == 20, "every order gets its own id"
    final: dict[str, dict] = {}

    async def all_ended() -> bool:
        pending = [p.order_id for p in placed if p.order_id not in final]
        for order in await asyncio.gather(*(api.order(order_id) for order_id in pending)):
            if order["status"] in ("COMPLETED", "CANCELLED"):
                final[order["order_id"]] = order
        return len(final) == len(placed)

    try:
        await eventually(all_ended, timeout=30, interval=0.5, what="all 20 orders to end")
    except AssertionError as exc:
        stuck = {p.order_id for p in placed} - set(final)
        raise AssertionError(f"{exc}; still running: {sorted(stuck)}") from None
    mismatches = []
    for p in placed:
        order, token = final[p.order_id], p.body["payment"]["token"]
        expected = ("COMPLETED", None) if token == APPROVED else ("CANCELLED", "payment_declined")
        if (order["status"], order["cancellation_reason"]) != expected:
            mismatches.append((p.order_id, token, order["status"], order["cancellation_reason"]))
    assert not mismatches, f"orders that ended against their card: {mismatches}"


async def test_idempotency_key_returns_the_same_order_and_refuses_a_different_body(api):
    product = await api.product(prefer="CON-STAND")
    key = api.unique("idem")
    body = api.body(product["sku"], token=APPROVED)

    first = await api.place(body, headers={"Idempotency-Key": key})
    again = await api.place(body, headers={"Idempotency-Key": key})

    assert again.order_id == first.order_id
    assert again.correlation_id == first.correlation_id
    changed = {**body, "items": [{"sku": product["sku"], "quantity": 3}]}
    conflict = await api.http.post("/api/v1/orders", json=changed, headers={"Idempotency-Key": key})
    api.problem(conflict, 422)

    # The retry did not start a second process: one order, paid, shipped and rewarded once.
    order = await api.terminal(first.order_id)
    assert order["status"] == "COMPLETED", order
    assert order["items"][0]["quantity"] == 1, order

    async def points_awarded() -> dict | None:
        account = await api.loyalty(first.customer_id)
        return account if awarded_for(account, first.order_id) else None

    account = await eventually(points_awarded, timeout=30, what="points for the idempotent order")
    assert len(awarded_for(account, first.order_id)) == 1, account


async def test_cancelling_right_after_placing_ends_consistently(api, events):
    """Either the cancellation is accepted (202) and the order ends CANCELLED by the customer
    (refunded if it was paid, never shipped, no points kept), or it came too late (409) and the
    order ends COMPLETED. Anything else is an inconsistency."""
    product = await api.product(prefer="CON-TUNER")
    placed = await api.place(api.body(product["sku"], token=APPROVED))

    cancel = await api.cancel(placed.order_id)

    assert cancel.status_code in (202, 409), f"cancel answered {cancel.status_code}: {cancel.text}"
    order = await api.terminal(placed.order_id)
    if cancel.status_code == 409:
        api.problem(cancel, 409)
        assert order["status"] == "COMPLETED", f"cancellation refused (409) but the order ended {order}"
        return
    assert cancel.json()["order_id"] == placed.order_id, cancel.text
    assert (order["status"], order["cancellation_reason"]) == ("CANCELLED", "customer_cancelled"), (
        f"cancellation accepted (202) but the order ended {order}"
    )

    # The compensations, as the other contexts announce them on Kafka.
    settled_at: list[float] = []

    def is_this_order(record) -> bool:
        return record.key == placed.order_id.encode() or record.header("ce_correlationid") == placed.correlation_id

    def settled(records) -> bool:
        types = [r.type_name for r in records if r.key == placed.order_id.encode()]
        if "OrderCancelled" not in types:
            return False
        if "OrderConfirmed" in types and not {"PaymentRefunded", "PaymentFailed"} & set(types):
            return False  # the payment is still to be settled (a confirmed order is always charged)
        if "PaymentCompleted" not in types or {"ShipmentDispatched", "InventoryUnavailable"} & set(types):
            return True
        if "InventoryReserved" in types:
            # Reserved, then released: fulfillment announces the sku's stock level once for the
            # reservation and once more for the release, both in this order's correlation.
            levels = [r for r in records if r.type_name == "StockLevelChanged"]
            if len(levels) >= 2 * len({i["sku"] for i in order["items"]}):
                return True
        # Nothing more from fulfillment: give it a short quiet window (it picks up in ~1 s).
        if not settled_at:
            settled_at.append(time.monotonic())
        return time.monotonic() - settled_at[0] > 5

    records = await events.collect(is_this_order, settled, timeout=30, what=f"order {placed.order_id} to settle")
    types = [r.type_name for r in records if r.key == placed.order_id.encode()]
    assert "ShipmentDispatched" not in types, f"a cancelled order was shipped: events {types}; order {order}"
    if "PaymentCompleted" in types:
        assert "PaymentRefunded" in types, f"a cancelled, paid order was not refunded: events {types}; order {order}"

    async def no_points_kept() -> dict | None:
        account = await api.loyalty(placed.customer_id)
        return account if account["points"] == 0 else None

    await eventually(no_points_kept, timeout=15, what="a cancelled order's points to be reversed")


async def test_cancelling_a_completed_order_is_refused(api):
    product = await api.product(prefer="CON-METRONOME")
    placed = await api.place(api.body(product["sku"], token=APPROVED))
    order = await api.terminal(placed.order_id)
    assert order["status"] == "COMPLETED", order

    refused = await api.cancel(placed.order_id)

    api.problem(refused, 409)
    assert (await api.order(placed.order_id))["status"] == "COMPLETED"


async def test_out_of_stock_order_is_cancelled(api):
    sku = api.OUT_OF_STOCK_SKU
    assert sku in await api.products(), f"{sku} is not in the catalogue"
    try:
        emptied = await api.set_stock(sku, 0)
        assert emptied.status_code == 200, emptied.text
        assert emptied.json() == {"sku": sku, "available": 0}
        await api.available(sku, 0)

        placed = await api.place(api.body(sku, token=APPROVED))
        order = await api.terminal(placed.order_id)

        assert order["status"] == "CANCELLED", order
        assert order["cancellation_reason"] == "out_of_stock", order
        assert order["shipment"] is None, order

        async def no_points() -> dict | None:
            account = await api.loyalty(placed.customer_id)
            return account if account["points"] == 0 else None

        await eventually(no_points, timeout=15, what="no points for an order that could not be served")
    finally:
        restored = await api.set_stock(sku, api.RESTORED_STOCK)
    assert restored.status_code == 200, f"could not restore the stock of {sku}: {restored.text}"
    await api.available(sku, api.RESTORED_STOCK)
