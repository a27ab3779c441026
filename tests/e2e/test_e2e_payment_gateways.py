"""The payment integration layer from the outside (docs/decisions/0006): the primary gateway
(cardpay) goes down and orders fail over to the secondary (paynext); both go down and a payment
waits, up to its deadline, for one to come back; past the deadline the order is cancelled
`payment_unavailable` and nobody is charged. The simulated gateways' faults and books are driven
and read through the gateway's admin routes only.

Faults are global to the stack: every test here takes the `payment_faults` fixture, which clears
both gateways' faults before and after it (and waits until no circuit breaker is open, so the
tests after these find the primary in use again)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from concerto_runtime.testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

APPROVED = "tok_visa"
PRIMARY, SECONDARY = "cardpay", "paynext"


def charges_with_key(ledger: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [charge for charge in ledger["charges"] if charge["key"] == key]


def payment_key(order_id: str) -> str:
    """The idempotency key / merchant reference of an order's charge: its payment id."""
    return f"pay-{order_id}"


def unavailable_calls(api, status: dict[str, Any]) -> int:
    """Calls that did not go through: failed at the gateway, or refused by its open circuit."""
    return api.calls(status, "failed", "rejected")


async def test_primary_in_full_outage_orders_complete_through_the_secondary(api, payment_faults):
    """The demo: one PUT {"outage": true} on cardpay is all it takes, and the very next orders
    still complete, charged once, at paynext."""
    product = await api.product(prefer="CON-BATON")
    before = await api.payment_gateways()
    assert list(before) == list(api.PAYMENT_GATEWAYS), f"cardpay first (the primary), then paynext: {list(before)}"

    await payment_faults.set(PRIMARY, outage=True)
    placed = await asyncio.gather(*(api.place(api.body(product["sku"], token=APPROVED)) for _ in range(3)))
    orders = await asyncio.gather(*(api.terminal(p.order_id) for p in placed))

    for order in orders:
        assert order["status"] == "COMPLETED", order
        assert order["payment"] and order["payment"]["gateway"] == SECONDARY, f"should have failed over: {order}"
        assert order["payment"]["payment_id"] == payment_key(order["order_id"]), order
    after = await api.payment_gateways()
    assert unavailable_calls(api, after[PRIMARY]) > unavailable_calls(api, before[PRIMARY]), (
        f"cardpay in outage shows no failed or rejected calls: before {before[PRIMARY]}, after {after[PRIMARY]}"
    )
    ledgers = await api.ledgers()
    for order in orders:
        key = payment_key(order["order_id"])
        assert charges_with_key(ledgers[PRIMARY], key) == [], f"cardpay booked a charge while in outage: {ledgers[PRIMARY]}"
        found = charges_with_key(ledgers[SECONDARY], key)
        assert len(found) == 1, f"paynext should hold one charge for {key}: {found or ledgers[SECONDARY]['charges'][-10:]}"
        charge = found[0]
        assert charge["status"] == "succeeded", charge
        assert (charge["amount"], charge["currency"].upper()) == (
            api.minor_units(order["totals"]["total"]),
            order["totals"]["currency"],
        ), (charge, order["totals"])


async def test_both_gateways_down_then_one_recovers_within_the_deadline_the_order_completes(api, payment_faults):
    product = await api.product(prefer="CON-STAND")
    await payment_faults.set(PRIMARY, outage=True)
    secondary = (await api.payment_gateways())[SECONDARY]
    if (secondary["state"], secondary["consecutive_failures"]) != ("closed", 0):
        # A half-open circuit opens again at its first failure, for 15 s: too long to recover
        # within this test's deadline. One order failing over to paynext closes it first.
        warm_up = await api.place(api.body(product["sku"], token=APPROVED))
        assert (await api.terminal(warm_up.order_id))["status"] == "COMPLETED", f"paynext should take it: {secondary}"
    before = await api.payment_gateways()
    await payment_faults.set(SECONDARY, outage=True)

    placed = await api.place(api.body(product["sku"], token=APPROVED))

    async def both_tried() -> dict | None:
        now = await api.payment_gateways()
        tried = all(unavailable_calls(api, now[name]) > unavailable_calls(api, before[name]) for name in api.PAYMENT_GATEWAYS)
        return now if tried else None

    # Recover well inside the deadline (half of it at most), once the payment has met both outages.
    await eventually(both_tried, timeout=api.PAYMENT_DEADLINE / 2, interval=0.1, what="the payment to fail at both gateways")
    waiting = await api.order(placed.order_id)
    assert waiting["status"] == "CONFIRMED", f"no gateway can take the payment, yet the order is {waiting}"
    await payment_faults.clear(SECONDARY)

    order = await api.terminal(placed.order_id, timeout=api.PAYMENT_DEADLINE + api.ORDER_DEADLINE)

    assert order["status"] == "COMPLETED", f"paynext came back within the payment's deadline, yet: {order}"
    assert order["payment"]["gateway"] == SECONDARY, order
    ledgers = await api.ledgers()
    key = payment_key(placed.order_id)
    assert charges_with_key(ledgers[PRIMARY], key) == [], ledgers[PRIMARY]["charges"][-10:]
    assert [c["status"] for c in charges_with_key(ledgers[SECONDARY], key)] == ["succeeded"], ledgers[SECONDARY]["charges"][-10:]


