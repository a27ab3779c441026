"""How points are earned and what they make a customer: pure rules."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

FIRST_ORDER_BONUS = 50
TIERS = [(2000, "gold"), (500, "silver"), (0, "standard")]  # from this many points up


def points_for(amount: Decimal, first_order: bool) -> int:
    """One point per whole currency unit spent, plus a welcome bonus on a first order."""
    points = int(amount.to_integral_value(rounding=ROUND_FLOOR))
    return points + (FIRST_ORDER_BONUS if first_order else 0)


def tier_for(points: int) -> str:
    return next(tier for threshold, tier in TIERS if points >= threshold)
