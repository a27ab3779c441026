"""Pricing an order, and the way its status moves: pure functions, no I/O, so they are easy to
read and to test."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from concerto_contracts.http import OrderStatus

CENT = Decimal("0.01")

# VAT by destination country; anywhere else pays the default.
TAX_RATES = {"GB": Decimal("0.20"), "DE": Decimal("0.19"), "FR": Decimal("0.20"), "NL": Decimal("0.21"), "US": Decimal("0")}
DEFAULT_TAX_RATE = Decimal("0.20")
FREE_SHIPPING_FROM = Decimal("50.00")
SHIPPING_FEE = Decimal("4.99")


@dataclass(frozen=True)
class Product:
    sku: str
    name: str
    unit_price: Decimal
    weight_grams: int


@dataclass(frozen=True)
class Line:
    product: Product
    quantity: int

    @property
    def amount(self) -> Decimal:
        return self.product.unit_price * self.quantity


@dataclass(frozen=True)
class Promotion:
    code: str
    description: str
    percent_off: Decimal = Decimal("0")
    amount_off: Decimal = Decimal("0")
    minimum_subtotal: Decimal = Decimal("0")
    first_order_only: bool = False

    def discount(self, subtotal: Decimal, first_order: bool) -> Decimal:
        if subtotal < self.minimum_subtotal or (self.first_order_only and not first_order):
            return Decimal("0")
        return min(subtotal, subtotal * self.percent_off + self.amount_off)


PROMOTIONS = {
    p.code: p
    for p in (
        Promotion("WELCOME10", "10% off a customer's first order", percent_off=Decimal("0.10"), first_order_only=True),
        Promotion("SAVE5", "5.00 off orders from 40.00", amount_off=Decimal("5.00"), minimum_subtotal=Decimal("40.00")),
    )
}


@dataclass(frozen=True)
class Price:
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    shipping: Decimal

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.discount + self.tax + self.shipping


class UnknownProducts(ValueError):
    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"unknown sku(s): {', '.join(skus)}")
        self.skus = skus


class UnknownPromotions(ValueError):
    def __init__(self, codes: list[str]) -> None:
        super().__init__(f"unknown promotion code(s): {', '.join(codes)}")
        self.codes = codes


def check_order(skus: list[str], promotion_codes: list[str], catalog: dict[str, Product]) -> None:
    """Reject what can never become an order, before any workflow starts."""
    unknown = [sku for sku in skus if sku not in catalog]
    if unknown:
        raise UnknownProducts(unknown)
    bad_codes = [code for code in promotion_codes if code not in PROMOTIONS]
    if bad_codes:
        raise UnknownPromotions(bad_codes)


def short_stock(lines: list[Line], available: dict[str, int]) -> list[str]:
    """Skus the local stock projection says cannot be served. A sku the projection has not
    heard of yet is let through: fulfillment has the final word."""
    return [
        line.product.sku
        for line in lines
        if line.product.sku in available and available[line.product.sku] < line.quantity
    ]


def price(lines: list[Line], promotion_codes: list[str], country: str, first_order: bool) -> Price:
    subtotal = sum((line.amount for line in lines), Decimal("0"))
    discount = sum(
        (PROMOTIONS[code].discount(subtotal, first_order) for code in dict.fromkeys(promotion_codes)),
        Decimal("0"),
    )
    discount = min(discount, subtotal).quantize(CENT, ROUND_HALF_UP)
    taxable = subtotal - discount
    tax = (taxable * TAX_RATES.get(country, DEFAULT_TAX_RATE)).quantize(CENT, ROUND_HALF_UP)
    shipping = Decimal("0.00") if taxable >= FREE_SHIPPING_FROM else SHIPPING_FEE
    return Price(subtotal.quantize(CENT), discount, tax, shipping)


# An order's status only moves forward along this line (or to CANCELLED, which the workflow's
# own steps decide). A step retried late, after the order moved on, must not move it back.
PROGRESSION = [
    OrderStatus.PENDING,
    OrderStatus.CONFIRMED,
    OrderStatus.PAID,
    OrderStatus.FULFILLING,
    OrderStatus.SHIPPED,
    OrderStatus.COMPLETED,
]


def may_move_to(status: OrderStatus) -> list[OrderStatus]:
    """The statuses from which an order may move on to `status` (or, at `status`, gain details)."""
    return PROGRESSION[: PROGRESSION.index(status) + 1]
