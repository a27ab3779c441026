"""What FulfillmentWorkflow and its activities pass each other."""

from __future__ import annotations

from pydantic import BaseModel

from concerto_contracts.values import OrderSnapshot

TASK_QUEUE = "fulfillment"


class FulfillOrder(BaseModel):
    payment_id: str
    correlation_id: str
    causation_id: str | None = None
    order: OrderSnapshot
    # The parcel waits this long for the carrier's pick-up: a durable timer.
    pickup_wait_seconds: int = 1


class Reservation(BaseModel):
    reserved: bool
    warehouse: str | None = None
