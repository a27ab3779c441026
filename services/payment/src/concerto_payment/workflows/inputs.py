"""What PaymentWorkflow, RefundWorkflow and their activities pass each other."""

from __future__ import annotations

from pydantic import BaseModel

from concerto_contracts.values import MaskedCard, OrderSnapshot

TASK_QUEUE = "payment"


class CollectPayment(BaseModel):
    payment_id: str
    payment_method_id: str
    correlation_id: str
    causation_id: str | None = None
    # How long to keep trying while no gateway can take the payment.
    deadline_seconds: int = 300
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

