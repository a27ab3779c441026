"""PaymentWorkflow and RefundWorkflow on Temporal's time-skipping test server, with test
activities in place of the database-backed PaymentActivities: each records its call (and
attempt) and returns a canned result or raises a canned error.

Each branch's test keeps its workflow's history in tests/histories/payment_<branch>.json, and
every history there is replayed with the current code, so a change that would break payments
already running fails here. Record them again only when the change is safe, or a release retires
patches (ADR 17: the histories recorded before it move to tests/histories/retired/, which is not
replayed):

    cd /work/main && RECORD_HISTORIES=1 .venv/bin/pytest services/payment/tests/test_payment_workflow.py
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ActivityError, ApplicationError

from concerto_contracts.values import CustomerSnapshot, LineItem, MaskedCard, OrderSnapshot, ShippingAddress, Totals
from concerto_payment.workflows.inputs import (
    NOT_FOUND,
    REFUNDED,
    REFUSED,
    RELEASED,
    ChargeResult,
    CollectPayment,
    PaymentResult,
    RefundDecided,
    RefundDecision,
    RefundPayment,
)
from concerto_payment.workflows.payment_workflow import PaymentWorkflow, RefundWorkflow
from concerto_runtime.temporal import create_worker
from concerto_runtime.testing import Executions, assert_kept_histories, assert_replays, eventually, keep_history, time_skipping_environment

HISTORIES = Path(__file__).parent / "histories"
CARD = MaskedCard(brand="visa", last4="4242")
APPROVED = ChargeResult(approved=True, card=CARD, gateway="test-mode")
DECLINED = ChargeResult(approved=False, card=MaskedCard(brand="visa", last4="0002"), gateway="test-mode", decline_reason="declined")


def order_snapshot(order_id: str) -> OrderSnapshot:
    return OrderSnapshot(
        order_id=order_id,
        customer=CustomerSnapshot(id="cust-42", first_order=True, email_masked="a***@example.com"),
        items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=2, unit_price=Decimal("24.00"), weight_grams=50)],
        shipping_address=ShippingAddress(name="Ada Lovelace", line1="12 St James's Square", city="London", postal_code="SW1Y 4JH", country="GB"),
        totals=Totals(
            subtotal=Decimal("48.00"), discount=Decimal("0.00"), tax=Decimal("9.60"), shipping=Decimal("4.99"),
            total=Decimal("62.59"), currency="EUR",
        ),
        channel="web",
    )


def collect_payment(**overrides) -> CollectPayment:
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    return CollectPayment(
        payment_id=f"pay-{order_id}", payment_method_id="pm-1", correlation_id="corr-1", causation_id="evt-1",
        order=order_snapshot(order_id), **overrides,
    )


def refund_payment() -> RefundPayment:
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    return RefundPayment(
        order_id=order_id, payment_id=f"pay-{order_id}", reason="customer_cancelled", correlation_id="corr-1", causation_id="evt-2"
    )


class Recorder:
    """Stands in for PaymentActivities: same activity names, calls and attempts recorded.

    `charge` and `refund` are called with the attempt number and return the charge result, or
    raise."""

    def __init__(
        self,
        charge: Callable[[int], ChargeResult] = lambda _: APPROVED,
        refund: Callable[[int], str | None] = lambda _: None,
        release: Callable[[int], str | None] = lambda _: None,
    ) -> None:
        self.calls: list[tuple[str, object, int]] = []
        self._charge, self._refund, self._release = charge, refund, release

    def activities(self) -> list:
        calls = self.calls
        executions = Executions()

        @activity.defn(name="charge_card")
        async def charge_card(request: CollectPayment) -> ChargeResult:
            attempt = activity.info().attempt
            calls.append(("charge_card", request, attempt))
            return self._charge(attempt)

        @activity.defn(name="record_payment")
        async def record_payment(result: PaymentResult) -> None:
            if not executions.first():
                return  # a local step re-run with its workflow task counts once
            calls.append(("record_payment", result, activity.info().attempt))

        @activity.defn(name="release_unclaimed_charge")
        async def release_unclaimed_charge(request: CollectPayment) -> str | None:
            calls.append(("release_unclaimed_charge", request, activity.info().attempt))
            return self._release(len(self.args("release_unclaimed_charge")))

        @activity.defn(name="refund_payment")
        async def refund_payment(refund: RefundPayment) -> str | None:
            attempt = activity.info().attempt
            calls.append(("refund_payment", refund, attempt))
            return self._refund(attempt) if refund.retry == 0 else self._refund(-refund.retry)

        @activity.defn(name="record_refund_decision")
        async def record_refund_decision(decided: RefundDecided) -> None:
            if not executions.first():
                return
            calls.append(("record_refund_decision", decided, activity.info().attempt))

        return [charge_card, record_payment, release_unclaimed_charge, refund_payment, record_refund_decision]

    @property
    def names(self) -> list[str]:
        return [name for name, _, _ in self.calls]

    def args(self, name: str) -> list:
        return [arg for called, arg, _ in self.calls if called == name]

    def attempts(self, name: str) -> list[int]:
        return [attempt for called, _, attempt in self.calls if called == name]


async def run_payment(client: Client, recorder: Recorder, request: CollectPayment) -> PaymentResult:
    task_queue = f"payment-test-{uuid.uuid4().hex[:8]}"
    async with create_worker(client, task_queue, [PaymentWorkflow, RefundWorkflow], recorder.activities()):
        return await client.execute_workflow(
            PaymentWorkflow.run, request, id=f"payment-{request.payment_id}", task_queue=task_queue
        )


def payment_handle(client: Client, request: CollectPayment) -> WorkflowHandle:
    return client.get_workflow_handle(f"payment-{request.payment_id}")


def refund_handle(client: Client, refund: RefundPayment) -> WorkflowHandle:
    return client.get_workflow_handle(f"refund-{refund.payment_id}")


async def run_refund(client: Client, recorder: Recorder, refund: RefundPayment) -> None:
    task_queue = f"payment-test-{uuid.uuid4().hex[:8]}"
    async with create_worker(client, task_queue, [PaymentWorkflow, RefundWorkflow], recorder.activities()):
        await client.execute_workflow(RefundWorkflow.run, refund, id=f"refund-{refund.payment_id}", task_queue=task_queue)


@pytest.fixture(scope="module")
async def env():
    async with time_skipping_environment() as env:
        yield env


# --- PaymentWorkflow -------------------------------------------------------------------------

async def test_payment_workflow_replays_its_own_history(env):
    request = collect_payment()
    task_queue = f"payment-test-{uuid.uuid4().hex[:8]}"
    async with create_worker(env.client, task_queue, [PaymentWorkflow, RefundWorkflow], Recorder().activities()):
        handle = await env.client.start_workflow(PaymentWorkflow.run, request, id=f"payment-{request.payment_id}", task_queue=task_queue)
        await handle.result()
    await assert_replays(await handle.fetch_history(), [PaymentWorkflow, RefundWorkflow])


async def test_payment_workflow_approved_charges_then_records(env):
    request = collect_payment()
    recorder = Recorder()

    result = await run_payment(env.client, recorder, request)

    assert recorder.names == ["charge_card", "record_payment"]
    assert recorder.args("charge_card") == [request]
    assert result == PaymentResult(request=request, charge=APPROVED)
    (recorded,) = recorder.args("record_payment")
    assert recorded == result
    assert recorded.charge.approved is True
    assert recorded.charge.card == CARD
    # The event-carried order state survives the round trip through Temporal's payloads.
    assert recorded.request.order == request.order
    assert recorded.request.order.totals.total == Decimal("62.59")
    await keep_history(payment_handle(env.client, request), HISTORIES / "payment_approved.json")


async def test_payment_workflow_declined_records_a_failed_payment(env):
    request = collect_payment()
    recorder = Recorder(charge=lambda _: DECLINED)

    result = await run_payment(env.client, recorder, request)

    assert recorder.names == ["charge_card", "record_payment"]
    (recorded,) = recorder.args("record_payment")
    assert recorded.charge.approved is False
    assert recorded.charge.decline_reason == "declined"
    assert recorded.request == request
    assert result.charge == DECLINED
    await keep_history(payment_handle(env.client, request), HISTORIES / "payment_declined.json")


async def test_payment_workflow_unavailable_until_the_deadline_records_and_releases(env):
    """No gateway takes the payment before its deadline: it fails as `unavailable`, and a charge
    an earlier attempt may have made after all is released."""

    def no_gateway(_: int) -> ChargeResult:
        raise RuntimeError("no gateway available")

    request = collect_payment(deadline_seconds=30)
    recorder = Recorder(charge=no_gateway)

    result = await run_payment(env.client, recorder, request)  # the test server skips the 30 s

    assert len(recorder.attempts("charge_card")) > 1  # retried up to the deadline
    assert recorder.names[-2:] == ["record_payment", "release_unclaimed_charge"]
    assert result.charge == ChargeResult(approved=False, decline_reason="unavailable")
    assert recorder.args("record_payment") == [result]
    assert recorder.args("release_unclaimed_charge") == [request]
    await keep_history(payment_handle(env.client, request), HISTORIES / "payment_unavailable.json")


async def test_payment_workflow_for_a_cancelled_order_records_and_releases(env):
    """The order was cancelled before its charge: nothing is charged, and anything an earlier
    attempt charged is released."""
    request = collect_payment()
    cancelled = ChargeResult(approved=False, decline_reason="cancelled")
    recorder = Recorder(charge=lambda _: cancelled)

    result = await run_payment(env.client, recorder, request)

    assert recorder.names == ["charge_card", "record_payment", "release_unclaimed_charge"]
    assert result.charge == cancelled
    await keep_history(payment_handle(env.client, request), HISTORIES / "payment_cancelled.json")


async def test_payment_workflow_retries_a_charge_that_fails_transiently(env):
    def flaky(attempt: int) -> ChargeResult:
        if attempt == 1:
            raise RuntimeError("provider hiccup")
        return APPROVED

    recorder = Recorder(charge=flaky)
    result = await run_payment(env.client, recorder, collect_payment())

    assert recorder.attempts("charge_card") == [1, 2]
    assert recorder.names == ["charge_card", "charge_card", "record_payment"]
    assert result.charge.approved is True


# --- RefundWorkflow --------------------------------------------------------------------------


async def test_payment_workflow_refund_calls_refund_payment(env):
    refund = refund_payment()
    recorder = Recorder()

    await run_refund(env.client, recorder, refund)

    assert recorder.names == ["refund_payment"]
    assert recorder.args("refund_payment") == [refund]
    await keep_history(refund_handle(env.client, refund), HISTORIES / "payment_refunded.json")


async def test_payment_workflow_refund_retries_while_the_payment_settles(env):
    # refund_payment raises PaymentSettling (retryable) while the charge is still in flight.
    def settling_twice(attempt: int) -> None:
        if attempt <= 2:
            raise ApplicationError("payment still settling", type="PaymentSettling")

    refund = refund_payment()
    recorder = Recorder(refund=settling_twice)

    await run_refund(env.client, recorder, refund)

    assert recorder.names == ["refund_payment"] * 3
    assert recorder.attempts("refund_payment") == [1, 2, 3]
    assert recorder.args("refund_payment") == [refund] * 3


# --- a refund refused for good: the operator decides (issue 18) --------------------------------


def decision(action: str, operator: str = "operator") -> RefundDecision:
    return RefundDecision(
        decision_id=str(uuid.uuid4()), action=action, operator=operator, reason=f"{action}: ticket OPS-7",
        decided_at=datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc),
    )


async def wait_for_calls(recorder: Recorder, name: str, count: int) -> None:
    async def called() -> bool:
        return len(recorder.args(name)) >= count

    await eventually(called, timeout=30, interval=0.05, what=f"{count} call(s) of {name}")


async def test_payment_workflow_refused_refund_waits_for_an_operator_then_retries_then_is_recorded_by_hand(env):
    """The gateway refuses the refund for good: the workflow does not retry on its own, it waits
    for an operator. A retry goes to the gateway again (retry 1, a key of its own); refused
    again, the refund recorded by hand ends the workflow, each decision recorded."""
    refund = refund_payment()
    recorder = Recorder(refund=lambda attempt: REFUSED)  # the first refund and the retry: refused
    task_queue = f"payment-test-{uuid.uuid4().hex[:8]}"
    async with create_worker(env.client, task_queue, [PaymentWorkflow, RefundWorkflow], recorder.activities()):
        handle = await env.client.start_workflow(RefundWorkflow.run, refund, id=f"refund-{refund.payment_id}", task_queue=task_queue)
        await wait_for_calls(recorder, "refund_payment", 1)
        retry = decision("retry")
        await handle.execute_update(RefundWorkflow.decide, retry)
        await wait_for_calls(recorder, "refund_payment", 2)
        by_hand = decision("refunded_by_hand", operator="ops-lead")
        await handle.execute_update(RefundWorkflow.decide, by_hand)
        await handle.result()

    assert recorder.names == ["refund_payment", "record_refund_decision", "refund_payment", "record_refund_decision"]
    assert recorder.attempts("refund_payment") == [1, 1]  # a refusal is an answer: never retried by Temporal
    assert [r.retry for r in recorder.args("refund_payment")] == [0, 1]
    assert [d.decision for d in recorder.args("record_refund_decision")] == [retry, by_hand]
    assert all(d.refund.payment_id == refund.payment_id for d in recorder.args("record_refund_decision"))
    await keep_history(handle, HISTORIES / "payment_refund_decided.json")


async def test_payment_workflow_refused_refund_retried_by_an_operator_completes_when_the_gateway_takes_it(env):
    refund = refund_payment()
    recorder = Recorder(refund=lambda attempt: REFUSED if attempt > 0 else REFUNDED)  # retries pass -retry
    task_queue = f"payment-test-{uuid.uuid4().hex[:8]}"
    async with create_worker(env.client, task_queue, [PaymentWorkflow, RefundWorkflow], recorder.activities()):
        handle = await env.client.start_workflow(RefundWorkflow.run, refund, id=f"refund-{refund.payment_id}", task_queue=task_queue)
        await wait_for_calls(recorder, "refund_payment", 1)
        await handle.execute_update(RefundWorkflow.decide, decision("retry"))
        await handle.result()

    assert recorder.names == ["refund_payment", "record_refund_decision", "refund_payment"]


async def test_payment_workflow_a_decision_is_refused_while_none_is_awaited(env):
    """An operator's decision on a refund that was not refused (or whose decision is being
    carried out) is refused by the workflow: nothing is recorded, nothing done."""
    refund = refund_payment()
    release = asyncio.Event()

    async def slow_refund(attempt: int):
        await release.wait()
        return REFUNDED

    recorder = Recorder()
    task_queue = f"payment-test-{uuid.uuid4().hex[:8]}"
    activities = recorder.activities()

    @activity.defn(name="refund_payment")
    async def refund_payment_activity(request: RefundPayment) -> str:
        recorder.calls.append(("refund_payment", request, activity.info().attempt))
        return await slow_refund(activity.info().attempt)

    activities = [a for a in activities if a.__name__ != "refund_payment"] + [refund_payment_activity]
    async with create_worker(env.client, task_queue, [PaymentWorkflow, RefundWorkflow], activities):
        handle = await env.client.start_workflow(RefundWorkflow.run, refund, id=f"refund-{refund.payment_id}", task_queue=task_queue)
        await wait_for_calls(recorder, "refund_payment", 1)
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(RefundWorkflow.decide, decision("refunded_by_hand"))
        release.set()
        await handle.result()

    assert "record_refund_decision" not in recorder.names


# --- a charge that lands after the payment gave up (issue 18) ----------------------------------


async def test_payment_workflow_looks_for_a_late_charge_until_found_and_released(env):
    """The last attempt was in flight at the deadline: its charge turns up at the gateway later.
    release_unclaimed_charge is called again, a timer apart, until it finds and releases it."""

    def no_gateway(_: int) -> ChargeResult:
        raise RuntimeError("no gateway available")

    request = collect_payment(deadline_seconds=30, answer_window_seconds=600)
    recorder = Recorder(charge=no_gateway, release=lambda call: NOT_FOUND if call < 3 else RELEASED)

    result = await run_payment(env.client, recorder, request)

    assert result.charge.decline_reason == "unavailable"
    assert recorder.args("release_unclaimed_charge") == [request] * 3
    assert recorder.attempts("release_unclaimed_charge") == [1, 1, 1]  # looked again by the workflow's timer
    await keep_history(payment_handle(env.client, request), HISTORIES / "payment_late_charge_released.json")


async def test_payment_workflow_stops_looking_for_a_late_charge_once_the_answer_window_has_passed(env):
    def no_gateway(_: int) -> ChargeResult:
        raise RuntimeError("no gateway available")

    request = collect_payment(deadline_seconds=30, answer_window_seconds=100)
    recorder = Recorder(charge=no_gateway, release=lambda call: NOT_FOUND)

    await run_payment(env.client, recorder, request)  # the test server skips the window

    looks = len(recorder.args("release_unclaimed_charge"))
    # Every 10 s (a tenth of the window) from the first look, and a last look at its end.
    assert 10 <= looks <= 12


# --- determinism -----------------------------------------------------------------------------

# The branches PaymentWorkflow can take, and RefundWorkflow's (refunded), each with its history
# kept by the test that takes it.
BRANCHES = ["approved", "declined", "unavailable", "cancelled", "refunded", "refund_decided", "late_charge_released"]


def test_payment_workflow_keeps_a_history_of_every_branch():
    """Deleting a branch's history must not silently drop its replay test."""
    assert_kept_histories(HISTORIES, "payment", BRANCHES, recorded_by=__file__)


@pytest.mark.parametrize("history", sorted(HISTORIES.glob("*.json")), ids=lambda path: path.name)
async def test_payment_workflow_replays_every_kept_history(history):
    """Payments and refunds running in production, whichever branch they took, survive a change
    to their workflows."""
    await assert_replays(history, [PaymentWorkflow, RefundWorkflow])
