"""Customer identity, end to end: tokens from the stack's development issuer (a stand-in for any
OpenID provider), verified by the gateway against its JWKS. An order belongs to the customer who
placed it: they read, list and cancel it, nobody else does, and nobody else reads their account."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


async def test_a_signed_in_customer_owns_their_orders_and_account(api, anonymous, sign_in):
    # `anonymous` sends no API key: a token and a key together are refused (one credential per call).
    alice_id, bob_id = api.unique("alice"), api.unique("bob")
    alice, bob = await sign_in(alice_id), await sign_in(bob_id)
    product = await api.product(prefer="CON-TUNER")
    body = api.body(product["sku"], token="tok_visa", customer_id=alice_id)

    placed = await anonymous.post("/api/v1/orders", json=body, headers=alice)
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]

    assert (await anonymous.get(f"/api/v1/orders/{order_id}", headers=alice)).status_code == 200
    assert (await anonymous.get(f"/api/v1/orders/{order_id}", headers=bob)).status_code == 404
    assert (await anonymous.post(f"/api/v1/orders/{order_id}/cancel", headers=bob)).status_code == 404
    assert (await anonymous.get(f"/api/v1/orders/{order_id}/timeline", headers=bob)).status_code == 404
    mine = (await anonymous.get("/api/v1/orders", headers=alice)).json()
    assert [o["order_id"] for o in mine["items"]] == [order_id] and mine["total"] == 1
    assert (await anonymous.get("/api/v1/orders", headers=bob)).json()["total"] == 0
    assert (await anonymous.get(f"/api/v1/customers/{alice_id}/loyalty", headers=bob)).status_code == 404
    assert (await anonymous.get("/api/v1/admin/sagas", headers=alice)).status_code == 403

    as_someone_else = body | {"customer": body["customer"] | {"id": bob_id}}
    assert (await anonymous.post("/api/v1/orders", json=as_someone_else, headers=alice)).status_code == 403
    assert (await api.terminal(order_id))["status"] == "COMPLETED"
