"""Issue 18 from the outside: a refund the payment gateway refuses for good is an operator's
matter. An order paid at cardpay is cancelled by its customer while cardpay refuses every refund
(the simulator's `refuse_refunds` fault): the payment is REFUND_FAILED at once, the saga
COMPENSATION_FAILED on its timeline; a retry while cardpay still refuses is refused again;
recorded by hand through the gateway's admin API, the payment is REFUNDED, the decisions are
audited (who: the admin key's caller), the points reversed and the saga COMPENSATED.
The payment_faults and consumer_controls fixtures restore the simulators and consumers, whatever
happens."""

from __future__ import annotations

import os

import pytest

from concerto_runtime.testing import eventually

ADMIN = {"X-API-Key": os.environ.get("CONCERTO_ADMIN_API_KEY", "dev-admin-key")}

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]


async def test_a_refund_refused_for_good_waits_for_an_operator_who_records_it_by_hand(api, payment_faults, consumer_controls):
    # Fulfillment silent, so the paid order waits before the pivot and the customer can cancel it.
    await consumer_controls.set("fulfillment", paused=True)
    await payment_faults.set("cardpay", refuse_refunds=True)
    placed = await api.place(api.body((await api.product(prefer="CON-TUNER"))["sku"], token="tok_visa"))

    async def paid() -> bool:
        return (await api.order(placed.order_id))["status"] == "PAID"

    await eventually(paid, timeout=30, what="the order PAID")
    cancelled = await api.cancel(placed.order_id)
    assert cancelled.status_code == 202, cancelled.text
    order = await api.terminal(placed.order_id)
    assert (order["status"], order["cancellation_reason"]) == ("CANCELLED", "customer_cancelled"), order
    await consumer_controls.set("fulfillment")

    async def payment() -> dict:
        response = await api.http.get(f"/api/v1/admin/payments/{placed.order_id}", headers=ADMIN)
        assert response.status_code == 200, response.text
        return response.json()

    async def refund_failed() -> dict | None:
        current = await payment()
        return current if current["status"] == "REFUND_FAILED" else None

    failed = await eventually(refund_failed, timeout=30, what="the payment REFUND_FAILED")
    assert failed["awaiting_decision"] is True and failed["gateway"] == "cardpay", failed
    assert "400" in failed["failure_reason"], failed

    async def compensation_failed() -> dict | None:
        timeline = await api.timeline(placed.order_id)
        return timeline if timeline and timeline["status"] == "COMPENSATION_FAILED" else None

    timeline = await eventually(compensation_failed, timeout=30, what="the saga COMPENSATION_FAILED")
    assert "PaymentRefundFailed" in [event["type"] for event in timeline["events"]], timeline
    assert f"refund-{failed['payment_id']}" in timeline["temporal_workflows"], timeline
    failed_sagas = await api.sagas("COMPENSATION_FAILED")
    assert placed.order_id in [saga["order_id"] for saga in failed_sagas["items"]]

    # Bad input at the edge: a decision without a reason is a 422 problem, never forwarded.
    invalid = await api.http.post(f"/api/v1/admin/payments/{placed.order_id}/refund/retry", json={}, headers=ADMIN)
    api.problem(invalid, 422)
    # Not an operator: refused.
    forbidden = await api.http.post(f"/api/v1/admin/payments/{placed.order_id}/refund/retry", json={"reason": "x"})
    api.problem(forbidden, 403)

    # A retry while cardpay still refuses: refused again, and the refund waits again.
    retried = await api.http.post(
        f"/api/v1/admin/payments/{placed.order_id}/refund/retry", json={"reason": "asked cardpay to re-enable refunds"}, headers=ADMIN
    )
    assert retried.status_code == 202, retried.text

    async def refused_again() -> dict | None:
        current = await payment()
        return current if current["awaiting_decision"] and [d["action"] for d in current["decisions"]] == ["retry"] else None

    await eventually(refused_again, timeout=30, what="the retried refund refused again")

    by_hand = await api.http.post(
        f"/api/v1/admin/payments/{placed.order_id}/refund/refunded-by-hand",
        json={"reason": "refunded by bank transfer", "reference": "SEPA-E2E-1"},
        headers=ADMIN,
    )
    assert by_hand.status_code == 202, by_hand.text

    async def refunded() -> dict | None:
        current = await payment()
        return current if current["status"] == "REFUNDED" else None

    done = await eventually(refunded, timeout=30, what="the payment REFUNDED by hand")
    assert done["refund_id"].startswith("by-hand-"), done
    (retry, hand) = done["decisions"]
    assert (hand["action"], hand["operator"], hand["reason"], hand["reference"]) == (
        "refunded_by_hand", "api-key:admin", "refunded by bank transfer", "SEPA-E2E-1"
    ), done
    assert retry["operator"] == "api-key:admin"
    # Nothing went back through cardpay: the refund was made by hand.
    ledger = (await api.http.get("/api/v1/admin/payment-gateways/cardpay/charges", headers=ADMIN)).json()
    assert not [r for r in ledger["refunds"] if r.get("status") == "succeeded" and failed["payment_id"] in r.get("key", "")]

    async def compensated() -> dict | None:
        timeline = await api.timeline(placed.order_id)
        return timeline if timeline and timeline["status"] == "COMPENSATED" else None

    await eventually(compensated, timeout=45, what="the saga COMPENSATED once refunded by hand")

    # Decided once: another decision is refused.
    again = await api.http.post(f"/api/v1/admin/payments/{placed.order_id}/refund/retry", json={"reason": "again"}, headers=ADMIN)
    api.problem(again, 409)
