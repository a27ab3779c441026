"""Unit tests of the fulfillment context's allocation and carrier rules
(concerto_fulfillment.domain.model): pure functions, no Temporal, no database."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone

import pytest

from concerto_fulfillment.domain.model import (
    SEED_SKUS,
    SEED_STOCK_PER_WAREHOUSE,
    TRANSIT_DAYS,
    WAREHOUSES,
    carrier_for,
    choose_warehouse,
    estimated_delivery,
    short_skus,
    tracking_number,
)

# The two warehouses: LON-1 in GB, BER-1 in DE.
FULL = {"LON-1": {"CON-BATON": 10, "CON-ROSIN": 10}, "BER-1": {"CON-BATON": 10, "CON-ROSIN": 10}}


def test_fulfillment_model_warehouses_are_london_and_berlin():
    assert [(w.code, w.country) for w in WAREHOUSES] == [("LON-1", "GB"), ("BER-1", "DE")]
    assert SEED_STOCK_PER_WAREHOUSE > 0 and len(SEED_SKUS) == len(set(SEED_SKUS))


# --- choose_warehouse ------------------------------------------------------------------------


@pytest.mark.parametrize(("country", "warehouse"), [("GB", "LON-1"), ("DE", "BER-1")])
def test_fulfillment_model_choose_warehouse_prefers_the_destination_country(country, warehouse):
    assert choose_warehouse({"CON-BATON": 2}, FULL, country) == warehouse


@pytest.mark.parametrize("country", ["FR", "US", "JP"])
def test_fulfillment_model_choose_warehouse_elsewhere_takes_the_first_that_can(country):
    assert choose_warehouse({"CON-BATON": 2}, FULL, country) == "LON-1"


def test_fulfillment_model_choose_warehouse_falls_back_when_the_local_one_is_short():
    stock = {"LON-1": {"CON-BATON": 1}, "BER-1": {"CON-BATON": 5}}
    assert choose_warehouse({"CON-BATON": 2}, stock, "GB") == "BER-1"


def test_fulfillment_model_choose_warehouse_falls_back_when_the_local_one_lacks_a_sku():
    stock = {"LON-1": {"CON-BATON": 10}, "BER-1": {"CON-BATON": 10, "CON-ROSIN": 1}}
    assert choose_warehouse({"CON-BATON": 1, "CON-ROSIN": 1}, stock, "GB") == "BER-1"


def test_fulfillment_model_choose_warehouse_falls_back_when_the_local_one_is_missing():
    assert choose_warehouse({"CON-BATON": 1}, {"BER-1": {"CON-BATON": 1}}, "GB") == "BER-1"


def test_fulfillment_model_choose_warehouse_accepts_exactly_enough():
    stock = {"LON-1": {"CON-BATON": 3}, "BER-1": {}}
    assert choose_warehouse({"CON-BATON": 3}, stock, "GB") == "LON-1"
    assert choose_warehouse({"CON-BATON": 4}, stock, "GB") is None


def test_fulfillment_model_choose_warehouse_is_none_when_no_single_warehouse_has_everything():
    # Together they hold enough, but not in one parcel.
    stock = {"LON-1": {"CON-BATON": 5, "CON-ROSIN": 0}, "BER-1": {"CON-BATON": 0, "CON-ROSIN": 5}}
    assert choose_warehouse({"CON-BATON": 1, "CON-ROSIN": 1}, stock, "GB") is None
    # Nor is one sku's quantity split across them.
    stock = {"LON-1": {"CON-BATON": 3}, "BER-1": {"CON-BATON": 3}}
    assert choose_warehouse({"CON-BATON": 4}, stock, "DE") is None


def test_fulfillment_model_choose_warehouse_is_none_without_stock():
    assert choose_warehouse({"CON-BATON": 1}, {}, "GB") is None


def test_fulfillment_model_choose_warehouse_does_not_touch_the_stock():
    stock = {"LON-1": {"CON-BATON": 5}, "BER-1": {"CON-BATON": 5}}
    choose_warehouse({"CON-BATON": 2, "CON-ROSIN": 1}, stock, "GB")
    assert stock == {"LON-1": {"CON-BATON": 5}, "BER-1": {"CON-BATON": 5}}


# --- short_skus ------------------------------------------------------------------------------


def test_fulfillment_model_short_skus_lists_skus_no_warehouse_holds_enough_of():
    stock = {"LON-1": {"CON-BATON": 2, "CON-ROSIN": 9}, "BER-1": {"CON-BATON": 3, "CON-STAND": 1}}
    needed = {"CON-BATON": 4, "CON-ROSIN": 9, "CON-STAND": 2, "CON-TUNER": 1}
    # In needed's order; CON-BATON is short although the warehouses hold 5 together.
    assert short_skus(needed, stock) == ["CON-BATON", "CON-STAND", "CON-TUNER"]


def test_fulfillment_model_short_skus_is_empty_when_each_sku_is_somewhere():
    # Each sku is in stock somewhere (though not in one warehouse: choose_warehouse says None).
    stock = {"LON-1": {"CON-BATON": 5}, "BER-1": {"CON-ROSIN": 5}}
    needed = {"CON-BATON": 5, "CON-ROSIN": 5}
    assert short_skus(needed, stock) == []
    assert choose_warehouse(needed, stock, "GB") is None


def test_fulfillment_model_short_skus_without_stock_is_everything():
    assert short_skus({"CON-BATON": 1, "CON-ROSIN": 1}, {}) == ["CON-BATON", "CON-ROSIN"]


# --- carriers and tracking numbers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("grams", "carrier"),
    [(0, "royal-parcel"), (50, "royal-parcel"), (2000, "royal-parcel"), (2001, "freight-express"), (25_000, "freight-express")],
)
def test_fulfillment_model_carrier_for_depends_on_weight(grams, carrier):
    assert carrier_for(grams) == carrier


def test_fulfillment_model_tracking_number_is_deterministic():
    # A retried schedule_shipment hands out the same number.
    assert tracking_number("royal-parcel", "shp-ord-1") == tracking_number("royal-parcel", "shp-ord-1")


def test_fulfillment_model_tracking_number_differs_per_shipment():
    numbers = {tracking_number("royal-parcel", f"shp-ord-{i}") for i in range(50)}
    assert len(numbers) == 50


def test_fulfillment_model_tracking_number_starts_with_the_carrier():
    royal = tracking_number("royal-parcel", "shp-ord-1")
    freight = tracking_number("freight-express", "shp-ord-1")
    assert re.fullmatch(r"RO[0-9A-F]{10}", royal)
    assert re.fullmatch(r"FR[0-9A-F]{10}", freight)
    assert royal[2:] == freight[2:]  # the digest is the shipment's


# --- estimated delivery ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("carrier", "dispatched", "expected"),
    [
        ("royal-parcel", datetime(2025, 3, 11, 9, tzinfo=timezone.utc), date(2025, 3, 13)),  # Tuesday -> Thursday
        ("royal-parcel", datetime(2025, 3, 14, 9, tzinfo=timezone.utc), date(2025, 3, 18)),  # Friday -> Tuesday
        ("royal-parcel", datetime(2025, 3, 15, 9, tzinfo=timezone.utc), date(2025, 3, 18)),  # Saturday -> Tuesday
        ("freight-express", datetime(2025, 3, 14, 9, tzinfo=timezone.utc), date(2025, 3, 20)),  # Friday -> Thursday
    ],
)
def test_fulfillment_model_estimated_delivery_counts_working_days(carrier, dispatched, expected):
    assert estimated_delivery(carrier, dispatched) == expected


def test_fulfillment_model_estimated_delivery_is_none_for_a_carrier_without_a_quote():
    assert estimated_delivery("pigeon-post", datetime(2025, 3, 14, tzinfo=timezone.utc)) is None


def test_fulfillment_model_every_carrier_quotes_a_delivery():
    assert {carrier_for(0), carrier_for(10_000)} <= set(TRANSIT_DAYS)
