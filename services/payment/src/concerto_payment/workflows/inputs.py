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
    # Event-carried state from OrderConfirmed, passed on in PaymentCompleted.
    order: OrderSnapshot


class ChargeResult(BaseModel):
    approved: bool
    card: MaskedCard | None = None
    gateway: str | None = None
    decline_reason: str | None = None


class PaymentResult(BaseModel):
    request: CollectPayment
    charge: ChargeResult


class RefundPayment(BaseModel):
    order_id: str
    payment_id: str
    reason: str
    correlation_id: str
    causation_id: str | None = None

