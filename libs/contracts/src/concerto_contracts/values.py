"""Value objects shared by several events (event-carried state)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

Money = Annotated[Decimal, Field(max_digits=12, decimal_places=2)]
CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class Frozen(BaseModel):
    """An immutable value. Built strictly (an unknown field is an error, so a producer cannot
    publish a typo), read tolerantly: validated with the context `TOLERANT`, as `decode` does,
    fields it does not know are dropped, so a field added by a newer producer never breaks an
    older consumer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_unknown_fields_when_reading(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(info.context, dict) and info.context.get("tolerant") and isinstance(data, dict):
            known = set(cls.model_fields) | {field.alias for field in cls.model_fields.values() if field.alias}
            return {name: value for name, value in data.items() if name in known}
        return data


# The validation context under which events are read (nested values inherit it).
TOLERANT: dict = {"tolerant": True}


class LineItem(Frozen):
    sku: str
    name: str
    quantity: int = Field(gt=0)
    unit_price: Money
    weight_grams: int = Field(ge=0)


class CustomerSnapshot(Frozen):
    id: str
    tier: str = "standard"
    first_order: bool = False
    # Masked: consumers greet or segment customers, none of them mails them.
    email_masked: str


class ShippingAddress(Frozen):
    name: str
    line1: str
    city: str
    postal_code: str
    country: str = Field(pattern=r"^[A-Z]{2}$")


class Totals(Frozen):
    subtotal: Money
    discount: Money
    tax: Money
    shipping: Money
    total: Money
    currency: CurrencyCode


class OrderSnapshot(Frozen):
    """What the downstream contexts need to act on an order without calling back to it."""

    order_id: str
    customer: CustomerSnapshot
    items: list[LineItem]
    shipping_address: ShippingAddress
    totals: Totals
    channel: str
    promotion_codes: list[str] = []


class MaskedCard(Frozen):
    brand: str
    last4: str = Field(pattern=r"^\d{4}$")


def mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}" if domain else "***"
