"""paynext, the payments API: authorisations, refusals, merchant references, refunds, the ledger."""

from __future__ import annotations

import re

import httpx
import pytest

from concerto_psp_simulators import paynext


def payment(reference: str, value: int = 1999, token: str = "tok_visa", currency: str = "EUR") -> dict:
    return {
        "merchantReference": reference,
        "amount": {"value": value, "currency": currency},
        "paymentMethod": {"type": "scheme", "token": token},
    }


def refund(reference: str, value: int, currency: str = "EUR") -> dict:
    return {"merchantReference": reference, "amount": {"value": value, "currency": currency}}


@pytest.mark.parametrize(
    ("token", "brand", "last4"),
    [("tok_visa", "visa", "4242"), ("tok_mastercard", "mastercard", "4444"), ("tok_amex", "amex", "8431")],
)
async def test_a_good_card_is_authorised(paynext_client: httpx.AsyncClient, token: str, brand: str, last4: str) -> None:
    response = await paynext_client.post("/payments", json=payment("order-1", token=token, currency="eur"))

    assert response.status_code == 200
    body = response.json()
    assert re.fullmatch(r"PN\d{16}", body["pspReference"])
    assert body == {
        "pspReference": body["pspReference"],
        "resultCode": "Authorised",
        "merchantReference": "order-1",
        "amount": {"value": 1999, "currency": "EUR"},
        "card": {"brand": brand, "last4": last4},
    }


@pytest.mark.parametrize(
    ("token", "reason"),
    [("tok_chargeDeclined", "Refused"), ("tok_chargeDeclinedInsufficientFunds", "Not enough balance")],
)
async def test_a_refusal_is_an_answer_not_an_error(paynext_client: httpx.AsyncClient, token: str, reason: str) -> None:
    response = await paynext_client.post("/payments", json=payment("order-2", token=token))

    assert response.status_code == 200
    assert (response.json()["resultCode"], response.json()["refusalReason"]) == ("Refused", reason)


async def test_an_unknown_token_is_an_invalid_payment_method(paynext_client: httpx.AsyncClient) -> None:
    response = await paynext_client.post("/payments", json=payment("order-3", token="tok_nope"))

    assert response.status_code == 422
    assert response.json()["status"] == 422
    assert response.json()["errorCode"] == "invalid_payment_method"
    assert (await paynext_client.get("/_admin/ledger")).json()["charges"] == []


async def test_a_malformed_request_gets_fastapis_422(paynext_client: httpx.AsyncClient) -> None:
    body = payment("order-bad")
    body["amount"]["value"] = 0
    response = await paynext_client.post("/payments", json=body)

    assert response.status_code == 422
    assert "detail" in response.json()


async def test_the_same_reference_returns_the_same_payment(paynext_client: httpx.AsyncClient) -> None:
    first = await paynext_client.post("/payments", json=payment("order-4"))
    again = await paynext_client.post("/payments", json=payment("order-4", currency="eur"))

    assert (again.status_code, again.json()) == (200, first.json())
    assert len((await paynext_client.get("/_admin/ledger")).json()["charges"]) == 1


@pytest.mark.parametrize("changed", [{"value": 5000}, {"token": "tok_amex"}])
async def test_the_same_reference_for_another_payment_is_a_duplicate(paynext_client: httpx.AsyncClient, changed: dict) -> None:
    await paynext_client.post("/payments", json=payment("order-5"))
    response = await paynext_client.post("/payments", json=payment("order-5", **changed))

    assert response.status_code == 422
    assert response.json()["errorCode"] == "duplicate_reference"


async def test_a_payment_is_found_by_its_merchant_reference(paynext_client: httpx.AsyncClient) -> None:
    created = (await paynext_client.post("/payments", json=payment("order-6"))).json()

    assert (await paynext_client.get("/payments", params={"merchantReference": "order-6"})).json() == {"payments": [created]}
    assert (await paynext_client.get("/payments", params={"merchantReference": "nobody"})).json() == {"payments": []}


