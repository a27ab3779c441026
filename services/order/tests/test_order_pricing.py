"""Unit tests of the order context's pricing rules (concerto_order.domain.model): pure functions,
no Temporal, no database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from concerto_order.domain import model
from concerto_order.domain.catalog import SEED_PRODUCTS
from concerto_order.domain.model import (
    FREE_SHIPPING_FROM,
    SHIPPING_FEE,
    Line,
    Price,
    Product,
    Promotion,
    UnknownProducts,
    UnknownPromotions,
    check_order,
    price,
    short_stock,
)

CATALOG = {p.sku: p for p in SEED_PRODUCTS}
D = Decimal


def item(unit_price: str, quantity: int = 1, sku: str = "TEST-ITEM") -> Line:
    """A line of a made-up product, to hit exact subtotals."""
    return Line(Product(sku, "Test item", D(unit_price), 100), quantity)


def line(sku: str, quantity: int = 1) -> Line:
    return Line(CATALOG[sku], quantity)


# --- subtotal, tax, shipping -----------------------------------------------------------------


def test_order_pricing_subtotal_is_the_sum_of_the_lines():
    amounts = price([line("CON-BATON", 2), line("CON-ROSIN")], [], "GB", first_order=False)

    assert amounts.subtotal == D("56.50")  # 2 x 24.00 + 8.50
    assert amounts.discount == D("0.00")
    assert amounts.tax == D("11.30")  # 20% of 56.50
    assert amounts.shipping == D("0.00")
    assert amounts.total == D("67.80")


def test_order_pricing_total_is_subtotal_less_discount_plus_tax_and_shipping():
    assert Price(D("40.00"), D("9.00"), D("6.20"), D("4.99")).total == D("42.19")


@pytest.mark.parametrize(
    ("country", "tax"),
    [
        ("GB", D("2.00")),  # 20%
        ("DE", D("1.90")),  # 19%
        ("FR", D("2.00")),  # 20%
        ("NL", D("2.10")),  # 21%
        ("US", D("0.00")),  # no VAT
        ("JP", D("2.00")),  # anywhere else: the default 20%
    ],
)
def test_order_pricing_tax_uses_the_destination_countrys_rate(country, tax):
    assert price([item("10.00")], [], country, first_order=False).tax == tax


def test_order_pricing_tax_rounds_half_up_to_the_cent():
    # 21% of 8.50 is 1.785: half-up gives 1.79 (banker's rounding would give 1.78).
    assert price([line("CON-ROSIN")], [], "NL", first_order=False).tax == D("1.79")


def test_order_pricing_tax_is_charged_on_the_discounted_amount():
    amounts = price([item("50.00")], ["SAVE5"], "GB", first_order=False)
    assert amounts.discount == D("5.00")
    assert amounts.tax == D("9.00")  # 20% of 45.00, not of 50.00


@pytest.mark.parametrize(
    ("unit_price", "shipping"),
    [("49.99", SHIPPING_FEE), ("50.00", D("0.00")), ("50.01", D("0.00")), ("120.00", D("0.00"))],
)
def test_order_pricing_shipping_is_free_from_50(unit_price, shipping):
    assert FREE_SHIPPING_FROM == D("50.00")
    assert price([item(unit_price)], [], "GB", first_order=False).shipping == shipping


def test_order_pricing_free_shipping_threshold_applies_after_the_discount():
    # 50.00 less WELCOME10's 5.00 is 45.00: below the threshold, so shipping is charged.
    amounts = price([item("50.00")], ["WELCOME10"], "GB", first_order=True)
    assert amounts.discount == D("5.00")
    assert amounts.shipping == SHIPPING_FEE


def test_order_pricing_empty_order_costs_shipping_only():
    amounts = price([], [], "GB", first_order=False)
    assert (amounts.subtotal, amounts.discount, amounts.tax, amounts.shipping) == (D("0.00"), D("0.00"), D("0.00"), SHIPPING_FEE)


# --- promotions ------------------------------------------------------------------------------


def test_order_pricing_welcome10_takes_10_percent_off_a_first_order():
    assert price([item("30.00")], ["WELCOME10"], "GB", first_order=True).discount == D("3.00")


def test_order_pricing_welcome10_gives_nothing_on_a_later_order():
    assert price([item("30.00")], ["WELCOME10"], "GB", first_order=False).discount == D("0.00")


def test_order_pricing_welcome10_discount_rounds_half_up():
    # 10% of 8.50 is 0.85 exactly; 10% of 0.05 is 0.005, which rounds up to 0.01.
    assert price([line("CON-ROSIN")], ["WELCOME10"], "GB", first_order=True).discount == D("0.85")
    assert price([item("0.05")], ["WELCOME10"], "GB", first_order=True).discount == D("0.01")


@pytest.mark.parametrize(("unit_price", "discount"), [("39.99", D("0.00")), ("40.00", D("5.00")), ("80.00", D("5.00"))])
def test_order_pricing_save5_applies_only_from_40(unit_price, discount):
    assert price([item(unit_price)], ["SAVE5"], "GB", first_order=False).discount == discount


def test_order_pricing_save5_threshold_is_judged_on_the_whole_subtotal():
    # 2 x 20.00: no single line reaches 40.00, the order does.
    assert price([item("20.00", 2)], ["SAVE5"], "GB", first_order=False).discount == D("5.00")


def test_order_pricing_save5_is_not_limited_to_first_orders():
    assert price([item("40.00")], ["SAVE5"], "GB", first_order=True).discount == D("5.00")


def test_order_pricing_promotions_combine():
    # Both are judged on the undiscounted subtotal: 10% of 40.00 plus 5.00.
    amounts = price([item("40.00")], ["WELCOME10", "SAVE5"], "GB", first_order=True)
    assert amounts.discount == D("9.00")
    assert amounts.tax == D("6.20")
    assert amounts.total == D("42.19")  # 40.00 - 9.00 + 6.20 + 4.99


@pytest.mark.parametrize(
    ("codes", "discount"),
    [
        (["SAVE5", "SAVE5"], D("5.00")),
        (["WELCOME10", "WELCOME10"], D("6.00")),
        (["WELCOME10", "SAVE5", "WELCOME10", "SAVE5", "SAVE5"], D("11.00")),
    ],
)
def test_order_pricing_a_repeated_promotion_code_counts_once(codes, discount):
    assert price([item("60.00")], codes, "GB", first_order=True).discount == discount


def test_order_pricing_a_promotion_never_takes_off_more_than_the_subtotal():
    voucher = Promotion("VOUCHER", "30.00 off", amount_off=D("30.00"))
    assert voucher.discount(D("12.00"), first_order=False) == D("12.00")
    assert voucher.discount(D("100.00"), first_order=False) == D("30.00")


def test_order_pricing_combined_discounts_never_exceed_the_subtotal(monkeypatch):
    # Each promotion alone stays under the subtotal, together they would not.
    monkeypatch.setitem(model.PROMOTIONS, "HALF", Promotion("HALF", "50% off", percent_off=D("0.50")))
    monkeypatch.setitem(model.PROMOTIONS, "TWENTY", Promotion("TWENTY", "20.00 off", amount_off=D("20.00")))

    amounts = price([item("30.00")], ["HALF", "TWENTY"], "GB", first_order=False)

    assert amounts.discount == D("30.00")
    assert amounts.tax == D("0.00")
    assert amounts.total == SHIPPING_FEE  # nothing left to pay but the delivery


def test_order_pricing_amounts_are_in_cents():
    amounts = price([item("33.33", 3)], ["WELCOME10", "SAVE5"], "DE", first_order=True)
    for amount in (amounts.subtotal, amounts.discount, amounts.tax, amounts.shipping, amounts.total):
        assert amount == amount.quantize(D("0.01")), amount


# --- check_order -----------------------------------------------------------------------------


def test_order_pricing_check_order_accepts_known_skus_and_codes():
    assert check_order(["CON-BATON", "CON-TUNER"], ["WELCOME10", "SAVE5"], CATALOG) is None
    assert check_order(["CON-BATON"], [], CATALOG) is None


def test_order_pricing_check_order_rejects_unknown_products():
    with pytest.raises(UnknownProducts) as caught:
        check_order(["CON-BATON", "CON-TUBA", "CON-HARP"], [], CATALOG)
    assert caught.value.skus == ["CON-TUBA", "CON-HARP"]
    assert "CON-TUBA" in str(caught.value) and "CON-HARP" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_order_pricing_check_order_rejects_unknown_promotions():
    with pytest.raises(UnknownPromotions) as caught:
        check_order(["CON-BATON"], ["SAVE5", "FREESTUFF"], CATALOG)
    assert caught.value.codes == ["FREESTUFF"]
    assert "FREESTUFF" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_order_pricing_check_order_reports_unknown_products_first():
    with pytest.raises(UnknownProducts):
        check_order(["CON-TUBA"], ["FREESTUFF"], CATALOG)


# --- short_stock -----------------------------------------------------------------------------


def test_order_pricing_short_stock_lists_skus_without_enough_units():
    lines = [line("CON-BATON", 3), line("CON-ROSIN", 2), line("CON-TUNER", 1)]
    available = {"CON-BATON": 2, "CON-ROSIN": 2, "CON-TUNER": 0}
    assert short_stock(lines, available) == ["CON-BATON", "CON-TUNER"]


def test_order_pricing_short_stock_accepts_exactly_enough():
    assert short_stock([line("CON-BATON", 5)], {"CON-BATON": 5}) == []


def test_order_pricing_short_stock_lets_unknown_skus_through():
    # The local projection has not heard of these yet: fulfillment has the final word.
    assert short_stock([line("CON-BATON", 99), line("CON-STAND", 1)], {}) == []
    assert short_stock([line("CON-BATON", 99), line("CON-STAND", 2)], {"CON-STAND": 1}) == ["CON-STAND"]
