"""The operator's key figures (GET /api/v1/admin/figures, the console's top card) from the
services' own /metrics: orders counted as they end, by outcome and reason, and a silent
consumer's lag seen while it is silent."""

from __future__ import annotations

from typing import Any

import pytest

from concerto_runtime.testing import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


async def test_orders_are_counted_as_they_end_by_outcome_and_reason(api):
    before = await api.figures()
    product = await api.product(prefer="in_stock")
    completed = await api.place(api.body(product["sku"]))
    declined = await api.place(api.body(product["sku"], token="tok_chargeDeclined"))
    assert (await api.terminal(completed.order_id))["status"] == "COMPLETED"
    cancelled = await api.terminal(declined.order_id)
    reason = cancelled["cancellation_reason"]

    after = await api.figures()
    assert after["orders_placed"] >= before["orders_placed"] + 2
    assert after["orders_completed"] >= before["orders_completed"] + 1
    assert after["cancelled_by_reason"].get(reason, 0) >= before["cancelled_by_reason"].get(reason, 0) + 1
    assert after["saga_seconds_p50"] is not None and after["saga_seconds_p50"] > 0
    assert set(after["breakers"]) == set(api.PAYMENT_GATEWAYS)
    assert after["unreachable"] == []


async def test_a_silent_consumer_shows_its_lag_and_catches_up(api):
    product = await api.product(prefer="in_stock")
    await api.set_consumer("fulfillment", paused=True)
    try:
        placed = await api.place(api.body(product["sku"]))

        async def lagging() -> dict[str, Any] | None:
            now = await api.figures()
            return now if now["consumer_lag"].get("fulfillment-service", 0) >= 1 else None

        await eventually(lagging, timeout=30, what="fulfillment's lag to show the unread events")
    finally:
        await api.set_consumer("fulfillment")

    async def caught_up() -> bool:
        return (await api.figures())["consumer_lag"].get("fulfillment-service") == 0

    await eventually(caught_up, timeout=30, what="fulfillment's lag to fall back to 0")
    assert (await api.terminal(placed.order_id))["status"] in {"COMPLETED", "CANCELLED"}
