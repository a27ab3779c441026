"""The gateway's edge: authentication, roles, validation and correlation ids. Every error is
an RFC 9457 problem (application/problem+json) with a title, a status and a clear detail."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

ORDERS = "/api/v1/orders"


async def test_missing_or_wrong_api_key_is_401(api, anonymous):
    body = api.body((await api.product(prefer="CON-BATON"))["sku"])

    missing = await anonymous.post(ORDERS, json=body)
    wrong = await anonymous.post(ORDERS, json=body, headers={"X-API-Key": "not-a-key"})
    reading = await anonymous.get("/api/v1/products")

    for response in (missing, wrong, reading):
        problem = api.problem(response, 401)
        assert "X-API-Key" in problem["detail"], problem


async def test_customer_key_on_an_admin_route_is_403(api):
    sku = (await api.product(prefer="CON-STAND"))["sku"]

    # The session's client carries the customer key.
    response = await api.http.put(f"/api/v1/admin/inventory/{sku}", json={"quantity": api.RESTORED_STOCK})

    api.problem(response, 403)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda body: body.pop("items"), "items"),
        (lambda body: body.update(items=[]), "items"),
        (lambda body: body["customer"].update(email="not-an-email"), "email"),
        (lambda body: body["items"][0].update(quantity=0), "quantity"),
    ],
    ids=["no-items", "empty-items", "bad-email", "zero-quantity"],
)
async def test_invalid_body_is_422_naming_the_field(api, change, field):
    body = api.body((await api.product(prefer="CON-BATON"))["sku"])
    change(body)

    response = await api.http.post(ORDERS, json=body)

    problem = api.problem(response, 422)
    assert field in problem["detail"], f"the detail should name {field!r}: {problem}"


async def test_unknown_sku_is_422(api):
    sku = api.unique("NO-SUCH-SKU")

    response = await api.http.post(ORDERS, json=api.body(sku))

    problem = api.problem(response, 422)
    assert sku in problem["detail"], problem


async def test_unknown_payment_token_is_422(api):
    body = api.body((await api.product(prefer="CON-BATON"))["sku"], token="tok_doesNotExist")

    response = await api.http.post(ORDERS, json=body)

    api.problem(response, 422)


@pytest.mark.parametrize("correlation_id", ["has spaces", "x" * 101, "semi;colon"])
async def test_invalid_correlation_id_is_422(api, correlation_id):
    body = api.body((await api.product(prefer="CON-BATON"))["sku"])

    response = await api.http.post(ORDERS, json=body, headers={"X-Correlation-ID": correlation_id})

    problem = api.problem(response, 422)
    assert "X-Correlation-ID" in problem["detail"], problem


async def test_supplied_correlation_id_is_echoed_and_becomes_the_orders(api):
    correlation_id = api.unique("e2e-corr")
    body = api.body((await api.product(prefer="CON-BATON"))["sku"])

    placed = await api.place(body, headers={"X-Correlation-ID": correlation_id})

    assert placed.response.headers.get("X-Correlation-ID") == correlation_id
    assert placed.correlation_id == correlation_id
    assert (await api.order(placed.order_id))["correlation_id"] == correlation_id


async def test_a_correlation_id_is_made_up_when_none_is_given(api):
    response = await api.http.get("/api/v1/products")

    assert response.status_code == 200
    assert response.headers.get("X-Correlation-ID")


async def test_unknown_order_is_404(api):
    order_id = api.unique("no-such-order")

    api.problem(await api.http.get(f"{ORDERS}/{order_id}"), 404)
    api.problem(await api.cancel(order_id), 404)
