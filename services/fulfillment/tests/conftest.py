"""What fulfillment's database tests share: the service's tables on a fresh database of each
kind, and an order of one baton to fulfil."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from concerto_contracts.values import CustomerSnapshot, LineItem, OrderSnapshot, ShippingAddress, Totals
from concerto_fulfillment.adapters import db
from concerto_fulfillment.workflows.inputs import FulfillOrder
from concerto_messaging import metadata as messaging_metadata
from concerto_runtime.database import create_sessions
from concerto_runtime.testing import DATABASE_KINDS, fresh_database


@pytest.fixture(params=DATABASE_KINDS)
async def fulfillment_sessions(request, tmp_path) -> AsyncIterator:
    """Sessions on an empty fulfillment database (SQLite, and PostgreSQL when one is given)."""
    async with fresh_database(request.param, tmp_path, messaging_metadata, db.tables) as engine:
        yield create_sessions(engine)


@pytest.fixture
def order_of_one() -> Callable[[str], FulfillOrder]:
    """`order_of_one(customer_id)`: a new order for one conductor's baton, paid."""

    def build(customer_id: str) -> FulfillOrder:
        order_id = f"ord-{uuid.uuid4().hex[:10]}"
        return FulfillOrder(
            order=OrderSnapshot(
                order_id=order_id,
                customer=CustomerSnapshot(id=customer_id, email_masked="a***@example.com"),
                items=[LineItem(sku="CON-BATON", name="Conductor's baton", quantity=1, unit_price=Decimal("24.00"), weight_grams=50)],
                shipping_address=ShippingAddress(name="Ada", line1="1 Way", city="London", postal_code="N1 9GU", country="GB"),
                totals=Totals(
                    subtotal=Decimal("24"), discount=Decimal("0"), tax=Decimal("4.8"), shipping=Decimal("4.99"), total=Decimal("33.79"), currency="EUR"
                ),
                channel="web",
            ),
            correlation_id=f"corr-{order_id}",
            payment_id=f"pay-{order_id}",
        )

    return build
