"""PaymentWorkflow's deadline path on Temporal's time-skipping test server: while no gateway can
take the payment, charge_card is retried until the payment's deadline; then the payment is
recorded as failed ('unavailable') and release_unclaimed_charge gives back anything a lost
answer may have charged. Test activities stand in for PaymentActivities (same names)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from concerto_contracts.values import CustomerSnapshot, LineItem, MaskedCard, OrderSnapshot, ShippingAddress, Totals
from concerto_payment.workflows.inputs import ChargeResult, CollectPayment, PaymentResult, RefundPayment
from concerto_payment.workflows.payment_workflow import CHARGE_RETRY, PaymentWorkflow, RefundWorkflow
from concerto_runtime.temporal import create_worker
from concerto_runtime.testing import time_skipping_environment

APPROVED = ChargeResult(approved=True, card=MaskedCard(brand="visa", last4="4242"), gateway="cardpay", gateway_reference="ch_1")
DECLINED = ChargeResult(approved=False, card=MaskedCard(brand="visa", last4="0002"), gateway="cardpay", decline_reason="declined")
DEADLINE_SECONDS = 30


def collect_payment(deadline_seconds: int = DEADLINE_SECONDS) -> CollectPayment:
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    return CollectPayment(
        payment_id=f"pay-{order_id}",
        payment_method_id="pm-1",
        correlation_id="corr-1",
        causation_id="evt-1",
        deadline_seconds=deadline_seconds,
        order=OrderSnapshot(
            order_id=order_id,
            customer=CustomerSnapshot(id="cust-42", first_order=False, email_masked="a***@example.com"),
            items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=1, unit_price=Decimal("24.00"), weight_grams=50)],
            shipping_address=ShippingAddress(name="Ada Lovelace", line1="12 St James's Square", city="London", postal_code="SW1Y 4JH", country="GB"),
            totals=Totals(
                subtotal=Decimal("24.00"), discount=Decimal("0.00"), tax=Decimal("4.80"), shipping=Decimal("4.99"),
                total=Decimal("33.79"), currency="EUR",
            ),
            channel="web",
        ),
    )


class Activities:
    """PaymentActivities' four activities; each call recorded with its attempt and the
    (skipped) time at which that attempt started."""

    def __init__(self, charge: Callable[[int], ChargeResult]) -> None:
        self.calls: list[tuple[str, object, int, datetime]] = []
        self._charge = charge

    def _record(self, name: str, argument: object) -> int:
        info = activity.info()
        self.calls.append((name, argument, info.attempt, info.started_time))
        return info.attempt

    def activities(self) -> list:
        @activity.defn(name="charge_card")
        async def charge_card(request: CollectPayment) -> ChargeResult:
            return self._charge(self._record("charge_card", request))

        @activity.defn(name="record_payment")
        async def record_payment(result: PaymentResult) -> None:
            self._record("record_payment", result)

        @activity.defn(name="release_unclaimed_charge")
        async def release_unclaimed_charge(request: CollectPayment) -> None:
            self._record("release_unclaimed_charge", request)

        @activity.defn(name="refund_payment")
        async def refund_payment(refund: RefundPayment) -> None:
            self._record("refund_payment", refund)

        return [charge_card, record_payment, release_unclaimed_charge, refund_payment]

    @property
    def names(self) -> list[str]:
        """The activities called, consecutive repeats (retries) collapsed."""
        names: list[str] = []
        for name, *_ in self.calls:
            if not names or names[-1] != name:
                names.append(name)
        return names

    def args(self, name: str) -> list:
        return [argument for called, argument, _, _ in self.calls if called == name]

    def attempts(self, name: str) -> list[int]:
        return [attempt for called, _, attempt, _ in self.calls if called == name]

    def started(self, name: str) -> list[datetime]:
        return [at for called, _, _, at in self.calls if called == name]


async def run_payment(client: Client, activities: Activities, request: CollectPayment) -> PaymentResult:
    task_queue = f"payment-integration-{uuid.uuid4().hex[:8]}"
    async with create_worker(client, task_queue, [PaymentWorkflow, RefundWorkflow], activities.activities()):
        return await client.execute_workflow(PaymentWorkflow.run, request, id=f"payment-{request.payment_id}", task_queue=task_queue)


@pytest.fixture(scope="module")
async def env():
    async with time_skipping_environment() as env:
        yield env


def no_gateway(attempt: int) -> ChargeResult:
    # What PaymentActivities.charge_card raises while NoGatewayAvailable / GatewayAmbiguous.
    raise ApplicationError("every payment gateway is unavailable", type="NoGatewayAvailable")


async def test_payment_integration_workflow_gives_up_at_the_deadline_and_releases_the_charge(env):
    request = collect_payment()
    activities = Activities(charge=no_gateway)

    result = await run_payment(env.client, activities, request)

    assert result.charge.approved is False
    assert result.charge.decline_reason == "unavailable"
    assert activities.names == ["charge_card", "record_payment", "release_unclaimed_charge"]
    (recorded,) = activities.args("record_payment")
    assert recorded.request == request
    assert (recorded.charge.approved, recorded.charge.decline_reason) == (False, "unavailable")
    assert activities.args("release_unclaimed_charge") == [request]

    # charge_card was retried, with backoff, for as long as the deadline allowed, and no longer.
    attempts = activities.attempts("charge_card")
    assert attempts == list(range(1, len(attempts) + 1))
    started = activities.started("charge_card")
    tried_for = (started[-1] - started[0]).total_seconds()
    assert DEADLINE_SECONDS - CHARGE_RETRY.maximum_interval.total_seconds() <= tried_for <= DEADLINE_SECONDS
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(started, started[1:])]
    assert gaps[0] >= CHARGE_RETRY.initial_interval.total_seconds() * 0.9
    assert gaps[-1] > gaps[0]  # backed off
    assert max(gaps) <= CHARGE_RETRY.maximum_interval.total_seconds() * 1.1


async def test_payment_integration_workflow_charge_that_succeeds_on_the_third_try_is_approved(env):
    def third_time_lucky(attempt: int) -> ChargeResult:
        if attempt < 3:
            raise ApplicationError("cardpay is unavailable and may already hold this charge", type="GatewayAmbiguous")
        return APPROVED

    request = collect_payment()
    activities = Activities(charge=third_time_lucky)

    result = await run_payment(env.client, activities, request)

    assert activities.attempts("charge_card") == [1, 2, 3]
    assert activities.names == ["charge_card", "record_payment"]  # nothing to release
    assert result == PaymentResult(request=request, charge=APPROVED)
    (recorded,) = activities.args("record_payment")
    assert recorded.charge == APPROVED


async def test_payment_integration_workflow_decline_is_recorded_without_a_release(env):
    request = collect_payment()
    activities = Activities(charge=lambda _: DECLINED)

    result = await run_payment(env.client, activities, request)

    assert activities.attempts("charge_card") == [1]
    assert activities.names == ["charge_card", "record_payment"]
    assert result.charge == DECLINED
