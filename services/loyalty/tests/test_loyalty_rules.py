"""Unit tests of the loyalty context's rules (concerto_loyalty.domain.rules): pure functions,
no Temporal, no database."""

from __future__ import annotations

from decimal import Decimal

import pytest

from concerto_loyalty.domain.rules import FIRST_ORDER_BONUS, TIERS, points_for, tier_for

D = Decimal


@pytest.mark.parametrize(
    ("amount", "points"),
    [("0.00", 0), ("0.99", 0), ("1.00", 1), ("62.59", 62), ("62.99", 62), ("100.00", 100), ("1999.99", 1999)],
)
def test_loyalty_rules_one_point_per_whole_unit_rounded_down(amount, points):
    assert points_for(D(amount), first_order=False) == points


def test_loyalty_rules_first_order_adds_the_welcome_bonus():
    assert FIRST_ORDER_BONUS == 50
    assert points_for(D("62.59"), first_order=True) == 62 + 50
    assert points_for(D("0.50"), first_order=True) == 50


def test_loyalty_rules_points_are_ints():
    assert type(points_for(D("10.75"), first_order=True)) is int


def test_loyalty_rules_tiers_from_highest_threshold_down():
    assert TIERS == [(2000, "gold"), (500, "silver"), (0, "standard")]


@pytest.mark.parametrize(
    ("points", "tier"),
    [(0, "standard"), (1, "standard"), (499, "standard"), (500, "silver"), (1999, "silver"), (2000, "gold"), (10**6, "gold")],
)
def test_loyalty_rules_tier_thresholds(points, tier):
    assert tier_for(points) == tier