async def test_a_refund_is_received_and_replayed_by_its_reference(paynext_client: httpx.AsyncClient) -> None:
    paid = (await paynext_client.post("/payments", json=payment("order-7", value=3000))).json()
    url = f"/payments/{paid['pspReference']}/refunds"

    response = await paynext_client.post(url, json=refund("refund-7", 3000))
    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"PNR\d{16}", body["pspReference"])
    assert body == {
        "pspReference": body["pspReference"],
        "paymentPspReference": paid["pspReference"],
        "merchantReference": "refund-7",
        "amount": {"value": 3000, "currency": "EUR"},
        "status": "received",
    }

    again = await paynext_client.post(url, json=refund("refund-7", 3000))
    assert (again.status_code, again.json()) == (201, body)

    duplicate = await paynext_client.post(url, json=refund("refund-7", 100))
    assert (duplicate.status_code, duplicate.json()["errorCode"]) == (422, "duplicate_reference")

    second = await paynext_client.post(url, json=refund("refund-7b", 3000))  # nothing left to refund
    assert second.status_code == 422
    assert second.json()["errorCode"] == "amount_exceeds_remaining"


async def test_refunds_that_cannot_be_made(paynext_client: httpx.AsyncClient) -> None:
    refused = (await paynext_client.post("/payments", json=payment("order-8", token="tok_chargeDeclined"))).json()
    paid = (await paynext_client.post("/payments", json=payment("order-9", value=1000))).json()

    not_paid = await paynext_client.post(f"/payments/{refused['pspReference']}/refunds", json=refund("r-8", 1999))
    assert (not_paid.status_code, not_paid.json()["errorCode"]) == (422, "payment_not_refundable")

    too_much = await paynext_client.post(f"/payments/{paid['pspReference']}/refunds", json=refund("r-9", 1001))
    assert (too_much.status_code, too_much.json()["errorCode"]) == (422, "amount_exceeds_remaining")

    wrong_currency = await paynext_client.post(f"/payments/{paid['pspReference']}/refunds", json=refund("r-9b", 10, "USD"))
    assert (wrong_currency.status_code, wrong_currency.json()["errorCode"]) == (422, "currency_mismatch")

    unknown = await paynext_client.post("/payments/PN0000000000000000/refunds", json=refund("r-10", 100))
    assert unknown.status_code == 404
    assert unknown.json() == {"status": 404, "errorCode": "not_found", "message": unknown.json()["message"]}


async def test_the_ledger_holds_every_payment_and_refund_accepted_or_refused(paynext_client: httpx.AsyncClient) -> None:
    ok = (await paynext_client.post("/payments", json=payment("m-ok", value=500, token="tok_amex"))).json()
    refused = (await paynext_client.post("/payments", json=payment("m-no", value=700, token="tok_chargeDeclinedInsufficientFunds"))).json()
    done = (await paynext_client.post(f"/payments/{ok['pspReference']}/refunds", json=refund("m-r1", 200))).json()
    await paynext_client.post(f"/payments/{ok['pspReference']}/refunds", json=refund("m-r2", 400))  # more than is left

    ledger = (await paynext_client.get("/_admin/ledger")).json()

    assert ledger["gateway"] == "paynext"
    assert [{k: c[k] for k in ("reference", "key", "amount", "currency", "status", "card_last4")} for c in ledger["charges"]] == [
        {"reference": ok["pspReference"], "key": "m-ok", "amount": 500, "currency": "EUR", "status": "succeeded",
         "card_last4": "8431"},
        {"reference": refused["pspReference"], "key": "m-no", "amount": 700, "currency": "EUR", "status": "failed",
         "card_last4": "9995"},
    ]
    assert [{k: r[k] for k in ("charge_reference", "key", "amount", "status")} for r in ledger["refunds"]] == [
        {"charge_reference": ok["pspReference"], "key": "m-r1", "amount": 200, "status": "succeeded"},
        {"charge_reference": ok["pspReference"], "key": "m-r2", "amount": 400, "status": "failed"},
    ]
    assert ledger["refunds"][0]["reference"] == done["pspReference"]


async def test_the_ledger_survives_a_restart(start, tmp_path) -> None:
    async with start(paynext, tmp_path) as client:
        first = (await client.post("/payments", json=payment("order-11"))).json()
    async with start(paynext, tmp_path) as client:
        assert (await client.get("/payments", params={"merchantReference": "order-11"})).json() == {"payments": [first]}
    assert (tmp_path / "paynext.db").exists()


async def test_health_openapi_and_unknown_urls(paynext_client: httpx.AsyncClient) -> None:
    assert (await paynext_client.get("/health/live")).status_code == 200
    assert (await paynext_client.get("/health/ready")).status_code == 200
    assert (await paynext_client.get("/openapi.json")).json()["info"]["title"] == "paynext (simulated PSP)"
    unknown = await paynext_client.get("/nothing-here")
    assert unknown.status_code == 404
    assert unknown.json()["errorCode"] == "not_found"
