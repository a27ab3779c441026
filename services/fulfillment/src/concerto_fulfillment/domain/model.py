"""Warehouses, allocation and carriers: pure rules, no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta


@dataclass(frozen=True)
class Warehouse:
    code: str
    country: str


WAREHOUSES = [Warehouse("LON-1", "GB"), Warehouse("BER-1", "DE")]
SEED_STOCK_PER_WAREHOUSE = 500
SEED_SKUS = ["CON-BATON", "CON-SCORE-B5", "CON-METRONOME", "CON-STAND", "CON-ROSIN", "CON-TUNER"]


def choose_warehouse(
    needed: dict[str, int], stock: dict[str, dict[str, int]], destination_country: str
) -> str | None:
    """The warehouse that can ship every line in one parcel, preferring one in the destination
    country. `stock` maps warehouse -> sku -> units available. None if no warehouse can."""
    ordered = sorted(WAREHOUSES, key=lambda w: w.country != destination_country)
    for warehouse in ordered:
        available = stock.get(warehouse.code, {})
        if all(available.get(sku, 0) >= quantity for sku, quantity in needed.items()):
            return warehouse.code
    return None


def short_skus(needed: dict[str, int], stock: dict[str, dict[str, int]]) -> list[str]:
    """Skus no single warehouse holds enough of."""
    return [
        sku
        for sku, quantity in needed.items()
        if not any(stock.get(w.code, {}).get(sku, 0) >= quantity for w in WAREHOUSES)
    ]


def carrier_for(weight_grams: int) -> str:
    return "royal-parcel" if weight_grams <= 2000 else "freight-express"


# Working days from hand-over to the door, as the carriers quote them.
TRANSIT_DAYS = {"royal-parcel": 2, "freight-express": 4}


def estimated_delivery(carrier: str, dispatched_at: datetime) -> date | None:
    """The day the parcel should arrive: the carrier's transit days after dispatch, counting
    Monday to Friday only. None for a carrier that quotes none."""
    days = TRANSIT_DAYS.get(carrier)
    if days is None:
        return None
    day = dispatched_at.date()
    while days:
        day += timedelta(days=1)
        if day.weekday() < 5:  # Monday to Friday
            days -= 1
    return day


def tracking_number(carrier: str, shipment_id: str) -> str:
    # Derived, not random, so a retried activity hands out the same number.
    digest = hashlib.sha256(shipment_id.encode()).hexdigest()[:10].upper()
    return f"{carrier[:2].upper()}{digest}"
