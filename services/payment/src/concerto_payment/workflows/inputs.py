"""What PaymentWorkflow, RefundWorkflow and their activities pass each other."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from concerto_contracts.values import MaskedCard, OrderSnapshot

TASK_QUEUE = "payment"

# How long after a charge request a payment gateway may still carry it out and record it: one
# window for both providers (each holds a request it has taken for seconds, not minutes; a
# quarter of an hour covers a queue backlog at the provider with a wide margin).
PSP_ANSWER_WINDOW_SECONDS = 900


class CollectPayment(BaseModel):
    payment_id: str
    payment_method_id: str
    correlation_id: str
    causation_id: str | None = None
    # How long to keep trying while no gateway can take the payment.
    deadline_seconds: int = 300
    # After giving up: how long a charge whose answer was lost may still turn up at the gateway;
    # it is looked for until then, and refunded if found (ADR 6).
    answer_window_seconds: int = PSP_ANSWER_WINDOW_SECONDS
    # Event-carried state from OrderConfirmed, passed on in PaymentCompleted.
    order: OrderSnapshot


class ChargeResult(BaseModel):
    approved: bool
    card: MaskedCard | None = None
    gateway: str | None = None
    gateway_reference: str | None = None  # the provider's id for the charge
    decline_reason: str | None = None  # declined, insufficient_funds, unavailable, ...


class PaymentResult(BaseModel):
    request: CollectPayment
    charge: ChargeResult


class RefundPayment(BaseModel):
    order_id: str
    payment_id: str
    reason: str
    correlation_id: str
    causation_id: str | None = None
    # 0 for the refund the cancellation asked for; n for an operator's n-th retry, which goes to
    # the gateway under a key of its own (the gateway answers a refused key's refusal again).
    retry: int = 0


# What refund_payment (and release_unclaimed_charge) came to. Runs recorded before these
# activities returned anything hold None: for a refund, it was made (or nothing was owed).
REFUNDED, REFUSED, NOTHING_TO_REFUND = "refunded", "refused", "nothing_to_refund"
RELEASED, NOT_FOUND, NOTHING_TO_RELEASE = "released", "not_found", "nothing_to_release"


class RefundDecision(BaseModel):
    """An operator's decision on a refund the gateway refused for good (RefundWorkflow's update
    `decide`), recorded with who took it, when and why."""

    decision_id: str
    action: Literal["retry", "refunded_by_hand"]
    operator: str
    reason: str
    reference: str | None = None
    decided_at: datetime


class RefundDecided(BaseModel):
    refund: RefundPayment
    decision: RefundDecision

