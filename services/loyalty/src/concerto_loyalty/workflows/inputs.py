"""What LoyaltyAccountWorkflow and its activities pass each other."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

TASK_QUEUE = "loyalty"


class AccountChange(BaseModel):
    kind: Literal["award", "reverse"]
    customer_id: str
    order_id: str
    correlation_id: str
    causation_id: str | None = None
    amount: Decimal = Decimal("0")
    first_order: bool = False