async def test_both_gateways_down_past_the_deadline_the_order_is_cancelled_unpaid(api, payment_faults):
    product = await api.product(prefer="CON-TUNER")
    before = await api.payment_gateways()
    await payment_faults.set(PRIMARY, outage=True)
    await payment_faults.set(SECONDARY, outage=True)

    started = time.monotonic()
    placed = await api.place(api.body(product["sku"], token=APPROVED))
    order = await api.terminal(placed.order_id, timeout=api.PAYMENT_DEADLINE + 25)
    waited = time.monotonic() - started

    assert (order["status"], order["cancellation_reason"]) == ("CANCELLED", "payment_unavailable"), order
    assert order["shipment"] is None, order
    # It kept trying up to the deadline (TEST_PAYMENT_DEADLINE_SECONDS must match the stack's).
    # Temporal does not start a retry that would begin past the deadline, so the payment may give
    # up as much as one retry interval (at most 5 s) before it.
    earliest = api.PAYMENT_DEADLINE - 6
    assert waited >= earliest, f"gave up after {waited:.1f}s, long before the {api.PAYMENT_DEADLINE:g}s deadline: {order}"
    after = await api.payment_gateways()
    untried = [n for n in api.PAYMENT_GATEWAYS if unavailable_calls(api, after[n]) <= unavailable_calls(api, before[n])]
    assert not untried, f"the payment never met the outage of {untried}: before {before}, after {after}"
    ledgers = await api.ledgers()
    key = payment_key(placed.order_id)
    for name, ledger in ledgers.items():
        succeeded = [c for c in charges_with_key(ledger, key) if c["status"] == "succeeded"]
        assert succeeded == [], f"{name} charged an order cancelled payment_unavailable: {succeeded}; {order}"
    account = await api.loyalty(placed.customer_id)
    assert account["points"] == 0, account
    assert [e for e in account["history"] if e["order_id"] == placed.order_id] == [], account


async def test_an_order_cancelled_while_no_gateway_is_up_is_never_charged(api, payment_faults, events):
    """Cancelled while its payment waits for a gateway: the payment stops (PaymentFailed
    `cancelled`), and when a gateway comes back nothing is charged. (An attempt already under
    way when the cancellation arrives may still charge; the refund then gives it back.)"""
    product = await api.product(prefer="CON-STAND")
    await payment_faults.set(PRIMARY, outage=True)
    await payment_faults.set(SECONDARY, outage=True)
    placed = await api.place(api.body(product["sku"], token=APPROVED))

    async def confirmed() -> bool:
        return (await api.order(placed.order_id))["status"] == "CONFIRMED"

    await eventually(confirmed, timeout=15, what="the order confirmed, its payment under way")
    assert (await api.cancel(placed.order_id)).status_code == 202
    order = await api.terminal(placed.order_id)
    assert (order["status"], order["cancellation_reason"]) == ("CANCELLED", "customer_cancelled"), order

    # The payment hears of the cancellation through Kafka; its next attempt, due within a few
    # seconds and long before its deadline, stops with PaymentFailed `cancelled`.
    key = placed.order_id.encode()
    failed = await events.collect(
        lambda record: record.key == key and record.type_name == "PaymentFailed",
        lambda found: bool(found),
        timeout=api.PAYMENT_DEADLINE + 15,
        what="the payment to give up",
    )
    assert json.loads(failed[0].value)["reason"] == "cancelled", failed
    # Gateways back: nothing is charged for the cancelled order.
    await payment_faults.clear_all()
    for name, ledger in (await api.ledgers()).items():
        succeeded = [c for c in charges_with_key(ledger, payment_key(placed.order_id)) if c["status"] == "succeeded"]
        assert succeeded == [], f"{name} charged an order cancelled before payment: {succeeded}"
